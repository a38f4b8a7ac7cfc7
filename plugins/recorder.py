"""Records published streams into FLV files, as Flash Media Server records ``publish`` streams.

Every stream published to the application (or only those whose name matches ``streams``, a
glob pattern) is written to ``<directory>/<app>/<file>``, the file named by the ``name``
template (``stream``: the stream name, ``app``, ``start``: the UTC start time; default
``"{stream}-{start:%Y%m%dT%H%M%SZ}.flv"``)::

    [[apps.live.plugins]]
    use = "recorder"
    directory = "recordings"             # created if missing; relative to the configuration file
    streams = "cam*"                     # optional glob on the stream name; default "*"
    record_types = ["record", "append"]  # optional; default all of "live", "record", "append"
    name = "{stream}-{start:%Y%m%d-%H%M%S}.flv"  # optional file name template (below)
    max_bytes = 1_000_000_000            # optional; a new file at the next keyframe past it
    max_seconds = 3600                   # optional; a new file at the next keyframe past it
    budget_bytes = 50_000_000_000        # optional; what the app's recordings may use in all
    budget_policy = "delete-oldest"      # or "refuse": stop recording when the budget is used
    index_bytes = 65536                  # optional; room for onMetaData's keyframe index

Why a plugin and not the core: recording is a choice per application with options of its own,
it needs nothing but the ``media`` hook, and the file format lives in :mod:`fms.vod` (sans-IO),
which the server's playback of recordings reads too: both sides agree on the files without the
server owning the recorder's disk policy.

Publish kinds follow Flash Media Server: ``record`` starts a new file; ``append`` continues the
newest file of that stream (its timestamps go on from where that file ended) or starts one if
there is none or it is not a complete file this recorder wrote; ``live`` is recorded like
``record`` unless ``record_types`` leaves it out (an unknown kind is relayed live, so it counts
as ``live``). ``record`` never overwrites: a name already taken gets ``-1``, ``-2``...

The file (:mod:`fms.vod.writer`): an FLV header, an ``onMetaData`` of fixed size (the
publisher's metadata, rewritten in place at close with ``duration``, ``filesize``, codec ids
(FourCC numbers for Enhanced RTMP codecs), ``width``/``height``, and the ``keyframes`` index
``{times, filepositions}``), then every audio, video and data message as a tag, as published
(Enhanced RTMP and multitrack tags included), timestamps rebased so that the file starts at 0.
Metadata that changes in mid-stream is written where it came, as an ``onMetaData`` data tag
(FFmpeg shows such tags as a data stream), and heads the next file. A new file started by
``max_bytes`` or ``max_seconds`` begins with every track's sequence header (one per media kind,
track and codec, HDR metadata included) before its first keyframe.

Crash safety: a file is a valid FLV up to its last complete tag at any moment; its
``onMetaData`` says ``indexed: false`` until it is closed. When the application starts (its
first client after a server start) every such file of the application that no process is
writing (an exclusive ``flock`` marks the files being written) is repaired, in a thread of the
reactor's pool: a partial last tag is cut off and ``onMetaData`` rebuilt from the tags
(:func:`fms.vod.reader.plan_repair`; the scan reads about 170 MB/s).

Limits: ``budget_bytes`` counts every ``.flv`` of the application's folder. Before a write would
exceed it, ``delete-oldest`` deletes the oldest recordings not being written (logged one by
one), ``refuse`` (or nothing left to delete) stops that recording, closed properly, with one
log line; a new recording is not started while the budget is used up. A write error (a full
disk, permissions) stops that one recording with one log line too; the live stream and every
other recording go on.

File names come from the stream name made one path component (``/``, ``%``, control characters,
characters Windows forbids and a leading ``.`` become ``%XX``, long names are cut), so no name
can climb out of ``directory`` or hide a file; ``live/room1`` records into
``<directory>/live%2Froom1/``. Writes go through a buffered file (no ``fsync``), so the reactor
is not held up by the disk.
"""

from __future__ import annotations

import errno
import fcntl
import fnmatch
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from twisted.logger import Logger

from fms.amf import AMFEncodeError, encode_values
from fms.apps.api import MediaFrame, Plugin
from fms.apps.interfaces import IAppView, IClientView, IStreamView
from fms.vod.files import (
    DEFAULT_TEMPLATE,
    StoredFile,
    check_template,
    oldest_over_budget,
    path_component,
    render,
    template_pattern,
)
from fms.vod.reader import FLVReadError, index_file, plan_repair
from fms.vod.tracks import HeaderCache
from fms.vod.writer import DEFAULT_INDEX_ROOM, MIN_INDEX_ROOM, FLVWriter

log = Logger(namespace="fms.plugins.recorder")

RECORD_TYPES = ("live", "record", "append")
POLICIES = ("delete-oldest", "refuse")
TAG_AUDIO = 8
TAG_VIDEO = 9
TAG_SCRIPT = 18
WRITE_BUFFER = 256 * 1024
"""Bytes buffered before the file is written to the OS (bytes)."""

__all__ = ["NotAppendable", "Recorder", "RecordingFile", "path_component", "repair"]


class NotAppendable(Exception):
    """An existing file cannot be continued (not written by this recorder, or damaged)."""


class BudgetExceeded(OSError):
    """The application's recordings would use more than ``budget_bytes``."""


def open_new_file(path: Path) -> BinaryIO:
    """Create ``path`` for writing; FileExistsError if it exists (never overwrite)."""
    return open(path, "xb", buffering=WRITE_BUFFER)


def open_existing_file(path: Path) -> BinaryIO:
    """Open ``path`` to read and write without truncating it."""
    return open(path, "r+b", buffering=WRITE_BUFFER)


def _lock(file: BinaryIO) -> bool:
    """Take the exclusive lock that says "being written"; False if another holds it."""
    try:
        fd = file.fileno()
    except (OSError, ValueError):
        return True  # not a file of the OS: nobody else can see it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _reader(file: BinaryIO) -> Callable[[int, int], bytes]:
    fd = file.fileno()
    return lambda offset, size: os.pread(fd, size, offset)


class RecordingFile:
    """One FLV file open for writing (:class:`fms.vod.writer.FLVWriter` does the bytes, this
    the file). ``start`` (ms) is where new tags' timestamps begin (non-zero when appending).
    Every method but :meth:`abandon` may raise OSError."""

    def __init__(self, path: Path, file: BinaryIO, writer: FLVWriter, start: int) -> None:
        self.path = path
        self.file = file
        self.writer = writer
        self.start = start
        self.closed = False

    @property
    def size(self) -> int:
        return self.writer.size

    @classmethod
    def create(cls, path: Path, metadata: dict[str, Any] | None, room: int) -> RecordingFile:
        """A new file at ``path`` (FileExistsError if taken) with header and placeholder."""
        writer = FLVWriter(metadata, room=room)
        file = open_new_file(path)
        flv = cls(path, file, writer, 0)
        try:
            _lock(file)
            file.write(writer.start())
        except BaseException:
            flv.abandon()
            raise
        return flv

    @classmethod
    def reopen(cls, path: Path) -> RecordingFile:
        """The file at ``path``, positioned at its end to append; NotAppendable says why a file
        cannot be continued: only complete, closed files this recorder wrote can."""
        file = open_existing_file(path)
        try:
            if not _lock(file):
                raise NotAppendable("it is being written")
            size = file.seek(0, os.SEEK_END)
            try:
                found = index_file(_reader(file))
            except FLVReadError as exc:
                raise NotAppendable(f"not an FLV file ({exc})") from None
            if not found.ours or found.metadata is None:
                raise NotAppendable("its onMetaData was not written by this recorder")
            if found.damage is not None or found.end != size or not found.indexed:
                raise NotAppendable("it was interrupted (repaired when the application starts)")
            writer = FLVWriter.resume(
                publisher=found.metadata, index=found.index,
                reserved=found.metadata_size, size=size, flags=found.flags,
            )  # fmt: skip
        except BaseException:
            file.close()
            raise
        last = found.index.last
        start = 0 if last is None else max(found.index.duration, last + 1)
        return cls(path, file, writer, start)

    def write_tag(self, type_id: int, timestamp: int, body: bytes) -> int:
        """Append one tag (``timestamp`` in ms, already rebased); the bytes written."""
        data = self.writer.tag(type_id, timestamp, body)
        self.file.write(data)
        return len(data)

    def close(self) -> None:
        """Write the final ``onMetaData`` and header flags in place, then close."""
        if self.closed:
            return
        try:
            self.file.flush()
            for patch in self.writer.finish():
                self.file.seek(patch.offset)
                self.file.write(patch.data)
        finally:
            self.closed = True
            self.file.close()

    def abandon(self) -> None:
        """Close, trying to finish the file, ignoring errors (after a failed write)."""
        try:
            self.close()
        except OSError:
            pass


def repair(path: Path) -> str | None:
    """Finish the interrupted recording at ``path`` in place (module docstring); a line that
    says what was done, or None if the file needed nothing, is being written, or is not ours."""
    with open(path, "r+b") as file:
        if not _lock(file):
            return None
        size = file.seek(0, os.SEEK_END)
        plan = plan_repair(_reader(file), size)
        if plan is None:
            return None
        if plan.truncate < size:
            file.truncate(plan.truncate)
        for patch in plan.patches:
            file.seek(patch.offset)
            file.write(patch.data)
    cut = f", {size - plan.truncate} bytes of a partial tag cut" if plan.truncate < size else ""
    return (
        f"{plan.index.duration / 1000:.3f} s, {len(plan.index.keyframes)} keyframes, "
        f"{plan.truncate} bytes{cut}"
    )


@dataclass(slots=True)
class Recording:
    """The recording of one publish of one stream. ``enabled`` is False for a publish that
    is not recorded (filtered out, or stopped by an error or the budget)."""

    app: str
    name: str
    publisher: int | None
    kind: str
    enabled: bool
    metadata: dict[str, Any] | None = None
    flv: RecordingFile | None = None
    base: int | None = None
    """Raw timestamp (ms) of the first media message of the current file."""
    headers: HeaderCache = field(default_factory=HeaderCache)
    has_video: bool = False
    frames: int = 0
    """Audio and video frames (not headers) in the current file."""
    dropped: int = 0
    """Messages not written: data before the first frame, oversized, or not AMF0-encodable."""

    def rebase(self, timestamp: int) -> int:
        """A raw RTMP timestamp (ms) as a file timestamp; earlier than the base counts as 0."""
        start = self.flv.start if self.flv else 0
        if self.base is None:
            return start
        delta = (timestamp - self.base) & 0xFFFFFFFF
        return start + (0 if delta >= 0x80000000 else delta)


def _views_metadata(stream: IStreamView) -> dict[str, Any] | None:
    metadata = getattr(stream, "metadata", None)
    return dict(metadata) if isinstance(metadata, dict) else None


def _metadata_of(message: MediaFrame) -> dict[str, Any] | None:
    for value in message.values[1:]:
        if isinstance(value, dict):
            return dict(value)
    return None


def _positive(name: str, value: Any, what: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise ValueError(f"{name}: expected a positive number of {what}")


class Recorder(Plugin):
    """Writes each recorded publish of the application to an FLV file (module docstring)."""

    repair_in_thread = True
    """Whether ``app_start`` repairs in the reactor's thread pool (scanning a big file takes
    seconds: about 170 MB/s); tests set it False to repair at once."""

    def __init__(
        self,
        *,
        directory: str | Path,
        streams: str = "*",
        record_types: Iterable[str] = RECORD_TYPES,
        name: str = DEFAULT_TEMPLATE,
        max_bytes: int | None = None,
        max_seconds: int | None = None,
        budget_bytes: int | None = None,
        budget_policy: str = "delete-oldest",
        index_bytes: int = DEFAULT_INDEX_ROOM,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(directory, (str, os.PathLike)) or not str(directory):
            raise ValueError("directory: expected the folder to write recordings to")
        if not isinstance(streams, str) or not streams:
            raise ValueError('streams: expected a glob pattern such as "*" or "cam*"')
        wrong = f"record_types: expected a list of {', '.join(RECORD_TYPES)}"
        if isinstance(record_types, str):
            raise ValueError(wrong)
        listed = tuple(record_types)
        if not all(isinstance(kind, str) and kind in RECORD_TYPES for kind in listed):
            raise ValueError(wrong)
        kinds = frozenset(listed)
        if not kinds:
            raise ValueError("record_types: empty, so nothing would be recorded")
        check_template(name)
        _positive("max_bytes", max_bytes, "bytes")
        _positive("max_seconds", max_seconds, "seconds")
        _positive("budget_bytes", budget_bytes, "bytes")
        if budget_policy not in POLICIES:
            raise ValueError(f"budget_policy: expected one of {', '.join(POLICIES)}")
        _positive("index_bytes", index_bytes, "bytes")
        if index_bytes < MIN_INDEX_ROOM:
            raise ValueError(f"index_bytes: at least {MIN_INDEX_ROOM}")
        if not callable(clock):
            raise ValueError("clock: expected a function returning seconds since the epoch")
        self.directory = Path(directory).absolute()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.streams = streams
        self.record_types = kinds
        self.template = name
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.budget_bytes = budget_bytes
        self.budget_policy = budget_policy
        self.index_bytes = index_bytes
        self.clock = clock
        self.recordings: dict[tuple[str, str], Recording] = {}
        """Current publishes by (app, stream name)."""
        self._kinds: dict[int, dict[str, str]] = {}
        """Publish kinds by client id and stream name, from ``publish`` until recording."""
        self._used: dict[Path, int] = {}
        """Bytes of recordings in each app folder, counted at each file start, then kept up."""

    # ------------------------------------------------------------------------------- hooks

    def app_start(self, app: IAppView) -> Any:
        if not self.repair_in_thread:
            self._report(self.repair_folders(app.name))
            return None
        from twisted.internet.threads import deferToThread

        done = deferToThread(self.repair_folders, app.name)
        done.addCallbacks(self._report, lambda f: log.failure("repairing recordings", f))
        return None

    def publish(self, client: IClientView, name: str, query: dict[str, str], kind: str) -> Any:
        kinds = self._kinds.setdefault(client.id, {})
        kinds.pop(name, None)  # the newest publish goes last
        kind = (kind or "live").lower()
        kinds[name] = kind if kind in RECORD_TYPES else "live"  # the server relays it live
        return None

    def disconnect(self, client: IClientView) -> Any:
        self._kinds.pop(client.id, None)
        return None

    def media(self, stream: IStreamView, message: Any) -> None:
        key = (stream.app, stream.name)
        publisher = stream.publisher
        publisher_id = None if publisher is None else publisher.id
        recording = self.recordings.get(key)
        if recording is not None and recording.publisher != publisher_id:
            self._finish(key)  # a new publish before the old one's unpublish reached us
            recording = None
        if recording is None:
            recording = self._begin(stream, publisher_id)
            self.recordings[key] = recording
        if not recording.enabled:
            return
        try:
            self._receive(recording, stream, message)
        except OSError as exc:
            self._fail(recording, exc)

    def unpublish(self, client: IClientView, stream: IStreamView) -> Any:
        key = (stream.app, stream.name)
        recording = self.recordings.get(key)
        if recording is not None and recording.publisher in (client.id, None):
            self._finish(key)
        kinds = self._kinds.get(client.id)
        if kinds is not None:
            kinds.pop(stream.name, None)
        return None

    def app_stop(self, app: IAppView) -> Any:
        for key in list(self.recordings):
            self._finish(key)
        return None

    # ------------------------------------------------------------------------- repairs

    def repair_folders(self, app: str) -> list[tuple[str, str | None, str | None]]:
        """Repair the interrupted recordings of ``app`` (and its instances ``app/...``): a
        thread may run it (it only touches files no recorder has locked); (path, what was done
        or None, error or None) per file looked at, for the reactor thread to log."""
        own = path_component(app)
        outcomes: list[tuple[str, str | None, str | None]] = []
        try:
            folders = [e for e in os.scandir(self.directory) if e.is_dir(follow_symlinks=False)]
        except OSError:
            return outcomes
        for folder in folders:
            if folder.name != own and not folder.name.startswith(own + "%2F"):
                continue
            for entry in os.scandir(folder.path):
                if entry.name.endswith(".flv") and entry.is_file(follow_symlinks=False):
                    try:
                        outcomes.append((entry.path, repair(Path(entry.path)), None))
                    except (OSError, FLVReadError) as exc:
                        outcomes.append((entry.path, None, str(exc)))
        return outcomes

    @staticmethod
    def _report(outcomes: list[tuple[str, str | None, str | None]]) -> None:
        for path, done, error in outcomes:
            if error is not None:
                log.warn("cannot repair {path}: {error}", path=path, error=error)
            elif done is not None:
                log.info("recording repaired {path}: {what}", path=path, what=done)

    # ----------------------------------------------------------------------- recordings

    def _begin(self, stream: IStreamView, publisher: int | None) -> Recording:
        kinds = self._kinds.get(publisher, {}) if publisher is not None else {}
        kind = kinds.pop(stream.name, None)
        if kind is None and kinds:  # renamed by a plugin after this one: the newest publish
            kind = kinds.pop(next(reversed(kinds)))
        kind = kind or "live"
        enabled = kind in self.record_types and fnmatch.fnmatchcase(stream.name, self.streams)
        if not enabled:
            log.debug(
                "not recording {app}/{name} (publish type {kind!r})",
                app=stream.app, name=stream.name, kind=kind,
            )  # fmt: skip
        return Recording(stream.app, stream.name, publisher, kind, enabled)

    def _receive(self, rec: Recording, stream: IStreamView, message: Any) -> None:
        if not isinstance(message, MediaFrame):
            return
        if message.kind == "data":
            if message.name == "onMetaData":
                rec.metadata = _metadata_of(message)
            if rec.flv is None:  # onMetaData heads the file; other data before it is lost
                rec.dropped += message.name != "onMetaData"
                return
            try:
                body = encode_values(message.values)
            except AMFEncodeError:
                rec.dropped += 1
                return
            self._write(rec, TAG_SCRIPT, message.timestamp, body)
            return
        if message.kind not in ("audio", "video") or not message.payload:
            return
        rec.headers.update(message.tag_type, message.timestamp, message.payload)
        rotate = False
        if message.kind == "video":
            rec.has_video = True
            rotate = message.keyframe
        elif not message.sequence_header:
            rotate = not rec.has_video
        if rec.flv is None:
            self._open(rec, stream)
        elif rotate and self._full(rec, message.timestamp):
            self._close_file(rec)
            self._open(rec, stream, rotated=True)
            rec.base = message.timestamp
            for tag_type, payload in rec.headers.tags():
                self._write(rec, tag_type, message.timestamp, payload)
        if rec.base is None:
            rec.base = message.timestamp
        self._write(rec, message.tag_type, message.timestamp, message.payload)
        rec.frames += not message.sequence_header

    def _full(self, rec: Recording, timestamp: int) -> bool:
        """Whether the current file reached ``max_bytes`` or ``max_seconds``."""
        assert rec.flv is not None
        if not rec.frames:  # never a file of headers alone
            return False
        if self.max_bytes is not None and rec.flv.size >= self.max_bytes:
            return True
        elapsed = rec.rebase(timestamp) - rec.flv.start
        return self.max_seconds is not None and elapsed >= self.max_seconds * 1000

    def _write(self, rec: Recording, type_id: int, timestamp: int, body: bytes) -> None:
        assert rec.flv is not None
        if not FLVWriter.fits(body):
            rec.dropped += 1
            return
        self._spend(rec, rec.flv.path.parent, 11 + len(body) + 4)
        at = rec.rebase(timestamp)
        self._used[rec.flv.path.parent] += rec.flv.write_tag(type_id, at, body)

    def _spend(self, rec: Recording, folder: Path, size: int) -> None:
        """Make room for ``size`` more bytes in ``folder`` within the budget (module
        docstring), or raise BudgetExceeded."""
        budget = self.budget_bytes
        if budget is None or self._used.get(folder, 0) + size <= budget:
            return
        if self.budget_policy == "delete-oldest":
            self._used[folder] = self._delete_oldest(folder, budget - size)
            if self._used[folder] + size <= budget:
                return
        raise BudgetExceeded(
            errno.EDQUOT, f"the recordings of {rec.app} would exceed budget_bytes ({budget})"
        )

    def _stored(self, folder: Path) -> list[StoredFile]:
        """The recordings in ``folder``: closed ones as on disk, the ones being written with
        the bytes written so far (the disk lags behind by the write buffer)."""
        writing = {r.flv.path.name: r.flv.size for r in self.recordings.values()
                   if r.flv is not None and r.flv.path.parent == folder}  # fmt: skip
        out = []
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return []
        for entry in entries:
            if entry.name.endswith(".flv") and entry.is_file(follow_symlinks=False):
                stat = entry.stat(follow_symlinks=False)
                size = writing.get(entry.name, stat.st_size)
                out.append(StoredFile(entry.name, size, stat.st_mtime_ns))
        return out

    def _open_names(self, folder: Path) -> frozenset[str]:
        return frozenset(
            r.flv.path.name
            for r in self.recordings.values()
            if r.flv is not None and r.flv.path.parent == folder
        )

    def _delete_oldest(self, folder: Path, budget: int) -> int:
        """Delete the oldest closed recordings of ``folder`` until it holds at most
        ``budget`` bytes (or nothing more can go); the bytes it holds then."""
        stored = self._stored(folder)
        used = sum(f.size for f in stored)
        for victim in oldest_over_budget(stored, budget, keep=self._open_names(folder)):
            try:
                (folder / victim.name).unlink()
            except FileNotFoundError:
                pass
            used -= victim.size
            log.info(
                "recording {path} deleted: the budget of {budget} bytes is used",
                path=str(folder / victim.name), budget=self.budget_bytes,
            )  # fmt: skip
        return used

    def _open(self, rec: Recording, stream: IStreamView, *, rotated: bool = False) -> None:
        """Start the file of ``rec``: continue the newest one for 'append', else a new one."""
        folder = self.folder_for(rec.app)
        folder.mkdir(parents=True, exist_ok=True)
        self._used[folder] = sum(f.size for f in self._stored(folder))
        metadata = rec.metadata if rec.metadata is not None else _views_metadata(stream)
        rec.base = None
        rec.frames = 0
        if rec.kind == "append" and not rotated:
            newest = self.newest_file(rec.app, rec.name)
            if newest is not None:
                try:
                    rec.flv = RecordingFile.reopen(newest)
                except NotAppendable as exc:
                    log.warn(
                        "cannot append {app}/{name} to {path}: {reason}; recording to a new file",
                        app=rec.app, name=rec.name, path=str(newest), reason=str(exc),
                    )  # fmt: skip
                else:
                    log.info(
                        "recording {app}/{name}: appending to {path} from {start} ms",
                        app=rec.app, name=rec.name, path=str(newest), start=rec.flv.start,
                    )  # fmt: skip
                    return
        self._spend(rec, folder, self.index_bytes + 4096)
        start = self.clock()
        for attempt in range(1000):
            try:
                name = render(
                    self.template, app=rec.app, stream=rec.name, start=start, attempt=attempt
                )
            except ValueError as exc:  # check_template makes it impossible; never the server's
                raise OSError(errno.EINVAL, str(exc)) from None
            path = folder / name
            self._check_inside(path)
            try:
                rec.flv = RecordingFile.create(path, metadata, self.index_bytes)
            except FileExistsError:
                continue
            self._used[folder] += rec.flv.size
            log.info("recording {app}/{name} to {path}", app=rec.app, name=rec.name, path=str(path))
            return
        raise OSError(errno.EEXIST, "no free file name", str(folder))

    def _check_inside(self, path: Path) -> None:
        """Defence in depth: the file is exactly two components below ``directory``."""
        try:
            parts = path.relative_to(self.directory).parts
        except ValueError:
            parts = ()
        if len(parts) != 2 or any(p in ("", ".", "..") or os.sep in p or "\0" in p for p in parts):
            raise OSError(errno.EINVAL, "unsafe recording path", str(path))

    def folder_for(self, app: str) -> Path:
        """Where the recordings of ``app`` go."""
        return self.directory / path_component(app)

    def newest_file(self, app: str, name: str) -> Path | None:
        """The most recently written recording of ``app``/``name``, or None."""
        pattern = template_pattern(self.template, app=app, stream=name)
        folder = self.folder_for(app)
        found = [f for f in self._stored(folder) if pattern.fullmatch(f.name)]
        if not found:
            return None
        return folder / max(found, key=lambda f: (f.mtime, f.name)).name

    def _close_file(self, rec: Recording) -> None:
        flv = rec.flv
        if flv is None:
            return
        rec.flv = None
        flv.close()
        index = flv.writer.index
        log.info(
            "recording finished {path}: {seconds:.3f} s, {size} bytes, {keyframes} keyframes"
            "{dropped}",
            path=str(flv.path), seconds=index.duration / 1000, size=flv.size,
            keyframes=len(index.keyframes),
            dropped=f", {rec.dropped} messages not recorded" if rec.dropped else "",
        )  # fmt: skip
        rec.dropped = 0

    def _finish(self, key: tuple[str, str]) -> None:
        rec = self.recordings.pop(key, None)
        if rec is None or not rec.enabled:
            return
        try:
            self._close_file(rec)
        except OSError as exc:
            self._fail(rec, exc)

    def _fail(self, rec: Recording, error: OSError) -> None:
        """Log once and stop this recording (its file finished if the disk lets us); the
        stream is not affected."""
        rec.enabled = False
        path = rec.flv.path if rec.flv is not None else self.folder_for(rec.app)
        if rec.flv is not None:
            rec.flv.abandon()
            rec.flv = None
        log.error(
            "recording {app}/{name} to {path} stopped: {error}",
            app=rec.app, name=rec.name, path=str(path), error=error.strerror or str(error),
        )  # fmt: skip
