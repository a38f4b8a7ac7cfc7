"""The Twisted edge: one :class:`RTMPServerProtocol` per TCP connection.

The only code that touches a transport. It feeds received bytes to the sans-IO
:class:`~fms.rtmp.connection.ServerConnection`, dispatches the events it returns, writes what the
connection queued, and closes this one connection (with one log line naming the peer and the
reason) when the peer breaks the protocol or a deadline passes. The handshake and connect
deadlines run from accept and are never extended by bytes; the idle timeout is judged by bytes
received only, never by our own writes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from fms.amf import AMFLimits
from fms.application import Application, MethodNotFound, StreamView
from fms.config import Config
from fms.errors import ApplicationError, RemoteProtocolError
from fms.interfaces import IClientView
from fms.loader import build_all
from fms.names import name_problem
from fms.plugin import Redirect, Reject
from fms.registry import StreamRegistry
from fms.rtmp import events as ev
from fms.rtmp.chunks import ChunkLimits
from fms.rtmp.connection import (
    ConnectionLimits,
    ConnectionState,
    ServerConnection,
    ServerSettings,
    split_query,
)
from fms.rtmp.constants import UserControlEvent
from fms.rtmp.messages import Data
from fms.rtmp.status import StatusCode, info
from fms.stream import FanoutLimits, LiveStream, Player

log = Logger(namespace="fms.protocol")

NULL_RESULT_CALLS = frozenset(
    {
        "releaseStream",
        "FCPublish",
        "FCUnpublish",
        "FCSubscribe",
        "FCUnsubscribe",
        "_checkbw",
        "checkBandwidth",
    }
)
"""FMLE-era calls that encoders expect a null ``_result`` for (see INTEROP.md)."""


def fanout_limits(config: Config, app: str) -> FanoutLimits:
    """The per-stream delivery bounds of ``app``: ``[streams]`` with its ``[apps.APP.streams]``
    overrides."""
    streams = config.app(app).streams
    return FanoutLimits(
        chunk_size=streams.chunk_size,
        soft_bytes=streams.soft_bytes,
        soft_seconds=streams.soft_seconds,
        hard_bytes=streams.hard_bytes,
        stall_timeout=streams.stall_timeout,
        gop_cache=streams.gop_cache,
        gop_max_bytes=streams.gop_max_bytes,
        gop_max_frames=streams.gop_max_frames,
    )


def connection_limits(config: Config) -> ConnectionLimits:
    """The sans-IO limits that the ``[limits]`` section of ``config`` describes."""
    lim = config.limits
    return ConnectionLimits(
        chunk=ChunkLimits(
            max_chunk_size=lim.max_chunk_size,
            max_command_message_size=lim.max_command_message,
            max_audio_message_size=lim.max_audio_message,
            max_video_message_size=lim.max_video_message,
            max_partial_messages=lim.max_partial_chunk_streams,
            max_buffered_bytes=lim.max_buffered_bytes,
        ),
        amf=AMFLimits(max_depth=lim.amf_max_depth, max_entries=lim.amf_max_entries),
        max_stream_name_length=config.streams.max_stream_name,
    )


@implementer(IPushProducer)
class RTMPServerProtocol(Protocol):
    """Adapts one transport to one :class:`ServerConnection`."""

    factory: RTMPServerFactory

    def __init__(self) -> None:
        self.connection: ServerConnection | None = None
        self.peer = "?"
        self._deadline: IDelayedCall | None = None
        self._idle: IDelayedCall | None = None
        self._closing = False
        self.app: str | None = None
        self.application: Application | None = None
        self.client_view: ClientView | None = None
        self.publishing: dict[int, LiveStream] = {}
        self.playing: dict[int, tuple[LiveStream, Player]] = {}
        self.write_paused = False

    # ------------------------------------------------------------------------- lifecycle

    def connectionMade(self) -> None:
        factory = self.factory
        address = self.transport.getPeer()  # type: ignore[union-attr]
        self.peer = f"{getattr(address, 'host', '?')}:{getattr(address, 'port', '?')}"
        self.connection = ServerConnection(
            factory.limits, factory.settings, now=factory.clock.seconds()
        )
        factory.connections.add(self)
        # Commands and fan-out flushes are small writes that must leave at once: no Nagle.
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]
        self._deadline = factory.clock.callLater(
            factory.config.limits.handshake_timeout, self._expired, "handshake"
        )
        self._touch()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.factory.connections.discard(self)
        for call in (self._deadline, self._idle):
            if call is not None and call.active():
                call.cancel()
        self._deadline = self._idle = None
        for sid in list(self.publishing):
            self._stop_publishing(sid, notify=False)
        for sid in list(self.playing):
            self._stop_playing(sid)
        if self.connection is not None:
            self.connection.close()
        if self.client_view is not None:
            self.client_view.fail_calls(ConnectionError("the client disconnected"))
            if self.application is not None:
                self.application.remove_client(self.client_view)

    def _touch(self) -> None:
        """Re-arm the idle timer: only bytes *received* keep a connection alive."""
        timeout = self.factory.config.limits.idle_timeout
        if self._idle is not None and self._idle.active():
            self._idle.reset(timeout)
        else:
            self._idle = self.factory.clock.callLater(timeout, self._expired, "idle")

    def _expired(self, what: str) -> None:
        limits = self.factory.config.limits
        seconds = {
            "handshake": limits.handshake_timeout,
            "connect": limits.connect_timeout,
            "idle": limits.idle_timeout,
        }[what]
        log.info(
            "closing {peer}: {what} deadline of {seconds}s passed",
            peer=self.peer,
            what=what,
            seconds=seconds,
        )
        self._abort()

    def _abort(self) -> None:
        self._closing = True
        if self.connection is not None:
            self.connection.close()
        self.transport.abortConnection()  # type: ignore[union-attr]

    # ---------------------------------------------------------------------------- input

    def dataReceived(self, data: bytes) -> None:
        conn = self.connection
        if conn is None or self._closing:
            return
        self._touch()
        before = conn.state
        try:
            events = conn.receive_data(data, self.factory.clock.seconds())
        except RemoteProtocolError as exc:
            self._flush()
            log.info(
                "closing {peer}: {kind}: {reason}",
                peer=self.peer,
                kind=type(exc).__name__,
                reason=str(exc),
            )
            self._abort()
            return
        if before is ConnectionState.HANDSHAKE and conn.state is not ConnectionState.HANDSHAKE:
            self._arm_connect_deadline()
        self._process(events)

    def _process(self, events: list[ev.Event]) -> None:
        """Handle events (and commands released after connect was accepted), then write."""
        conn = self.connection
        assert conn is not None
        try:
            while events:
                for event in events:
                    if self._closing:
                        return
                    self._handle(event)
                events = conn.pending_events()
        except Exception:
            log.failure("closing {peer}: internal error while handling its input", peer=self.peer)
            self._abort()
            return
        self._flush()
        if self.publishing and self.factory.config.streams.flush_interval == 0:
            self.factory.registry.flush(self.factory.clock.seconds())

    def _guarded(self, what: str, action: Callable[..., None]) -> Callable[..., None]:
        """Wrap a decision callback: it runs only if this connection is still open, and an
        exception in it closes this connection only."""

        def run(*args: Any) -> None:
            if self._closing or self.connection is None:
                return
            if self.connection.state is not ConnectionState.CONNECTED and what != "connect":
                return
            try:
                action(*args)
            except Exception:
                log.failure("closing {peer}: internal error after {what}", peer=self.peer,
                            what=what)  # fmt: skip
                self._abort()
                return
            self._process([])

        return run

    def _arm_connect_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = self.factory.clock.callLater(
            self.factory.config.limits.connect_timeout, self._expired, "connect"
        )

    def _flush(self) -> None:
        assert self.connection is not None
        data = self.connection.data_to_send()
        if data and not self._closing:
            self.transport.write(data)  # type: ignore[union-attr]
        if self.connection.state is ConnectionState.CLOSED and not self._closing:
            self._closing = True
            self.transport.loseConnection()  # type: ignore[union-attr]

    # ---------------------------------------------------------------------------- events

    def _handle(self, event: ev.Event) -> None:
        conn = self.connection
        assert conn is not None
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(self, event)

    def _on_handshake(self, event: ev.HandshakeCompleted) -> None:
        log.debug(
            "handshake with {peer} done (digest: {digest})", peer=self.peer, digest=event.digest
        )

    def _on_connect(self, event: ev.ConnectRequested) -> None:
        conn = self.connection
        assert conn is not None
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        problem = name_problem(event.app, conn.limits.max_app_length, allow_slash=True)
        application = None if problem else self.factory.application_for(event.app)
        if problem is None and application is None:
            problem = "no such application"
        if problem is not None or application is None:
            log.info(
                "refusing connect from {peer}: app {app!r}: {problem}",
                peer=self.peer, app=event.app, problem=problem,
            )  # fmt: skip
            conn.reject_connect(
                event, f"invalid application: {problem}", code=StatusCode.CONNECT_INVALID_APP
            )
            return
        self.app = event.app
        self.application = application
        self.client_view = ClientView(self, event)
        d = application.decide_connect(self.client_view)
        d.addCallback(
            lambda outcome: self._guarded("connect", self._connect_decided)(event, outcome)
        )

    def _connect_decided(self, event: ev.ConnectRequested, outcome: tuple[Any, str]) -> None:
        conn, application, view = self.connection, self.application, self.client_view
        assert conn is not None and application is not None and view is not None
        if conn.state is not ConnectionState.CONNECT_PENDING:
            return
        decision, _ = outcome
        if isinstance(decision, Redirect):
            log.info("redirecting {peer} to {url}", peer=self.peer, url=decision.url)
            conn.reject_connect(event, decision.reason or "redirected", redirect=decision.url)
            return
        if isinstance(decision, Reject):
            log.info(
                "connect from {peer} to {app!r} refused by the application: {reason}",
                peer=self.peer, app=event.app, reason=decision.reason,
            )  # fmt: skip
            code = StatusCode(decision.code) if decision.code else StatusCode.CONNECT_REJECTED
            conn.reject_connect(event, decision.reason, code=code)
            return
        log.info(
            "connect from {peer}: app {app!r} ({agent})",
            peer=self.peer, app=event.app, agent=event.flash_ver,
        )  # fmt: skip
        conn.accept_connect(event)
        conn.send_onbwdone()
        application.add_client(view)

    def _on_create_stream(self, event: ev.CreateStreamRequested) -> None:
        assert self.connection is not None
        self.connection.accept_create_stream(event)

    def _on_call(self, event: ev.CallRequested) -> None:
        conn = self.connection
        assert conn is not None
        command = event.command
        name = command.name
        stream_name = command.arguments[0] if command.arguments else None
        if name == "FCUnpublish" and isinstance(stream_name, str):
            for sid, stream in list(self.publishing.items()):
                if stream.name == split_query(stream_name)[0]:
                    self._stop_publishing(sid)
        if name in NULL_RESULT_CALLS:
            if command.transaction_id:
                conn.send_result(command.transaction_id, None)
            if name in ("FCPublish", "FCUnpublish", "FCSubscribe") and isinstance(stream_name, str):
                code = {
                    "FCPublish": StatusCode.PUBLISH_START,
                    "FCUnpublish": StatusCode.UNPUBLISH_SUCCESS,
                    "FCSubscribe": StatusCode.PLAY_START,
                }[name]
                conn.call(f"on{name}", info(code, stream_name), expect_result=False)
        elif name == "getStreamLength":
            conn.send_result(command.transaction_id, 0.0)
        else:
            assert self.application is not None and self.client_view is not None
            d = self.application.call(self.client_view, name, command.arguments)
            tid = command.transaction_id
            d.addCallbacks(
                self._guarded("call", lambda value: self._call_answered(tid, value)),
                self._guarded("call", lambda failure: self._call_failed(tid, name, failure)),
            )

    def _call_answered(self, transaction_id: float, value: Any) -> None:
        if transaction_id and self.connection is not None:
            self.connection.send_result(transaction_id, value)

    def _call_failed(self, transaction_id: float, method: str, failure: Failure) -> None:
        conn = self.connection
        assert conn is not None
        error = failure.value
        if isinstance(error, MethodNotFound):
            code, description = StatusCode.CALL_FAILED, f"unknown method {method!r}"
        elif isinstance(error, ApplicationError):
            code = (
                StatusCode(error.code)
                if error.code in StatusCode._value2member_map_
                else (StatusCode.CALL_FAILED)
            )
            description = error.description
        else:
            log.failure("call {method} from {peer} failed", failure, method=method,
                        peer=self.peer)  # fmt: skip
            code, description = StatusCode.CALL_FAILED, f"{method} failed"
        if transaction_id:
            conn.send_error(transaction_id, code, description)

    def _on_publish(self, event: ev.PublishRequested) -> None:
        conn = self.connection
        assert conn is not None and self.app is not None
        sid, name = event.stream_id, event.name
        streams = self.factory.config.streams
        problem = name_problem(name, streams.max_stream_name, allow_slash=True)
        if problem is None and (sid in self.publishing or sid in self.playing):
            problem = "this stream id is already publishing or playing"
        if problem is not None:
            log.info(
                "refusing publish {app}/{name!r} from {peer}: {problem}",
                app=self.app,
                name=name,
                peer=self.peer,
                problem=problem,
            )
            conn.reject_publish(sid, name, StatusCode.PUBLISH_BAD_NAME, problem)
            return
        assert self.application is not None and self.client_view is not None
        conn.hold_publish(sid)
        d = self.application.decide_publish(self.client_view, name, event.query, event.publish_type)
        d.addCallback(
            self._guarded("publish", lambda outcome: self._publish_decided(event, outcome))
        )

    def _publish_decided(self, event: ev.PublishRequested, outcome: tuple[Any, str]) -> None:
        conn = self.connection
        assert conn is not None and self.app is not None
        sid = event.stream_id
        if sid not in conn.streams:
            return  # the stream was deleted while the application decided
        decision, name = outcome
        if isinstance(decision, (Reject, Redirect)):
            reason = decision.reason or "publishing refused by the application"
            log.info(
                "publish {app}/{name} from {peer} refused by the application: {reason}",
                app=self.app, name=event.name, peer=self.peer, reason=reason,
            )  # fmt: skip
            code = StatusCode.PUBLISH_DENIED
            if isinstance(decision, Reject) and decision.code:
                code = StatusCode(decision.code)
            conn.reject_publish(sid, event.name, code, reason)
            return
        problem = name_problem(name, self.factory.config.streams.max_stream_name, allow_slash=True)
        if problem is not None:
            conn.reject_publish(sid, name, StatusCode.PUBLISH_BAD_NAME, problem)
            return
        stream = self.factory.registry.claim(self.app, name, self)
        if stream is None:
            log.info(
                "refusing publish {app}/{name} from {peer}: already published",
                app=self.app, name=name, peer=self.peer,
            )  # fmt: skip
            conn.reject_publish(
                sid, name, StatusCode.PUBLISH_BAD_NAME, f"{name} is already being published."
            )
            return
        if event.publish_type not in ("live", ""):
            log.info(
                "{app}/{name}: publish type {kind!r}: relayed live (recording is a plugin's job)",
                app=self.app, name=name, kind=event.publish_type,
            )  # fmt: skip
        self.publishing[sid] = stream
        conn.accept_publish(sid, name)
        log.info(
            "publish started {app}/{name} from {peer}", app=self.app, name=name, peer=self.peer
        )

    def _stop_publishing(self, sid: int, *, notify: bool = True) -> None:
        stream = self.publishing.pop(sid, None)
        if stream is None:
            return
        self.factory.registry.release(stream, self)
        if self.application is not None and self.client_view is not None:
            self.application.notify("unpublish", self.client_view, StreamView(stream))
        log.info(
            "publish stopped {app}/{name} from {peer}",
            app=stream.app,
            name=stream.name,
            peer=self.peer,
        )
        if notify and self.connection is not None:
            self.connection.end_publish(sid, stream.name)

    def _on_media(self, event: ev.MediaReceived) -> None:
        stream = self.publishing.get(event.stream_id)
        if stream is not None:
            stream.publish_message(event.message)
            if self.application is not None and self.application.wants_media:
                self.application.media(stream, event.message)

    def _on_data(self, event: ev.DataReceived) -> None:
        stream = self.publishing.get(event.stream_id)
        if stream is None:
            return
        values = event.message.values
        name = event.message.name
        if name == "@setDataFrame" and len(values) >= 2:
            stream.set_metadata(values[1:])
            forwarded = stream.metadata
        elif name == "onMetaData":
            stream.set_metadata(values)
            forwarded = stream.metadata
        elif name == "@clearDataFrame":
            stream.metadata = None
            return
        else:
            forwarded = Data(values, 0, event.message.timestamp)
            stream.publish_message(forwarded)
        if forwarded is not None and self.application is not None and self.application.wants_media:
            self.application.media(stream, forwarded)

    def _on_play(self, event: ev.PlayRequested) -> None:
        conn = self.connection
        assert conn is not None and self.app is not None
        sid, name = event.stream_id, event.name
        problem = name_problem(name, self.factory.config.streams.max_stream_name, allow_slash=True)
        if problem is None and sid in self.publishing:
            problem = "this stream id is publishing"
        if problem is not None:
            log.info(
                "refusing play {app}/{name!r} for {peer}: {problem}",
                app=self.app,
                name=name,
                peer=self.peer,
                problem=problem,
            )
            conn.reject_play(sid, name, StatusCode.PLAY_FAILED, problem)
            return
        assert self.application is not None and self.client_view is not None
        d = self.application.decide_play(self.client_view, name, event.query)
        d.addCallback(self._guarded("play", lambda outcome: self._play_decided(event, outcome)))

    def _play_decided(self, event: ev.PlayRequested, outcome: tuple[Any, str]) -> None:
        conn = self.connection
        assert conn is not None and self.app is not None
        sid = event.stream_id
        if sid not in conn.streams:
            return
        decision, name = outcome
        if isinstance(decision, (Reject, Redirect)):
            reason = decision.reason or "playing refused by the application"
            log.info(
                "play {app}/{name} for {peer} refused by the application: {reason}",
                app=self.app, name=event.name, peer=self.peer, reason=reason,
            )  # fmt: skip
            code = StatusCode.PLAY_FAILED
            if isinstance(decision, Reject) and decision.code:
                code = StatusCode(decision.code)
            conn.reject_play(sid, event.name, code, reason)
            return
        problem = name_problem(name, self.factory.config.streams.max_stream_name, allow_slash=True)
        if problem is not None:
            conn.reject_play(sid, name, StatusCode.PLAY_FAILED, problem)
            return
        self._stop_playing(sid)
        conn.accept_play(sid, name, reset=event.reset)
        self._flush()
        stream, player = self.factory.registry.play(self.app, name, PlaySink(self, sid, name), sid)
        self.playing[sid] = (stream, player)
        log.info(
            "play {app}/{name} for {peer}{waiting}",
            app=self.app, name=name, peer=self.peer,
            waiting="" if stream.published else " (waiting for publisher)",
        )  # fmt: skip

    def _stop_playing(self, sid: int) -> None:
        entry = self.playing.pop(sid, None)
        if entry is not None:
            self.factory.registry.leave(*entry)
            if self.application is not None and self.client_view is not None:
                self.application.notify("stop", self.client_view, entry[0].name)

    def _on_delete_stream(self, event: ev.DeleteStreamRequested) -> None:
        self._stop_publishing(event.stream_id)
        self._stop_playing(event.stream_id)
        if self.connection is not None:
            self.connection.delete_stream(event.stream_id)

    def _on_close_stream(self, event: ev.CloseStreamRequested) -> None:
        self._stop_publishing(event.stream_id)
        self._stop_playing(event.stream_id)

    def _on_pause(self, event: ev.PauseRequested) -> None:
        entry = self.playing.get(event.stream_id)
        conn = self.connection
        assert conn is not None
        if entry is None:
            return
        stream, player = entry
        stream.set_paused(player, event.paused)
        code = StatusCode.PAUSE_NOTIFY if event.paused else StatusCode.UNPAUSE_NOTIFY
        conn.send_status(event.stream_id, info(code, subject=stream.name, details=stream.name))

    def _on_seek(self, event: ev.SeekRequested) -> None:
        # A live stream has one position: now. Seeking is answered as done (an error-level
        # status would make FFmpeg abort) and the player resumes at the next keyframe.
        entry = self.playing.get(event.stream_id)
        conn = self.connection
        assert conn is not None
        if entry is None:
            conn.send_status(event.stream_id, info(StatusCode.SEEK_FAILED))
            return
        stream, player = entry
        stream.set_paused(player, True)
        stream.set_paused(player, False)
        conn.send_status(
            event.stream_id, info(StatusCode.SEEK_NOTIFY, subject=stream.name, details=stream.name)
        )

    def _on_receive_media(self, event: ev.ReceiveMediaRequested) -> None:
        entry = self.playing.get(event.stream_id)
        if entry is not None:
            stream, player = entry
            if event.kind == "audio":
                stream.select(player, audio=event.enabled)
            else:
                stream.select(player, video=event.enabled)

    def _on_result(self, event: ev.ResultReceived | ev.ErrorReceived) -> None:
        if self.client_view is not None:
            ok = isinstance(event, ev.ResultReceived)
            self.client_view.resolve(event.transaction_id, event.values, ok)

    def _on_peer_chunk_size(self, event: ev.PeerChunkSizeChanged) -> None:
        log.debug("{peer} sends with chunk size {size}", peer=self.peer, size=event.size)

    _handlers: dict[type[ev.Event], Callable[[RTMPServerProtocol, Any], None]] = {
        ev.HandshakeCompleted: _on_handshake,
        ev.ConnectRequested: _on_connect,
        ev.CreateStreamRequested: _on_create_stream,
        ev.CallRequested: _on_call,
        ev.PublishRequested: _on_publish,
        ev.MediaReceived: _on_media,
        ev.DataReceived: _on_data,
        ev.PlayRequested: _on_play,
        ev.DeleteStreamRequested: _on_delete_stream,
        ev.CloseStreamRequested: _on_close_stream,
        ev.PauseRequested: _on_pause,
        ev.SeekRequested: _on_seek,
        ev.ReceiveMediaRequested: _on_receive_media,
        ev.PeerChunkSizeChanged: _on_peer_chunk_size,
        ev.ResultReceived: _on_result,
        ev.ErrorReceived: _on_result,
    }

    # ------------------------------------------------------------------- shared writes

    def write_shared(self, data: bytes) -> None:
        """Write fan-out bytes after whatever the connection queued (statuses first)."""
        if self._closing or self.connection is None:
            return
        pending = self.connection.data_to_send()
        if pending:
            self.transport.writeSequence([pending, data])  # type: ignore[union-attr]
        else:
            self.transport.write(data)  # type: ignore[union-attr]

    def pauseProducing(self) -> None:
        self.write_paused = True

    def resumeProducing(self) -> None:
        self.write_paused = False
        for stream, _ in self.playing.values():
            stream.dirty = True

    def stopProducing(self) -> None:
        self.write_paused = True


@implementer(IClientView)
class ClientView:
    """What plugins see of one client (read-only), and how they call it."""

    _ids = itertools.count(1)

    def __init__(self, proto: RTMPServerProtocol, event: ev.ConnectRequested) -> None:
        self.id = next(ClientView._ids)
        self._proto = proto
        self.peer = proto.peer
        self.host = proto.peer.rsplit(":", 1)[0]
        self.app = event.app
        self.tc_url = event.tc_url
        self.params = dict(event.command_object)
        self.query = dict(event.query)
        self.agent = event.flash_ver
        self._calls: dict[float, Deferred[tuple[Any, ...]]] = {}

    @property
    def publishing(self) -> tuple[str, ...]:
        return tuple(s.name for s in self._proto.publishing.values())

    @property
    def playing(self) -> tuple[str, ...]:
        return tuple(s.name for s, _ in self._proto.playing.values())

    def _connected(self) -> ServerConnection | None:
        conn = self._proto.connection
        if conn is None or self._proto._closing or conn.state is not ConnectionState.CONNECTED:
            return None
        return conn

    def call(self, method: str, *args: Any) -> Deferred[tuple[Any, ...]]:
        conn = self._connected()
        if conn is None:
            return fail(ConnectionError(f"{self.peer} is not connected"))
        tid = conn.call(method, *args)
        d: Deferred[tuple[Any, ...]] = Deferred()
        self._calls[tid] = d
        self._proto._flush()
        return d

    def send(self, method: str, *args: Any) -> None:
        conn = self._connected()
        if conn is not None:
            conn.call(method, *args, expect_result=False)
            self._proto._flush()

    def disconnect(self, reason: str = "") -> None:
        log.info("closing {peer}: {reason}", peer=self.peer,
                 reason=reason or "disconnected by the application")  # fmt: skip
        self._proto._abort()

    def resolve(self, transaction_id: float, values: tuple[Any, ...], ok: bool) -> None:
        d = self._calls.pop(transaction_id, None)
        if d is None:
            return
        if ok:
            d.callback(values[1:] if values and values[0] is None else values)
        else:
            info_obj = next((v for v in values if isinstance(v, dict)), {})
            d.errback(
                ApplicationError(
                    str(info_obj.get("description", "")),
                    str(info_obj.get("code", StatusCode.CALL_FAILED)),
                )
            )

    def fail_calls(self, error: Exception) -> None:
        calls, self._calls = self._calls, {}
        for d in calls.values():
            d.errback(error)

    def __repr__(self) -> str:
        return f"<ClientView {self.id} {self.peer} {self.app!r}>"


class PlaySink:
    """A player's end of a :class:`~fms.stream.LiveStream`: one play on one connection."""

    __slots__ = ("name", "proto", "stream_id")

    def __init__(self, proto: RTMPServerProtocol, stream_id: int, name: str) -> None:
        self.proto = proto
        self.stream_id = stream_id
        self.name = name

    def write(self, data: bytes) -> None:
        self.proto.write_shared(data)

    def can_write(self) -> bool:
        return not self.proto.write_paused

    def close(self, reason: str) -> None:
        log.info(
            "closing player {peer} of {name}: {reason}",
            peer=self.proto.peer,
            name=self.name,
            reason=reason,
        )
        self.proto.playing.pop(self.stream_id, None)
        self.proto._abort()

    def publish_started(self) -> None:
        conn = self.proto.connection
        if conn is not None and conn.state is ConnectionState.CONNECTED:
            conn.send_user_control(UserControlEvent.STREAM_BEGIN, self.stream_id)
            conn.send_status(
                self.stream_id,
                info(StatusCode.PLAY_PUBLISH_NOTIFY, subject=self.name, details=self.name),
            )
            self.proto._flush()

    def publish_stopped(self) -> None:
        conn = self.proto.connection
        if conn is not None:
            conn.stop_play(self.stream_id, self.name)
            self.proto._flush()


class RTMPServerFactory(Factory[RTMPServerProtocol]):
    """Builds one :class:`RTMPServerProtocol` per accepted connection."""

    protocol = RTMPServerProtocol
    noisy = False

    def __init__(self, config: Config, clock: IReactorTime | None = None) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        assert clock is not None
        self.clock: IReactorTime = clock
        self.config = config
        self.limits = connection_limits(config)
        self.connections: set[RTMPServerProtocol] = set()
        self.registry = StreamRegistry(lambda app: fanout_limits(config, app))
        self.chains = build_all(config)  # raises ConfigError: a broken plugin stops startup
        self.applications: dict[str, Application] = {}
        self.settings = ServerSettings(chunk_size=config.streams.chunk_size)
        self._flusher: LoopingCall | None = None

    def startFactory(self) -> None:
        interval = self.config.streams.flush_interval
        if interval > 0 and self._flusher is None:
            self._flusher = LoopingCall(self.flush)
            self._flusher.clock = self.clock
            self._flusher.start(interval, now=False)

    def stopFactory(self) -> None:
        if self._flusher is not None and self._flusher.running:
            self._flusher.stop()
        self._flusher = None
        for application in self.applications.values():
            application.stop()

    def application_for(self, app: str) -> Application | None:
        """The :class:`Application` serving ``app`` (``live/room1`` is served by ``live``), or
        None when the configuration refuses unknown apps."""
        settings = self.config.app(app)
        if settings.name is None and settings.policy == "refuse":
            return None
        key = settings.name or app.split("/", 1)[0]
        application = self.applications.get(key)
        if application is None:
            chain = self.chains.get(settings.name, [])
            application = Application(key, settings, chain, self.registry, self.clock)
            self.applications[key] = application
            application.start()
        return application

    def flush(self) -> None:
        """Deliver what publishers sent since the last flush to every player."""
        self.registry.flush(self.clock.seconds())

    def buildProtocol(self, addr: Any) -> RTMPServerProtocol:
        proto = RTMPServerProtocol()
        proto.factory = self
        return proto
