"""Recorded streams played over RTMP: the Twisted side of :class:`fms.vod.playback.Playback`.

One :class:`VodPlay` per ``play`` of a recording on a connection. It steps its playback on
the reactor's clock (a timer set to when the next tag is due), writes the tags as RTMP
messages on the play's message stream, and waits while the connection's socket holds more
than ``max_pending`` bytes (a viewer that does not read costs one file position, not memory).
``seek``, ``pause``, the buffer length and the end of the file (``onPlayStatus``
``NetStream.Play.Complete``, then ``Play.Stop`` and StreamEOF, as Flash Media Server did) are
answered here; what is due when is decided in :mod:`fms.vod.playback`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from fms.amf import AMFDecodeError
from fms.amf.decoder import decode_values
from fms.amf.types import ECMAArray
from fms.apps.application import Application
from fms.apps.views import ClientView, RecordingView
from fms.config import Config, VodConfig
from fms.log import Logger
from fms.rtmp.constants import UserControlEvent
from fms.rtmp.messages import Data, Media
from fms.rtmp.status import StatusCode, info
from fms.server.delivery import PlayerConnection
from fms.server.host import ServerHost
from fms.vod.playback import FileTag, Playback, Recording, TagSource

log = Logger(namespace="fms.server.vod")

RETRY_WHEN_FULL = 0.05
"""Seconds between looks at a socket that held more than ``max_pending`` bytes."""


class VodPlay:
    """One play of one recording on one RTMP connection."""

    def __init__(
        self,
        proto: PlayerConnection,
        clock: IReactorTime,
        stream_id: int,
        name: str,
        playback: Playback,
        *,
        close: Callable[[], None] = lambda: None,
        max_pending: int = 1 << 20,
    ) -> None:
        self.proto = proto
        self.clock = clock
        self.stream_id = stream_id
        self.name = name
        self.playback = playback
        self.max_pending = max_pending
        self._close_source = close
        self._timer: IDelayedCall | None = None
        self.stopped = False
        self.tags_sent = 0
        self.bytes_sent = 0

    # -------------------------------------------------------------------- the clock

    def start(self) -> None:
        """Begin sending (``Play.Start`` has been sent): the headers and a buffer's worth now."""
        self._step()

    def _schedule(self, delay: float | None) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if delay is not None and not self.stopped:
            self._timer = self.clock.callLater(delay, self._step)

    def _step(self) -> None:
        self._timer = None
        if self.stopped:
            return
        conn = self.proto.connection
        if conn is None:
            self.stop()
            return
        if self.proto.write_paused or self.proto.pending_bytes() > self.max_pending:
            self._schedule(RETRY_WHEN_FULL)
            return
        try:
            step = self.playback.step(self.clock.seconds())
        except Exception as error:  # a damaged file: this playback ends, nobody else's
            log.warn(
                "recording {stream} for {peer} cannot be read further: {error}",
                stream=self.name, peer=self.proto.peer, app=self.proto.app, error=error,
            )  # fmt: skip
            self._finish(failed=f"the recording is damaged: {error}")
            return
        for tag in step.tags:
            self._send(tag)
        if step.complete:
            self._finish()
            return
        self.proto.flush_output()
        self._schedule(step.wait)

    def _send(self, tag: FileTag) -> None:
        conn = self.proto.connection
        assert conn is not None
        if tag.tag_type in (8, 9):
            conn.send_stream_message(Media(tag.tag_type, tag.timestamp, self.stream_id, tag.body))
        elif tag.tag_type == 18:
            try:  # a data tag of the file (onMetaData, a cue): AMF0, decoded with the limits
                values = tuple(decode_values(tag.body))
            except AMFDecodeError:
                return
            values = _for_players(values)
            conn.send_stream_message(Data(values, self.stream_id, tag.timestamp))
        else:
            return
        self.tags_sent += 1
        self.bytes_sent += len(tag.body)

    def _finish(self, *, failed: str | None = None) -> None:
        """The end: ``Play.Complete`` (or ``Play.Failed`` saying ``failed``), ``Play.Stop``
        and StreamEOF."""
        conn = self.proto.connection
        if conn is not None:
            if failed:  # said, then ended as any playback ends, so that every client stops
                conn.send_status(
                    self.stream_id,
                    info(StatusCode.PLAY_FAILED, failed, subject=self.name, details=self.name),
                )
            else:
                conn.send_stream_message(
                    Data(("onPlayStatus", _complete(self.name)), self.stream_id)
                )
            conn.stop_play(self.stream_id, self.name, unpublished=False)
            self.proto.flush_output()
        self.stop()

    # ------------------------------------------------------------ the viewer acts

    def seek(self, to_ms: int) -> None:
        """``seek(ms)``: ``Seek.Notify`` and ``Play.Start`` from the keyframe at or before."""
        conn = self.proto.connection
        if conn is None or self.stopped:
            return
        at = self.playback.seek(to_ms, self.clock.seconds())
        log.info(
            "seek recording {stream} for {peer} to {asked} ms: from {at} ms",
            stream=self.name, peer=self.proto.peer, app=self.proto.app, asked=to_ms, at=at,
        )  # fmt: skip
        conn.send_user_control(UserControlEvent.STREAM_BEGIN, self.stream_id)
        conn.send_status(
            self.stream_id,
            info(StatusCode.SEEK_NOTIFY, f"Seeking {at} (stream ID: {self.stream_id}).",
                 subject=self.name, details=self.name),
        )  # fmt: skip
        conn.send_status(
            self.stream_id, info(StatusCode.PLAY_START, subject=self.name, details=self.name)
        )
        self.proto.flush_output()
        self._step()

    def pause(self, paused: bool, at_ms: int | None) -> None:
        """``pause(flag, ms)``: ``Pause.Notify`` / ``Unpause.Notify``."""
        conn = self.proto.connection
        if conn is None or self.stopped:
            return
        now = self.clock.seconds()
        self.playback.pause(paused, now, None if paused else at_ms)
        code = StatusCode.PAUSE_NOTIFY if paused else StatusCode.UNPAUSE_NOTIFY
        conn.send_status(self.stream_id, info(code, subject=self.name, details=self.name))
        self.proto.flush_output()
        self._schedule(None if paused else 0.0)

    def set_buffer(self, buffer_ms: int) -> None:
        """The viewer's ``Set Buffer Length``: more (or less) is sent ahead from now on."""
        self.playback.set_buffer(buffer_ms)
        if not self.stopped and not self.playback.pacer.paused:
            self._schedule(0.0)

    def stop(self) -> None:
        """Stop sending and release the file (idempotent)."""
        if self.stopped:
            return
        self.stopped = True
        self._schedule(None)
        try:
            self._close_source()
        except OSError:
            pass


def _for_players(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """A file's ``onMetaData`` as players get it: the name and its object, without the
    ``keyframes`` index (for readers of the file: a player seeks by asking the server) and
    without what follows the object (the recorder's filler that keeps room for the index:
    tens of kilobytes that librtmp crashes on and FFmpeg refuses over RTMP)."""
    if len(values) < 2 or values[0] != "onMetaData" or not isinstance(values[1], dict):
        return values
    kept = {k: v for k, v in values[1].items() if k != "keyframes"}
    return (values[0], ECMAArray(kept) if isinstance(values[1], ECMAArray) else kept)


def _complete(name: str) -> dict[str, Any]:
    return {"level": "status", "code": StatusCode.PLAY_COMPLETE.value, "details": name}


class Opened(Protocol):
    """A recording opened for one playback (see :func:`fms.vod.files.open_recording`)."""

    @property
    def recording(self) -> Recording: ...
    @property
    def source(self) -> TagSource: ...
    def close(self) -> None: ...


Opener = Callable[[Path, int], Opened]
"""Opens the file at a path with a largest tag size (bytes); raises OSError or ValueError."""

_open_count = [0]
"""Recordings played at once by this process (``[apps.NAME.vod] max_open`` bounds it)."""


def recording_path(folder: Path, name: str) -> Path | None:
    """The FLV file ``name`` names inside ``folder`` (``show`` and ``show.flv`` alike; ``flv:``
    prefixes as Flash players send them), or None when there is none or the name would leave
    the folder (``..``, an absolute path, a NUL, a link pointing out)."""
    if name.startswith("flv:"):
        name = name[4:]
    if not name or "\0" in name or "\\" in name or name.startswith("/") or len(name) > 1024:
        return None
    if not name.endswith(".flv"):
        name += ".flv"
    try:
        base = folder.resolve()
        path = (base / name).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if not path.is_relative_to(base) or not path.is_file():
        return None
    return path


class VodHost(PlayerConnection, Protocol):
    """What :class:`VodPlays` needs of its RTMP connection beyond a player's needs."""

    config: Config
    application: Application | None
    client_view: ClientView | None
    server: ServerHost[Any]


class VodPlays:
    """The recordings one RTMP connection plays, by message stream id; the protocol hands
    this every play of a recording and every seek, pause and buffer length of its streams."""

    def __init__(self, proto: VodHost, clock: IReactorTime, opener: Opener) -> None:
        self.proto = proto
        self.clock = clock
        self.opener = opener
        self.plays: dict[int, VodPlay] = {}
        self.buffers: dict[int, int] = {}
        self.views: dict[int, RecordingView] = {}

    def folder(self) -> Path | None:
        """The recordings folder of this connection's application (None: no playback)."""
        app = self.proto.app
        if app is None:
            return None
        folder = self.proto.config.app(app).vod.folder
        return self.proto.config.path(folder) if folder else None

    def maybe_play(self, sid: int, name: str, start: float, length: float) -> bool:
        """A ``play`` the application accepted: if it is for a recording and the file exists,
        play it and answer True (refusals included: ``Play.Failed`` was sent); False: the
        caller plays live.

        ``start`` and ``length`` are ``play``'s arguments as they come on the wire, in
        milliseconds (Flash Player multiplies NetStream.play's seconds by 1000, FFmpeg sends
        ``-2000``/``-1000`` for its ``rtmp_live`` any/live, librtmp its start in ms): ``-2000``
        (or ``-2``, or any other negative) is live if published, else the recording; ``-1000``
        (or ``-1``) live only; ``>= 0`` the recording from that time. A negative ``length``:
        to the end."""
        folder = self.folder()
        if folder is None or start in (-1.0, -1000.0):
            return False
        live = self.proto.server.registry.get(self.proto.app or "", name)
        if start < 0 and live is not None and live.published:
            return False
        path = recording_path(folder, name)
        if path is None:
            return False
        conn = self.proto.connection
        assert conn is not None and self.proto.app is not None
        config = self.proto.config.app(self.proto.app).vod
        conn.accept_play(sid, name, reset=True)
        problem = self.start(sid, name, path, config, max(0.0, start), length)
        if problem is not None:
            conn.send_status(sid, info(StatusCode.PLAY_FAILED, problem, subject=name))
            self.proto.flush_output()
            log.info(
                "refusing recording {app}/{stream} for {peer}: {problem}",
                app=self.proto.app, stream=name, peer=self.proto.peer, problem=problem,
            )  # fmt: skip
            return True
        play = self.plays[sid]
        recording = play.playback.recording
        view = RecordingView(self.proto.app, name, recording.metadata, recording.duration_ms / 1000)
        self.views[sid] = view
        if self.proto.application is not None and self.proto.client_view is not None:
            self.proto.application.play_started(self.proto.client_view, view)
        log.info("play recording {app}/{stream} ({file}) for {peer} from {start} ms",
                 app=self.proto.app, stream=name, file=path.name, peer=self.proto.peer,
                 start=play.playback.start_ms)  # fmt: skip
        return True

    def start(
        self, sid: int, name: str, path: Path, config: VodConfig, start: float, length: float
    ) -> str | None:
        """Play the file at ``path`` on stream ``sid`` (``Play.Start`` was sent); ``start`` and
        ``length`` in ms (length < 0: to the end). Answers None, or why it cannot be played
        (then the caller sends ``Play.Failed``)."""
        self.stop(sid)
        if _open_count[0] >= config.max_open:
            return f"{config.max_open} recordings are playing already"
        try:
            opened = self.opener(path, config.max_tag_bytes)
        except (OSError, ValueError) as error:
            return f"the recording cannot be read ({error})"
        _open_count[0] += 1
        playback = Playback(
            opened.recording,
            opened.source,
            self.clock.seconds(),
            start_ms=max(0, round(start)),
            length_ms=round(length) if length >= 0 else -1,
            buffer_ms=self.buffers.get(sid),
        )

        def release() -> None:
            _open_count[0] -= 1
            opened.close()

        play = VodPlay(
            self.proto, self.clock, sid, name, playback,
            close=release, max_pending=config.max_pending,
        )  # fmt: skip
        self.plays[sid] = play
        play.start()
        return None

    def stop(self, sid: int) -> bool:
        """End the play of stream ``sid`` (True if it was a recording's); plugins hear."""
        play = self.plays.pop(sid, None)
        view = self.views.pop(sid, None)
        if play is None:
            return False
        play.stop()
        if view is not None and self.proto.application is not None:
            if self.proto.client_view is not None:
                self.proto.application.play_stopped(self.proto.client_view, view)
        return True

    def stop_all(self) -> None:
        for sid in list(self.plays):
            self.stop(sid)

    def seek(self, sid: int, offset_ms: float) -> bool:
        play = self.plays.get(sid)
        if play is None:
            return False
        play.seek(round(offset_ms))
        return True

    def pause(self, sid: int, paused: bool, position_ms: float) -> bool:
        play = self.plays.get(sid)
        if play is None:
            return False
        play.pause(paused, round(position_ms) if position_ms >= 0 else None)
        return True

    def buffer(self, sid: int, length_ms: int) -> None:
        """``Set Buffer Length``: kept for a play to come, applied to one under way."""
        self.buffers[sid] = length_ms
        if len(self.buffers) > 64:  # stream ids a client may open are bounded; so is this
            self.buffers.pop(next(iter(self.buffers)))
        play = self.plays.get(sid)
        if play is not None:
            play.set_buffer(length_ms)

    def length(self, name: str) -> float:
        """``getStreamLength``: the duration (seconds) of the recording ``name``, 0 for a live
        stream or no such file."""
        folder = self.folder()
        path = recording_path(folder, name) if folder is not None else None
        if path is None:
            return 0.0
        try:
            opened = self.opener(path, 1 << 24)
        except (OSError, ValueError):
            return 0.0
        try:
            return opened.recording.duration_ms / 1000
        finally:
            opened.close()
