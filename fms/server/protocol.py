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

import functools
import itertools
import socket
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet import tcp
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from fms.apps.application import Application, MethodNotFound
from fms.apps.verdict import Verdict, status_for
from fms.apps.views import ClientView, StreamView
from fms.config import Config
from fms.errors import ApplicationError, RemoteProtocolError
from fms.live.media import DATA_INFO, MediaInfo
from fms.live.names import name_problem
from fms.live.registry import StreamRegistry
from fms.live.stream import LiveStream, Player
from fms.log import Logger
from fms.rtmp import events as ev
from fms.rtmp.connection import (
    ConnectionLimits,
    ConnectionState,
    ServerConnection,
    ServerSettings,
    StreamState,
    split_query,
)
from fms.rtmp.messages import Data, Media
from fms.rtmp.status import StatusCode, info
from fms.server.deadlines import EPSILON
from fms.server.delivery import PlaySink, write_through

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

_DEADLINE_DETAILS = {
    "idle": " (nothing received)",
    "publish or play": " (connected without publishing or playing)",
    "publisher": " (no media received)",
    "ping answer": " (no answer to a ping)",
}


class PublishListener(Protocol):
    """Follows the publishes that clients of this process make (the worker relay)."""

    def publish_started(self, stream: LiveStream, peer: str) -> None:
        """``peer`` (``host:port``) started publishing ``stream``."""
        ...

    def publish_stopped(self, stream: LiveStream) -> None:
        """That publish ended."""
        ...


class NameClaims(Protocol):
    """Who may publish a name across the processes that serve one port (the workers of ``fms
    run --workers``, :mod:`fms.cluster.claims`): a name claimed by one is refused by the others.
    A claim is decided at once, so a publish is never half-accepted while it is awaited."""

    def claim(self, app: str, name: str) -> bool:
        """Claim (app, name) for a publisher of this process; False when a process (this one
        included) holds it, or when the claim could not be made (fail closed)."""
        ...

    def release(self, app: str, name: str) -> None:
        """That publish ended: the name is free for every process."""
        ...


class ServerHost(Protocol):
    """What a connection needs of what it shares with the others (the
    :class:`~fms.server.factory.RTMPServerFactory`)."""

    config: Config
    clock: IReactorTime
    limits: ConnectionLimits
    settings: ServerSettings
    registry: StreamRegistry
    publish_listener: PublishListener | None
    name_claims: NameClaims | None

    def admit(self, proto: RTMPServerProtocol) -> None: ...
    def connected(self, proto: RTMPServerProtocol) -> None: ...
    def forget(self, proto: RTMPServerProtocol) -> None: ...
    def schedule(self, proto: RTMPServerProtocol, when: float) -> None: ...
    def application_for(self, app: str) -> Application | None: ...
    def client_left(self, application: Application) -> None: ...
    def flush(self) -> None: ...


@implementer(IPushProducer)
class RTMPServerProtocol(TwistedProtocol):
    """Adapts one transport to one :class:`ServerConnection`.

    Deadlines are plain timestamps checked through the factory's shared
    :class:`~fms.server.deadlines.DeadlineQueue` (see :meth:`check`); no timer of its own.
    """

    _ids = itertools.count(1)

    def __init__(self, server: ServerHost) -> None:
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
        self.judge_publisher = True
        """Close a publisher silent for ``publisher_timeout`` (a relay link's publisher is
        judged on its own worker instead)."""

    # ------------------------------------------------------------------------- lifecycle

    def connectionMade(self) -> None:
        factory = self.server
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
        self._safely("forgetting the connection", self.server.forget, self)
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
                self._safely("retiring the application", self.server.client_left, application)

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
            if self.publishing and self.judge_publisher:
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
            self.server.schedule(self, min(at for at, _ in self._deadlines()))

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
            self.unengaged_since = self.server.clock.seconds()
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
        now = self.server.clock.seconds()
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
        if self.publishing and self.server.config.streams.flush_interval == 0:
            self.server.flush()

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
            getattr(self, handler)(event)

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
        self._publish_or_play_timeout = self.config.publish_or_play_timeout(event.app)
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
            code = status_for(error.code, StatusCode.CALL_FAILED)
            description = error.description
        else:
            log.failure("call {method} from {peer} failed", failure, method=method,
                        peer=self.peer)  # fmt: skip
            code, description = StatusCode.CALL_FAILED, f"{method} failed"
        if transaction_id:
            conn.send_error(transaction_id, code, description)

    def _busy(self, action: str, sid: int, name: str, busy: bool) -> bool:
        """Whether stream id ``sid`` is already in use (logged once): the request is refused
        before the application is asked. Names are the application's to check."""
        if busy:
            log.info(
                "refusing {action} {app}/{name!r} {by} {peer}: {problem}",
                action=action, app=self.app, name=name, peer=self.peer,
                problem="this stream id is already publishing or playing",
                by="from" if action == "publish" else "for",
            )  # fmt: skip
        return busy

    def _on_publish(self, event: ev.PublishRequested) -> None:
        conn = self.connection
        assert conn is not None and self.app is not None
        sid, name = event.stream_id, event.name
        if self._busy("publish", sid, name, sid in self.publishing or sid in self.playing):
            conn.reject_publish(
                sid, name, StatusCode.PUBLISH_BAD_NAME,
                "this stream id is already publishing or playing",
            )  # fmt: skip
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
        claimed = self._claim_name(self.app, name)
        stream = self.server.registry.claim(self.app, name, self.client_view) if claimed else None
        if stream is None:
            if claimed:  # a relay link of a publish that just ended still holds it here
                self._release_name(self.app, name)
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
        self._publish_started(stream)
        self.last_media = self.server.clock.seconds()
        self._reschedule()
        log.info(
            "publish started {app}/{name} from {peer}", app=self.app, name=name, peer=self.peer
        )

    def _claim_name(self, app: str, name: str) -> bool:
        """Claim ``name`` on every process serving this port before it is published here, so
        that two publishes on two workers at the same moment cannot both be accepted; relay
        links override this (their publish holds its claim on its own worker)."""
        claims = self.server.name_claims
        return claims is None or claims.claim(app, name)

    def _release_name(self, app: str, name: str) -> None:
        claims = self.server.name_claims
        if claims is not None:
            claims.release(app, name)

    def _publish_started(self, stream: LiveStream) -> None:
        """A publish was accepted: the factory's listener (the worker relay) hears of it."""
        listener = self.server.publish_listener
        if listener is not None:
            listener.publish_started(stream, self.peer)

    def _stop_publishing(self, sid: int, *, notify: bool = True) -> None:
        stream = self.publishing.pop(sid, None)
        if stream is None:
            return
        self._publish_ending(stream)
        self.server.registry.release(stream, self.client_view)
        self._release_name(stream.app, stream.name)
        log.info(
            "publish stopped {app}/{name} from {peer}",
            app=stream.app,
            name=stream.name,
            peer=self.peer,
        )
        if notify and self.connection is not None:
            self.connection.end_publish(sid, stream.name)

    def _publish_ending(self, stream: LiveStream) -> None:
        """A publish ends (its stream is still claimed): the listener and plugins hear of it."""
        listener = self.server.publish_listener
        if listener is not None:
            listener.publish_stopped(stream)
        if self.application is not None and self.client_view is not None:
            self.application.notify("unpublish", self.client_view, StreamView(stream))
            self.application.publish_ended(stream)

    def _on_media(self, event: ev.MediaReceived) -> None:
        stream = self.publishing.get(event.stream_id)
        if stream is not None:
            self.last_media = self.last_received
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
        self.last_media = self.last_received
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
        if self._busy("play", sid, name, sid in self.publishing):
            conn.reject_play(
                sid, name, StatusCode.PLAY_FAILED, "this stream id is already publishing or playing"
            )
            return
        assert self.application is not None and self.client_view is not None
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
        conn.accept_play(sid, name, reset=event.reset)
        self._flush()
        stream, player = self.server.registry.play(self.app, name, PlaySink(self, sid, name), sid)
        self.playing[sid] = (stream, player)
        log.info(
            "play {app}/{name} for {peer}{waiting}",
            app=self.app, name=name, peer=self.peer,
            waiting="" if stream.published else " (waiting for publisher)",
        )  # fmt: skip

    def _stop_playing(self, sid: int) -> None:
        entry = self.playing.pop(sid, None)
        if entry is not None:
            self.server.registry.leave(*entry)
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
        ev.PeerChunkSizeChanged: "_on_peer_chunk_size",
        ev.PingAnswered: "_on_ping_answered",
        ev.ResultReceived: "_on_result",
        ev.ErrorReceived: "_on_result",
    }

    # ------------------------------------------------------------- for the play sinks

    def flush_output(self) -> None:
        self._flush()

    def lose_play(self, stream_id: int) -> None:
        self.playing.pop(stream_id, None)
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
        self._flush()
        return tid

    def close(self, reason: str) -> None:
        log.info("closing {peer}: {reason}", peer=self.peer, reason=reason)
        self._abort()

    # ------------------------------------------------------------------- shared writes

    def write_shared(self, data: bytes) -> None:
        """Write fan-out bytes after whatever the connection queued (statuses first): the
        hot path of fan-out, one call per player per flush."""
        if self._closing or self.connection is None:
            return
        transport: Any = self.transport
        pending = self.connection.data_to_send()
        if pending:
            transport.writeSequence([pending, data])
            return
        self._write(data)

    def _write(self, data: bytes) -> None:
        """Write ``data`` after whatever the transport holds (see
        :func:`~fms.server.delivery.write_through`). Command answers take this path too:
        during a burst of connections, the transport's write scheduling (an epoll registration
        per answer) showed in the profile."""
        write_through(self.transport, self._direct_socket, data)

    def pauseProducing(self) -> None:
        self.write_paused = True

    def resumeProducing(self) -> None:
        self.write_paused = False
        for stream, _ in self.playing.values():
            stream.dirty = True

    def stopProducing(self) -> None:
        self.write_paused = True
