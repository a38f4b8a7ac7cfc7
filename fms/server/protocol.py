"""The Twisted edge: one :class:`RTMPServerProtocol` per TCP connection.

It feeds received bytes to the sans-IO :class:`~fms.rtmp.connection.ServerConnection`,
dispatches the events it returns (a decision goes to the application, whose
:class:`~fms.apps.verdict.Verdict` it applies), writes what the connection queued, and closes
this one connection (with one log line naming the peer and the reason) when the peer breaks the
protocol, a deadline passes (the connection computes them: :mod:`fms.rtmp.liveness`; the
factory's one :class:`~fms.server.deadlines.DeadlineQueue` says when to ask) or our own code
fails on its input. Admission happens before it exists (:mod:`fms.server.admission`).
"""

from __future__ import annotations

import functools
import itertools
import socket
from collections.abc import Callable
from typing import Any

from twisted.internet import tcp
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from fms.apps.application import Application
from fms.apps.pushes import push_hops
from fms.apps.verdict import Verdict
from fms.apps.views import ClientView
from fms.config import Config
from fms.errors import RemoteProtocolError
from fms.live.media import DATA_INFO, MediaInfo
from fms.live.names import name_problem
from fms.live.stream import LiveStream, Player
from fms.log import Logger, PeerLabel
from fms.rtmp import events as ev
from fms.rtmp.connection import ConnectionState, ServerConnection, StreamState, split_query
from fms.rtmp.messages import Data, Media
from fms.rtmp.status import StatusCode, info
from fms.server.calls import answer_encoder_call, call_failed
from fms.server.delivery import PlaySink, buffered, offer_through, pause, seek, write_through
from fms.server.host import ServerHost
from fms.server.vod import VodPlays
from fms.vod.recordings import open_recording

log = Logger(namespace="fms.server.protocol")

BUSY = "this stream id is already publishing or playing"


@implementer(IPushProducer)
class RTMPServerProtocol(TwistedProtocol):
    """Adapts one transport to one :class:`ServerConnection`.

    Deadlines are plain timestamps checked through the factory's shared
    :class:`~fms.server.deadlines.DeadlineQueue` (see :meth:`check`); no timer of its own.
    """

    _ids = itertools.count(1)
    claims_names = True
    """Claim a publish's name across workers first (a relay link's worker holds its claim)."""

    def __init__(self, server: ServerHost[RTMPServerProtocol]) -> None:
        self.server = server
        """What this connection shares with the others (the factory that built it)."""
        self.id = next(RTMPServerProtocol._ids)
        self.connection: ServerConnection | None = None
        self.peer = "?"
        self.host = "?"
        self.config = Config()
        """The configuration in force when this client arrived (a reload does not change it)."""
        self._closing = False
        self.app: str | None = None
        self.application: Application | None = None
        self.client_view: ClientView | None = None
        self.publishing: dict[int, LiveStream] = {}
        self.playing: dict[int, tuple[LiveStream, Player]] = {}
        self.write_paused = False
        self._direct_socket: socket.socket | None = None
        self.counted_connecting = False
        """Whether this connection counts toward its address's ``max_connecting_per_ip``."""
        self.address_group = "?"
        """What that cap counts it under: its IPv4 address, or its IPv6 prefix."""
        self.vod = VodPlays(self, server.clock, open_recording)

    # ------------------------------------------------------------------------- lifecycle

    def connectionMade(self) -> None:
        factory = self.server
        self.config = factory.config
        now = factory.clock.seconds()
        address = self.transport.getPeer()  # type: ignore[union-attr]
        host = getattr(address, "host", "?")
        self.host = str(host)
        self.peer = PeerLabel(f"{host}:{getattr(address, 'port', '?')}", self.id)
        self.connection = ServerConnection(factory.limits, factory.settings, now=now)
        factory.admit(self)
        # Commands and fan-out flushes are small writes that must leave at once: no Nagle.
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]
        if type(self.transport) is tcp.Server:  # plain TCP: fan-out may write to the socket
            self._direct_socket = self.transport.socket
        self._reschedule()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._closing = True
        self._safely("forgetting the connection", self.server.forget, self)
        stop_publishing = functools.partial(self._stop_publishing, notify=False)
        for sid in list(self.publishing):
            self._safely("ending its publish", stop_publishing, sid)
        for sid in [*self.playing, *self.vod.plays]:
            self._safely("ending its play", self._stop_playing, sid)
        if self.connection is not None:
            self.connection.close()
        view, application = self.client_view, self.application
        if view is not None:
            self._safely("failing its calls", view.fail_calls, ConnectionError("disconnected"))
            if application is not None:
                self._safely("telling the application", application.remove_client, view)
                self._safely("retiring the application", self.server.client_left, application)

    def _safely(self, what: str, action: Callable[..., object], *args: Any) -> None:
        """Run one cleanup step; a failure is logged and the next step still runs."""
        try:
            action(*args)
        except Exception:
            log.failure("internal error {what} for {peer}", what=what, peer=self.peer)

    # ------------------------------------------------------------------------- deadlines

    def _reschedule(self) -> None:
        """Tell the factory when this connection's deadlines must be checked next (the
        arithmetic is the sans-IO connection's; the factory's queue only moves it earlier)."""
        conn = self.connection
        if not self._closing and conn is not None:
            when = conn.next_deadline()
            if when is not None:
                self.server.schedule(self, when)

    def check(self, now: float) -> float | None:
        """Apply every deadline due at ``now`` (a ping is sent, or the connection closes with
        one log line); return when to check next, or None once the connection is closing."""
        conn = self.connection
        if self._closing or conn is None:
            return None
        for event in conn.handle_timer(now):
            if isinstance(event, ev.DeadlinePassed):
                kind, why = event.kind, f" ({event.kind.detail})" if event.kind.detail else ""
                log.info("closing {peer}: {what} deadline of {s:g}s passed{why}", why=why,
                         peer=self.peer, what=kind.value, s=event.limit_seconds)  # fmt: skip
                self._abort()
                return None
        self.flush_output()  # a ping
        return conn.next_deadline()

    def _abort(self) -> None:
        self._closing = True
        if self.connection is not None:
            self.connection.close()
        self.transport.abortConnection()  # type: ignore[union-attr]

    def shut_down(self) -> None:
        """Server shutdown: tell the client its streams ended (publishers get
        ``NetStream.Unpublish.Success``, players ``Play.UnpublishNotify`` and StreamEOF, a
        client with neither ``NetConnection.Connect.AppShutdown``), then close once written."""
        conn = self.connection
        if self._closing or conn is None:
            return
        if conn.state is not ConnectionState.CONNECTED:
            self._abort()
            return
        had_streams = bool(self.publishing or self.playing)
        for sid in list(self.publishing):
            self._stop_publishing(sid)
        for sid, (stream, _) in list(self.playing.items()):
            if conn.streams.get(sid) is StreamState.PLAYING:
                conn.stop_play(sid, stream.name)
            self._stop_playing(sid)
        if not had_streams:
            conn.send_status(0, info(StatusCode.CONNECT_APP_SHUTDOWN))
        self.flush_output()
        self._closing = True
        conn.close()
        self.transport.loseConnection()  # type: ignore[union-attr]

    # ---------------------------------------------------------------------------- input

    def dataReceived(self, data: bytes) -> None:
        conn = self.connection
        if conn is None or self._closing:
            return
        now = self.server.clock.seconds()
        before = conn.state
        try:
            events = conn.receive_data(data, now)
        except RemoteProtocolError as exc:
            self.flush_output()
            log.info(
                "closing {peer}: {kind}: {reason}",
                peer=self.peer,
                kind=type(exc).__name__,
                reason=str(exc),
            )
            self._abort()
            return
        except Exception:
            log.failure("closing {peer}: internal error while reading its input", peer=self.peer)
            self._abort()
            return
        if before is ConnectionState.HANDSHAKE and conn.state is not ConnectionState.HANDSHAKE:
            self._reschedule()
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
            conn.update_engagement(self.server.clock.seconds())
            self._reschedule()
        except Exception:
            log.failure("closing {peer}: internal error while handling its input", peer=self.peer)
            self._abort()
            return
        self.flush_output()
        if self.publishing:
            self.server.published()

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

    def _when_decided(
        self, d: Deferred[Any], what: str, action: Callable[[Any], None], sid: int | None = None
    ) -> None:
        """Run ``action`` with the application's decision (guarded); a failed decision (a bug:
        the chain turns plugin failures into refusals) is logged and closes this connection."""

        def decided(outcome: Any) -> None:
            if sid is not None and self.connection is not None:
                self.connection.decided(sid)
            self._guarded(what, action)(outcome)

        def failed(failure: Failure) -> None:
            if sid is not None and self.connection is not None:
                self.connection.decided(sid)
            log.failure("closing {peer}: deciding {what} failed", failure, peer=self.peer,
                        what=what)  # fmt: skip
            if not self._closing:
                self._abort()

        d.addCallbacks(decided, failed)

    def flush_output(self) -> None:
        assert self.connection is not None
        data = self.connection.data_to_send()
        if data and not self._closing:
            self._write(data)
        if self.connection.state is ConnectionState.CLOSED and not self._closing:
            self._closing = True
            self.transport.loseConnection()  # type: ignore[union-attr]

    # ---------------------------------------------------------------------------- events

    def _handle(self, event: ev.Event) -> None:
        conn = self.connection
        assert conn is not None
        handler = self._handlers.get(type(event))
        if handler is not None:
            getattr(self, handler)(event)

    def _on_connect(self, event: ev.ConnectRequested) -> None:
        conn = self.connection
        assert conn is not None
        limits = conn.limits
        tc_url_size = len(event.tc_url.encode())
        if tc_url_size > limits.max_tc_url_length:
            too_long = f"the tcUrl is {tc_url_size} bytes long (at most {limits.max_tc_url_length})"
            log.info("refusing connect from {peer}: {problem}", peer=self.peer, problem=too_long)
            conn.reject_connect(event, too_long)
            return
        problem = name_problem(event.app, limits.max_app_length, allow_slash=True)
        application = None if problem else self.server.application_for(event.app)
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
        self._decide_connect(event, application)

    def _make_view(self, event: ev.ConnectRequested) -> ClientView:
        """What plugins will see of this client."""
        view = ClientView(
            self, peer=self.peer, host=self.host, app=event.app, tc_url=event.tc_url,
            params=event.command_object, query=event.query, agent=event.flash_ver,
        )  # fmt: skip
        self.client_view = view
        return view

    def _decide_connect(self, event: ev.ConnectRequested, application: Application) -> None:
        """Ask the application; the relay's links (:mod:`fms.cluster`) override this."""
        self._when_decided(
            application.decide_connect(self._make_view(event)),
            "connect",
            lambda verdict: self._connect_decided(event, verdict),
        )

    def _connect_decided(self, event: ev.ConnectRequested, verdict: Verdict) -> None:
        conn, application, view = self.connection, self.application, self.client_view
        assert conn is not None and application is not None and view is not None
        if conn.state is not ConnectionState.CONNECT_PENDING:
            return
        if not verdict.accepted:
            assert verdict.status is not None
            conn.reject_connect(
                event, verdict.description, code=verdict.status, redirect=verdict.redirect
            )
            return
        log.info(
            "connect from {peer}: app {app!r} ({agent})",
            peer=self.peer, app=event.app, agent=event.flash_ver,
        )  # fmt: skip
        conn.accept_connect(event)
        conn.send_onbwdone()
        application.add_client(view)
        self.server.connected(self)
        conn.set_publish_or_play_timeout(self.config.publish_or_play_timeout(event.app))
        self._reschedule()

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
        if not answer_encoder_call(conn, command, self.vod.length):
            assert self.application is not None and self.client_view is not None
            d = self.application.call(self.client_view, name, command.arguments)
            tid = command.transaction_id
            d.addCallbacks(
                self._guarded("call", lambda value: self._call_answered(tid, value)),
                self._guarded(
                    "call", lambda failure: call_failed(conn, self.peer, tid, name, failure)
                ),
            )

    def _call_answered(self, transaction_id: float, value: Any) -> None:
        if transaction_id and self.connection is not None:
            self.connection.send_result(transaction_id, value)

    def _busy(self, action: str, name: str, busy: bool) -> bool:
        """Whether the stream id is already in use (logged once): the request is refused before
        the application is asked. Names are the application's to check."""
        if busy:
            log.info("refusing {action} {app}/{stream!r} {by} {peer}: {problem}", action=action,
                     app=self.app, stream=name, peer=self.peer, problem=BUSY,
                     by="from" if action == "publish" else "for")  # fmt: skip
        return busy

    def _on_publish(self, event: ev.PublishRequested) -> None:
        conn = self.connection
        assert conn is not None and self.app is not None
        sid, name = event.stream_id, event.name
        if self._busy("publish", name, sid in self.publishing or sid in self.playing):
            conn.reject_publish(sid, name, StatusCode.PUBLISH_BAD_NAME, BUSY)
            return
        self._decide_publish(event)

    def _decide_publish(self, event: ev.PublishRequested) -> None:
        """Ask the application; the relay's links (:mod:`fms.cluster`) override this."""
        conn = self.connection
        assert conn is not None and self.application is not None
        assert self.client_view is not None
        conn.hold_publish(event.stream_id)
        self._when_decided(
            self.application.decide_publish(
                self.client_view, event.name, event.query, event.publish_type,
                self.config.streams.max_stream_name,
            ),
            "publish",
            lambda verdict: self._publish_decided(event, verdict),
            event.stream_id,
        )  # fmt: skip

    def _publish_decided(self, event: ev.PublishRequested, verdict: Verdict) -> None:
        conn = self.connection
        assert conn is not None and self.app is not None
        sid, name = event.stream_id, verdict.name
        if sid not in conn.streams:
            return  # the stream was deleted while the application decided
        if not verdict.accepted:
            assert verdict.status is not None
            conn.reject_publish(sid, name, verdict.status, verdict.description)
            return
        claimed = not self.claims_names or self.server.claim_name(self.app, name)
        stream = self.server.registry.claim(self.app, name, self.client_view) if claimed else None
        if stream is None:
            if claimed and self.claims_names:  # a relay link of an ended publish holds it here
                self.server.release_name(self.app, name)
            log.info("refusing publish {app}/{stream} from {peer}: already published",
                     app=self.app, stream=name, peer=self.peer)  # fmt: skip
            conn.reject_publish(
                sid, name, StatusCode.PUBLISH_BAD_NAME, f"{name} is already being published."
            )
            return
        if event.publish_type not in ("live", ""):
            log.info(
                "{app}/{stream}: publish type {kind!r}: relayed live (recording is a plugin's job)",
                app=self.app, stream=name, kind=event.publish_type, peer=self.peer,
            )  # fmt: skip
        self.publishing[sid] = stream
        conn.accept_publish(sid, name)
        stream.publish_query = dict(event.query)
        stream.push_hops = push_hops(self.client_view.params) if self.client_view else 0
        self._publish_started(stream)
        self._reschedule()
        log.info("publish started {app}/{stream} from {peer}",
                 app=self.app, stream=name, peer=self.peer)  # fmt: skip

    def _publish_started(self, stream: LiveStream) -> None:
        """A publish went on air: the listener (the worker relay) and plugins hear of it."""
        listener = self.server.publish_listener
        if listener is not None:
            listener.publish_started(stream, self.peer)
        if self.application is not None:
            self.application.published(stream)

    def _stop_publishing(self, sid: int, *, notify: bool = True) -> None:
        stream = self.publishing.pop(sid, None)
        if stream is None:
            return
        self._publish_ending(stream)
        self.server.registry.release(stream, self.client_view)
        if self.claims_names:
            self.server.release_name(stream.app, stream.name)
        log.info("publish stopped {app}/{stream} from {peer}",
                 app=stream.app, stream=stream.name, peer=self.peer)  # fmt: skip
        if notify and self.connection is not None:
            self.connection.end_publish(sid, stream.name)

    def _publish_ending(self, stream: LiveStream) -> None:
        """A publish ends (its stream is still claimed): the listener and plugins hear of it."""
        listener = self.server.publish_listener
        if listener is not None:
            listener.publish_stopped(stream)
        if self.application is not None and self.client_view is not None:
            self.application.publish_ended(self.client_view, stream)

    def _on_media(self, event: ev.MediaReceived) -> None:
        stream = self.publishing.get(event.stream_id)
        if stream is not None:
            self._publish(stream, event.message)

    def _publish(self, stream: LiveStream, message: Media | Data) -> None:
        """Append one message to the stream (and hand it to plugins that want media)."""
        self._to_plugins(stream, message, stream.publish_message(message))

    def _to_plugins(self, stream: LiveStream, message: Media | Data, info: MediaInfo) -> None:
        if self.application is not None and self.application.wants_media:
            self.application.media(stream, message, info)

    def _on_data(self, event: ev.DataReceived) -> None:
        stream = self.publishing.get(event.stream_id)
        if stream is None:
            return
        values = event.message.values
        name = event.message.name
        if name == "@setDataFrame" and len(values) >= 2:
            stream.set_metadata(values[1:])
        elif name == "onMetaData":
            stream.set_metadata(values)
        elif name == "@clearDataFrame":
            stream.clear_metadata()
            return
        else:
            self._publish(stream, Data(values, 0, event.message.timestamp))
            return
        if stream.metadata is not None:
            self._to_plugins(stream, stream.metadata, DATA_INFO)

    def _on_play(self, event: ev.PlayRequested) -> None:
        conn = self.connection
        assert conn is not None and self.app is not None
        sid, name = event.stream_id, event.name
        if self._busy("play", name, sid in self.publishing):
            conn.reject_play(sid, name, StatusCode.PLAY_FAILED, BUSY)
            return
        assert self.application is not None and self.client_view is not None
        conn.hold_play(sid)
        self._when_decided(
            self.application.decide_play(
                self.client_view, name, event.query, self.config.streams.max_stream_name
            ),
            "play",
            lambda verdict: self._play_decided(event, verdict),
            sid,
        )

    def _play_decided(self, event: ev.PlayRequested, verdict: Verdict) -> None:
        conn = self.connection
        assert conn is not None and self.app is not None
        sid, name = event.stream_id, verdict.name
        if sid not in conn.streams:
            return
        if not verdict.accepted:
            assert verdict.status is not None
            conn.reject_play(sid, name, verdict.status, verdict.description)
            return
        self._stop_playing(sid)
        if self.vod.maybe_play(sid, name, event.start, event.duration):
            return
        conn.accept_play(sid, name, reset=event.reset)
        self.flush_output()
        stream, player = self.server.registry.play(self.app, name, PlaySink(self, sid, name), sid)
        self.playing[sid] = (stream, player)
        if self.application is not None and self.client_view is not None:
            self.application.play_started(self.client_view, stream)
        log.info(
            "play {app}/{stream} for {peer}{waiting}",
            app=self.app, stream=name, peer=self.peer,
            waiting="" if stream.published else " (waiting for publisher)",
        )  # fmt: skip

    def _stop_playing(self, sid: int, *, lost: bool = False) -> None:
        """End play ``sid`` (``lost``: the stream already dropped the player): plugins hear."""
        self.vod.stop(sid)
        entry = self.playing.pop(sid, None)
        if entry is not None:
            if not lost:
                self.server.registry.leave(*entry)
            if self.application is not None and self.client_view is not None:
                self.application.play_stopped(self.client_view, entry[0])

    def _on_delete_stream(self, event: ev.DeleteStreamRequested) -> None:
        self._stop_publishing(event.stream_id)
        self._stop_playing(event.stream_id)
        if self.connection is not None:
            self.connection.delete_stream(event.stream_id)

    def _on_close_stream(self, event: ev.CloseStreamRequested) -> None:
        self._stop_publishing(event.stream_id)
        self._stop_playing(event.stream_id)

    def _on_pause(self, event: ev.PauseRequested) -> None:
        assert self.connection is not None
        if not self.vod.pause(event.stream_id, event.paused, event.position):
            pause(self.connection, event.stream_id, self.playing.get(event.stream_id), event.paused)

    def _on_seek(self, event: ev.SeekRequested) -> None:
        assert self.connection is not None
        if not self.vod.seek(event.stream_id, event.offset):
            seek(self.connection, event.stream_id, self.playing.get(event.stream_id))

    def _on_buffer_length(self, event: ev.BufferLengthSet) -> None:
        self.vod.buffer(event.stream_id, event.length)

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

    def _on_handshake(self, event: ev.HandshakeCompleted) -> None:
        self.server.handshake_done(self, event.digest)  # logs it; renews its admission age

    def _on_peer_chunk_size(self, event: ev.PeerChunkSizeChanged) -> None:
        log.debug("{peer} sends with chunk size {size}", peer=self.peer, size=event.size)

    # Handlers by name, so that a subclass (the relay link of :mod:`fms.cluster`) overrides them.
    _handlers: dict[type[ev.Event], str] = {
        ev.HandshakeCompleted: "_on_handshake",
        ev.ConnectRequested: "_on_connect",
        ev.CreateStreamRequested: "_on_create_stream",
        ev.CallRequested: "_on_call",
        ev.PublishRequested: "_on_publish",
        ev.MediaReceived: "_on_media",
        ev.DataReceived: "_on_data",
        ev.PlayRequested: "_on_play",
        ev.DeleteStreamRequested: "_on_delete_stream",
        ev.CloseStreamRequested: "_on_close_stream",
        ev.PauseRequested: "_on_pause",
        ev.SeekRequested: "_on_seek",
        ev.ReceiveMediaRequested: "_on_receive_media",
        ev.BufferLengthSet: "_on_buffer_length",
        ev.PeerChunkSizeChanged: "_on_peer_chunk_size",
        ev.ResultReceived: "_on_result",
        ev.ErrorReceived: "_on_result",
    }

    # ------------------------------------------------------------- for the play sinks

    def pending_bytes(self) -> int:
        return buffered(self.transport)

    def lose_play(self, stream_id: int) -> None:
        self._stop_playing(stream_id, lost=True)
        if not self._closing:
            self._abort()

    # ------------------------------------------------------- ClientLink (for the view)

    def streams(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return (
            tuple(s.name for s in self.publishing.values()),
            tuple(s.name for s, _ in self.playing.values()),
        )

    def invoke(self, method: str, args: tuple[Any, ...], expect_result: bool) -> float | None:
        conn = self.connection
        if conn is None or self._closing or conn.state is not ConnectionState.CONNECTED:
            return None
        tid = conn.call(method, *args, expect_result=expect_result)
        self.flush_output()
        return tid

    def close(self, reason: str) -> None:
        log.info("closing {peer}: {reason}", peer=self.peer, reason=reason)
        self._abort()

    # ------------------------------------------------------------------- shared writes

    def write_shared(self, data: bytes) -> None:
        """Write fan-out bytes after whatever the connection queued (statuses first)."""
        if self._closing or self.connection is None:
            return
        pending = self.connection.data_to_send()
        if pending:
            self.transport.writeSequence([pending, data])  # type: ignore[union-attr]
            return
        self._write(data)

    def offer_shared(self, data: bytes, budget: int) -> bool:
        """:meth:`write_shared` if at most ``budget`` bytes would then be held unsent (else
        nothing, False): one call per player per flush, the hot path of fan-out."""
        if self._closing or self.connection is None:
            return True
        return offer_through(self.transport, self._direct_socket, self.connection, data, budget)

    def _write(self, data: bytes) -> None:
        """Write after what the transport holds (:func:`write_through`; answers too)."""
        write_through(self.transport, self._direct_socket, data)

    def pauseProducing(self) -> None:
        self.write_paused = True

    def resumeProducing(self) -> None:
        self.write_paused = False
        for stream, _ in self.playing.values():
            stream.dirty = True

    stopProducing = pauseProducing
