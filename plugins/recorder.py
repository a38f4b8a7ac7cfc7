"""Records published streams into FLV files, as Flash Media Server records ``publish`` streams.

Every stream published to the application (or only those whose name matches ``streams``, a
glob pattern) is written to ``<directory>/<app>/<name>-<UTC time>.flv``::

    [[apps.live.plugins]]
    use = "recorder"
    directory = "recordings"             # created if missing; relative to the configuration file
    streams = "cam*"                     # optional glob on the stream name; default "*"
    record_types = ["record", "append"]  # optional; default all of "live", "record", "append"
    max_bytes = 1_000_000_000            # optional; a new file at the next keyframe past it

Publish kinds follow Flash Media Server: ``record`` starts a new file; ``append`` continues the
newest file of that stream (its timestamps go on from where that file ended) or starts one if
there is none or it is not a file this recorder wrote; ``live`` is recorded like ``record``
unless ``record_types`` leaves it out (an unknown kind is relayed live, so it counts as
``live``). Unlike Flash Media Server, ``record`` never overwrites: every file name carries the
time it was started (and ``-1``, ``-2``... if that name is taken).

The file: an FLV header, an ``onMetaData`` script tag (the publisher's metadata, with
``duration`` (seconds) and ``filesize`` (bytes) first, so that they sit at fixed offsets and are
patched in place when the recording ends), then the audio, video and other data messages as
tags, timestamps rebased so that the file starts at 0. The recording starts with the publish, so
the codec sequence headers come first naturally; a new file started by ``max_bytes`` gets the
latest ones again before its first keyframe. Metadata that changes in mid-stream is not written
(FFmpeg would read an ``onMetaData`` with a timestamp other than 0 as a data stream); a file
started by ``max_bytes`` carries the latest.

File names come from the (already validated) app and stream names, each made one path
component: ``/``, ``%``, control characters and characters that Windows forbids are written as
``%XX``, and a leading ``.`` too, so no name can climb out of ``directory`` or hide a file
(``live/room1`` records into ``<directory>/live%2Froom1/``, ``cam/hd`` as ``cam%2Fhd-...``).

Writes go through a buffered file (no ``fsync``), so the reactor is not held up by the disk. An
error (disk full, permission) is logged once and stops that one recording; the stream and every
other recording go on. If the server dies, a file keeps its placeholders (duration 0) and stays
playable. The publish kind is looked up by the name this plugin saw at ``publish``; if a later
plugin renamed the stream, the client's newest publish is taken.
"""

from __future__ import annotations

import errno
import fnmatch
import math
import os
import re
import struct
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from twisted.logger import Logger

from fms.amf import AMFEncodeError, ECMAArray, encode_values
from fms.apps.api import MediaFrame, Plugin
from fms.apps.interfaces import IAppView, IClientView, IStreamView

log = Logger(namespace="fms.plugins.recorder")

RECORD_TYPES = ("live", "record", "append")

TAG_AUDIO = 8
TAG_VIDEO = 9
TAG_SCRIPT = 18
FLAG_AUDIO = 0x04
FLAG_VIDEO = 0x01
HEADER_SIZE = 9
TAG_HEADER_SIZE = 11
MAX_TAG_BODY = 0xFFFFFF
"""An FLV tag's DataSize field has 24 bits (bytes)."""

WRITE_BUFFER = 256 * 1024
"""Bytes buffered before the file is written to the OS (bytes)."""

_U32 = struct.Struct(">I")
_DOUBLE = struct.Struct(">d")

_FLAGS_AT = 4
"""Offset of the audio/video flags byte of the FLV header."""
_BODY_AT = HEADER_SIZE + 4 + TAG_HEADER_SIZE
"""Offset of the body of the first tag (``onMetaData``): header, PreviousTagSize0, tag header."""
_META_PREFIX = b"\x02\x00\x0aonMetaData\x08"
_DURATION_KEY = b"\x00\x08duration\x00"
_FILESIZE_KEY = b"\x00\x08filesize\x00"
_DURATION_AT_BODY = len(_META_PREFIX) + 4 + len(_DURATION_KEY)
_FILESIZE_AT_BODY = _DURATION_AT_BODY + 8 + len(_FILESIZE_KEY)
DURATION_AT = _BODY_AT + _DURATION_AT_BODY
"""Offset in the file of the ``duration`` double (seconds) of ``onMetaData``."""
FILESIZE_AT = _BODY_AT + _FILESIZE_AT_BODY
"""Offset in the file of the ``filesize`` double (bytes) of ``onMetaData``."""
_PATCHED_KEYS = ("duration", "filesize")

_UNSAFE = set('%/\\<>:"|?*')
_MAX_COMPONENT = 160
"""Longest encoded app or stream name in a file name (bytes), well under the usual 255."""
_STAMP = "%Y%m%dT%H%M%SZ"


class NotAppendable(Exception):
    """An existing file cannot be continued (not written by this recorder, or damaged)."""


def path_component(name: str) -> str:
    """``name`` as one safe path component (see the module docstring); never empty, ``.``
    or ``..``, and distinct names give distinct components unless they are very long."""
    out: list[str] = []
    size = 0
    for index, char in enumerate(name):
        unsafe = (
            char in _UNSAFE
            or (unicodedata.category(char)[0] in "CZ" and char != " ")
            or (char == "." and index == 0)
        )
        piece = "".join(f"%{b:02X}" for b in char.encode("utf-8", "surrogatepass"))
        text = piece if unsafe else char
        width = len(text.encode("utf-8", "surrogatepass"))
        if size + width > _MAX_COMPONENT:
            break
        out.append(text)
        size += width
    component = "".join(out)
    if component.endswith((" ", ".")):  # Windows drops them; keep names round-trippable
        component = component[:-1] + f"%{ord(component[-1]):02X}"
    return component or "%00"


def _tag(type_id: int, timestamp: int, body: bytes) -> tuple[bytes, bytes]:
    """The 11-byte header and the 4-byte PreviousTagSize around an FLV tag ``body``."""
    ts = timestamp & 0xFFFFFFFF
    header = (
        _U32.pack((type_id << 24) | len(body))
        + _U32.pack(((ts & 0xFFFFFF) << 8) | (ts >> 24))
        + b"\x00\x00\x00"
    )
    return header, _U32.pack(TAG_HEADER_SIZE + len(body))


def metadata_body(metadata: dict[str, Any] | None) -> bytes:
    """The ``onMetaData`` script tag body: ``duration`` and ``filesize`` (0.0, patched later)
    first, then the publisher's other keys (dropped if AMF0 cannot carry them)."""
    values = ECMAArray(duration=0.0, filesize=0.0)
    for key, value in (metadata or {}).items():
        if isinstance(key, str) and key not in _PATCHED_KEYS:
            values[key] = value
    try:
        body = encode_values(("onMetaData", values))
    except AMFEncodeError:
        body = encode_values(("onMetaData", ECMAArray(duration=0.0, filesize=0.0)))
    assert body[_DURATION_AT_BODY - len(_DURATION_KEY) : _DURATION_AT_BODY] == _DURATION_KEY
    assert body[_FILESIZE_AT_BODY - len(_FILESIZE_KEY) : _FILESIZE_AT_BODY] == _FILESIZE_KEY
    return body


def open_new_file(path: Path) -> BinaryIO:
    """Create ``path`` for writing; FileExistsError if it exists (never overwrite)."""
    return open(path, "xb", buffering=WRITE_BUFFER)


def open_existing_file(path: Path) -> BinaryIO:
    """Open ``path`` to read and write without truncating it."""
    return open(path, "r+b", buffering=WRITE_BUFFER)


def _flags_of(metadata: dict[str, Any] | None) -> int:
    flags = 0
    if metadata:
        if "audiocodecid" in metadata or metadata.get("hasAudio") is True:
            flags |= FLAG_AUDIO
        if "videocodecid" in metadata or metadata.get("hasVideo") is True:
            flags |= FLAG_VIDEO
    return flags or FLAG_AUDIO | FLAG_VIDEO


class FLVFile:
    """One FLV file open for writing, whose ``onMetaData`` duration and filesize are patched
    when it is closed. ``start`` (ms) is where the new tags' timestamps begin (non-zero when
    appending). Every method may raise OSError."""

    def __init__(
        self, path: Path, file: BinaryIO, *, size: int, flags: int, start: int, appended: bool
    ) -> None:
        self.path = path
        self.file = file
        self.size = size
        """Bytes in the file so far."""
        self.header_flags = flags
        self.start = start
        self.appended = appended
        self.seen_flags = 0
        self.closed = False

    @classmethod
    def create(cls, path: Path, metadata: dict[str, Any] | None) -> FLVFile:
        """A new file at ``path`` (FileExistsError if taken) with header and onMetaData."""
        flags = _flags_of(metadata)
        body = metadata_body(metadata)
        file = open_new_file(path)
        flv = cls(path, file, size=0, flags=flags, start=0, appended=False)
        try:
            flv._write(b"FLV\x01" + bytes((flags,)) + _U32.pack(HEADER_SIZE) + _U32.pack(0))
            flv.write_tag(TAG_SCRIPT, 0, body)
        except BaseException:
            flv.abandon()
            raise
        return flv

    @classmethod
    def reopen(cls, path: Path) -> FLVFile:
        """The file at ``path``, positioned at its end to append. NotAppendable says why a file
        cannot be continued: only complete files this recorder wrote can."""
        file = open_existing_file(path)
        try:
            start, flags, size = cls._check(file)
        except BaseException:
            file.close()
            raise
        return cls(path, file, size=size, flags=flags, start=start, appended=True)

    @staticmethod
    def _check(file: BinaryIO) -> tuple[int, int, int]:
        """(start ms, header flags, size) of a file to append to; NotAppendable otherwise."""
        head = file.read(FILESIZE_AT + 8)
        if len(head) < FILESIZE_AT + 8 or head[:4] != b"FLV\x01":
            raise NotAppendable("not an FLV file")
        if _U32.unpack_from(head, 5)[0] != HEADER_SIZE or head[HEADER_SIZE + 4] != TAG_SCRIPT:
            raise NotAppendable("it does not start with onMetaData")
        body = head[_BODY_AT:]
        if (
            not body.startswith(_META_PREFIX)
            or body[_DURATION_AT_BODY - len(_DURATION_KEY) : _DURATION_AT_BODY] != _DURATION_KEY
            or body[_FILESIZE_AT_BODY - len(_FILESIZE_KEY) : _FILESIZE_AT_BODY] != _FILESIZE_KEY
        ):
            raise NotAppendable("its onMetaData was not written by this recorder")
        size = file.seek(0, os.SEEK_END)
        file.seek(size - 4)
        (last_size,) = _U32.unpack(file.read(4))
        last_at = size - 4 - last_size
        if last_size < TAG_HEADER_SIZE or last_at < HEADER_SIZE + 4:
            raise NotAppendable("its last tag is damaged (an interrupted recording?)")
        file.seek(last_at)
        tag = file.read(TAG_HEADER_SIZE)
        data_size = _U32.unpack_from(tag, 0)[0] & 0xFFFFFF
        if tag[0] & 0x1F not in (TAG_AUDIO, TAG_VIDEO, TAG_SCRIPT) or data_size != last_size - 11:
            raise NotAppendable("its last tag is damaged (an interrupted recording?)")
        last_ts = (_U32.unpack_from(tag, 4)[0] >> 8) | (tag[7] << 24)
        (duration,) = _DOUBLE.unpack_from(head, DURATION_AT)
        start = 0
        if last_at > HEADER_SIZE + 4:  # there is more than onMetaData
            start = last_ts + 1
            if math.isfinite(duration) and 0 < duration < 2**32 / 1000:
                start = max(start, round(duration * 1000))
        file.seek(size)
        return start, head[_FLAGS_AT], size

    def _write(self, data: bytes) -> None:
        self.file.write(data)
        self.size += len(data)

    def write_tag(self, type_id: int, timestamp: int, body: bytes) -> None:
        """Append one tag (``timestamp`` in ms, already rebased) and its PreviousTagSize."""
        header, trailer = _tag(type_id, timestamp, body)
        self._write(header)
        self._write(body)
        self._write(trailer)
        if type_id == TAG_AUDIO:
            self.seen_flags |= FLAG_AUDIO
        elif type_id == TAG_VIDEO:
            self.seen_flags |= FLAG_VIDEO

    def close(self, duration: int) -> None:
        """Patch duration (``duration`` ms, written in seconds), filesize and the header's
        audio/video flags, then close."""
        if self.closed:
            return
        try:
            flags = self.seen_flags | (self.header_flags if self.appended else 0)
            if flags and flags != self.header_flags:
                self.file.seek(_FLAGS_AT)
                self.file.write(bytes((flags,)))
            self.file.seek(DURATION_AT)
            self.file.write(_DOUBLE.pack(duration / 1000))
            self.file.seek(FILESIZE_AT)
            self.file.write(_DOUBLE.pack(float(self.size)))
        finally:
            self.closed = True
            self.file.close()

    def abandon(self) -> None:
        """Close without patching, ignoring errors (after a failed write)."""
        if not self.closed:
            self.closed = True
            try:
                self.file.close()
            except OSError:
                pass


@dataclass(slots=True)
class _Track:
    """Where one track (audio or video) ended, to compute the duration: its last timestamp
    plus the last step between two of its timestamps (about one frame), in ms."""

    last: int | None = None
    step: int = 0

    def add(self, timestamp: int) -> None:
        if self.last is not None and timestamp > self.last:
            self.step = timestamp - self.last
        if self.last is None or timestamp > self.last:
            self.last = timestamp

    @property
    def end(self) -> int:
        return 0 if self.last is None else self.last + self.step


@dataclass(slots=True)
class Recording:
    """The recording of one publish of one stream. ``enabled`` is False for a publish that
    is not recorded (filtered out, or stopped by an error)."""

    app: str
    name: str
    publisher: int | None
    kind: str
    enabled: bool
    metadata: dict[str, Any] | None = None
    flv: FLVFile | None = None
    base: int | None = None
    """Raw timestamp (ms) of the first media message of the current file."""
    tracks: dict[int, _Track] = field(default_factory=dict)
    audio_header: MediaFrame | None = None
    video_header: MediaFrame | None = None
    has_video: bool = False
    dropped: int = 0
    """Messages not written: data before the first frame, oversized, or not AMF0-encodable."""

    def rebase(self, timestamp: int) -> int:
        """A raw RTMP timestamp (ms) as a file timestamp; earlier than the base counts as 0."""
        if self.base is None:
            return self.flv.start if self.flv else 0
        delta = (timestamp - self.base) & 0xFFFFFFFF
        if delta >= 0x80000000:
            delta = 0
        return (self.flv.start if self.flv else 0) + delta

    @property
    def end(self) -> int:
        """The file's duration so far (ms)."""
        start = self.flv.start if self.flv else 0
        return max([start, *(t.end for t in self.tracks.values())])


def _views_metadata(stream: IStreamView) -> dict[str, Any] | None:
    metadata = getattr(stream, "metadata", None)
    return dict(metadata) if isinstance(metadata, dict) else None


def _metadata_of(message: MediaFrame) -> dict[str, Any] | None:
    for value in message.values[1:]:
        if isinstance(value, dict):
            return dict(value)
    return None


class Recorder(Plugin):
    """Writes each recorded publish of the application to an FLV file (module docstring)."""

    def __init__(
        self,
        *,
        directory: str | Path,
        streams: str = "*",
        record_types: Iterable[str] = RECORD_TYPES,
        max_bytes: int | None = None,
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
        if max_bytes is not None and (
            isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0
        ):
            raise ValueError("max_bytes: expected a positive number of bytes")
        if not callable(clock):
            raise ValueError("clock: expected a function returning seconds since the epoch")
        self.directory = Path(directory).absolute()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.streams = streams
        self.record_types = kinds
        self.max_bytes = max_bytes
        self.clock = clock
        self.recordings: dict[tuple[str, str], Recording] = {}
        """Current publishes by (app, stream name)."""
        self._kinds: dict[int, dict[str, str]] = {}
        """Publish kinds by client id and stream name, from ``publish`` until recording."""

    # ------------------------------------------------------------------------------- hooks

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
                return  # written at the start of each file only
            if rec.flv is None:
                rec.dropped += 1
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
        rotate = False
        if message.kind == "video":
            rec.has_video = True
            if message.sequence_header:
                rec.video_header = message
            rotate = message.keyframe
        elif message.sequence_header:
            rec.audio_header = message
        else:
            rotate = not rec.has_video
        if rec.flv is None:
            self._open(rec, stream)
        elif rotate and self.max_bytes is not None and rec.flv.size >= self.max_bytes:
            self._close_file(rec)
            self._open(rec, stream, rotated=True)
            rec.base = message.timestamp
            for header in (rec.video_header, rec.audio_header):
                if header is not None:
                    self._write(rec, header.tag_type, message.timestamp, header.payload)
        if rec.base is None:
            rec.base = message.timestamp
        self._write(rec, message.tag_type, message.timestamp, message.payload)

    def _write(self, rec: Recording, type_id: int, timestamp: int, body: bytes) -> None:
        assert rec.flv is not None
        if len(body) > MAX_TAG_BODY:
            rec.dropped += 1
            return
        at = rec.rebase(timestamp)
        rec.flv.write_tag(type_id, at, body)
        if type_id != TAG_SCRIPT:
            rec.tracks.setdefault(type_id, _Track()).add(at)

    def _open(self, rec: Recording, stream: IStreamView, *, rotated: bool = False) -> None:
        """Start the file of ``rec``: continue the newest one for 'append', else a new one."""
        folder = self.folder_for(rec.app)
        folder.mkdir(parents=True, exist_ok=True)
        metadata = rec.metadata if rec.metadata is not None else _views_metadata(stream)
        rec.base = None
        rec.tracks = {}
        if rec.kind == "append" and not rotated:
            newest = self.newest_file(rec.app, rec.name)
            if newest is not None:
                try:
                    rec.flv = FLVFile.reopen(newest)
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
        stamp = time.strftime(_STAMP, time.gmtime(self.clock()))
        stem = f"{path_component(rec.name)}-{stamp}"
        for attempt in range(1000):
            path = folder / (f"{stem}.flv" if attempt == 0 else f"{stem}-{attempt}.flv")
            self._check_inside(path)
            try:
                rec.flv = FLVFile.create(path, metadata)
            except FileExistsError:
                continue
            log.info("recording {app}/{name} to {path}", app=rec.app, name=rec.name, path=str(path))
            return
        raise OSError(errno.EEXIST, "no free file name", str(folder / stem))

    def _check_inside(self, path: Path) -> None:
        """Defence in depth: the file is exactly two components below ``directory``."""
        try:
            parts = path.relative_to(self.directory).parts
        except ValueError:
            parts = ()
        if len(parts) != 2 or any(p in ("", ".", "..") or os.sep in p for p in parts):
            raise OSError(errno.EINVAL, "unsafe recording path", str(path))

    def folder_for(self, app: str) -> Path:
        """Where the recordings of ``app`` go."""
        return self.directory / path_component(app)

    def newest_file(self, app: str, name: str) -> Path | None:
        """The most recently started recording of ``app``/``name``, or None."""
        pattern = re.compile(
            re.escape(path_component(name)) + r"-(\d{8}T\d{6}Z)(?:-(\d+))?\.flv", re.ASCII
        )
        best: tuple[str, int] | None = None
        found: Path | None = None
        try:
            entries = list(os.scandir(self.folder_for(app)))
        except FileNotFoundError:
            return None
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if match is None or not entry.is_file(follow_symlinks=False):
                continue
            rank = (match.group(1), int(match.group(2) or 0))
            if best is None or rank > best:
                best, found = rank, Path(entry.path)
        return found

    def _close_file(self, rec: Recording) -> None:
        flv = rec.flv
        if flv is None:
            return
        end = rec.end
        flv.close(end)
        log.info(
            "recording finished {path}: {seconds:.3f} s, {size} bytes{dropped}",
            path=str(flv.path), seconds=end / 1000, size=flv.size,
            dropped=f", {rec.dropped} messages not recorded" if rec.dropped else "",
        )  # fmt: skip
        rec.flv = None
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
        """Log once and stop this recording; the stream is not affected."""
        rec.enabled = False
        path = rec.flv.path if rec.flv is not None else self.folder_for(rec.app)
        if rec.flv is not None:
            rec.flv.abandon()
            rec.flv = None
        log.error(
            "recording {app}/{name} to {path} stopped: {error}",
            app=rec.app, name=rec.name, path=str(path), error=error.strerror or str(error),
        )  # fmt: skip
