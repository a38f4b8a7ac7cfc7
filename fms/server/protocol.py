"""The Twisted edge: one :class:`RTMPServerProtocol` per TCP connection.

The only code that touches a transport. It feeds received bytes to the sans-IO
:class:`~fms.rtmp.connection.ServerConnection`, dispatches the events it returns, writes what the
connection queued, and closes this one connection (with one log line naming the peer and the
reason) when the peer breaks the protocol, a deadline passes or our own code fails on its input.

Deadlines (``[limits]``): the handshake within ``handshake_timeout`` of accept and ``connect``
within ``connect_timeout`` of the handshake, neither extended by bytes; a connected client must
publish or play within ``publish_or_play_timeout`` (per app; 0 turns it off for RPC-only apps);
a publisher must send media at least every ``publisher_timeout``. Liveness is judged by bytes
*received*, never by our own writes: ``idle_timeout`` closes a connection that sent nothing, and
a client silent for ``ping_interval`` is pinged, so a player that only watches stays alive by
answering; once a client has answered a ping, the next one must be answered within
``ping_timeout``. Every connection's deadlines live in one
:class:`~fms.server.deadlines.DeadlineQueue` of the factory, served by one delayed call.

Admission (``buildProtocol``): at most ``max_connections`` connections and
``max_connecting_per_ip`` per address whose ``connect`` was not accepted yet; a refused
connection is closed at once, with one log line per ``REFUSAL_LOG_INTERVAL`` however many.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import itertools
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import tcp
from twisted.internet.defer import Deferred, TimeoutError, fail, gatherResults
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure
from zope.interface import implementer

from fms.amf import AMFLimits
from fms.apps.api import Redirect, Reject
from fms.apps.application import Application, MethodNotFound, StreamView
from fms.apps.interfaces import IClientView
from fms.apps.loader import build_all
from fms.config import Config
from fms.errors import ApplicationError, RemoteProtocolError
from fms.live.names import name_problem
from fms.live.registry import StreamRegistry
from fms.live.stream import FanoutLimits, LiveStream, Player
from fms.log import Logger, LogThrottle
from fms.rtmp import events as ev
from fms.rtmp.chunks import ChunkLimits
from fms.rtmp.connection import (
    ConnectionLimits,
    ConnectionState,
    ServerConnection,
    ServerSettings,
    StreamState,
    split_query,
)
from fms.rtmp.constants import UserControlEvent
from fms.rtmp.messages import Data
from fms.rtmp.status import StatusCode, info
from fms.server.deadlines import DeadlineQueue

if TYPE_CHECKING:
    from fms.cluster.relay import RelayHub

RELAY_KEY = "fmsRelay"
"""The ``connect`` property of a relay link (see :mod:`fms.cluster.relay`); honoured on
trusted links only."""
RELAY_PLAYERS = "fmsPlayers"
"""The call on a relay link, both ways, that carries ``(stream name, player count)``."""
RELAY_START = "fmsRelayStart"
"""The data message that tells a relay link's receiving worker that the media flow (re)starts,
with the sequence headers and the GOP."""
PLAYER_REPORT_DELAY = 0.5
"""Seconds a relay link gathers player changes before it reports them."""

log = Logger(namespace="fms.server.protocol")

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

EPSILON = 0.001
"""Deadlines may fire this early (seconds), so clock rounding never makes one miss its turn."""

REFUSAL_LOG_INTERVAL = 10.0
"""Seconds between two log lines about refused connections (the count in between is kept)."""

_DEADLINE_DETAILS = {
    "idle": " (nothing received)",
    "publish or play": " (connected without publishing or playing)",
    "publisher": " (no media received)",
    "ping answer": " (no answer to a ping)",
}


def fanout_limits(config: Config, app: str) -> FanoutLimits:
    """The per-stream delivery bounds of ``app``: ``[streams]`` with its ``[apps.APP.streams]``
    overrides."""
    streams = config.app(app).streams
    return FanoutLimits(
        chunk_size=config.streams.chunk_size,  # what every connection announced
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
        max_streams=lim.max_streams_per_connection,
        max_app_length=lim.max_app_name,
        max_tc_url_length=lim.max_tc_url,
        max_stream_name_length=config.streams.max_stream_name,
        min_chunk_size=lim.min_chunk_size,
    )


def address_group(host: str, ipv6_prefix_length: int = 64) -> str:
    """The key under which ``max_connecting_per_ip`` counts ``host``: an IPv4 address as it
    is (also when IPv4-mapped), an IPv6 address as its ``/ipv6_prefix_length`` network; anything
    else (a Unix socket's ``?``) as it is."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        network = ipaddress.IPv6Network((address, ipv6_prefix_length), strict=False)
        return str(network)
    return str(address)


@implementer(IPushProducer)
class RTMPServerProtocol(Protocol):
    """Adapts one transport to one :class:`ServerConnection`.

    Deadlines are plain timestamps checked through the factory's shared
    :class:`~fms.server.deadlines.DeadlineQueue` (see :meth:`check`); no timer of its own.
    """

    factory: RTMPServerFactory

    _ids = itertools.count(1)

    def __init__(self) -> None:
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
        # Times (seconds, the factory's clock) that the deadlines are computed from.
        self.accepted_at = 0.0
        self.handshake_at: float | None = None
        self.last_received = 0.0
        self.last_media = 0.0
        self.unengaged_since: float | None = None
        """Since when a connected client neither publishes nor plays (None: it does)."""
        self.ping_sent_at: float | None = None
        self.answers_pings = False
        self._publish_or_play_timeout = 0.0
        self._deciding: set[int] = set()
        """Stream ids whose publish or play the application is deciding."""
        self.trusted = False
        """A relay link from another worker (:mod:`fms.cluster.relay`): its connect and publish were
        decided on that worker, so no plugin is asked again and none sees its media."""
        self.relayed_from: int | None = None
        self._report_due: IDelayedCall | None = None
        self._reported: dict[str, int] = {}
        """Per relayed stream: the player count last reported to the publisher's worker."""

    # ------------------------------------------------------------------------- lifecycle

    def connectionMade(self) -> None:
        factory = self.factory
        self.config = factory.config
        now = factory.clock.seconds()
        self.accepted_at = self.last_received = now
        address = self.transport.getPeer()  # type: ignore[union-attr]
        host = getattr(address, "host", "?")
        self.host = str(host)
        self.peer = f"{host}:{getattr(address, 'port', '?')}"
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
        if self._report_due is not None and self._report_due.active():
            self._report_due.cancel()
        self._safely("forgetting the connection", self.factory.forget, self)
        for sid in list(self.publishing):
            self._safely(
                "ending its publish", functools.partial(self._stop_publishing, notify=False), sid
            )
        for sid in list(self.playing):
            self._safely("ending its play", self._stop_playing, sid)
        if self.connection is not None:
            self.connection.close()
        view, application = self.client_view, self.application
        if view is not None:
            gone = ConnectionError("the client disconnected")
            self._safely("failing its calls", view.fail_calls, gone)
            if application is not None:
                self._safely("telling the application", application.remove_client, view)
                self._safely("retiring the application", self.factory.client_left, application)

    def _safely(self, what: str, action: Callable[..., object], *args: Any) -> None:
        """Run one cleanup step; a failure is logged and the next step still runs."""
        try:
            action(*args)
        except Exception:
            log.failure("internal error {what} for {peer}", what=what, peer=self.peer)

    # ------------------------------------------------------------------------- deadlines

    def _deadlines(self) -> list[tuple[float, str]]:
        """(time, kind) of every deadline and action that applies in the current state."""
        limits = self.config.limits
        out = [(self.last_received + limits.idle_timeout, "idle")]
        conn = self.connection
        if conn is None:
            return out
        state = conn.state
        if state is ConnectionState.HANDSHAKE:
            out.append((self.accepted_at + limits.handshake_timeout, "handshake"))
        elif state is ConnectionState.AWAITING_CONNECT:
            start = self.handshake_at if self.handshake_at is not None else self.accepted_at
            out.append((start + limits.connect_timeout, "connect"))
        elif state is ConnectionState.CONNECTED:
            timeout = self._publish_or_play_timeout
            if timeout > 0 and self.unengaged_since is not None:
                out.append((self.unengaged_since + timeout, "publish or play"))
            if self.publishing and not self.trusted:  # the publisher's own worker judges it
                out.append((self.last_media + limits.publisher_timeout, "publisher"))
            if limits.ping_interval > 0:
                sent = self.ping_sent_at
                quiet_since = self.last_received if sent is None else max(self.last_received, sent)
                out.append((quiet_since + limits.ping_interval, "ping"))
                if self.answers_pings and sent is not None and self.last_received < sent:
                    out.append((sent + limits.ping_timeout, "ping answer"))
        return out

    def _reschedule(self) -> None:
        """Tell the factory when this connection must be checked next (only moves it earlier)."""
        if not self._closing:
            self.factory.schedule(self, min(at for at, _ in self._deadlines()))

    def check(self, now: float) -> float | None:
        """Apply every deadline due at ``now`` (close, or send a ping); return when to check
        next, or None once the connection is closing."""
        if self._closing or self.connection is None:
            return None
        for at, kind in sorted(self._deadlines()):
            if at > now + EPSILON:
                break
            if kind == "ping":
                self._send_ping(now)
                continue
            self._expired(kind)
            return None
        return min(at for at, _ in self._deadlines())

    def _send_ping(self, now: float) -> None:
        conn = self.connection
        assert conn is not None
        self.ping_sent_at = now
        conn.ping(now)
        self._flush()

    def _expired(self, what: str) -> None:
        limits = self.config.limits
        seconds = {
            "handshake": limits.handshake_timeout,
            "connect": limits.connect_timeout,
            "idle": limits.idle_timeout,
            "publish or play": self._publish_or_play_timeout,
            "publisher": limits.publisher_timeout,
            "ping answer": limits.ping_timeout,
        }[what]
        log.info(
            "closing {peer}: {what} deadline of {seconds:g}s passed{why}",
            peer=self.peer,
            what=what,
            seconds=seconds,
            why=_DEADLINE_DETAILS.get(what, ""),
        )
        self._abort()

    def _update_engagement(self) -> None:
        """Start (or stop) the publish-or-play deadline as streams start and end."""
        conn = self.connection
        if conn is None or conn.state is not ConnectionState.CONNECTED:
            return
        if self.publishing or self.playing or self._deciding:
            self.unengaged_since = None
        elif self.unengaged_since is None:
            self.unengaged_since = self.factory.clock.seconds()
            self._reschedule()

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
        self._flush()
        self._closing = True
        conn.close()
        self.transport.loseConnection()  # type: ignore[union-attr]

    # ---------------------------------------------------------------------------- input

    def dataReceived(self, data: bytes) -> None:
        conn = self.connection
        if conn is None or self._closing:
            return
        now = self.factory.clock.seconds()
        self.last_received = now
        before = conn.state
        try:
            events = conn.receive_data(data, now)
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
        except Exception:
            log.failure("closing {peer}: internal error while reading its input", peer=self.peer)
            self._abort()
            return
        if before is ConnectionState.HANDSHAKE and conn.state is not ConnectionState.HANDSHAKE:
            self.handshake_at = now
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
            self._update_engagement()
        except Exception:
            log.failure("closing {peer}: internal error while handling its input", peer=self.peer)
            self._abort()
            return
        self._flush()
        if self.publishing and self.factory.config.streams.flush_interval == 0:
            self.factory.flush()

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
            if sid is not None:
                self._deciding.discard(sid)
            self._guarded(what, action)(outcome)

        def failed(failure: Failure) -> None:
            if sid is not None:
                self._deciding.discard(sid)
            log.failure("closing {peer}: deciding {what} failed", failure, peer=self.peer,
                        what=what)  # fmt: skip
            if not self._closing:
                self._abort()

        if sid is not None:
            self._deciding.add(sid)
        d.addCallbacks(decided, failed)

    def _flush(self) -> None:
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
            handler(self, event)

    def _on_handshake(self, event: ev.HandshakeCompleted) -> None:
        log.debug(
            "handshake with {peer} done (digest: {digest})", peer=self.peer, digest=event.digest
        )

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
        if self.trusted:
            self._connect_relay_link(event)
            return
        self.client_view = ClientView(self, event)
        self._when_decided(
            application.decide_connect(self.client_view),
            "connect",
            lambda outcome: self._connect_decided(event, outcome),
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
        self.factory.connected(self)
        self._publish_or_play_timeout = self.config.publish_or_play_timeout(event.app)
        self._reschedule()

    def _connect_relay_link(self, event: ev.ConnectRequested) -> None:
        """Accept a relay link at once; its publisher's address becomes this peer's name."""
        conn = self.connection
        assert conn is not None
        origin = event.command_object.get(RELAY_KEY) if event.command_object else None
        if isinstance(origin, dict):
            worker = origin.get("worker")
            if isinstance(worker, (int, float)):
                self.relayed_from = int(worker)
            self.peer = f"{origin.get('peer', '?')} via worker {self.relayed_from}"
        self.client_view = ClientView(self, event)
        conn.accept_connect(event)
        self.factory.connected(self)
        self._reschedule()

    def _on_create_stream(self, event: ev.CreateStreamRequested) -> None:
        assert self.connection is not None
        self.connection.accept_create_stream(event)

    def _players_changed(self, stream: LiveStream) -> None:
        """A relay link's stream gained or lost a player here: tell the publisher's worker,
        which adds up every worker's and sends media only while this worker has players. The
        first player is reported at once (its picture waits for it); other changes at most
        every ``PLAYER_REPORT_DELAY`` seconds."""
        if len(stream.players) > 0 and not self._reported.get(stream.name):
            self._report_players()
        elif self._report_due is None:
            self._report_due = self.factory.clock.callLater(
                PLAYER_REPORT_DELAY, self._report_players
            )

    def _report_players(self) -> None:
        if self._report_due is not None and self._report_due.active():
            self._report_due.cancel()
        self._report_due = None
        conn = self.connection
        if self._closing or conn is None or conn.state is not ConnectionState.CONNECTED:
            return
        for stream in self.publishing.values():
            count = len(stream.players)
            if count == 0 and self._reported.get(stream.name):
                # The flow stops: what still arrives is dropped, and what is cached would be
                # stale when it restarts (with a fresh GOP, after a RELAY_START).
                stream.relay_waiting = True
                stream.forget_media()
            self._reported[stream.name] = count
            conn.call(RELAY_PLAYERS, stream.name, float(count), expect_result=False)
        self._flush()

    def _on_call(self, event: ev.CallRequested) -> None:
        conn = self.connection
        assert conn is not None
        command = event.command
        name = command.name
        stream_name = command.arguments[0] if command.arguments else None
        if self.trusted and name == RELAY_PLAYERS:
            # The publisher's worker: how many players the other workers have.
            count = command.arguments[1] if len(command.arguments) > 1 else 0
            for stream in self.publishing.values():
                if stream.name == stream_name and isinstance(count, (int, float)):
                    stream.remote_players = max(int(count), 0)
            return
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

    def _request_problem(self, action: str, name: str, busy: bool) -> str | None:
        """Why a publish or play request is refused before the application is asked (an
        invalid name, or a stream id already in use), logged once; None when it may go on."""
        problem = name_problem(name, self.config.streams.max_stream_name, allow_slash=True)
        if problem is None and busy:
            problem = "this stream id is already publishing or playing"
        if problem is not None:
            log.info(
                "refusing {action} {app}/{name!r} {by} {peer}: {problem}",
                action=action, app=self.app, name=name, peer=self.peer, problem=problem,
                by="from" if action == "publish" else "for",
            )  # fmt: skip
        return problem

    def _on_publish(self, event: ev.PublishRequested) -> None:
        conn = self.connection
        assert conn is not None and self.app is not None
        sid, name = event.stream_id, event.name
        busy = sid in self.publishing or sid in self.playing
        problem = self._request_problem("publish", name, busy)
        if problem is not None:
            conn.reject_publish(sid, name, StatusCode.PUBLISH_BAD_NAME, problem)
            return
        assert self.application is not None and self.client_view is not None
        if self.trusted:
            self._publish_decided(event, (None, name))
            return
        conn.hold_publish(sid)
        decision = self.application.decide_publish(
            self.client_view, name, event.query, event.publish_type
        )
        self._when_decided(
            decision,
            "publish",
            lambda outcome: self._publish_decided(event, outcome),
            sid,
        )

    def _refusal(
        self, decision: Any, action: str, name: str, default: StatusCode
    ) -> tuple[StatusCode, str] | None:
        """The status code and reason when the application refused ``action`` (logged once),
        or None when it accepted. A plugin's unknown status code falls back to ``default``."""
        if not isinstance(decision, (Reject, Redirect)):
            return None
        reason = decision.reason or f"{action} refused by the application"
        log.info(
            "{action} {app}/{name} {by} {peer} refused by the application: {reason}",
            action=action, app=self.app, name=name, peer=self.peer, reason=reason,
            by="from" if action == "publish" else "for",
        )  # fmt: skip
        code = default
        if isinstance(decision, Reject) and decision.code:
            code = StatusCode._value2member_map_.get(decision.code, default)  # type: ignore[assignment]
        return code, reason

    def _publish_decided(self, event: ev.PublishRequested, outcome: tuple[Any, str]) -> None:
        conn = self.connection
        assert conn is not None and self.app is not None
        sid = event.stream_id
        if sid not in conn.streams:
            return  # the stream was deleted while the application decided
        decision, name = outcome
        refusal = self._refusal(decision, "publish", event.name, StatusCode.PUBLISH_DENIED)
        if refusal is not None:
            conn.reject_publish(sid, event.name, *refusal)
            return
        problem = name_problem(name, self.config.streams.max_stream_name, allow_slash=True)
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
        stream.relayed_from = self.relayed_from
        conn.accept_publish(sid, name)
        if self.trusted:
            stream.relay_waiting = True  # until the publisher's worker starts the flow
            stream.watch_players = self._players_changed
            self._reported[name] = 0
            if stream.players:
                self._players_changed(stream)
        if self.factory.relay is not None and not self.trusted:
            self.factory.relay.publish_started(stream, self)
        self.last_media = self.factory.clock.seconds()
        self._reschedule()
        log.info(
            "publish started {app}/{name} from {peer}", app=self.app, name=name, peer=self.peer
        )

    def _stop_publishing(self, sid: int, *, notify: bool = True) -> None:
        stream = self.publishing.pop(sid, None)
        if stream is None:
            return
        if self.factory.relay is not None and not self.trusted:
            self.factory.relay.publish_stopped(stream)
        self.factory.registry.release(stream, self)
        stream.relayed_from = None
        stream.watch_players = None
        stream.remote_players = 0
        stream.relay_waiting = False
        if self.application is not None and self.client_view is not None and not self.trusted:
            self.application.notify("unpublish", self.client_view, StreamView(stream))
            self.application.publish_ended(stream)
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
            self.last_media = self.last_received
            if stream.relay_waiting or (self.trusted and stream.is_cached_header(event.message)):
                return  # a restarted relay flow resends headers its players already have
            stream.publish_message(event.message)
            if self.application is not None and self.application.wants_media and not self.trusted:
                self.application.media(stream, event.message)

    def _on_data(self, event: ev.DataReceived) -> None:
        stream = self.publishing.get(event.stream_id)
        if stream is None:
            return
        self.last_media = self.last_received
        values = event.message.values
        name = event.message.name
        if name == RELAY_START and self.trusted:
            stream.relay_waiting = False  # a fresh start (headers, GOP) follows
            return
        if name == "@setDataFrame" and len(values) >= 2:
            stream.set_metadata(values[1:])
            forwarded = stream.metadata
        elif name == "onMetaData":
            stream.set_metadata(values)
            forwarded = stream.metadata
        elif name == "@clearDataFrame":
            stream.clear_metadata()
            return
        else:
            forwarded = Data(values, 0, event.message.timestamp)
            stream.publish_message(forwarded)
        if (
            forwarded is not None
            and self.application is not None
            and self.application.wants_media
            and not self.trusted
        ):
            self.application.media(stream, forwarded)

    def _on_play(self, event: ev.PlayRequested) -> None:
        conn = self.connection
        assert conn is not None and self.app is not None
        sid, name = event.stream_id, event.name
        problem = self._request_problem("play", name, sid in self.publishing)
        if problem is not None:
            conn.reject_play(sid, name, StatusCode.PLAY_FAILED, problem)
            return
        assert self.application is not None and self.client_view is not None
        self._when_decided(
            self.application.decide_play(self.client_view, name, event.query),
            "play",
            lambda outcome: self._play_decided(event, outcome),
            sid,
        )

    def _play_decided(self, event: ev.PlayRequested, outcome: tuple[Any, str]) -> None:
        conn = self.connection
        assert conn is not None and self.app is not None
        sid = event.stream_id
        if sid not in conn.streams:
            return
        decision, name = outcome
        refusal = self._refusal(decision, "play", event.name, StatusCode.PLAY_FAILED)
        if refusal is not None:
            conn.reject_play(sid, event.name, *refusal)
            return
        problem = name_problem(name, self.config.streams.max_stream_name, allow_slash=True)
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

    def _on_ping_answered(self, event: ev.PingAnswered) -> None:
        self.answers_pings = True

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
        ev.PingAnswered: _on_ping_answered,
        ev.ResultReceived: _on_result,
        ev.ErrorReceived: _on_result,
    }

    # ------------------------------------------------------------------- shared writes

    def write_shared(self, data: bytes) -> None:
        """Write fan-out bytes after whatever the connection queued (statuses first).

        The hot path of fan-out: one call per player per flush. When the transport has nothing
        buffered, the bytes go straight to the socket (one ``send``), and only what the kernel
        did not take is handed to the transport. Going through ``transport.write`` every time
        costs a buffer append, an epoll registration, a writable event dispatched through
        Twisted's logging context and an unregistration per player per flush: measured at about
        half of the server's CPU with 3,000 players (docs/performance.md).
        """
        if self._closing or self.connection is None:
            return
        transport: Any = self.transport
        pending = self.connection.data_to_send()
        if pending:
            transport.writeSequence([pending, data])
            return
        self._write(data)

    def _write(self, data: bytes) -> None:
        """Write ``data`` after whatever the transport holds: straight to the socket when it
        holds nothing (plain TCP), the rest through the transport. Command answers take this
        path too: during a burst of connections, the transport's write scheduling (an epoll
        registration per answer) showed in the profile."""
        transport: Any = self.transport
        sock = self._direct_socket
        # Twisted's FileDescriptor keeps unsent bytes in _tempDataBuffer and dataBuffer: write
        # directly only when both are empty, so bytes never overtake each other.
        if (
            sock is not None
            and not transport._tempDataLen
            and transport.offset >= len(transport.dataBuffer)
        ):
            try:
                sent = sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = 0  # the transport meets the error on its own next read or write
            if sent == len(data):
                return
            data = data[sent:]
        transport.write(data)

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
        self.host = proto.host
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
    """A player's end of a :class:`~fms.live.stream.LiveStream`: one play on one connection.

    Every method is called from a stream's fan-out, for many players in a row: an exception
    here closes this one player (logged with its traceback once) and never reaches the stream.
    """

    __slots__ = ("name", "proto", "stream_id")

    def __init__(self, proto: RTMPServerProtocol, stream_id: int, name: str) -> None:
        self.proto = proto
        self.stream_id = stream_id
        self.name = name

    def _failed(self, what: str) -> None:
        log.failure(
            "closing player {peer} of {name}: internal error while {what}",
            peer=self.proto.peer, name=self.name, what=what,
        )  # fmt: skip
        self.proto.playing.pop(self.stream_id, None)
        if not self.proto._closing:
            self.proto._abort()

    def write(self, data: bytes) -> None:
        try:
            self.proto.write_shared(data)
        except Exception:
            self._failed("writing to it")

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
        if not self.proto._closing:
            self.proto._abort()

    def publish_started(self) -> None:
        try:
            conn = self.proto.connection
            if conn is not None and conn.state is ConnectionState.CONNECTED:
                conn.send_user_control(UserControlEvent.STREAM_BEGIN, self.stream_id)
                conn.send_status(
                    self.stream_id,
                    info(StatusCode.PLAY_PUBLISH_NOTIFY, subject=self.name, details=self.name),
                )
                self.proto._flush()
        except Exception:
            self._failed("telling it the stream started")

    def publish_stopped(self) -> None:
        try:
            conn = self.proto.connection
            if conn is not None:
                conn.stop_play(self.stream_id, self.name)
                self.proto._flush()
        except Exception:
            self._failed("telling it the stream stopped")


class RTMPServerFactory(Factory[RTMPServerProtocol]):
    """Builds one :class:`RTMPServerProtocol` per accepted connection, and holds what they
    share: the configuration, the stream registry, the applications, the fan-out flush loop,
    the deadline queue and the admission counts."""

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
        self.registry = StreamRegistry(lambda app: fanout_limits(self.config, app))
        self.chains = build_all(config)  # raises ConfigError: a broken plugin stops startup
        self.applications: dict[str, Application] = {}
        self.settings = ServerSettings(chunk_size=config.streams.chunk_size)
        self.deadlines: DeadlineQueue[int] = DeadlineQueue()
        self.shutting_down = False
        self._by_id: dict[int, RTMPServerProtocol] = {}
        self._connecting: dict[str, int] = {}
        self._retired: set[Application] = set()
        self._timer: IDelayedCall | None = None
        self._flusher: LoopingCall | None = None
        self._refusals = LogThrottle(REFUSAL_LOG_INTERVAL)
        self._all_closed: Deferred[None] | None = None
        self.relay: RelayHub | None = None
        """This worker's relay to the other workers (``fms run --workers``), or None."""

    # --------------------------------------------------------------------------- start/stop

    def startFactory(self) -> None:
        self._start_flusher()

    def _start_flusher(self) -> None:
        interval = self.config.streams.flush_interval
        if interval > 0 and self._flusher is None:
            self._flusher = LoopingCall(self.flush)
            self._flusher.clock = self.clock
            self._flusher.start(interval, now=False)

    def _stop_flusher(self) -> None:
        if self._flusher is not None and self._flusher.running:
            self._flusher.stop()
        self._flusher = None

    def stopFactory(self) -> None:
        if self.shutting_down:
            return  # shutdown() stops the applications once their clients were told
        self._stop_flusher()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        for application in [*self.applications.values(), *self._retired]:
            application.stop()

    def shutdown(self, timeout: float | None = None) -> Deferred[None]:
        """Stop gracefully: refuse new connections, tell every client its streams ended and
        close it once that is written, let plugins finish (recordings are closed by their
        ``unpublish``/``app_stop``), all within ``timeout`` seconds (``[server]
        shutdown_timeout``); whatever is left then is aborted. The Deferred never fails."""
        if timeout is None:
            timeout = self.config.server.shutdown_timeout
        self.shutting_down = True
        deadline = self.clock.seconds() + timeout
        log.info(
            "shutting down: {clients} connections, {streams} streams",
            clients=len(self.connections), streams=len(self.registry),
        )  # fmt: skip
        for proto in list(self.connections):
            try:
                proto.shut_down()
            except Exception:
                log.failure("internal error while telling {peer} of the shutdown", peer=proto.peer)
                proto._abort()
        return Deferred.fromCoroutine(self._finish_shutdown(deadline))

    async def _finish_shutdown(self, deadline: float) -> None:
        if self.connections:
            waiter: Deferred[None] = Deferred()
            self._all_closed = waiter
            try:
                await waiter.addTimeout(max(deadline - self.clock.seconds(), 0), self.clock)
            except TimeoutError:
                log.warn(
                    "{count} connections did not close within the shutdown timeout: aborted",
                    count=len(self.connections),
                )
                for proto in list(self.connections):
                    proto._abort()
            self._all_closed = None
        applications = [*self.applications.values(), *self._retired]
        stopping = gatherResults([app.stop() for app in applications])
        try:
            await stopping.addTimeout(max(deadline - self.clock.seconds(), 0.1), self.clock)
        except TimeoutError:
            log.warn("plugins did not finish stopping within the shutdown timeout")
        except Exception:
            log.failure("stopping the applications failed")
        self._stop_flusher()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    # ------------------------------------------------------------------------- admission

    def buildProtocol(self, addr: Any) -> RTMPServerProtocol | None:
        limits = self.config.limits
        host = address_group(str(getattr(addr, "host", "?")), limits.ipv6_prefix_length)
        reason = None
        if self.shutting_down:
            reason = "the server is shutting down"
        elif len(self.connections) >= limits.max_connections:
            reason = f"{len(self.connections)} connections open (max_connections)"
        elif self._connecting.get(host, 0) >= limits.max_connecting_per_ip:
            reason = (
                f"{self._connecting[host]} connections from this address have not connected "
                "yet (max_connecting_per_ip)"
            )
        if reason is not None:
            held = self._refusals.allow(reason.split(" (")[-1], self.clock.seconds())
            if held is not None:
                log.warn(
                    "refusing connection from {host}: {reason}{held}",
                    host=host, reason=reason,
                    held=f"; {held} more refused since the last report" if held else "",
                )  # fmt: skip
            return None  # Twisted closes the socket at once
        proto = RTMPServerProtocol()
        proto.factory = self
        return proto

    def admit(self, proto: RTMPServerProtocol) -> None:
        """A connection was made: count it until it is forgotten."""
        self.connections.add(proto)
        self._by_id[proto.id] = proto
        proto.address_group = address_group(proto.host, self.config.limits.ipv6_prefix_length)
        group = proto.address_group
        self._connecting[group] = self._connecting.get(group, 0) + 1
        proto.counted_connecting = True

    def connected(self, proto: RTMPServerProtocol) -> None:
        """``connect`` was accepted: the connection no longer counts as connecting."""
        if proto.counted_connecting:
            proto.counted_connecting = False
            group = proto.address_group
            left = self._connecting.get(group, 1) - 1
            if left > 0:
                self._connecting[group] = left
            else:
                self._connecting.pop(group, None)

    def forget(self, proto: RTMPServerProtocol) -> None:
        """A connection was lost."""
        self.connected(proto)
        self.connections.discard(proto)
        self._by_id.pop(proto.id, None)
        self.deadlines.discard(proto.id)
        self._arm()
        if not self.connections and self._all_closed is not None:
            waiter, self._all_closed = self._all_closed, None
            waiter.callback(None)

    def connecting_from(self, host: str) -> int:
        host = address_group(host, self.config.limits.ipv6_prefix_length)
        """Connections from ``host`` whose ``connect`` was not accepted yet."""
        return self._connecting.get(host, 0)

    # ------------------------------------------------------------------------- deadlines

    def schedule(self, proto: RTMPServerProtocol, when: float) -> None:
        """Check ``proto`` at ``when`` (seconds) unless it is due earlier already."""
        if proto.id in self._by_id and self.deadlines.schedule(proto.id, when):
            self._arm()

    def _arm(self) -> None:
        """Keep the one delayed call armed for the earliest deadline."""
        when = self.deadlines.next_time()
        timer = self._timer
        if when is None:
            if timer is not None and timer.active():
                timer.cancel()
            self._timer = None
            return
        if timer is not None and timer.active():
            if timer.getTime() <= when:
                return
            timer.cancel()
        delay = max(when - self.clock.seconds() - EPSILON / 2, 0.0)
        self._timer = self.clock.callLater(delay, self._run_deadlines)

    def _run_deadlines(self) -> None:
        self._timer = None
        now = self.clock.seconds()
        for key in self.deadlines.pop_due(now + EPSILON):
            proto = self._by_id.get(key)
            if proto is None:
                continue
            try:
                when = proto.check(now)
            except Exception:
                log.failure("closing {peer}: internal error in its deadlines", peer=proto.peer)
                proto._abort()
                continue
            if when is not None and key in self._by_id:
                self.deadlines.schedule(key, when)
        self._arm()

    # ---------------------------------------------------------------------- applications

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

    def client_left(self, application: Application) -> None:
        """Stop an application replaced by a reload once its last client has gone."""
        if application in self._retired and not application.clients:
            self._retired.discard(application)
            application.stop()

    def reload(self, config: Config) -> None:
        """Use ``config`` for new connections: new plugin chains, limits and stream settings.

        Existing clients keep the configuration and plugins they arrived with (their streams
        go on); clients of an application the new configuration refuses are closed. Raises
        :class:`~fms.errors.ConfigError` (and changes nothing) when a plugin cannot be built.
        The outgoing chunk size is shared by every player of a stream, so it keeps its value
        until a restart, as do the listening address and port.
        """
        old = self.config
        if config.streams.chunk_size != old.streams.chunk_size:
            log.warn("streams.chunk_size stays {size} until a restart", size=old.streams.chunk_size)
            config = dataclasses.replace(
                config,
                streams=dataclasses.replace(config.streams, chunk_size=old.streams.chunk_size),
            )
        if (config.server.host, config.server.port) != (old.server.host, old.server.port):
            log.warn("server.host and server.port changes take effect at the next restart")
        if (config.server.workers, config.server.worker_ports) != (
            old.server.workers,
            old.server.worker_ports,
        ):
            log.warn("server.workers and server.worker_ports take effect at the next restart")
        chains = build_all(config)  # ConfigError: nothing has changed yet
        self.config = config
        self.chains = chains
        self.limits = connection_limits(config)
        self.settings = ServerSettings(chunk_size=config.streams.chunk_size)
        if old.streams.flush_interval != config.streams.flush_interval and self._flusher:
            self._stop_flusher()
            self._start_flusher()
        retiring, self.applications = self.applications, {}
        for application in retiring.values():
            self._retired.add(application)
            self.client_left(application)
        for proto in list(self.connections):
            if proto.app is not None and self.application_for(proto.app) is None:
                log.info(
                    "closing {peer}: application {app!r} is no longer served",
                    peer=proto.peer, app=proto.app,
                )  # fmt: skip
                proto._abort()

    # ---------------------------------------------------------------------------- fan-out

    def flush(self) -> None:
        """Deliver what publishers sent since the last flush to every player. A stream whose
        flush fails is logged and skipped; the loop and the other streams go on."""
        for stream, failure in self.registry.flush(self.clock.seconds()):
            log.failure(
                "internal error while delivering {app}/{name}",
                Failure(failure), app=stream.app, name=stream.name,
            )  # fmt: skip
