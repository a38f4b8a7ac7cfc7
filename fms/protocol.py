"""The Twisted edge: one :class:`RTMPServerProtocol` per TCP connection.

The only code that touches a transport. It feeds received bytes to the sans-IO
:class:`~fms.rtmp.connection.ServerConnection`, dispatches the events it returns, writes what the
connection queued, and closes this one connection (with one log line naming the peer and the
reason) when the peer breaks the protocol or a deadline passes. The handshake and connect
deadlines run from accept and are never extended by bytes; the idle timeout is judged by bytes
received only, never by our own writes.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from fms.amf import AMFLimits
from fms.config import Config
from fms.errors import RemoteProtocolError
from fms.rtmp import events as ev
from fms.rtmp.chunks import ChunkLimits
from fms.rtmp.connection import ConnectionLimits, ConnectionState, ServerConnection
from fms.rtmp.status import StatusCode

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
    )


class RTMPServerProtocol(Protocol):
    """Adapts one transport to one :class:`ServerConnection`."""

    factory: RTMPServerFactory

    def __init__(self) -> None:
        self.connection: ServerConnection | None = None
        self.peer = "?"
        self._deadline: IDelayedCall | None = None
        self._idle: IDelayedCall | None = None
        self._closing = False

    # ------------------------------------------------------------------------- lifecycle

    def connectionMade(self) -> None:
        factory = self.factory
        address = self.transport.getPeer()  # type: ignore[union-attr]
        self.peer = f"{getattr(address, 'host', '?')}:{getattr(address, 'port', '?')}"
        self.connection = ServerConnection(factory.limits, now=factory.clock.seconds())
        factory.connections.add(self)
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
        if self.connection is not None:
            self.connection.close()

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
        try:
            for event in events:
                self._handle(event)
        except Exception:
            log.failure("closing {peer}: internal error while handling its input", peer=self.peer)
            self._abort()
            return
        self._flush()

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
        if isinstance(event, ev.HandshakeCompleted):
            log.debug(
                "handshake with {peer} done (digest: {digest})", peer=self.peer, digest=event.digest
            )
        elif isinstance(event, ev.ConnectRequested):
            if self._deadline is not None and self._deadline.active():
                self._deadline.cancel()
            log.info(
                "connect from {peer}: app {app!r} ({agent})",
                peer=self.peer,
                app=event.app,
                agent=event.flash_ver,
            )
            conn.accept_connect(event)
            conn.send_onbwdone()
        elif isinstance(event, ev.CreateStreamRequested):
            conn.accept_create_stream(event)
        elif isinstance(event, ev.CallRequested):
            self._call(event)
        elif isinstance(event, ev.DeleteStreamRequested):
            conn.delete_stream(event.stream_id)
        elif isinstance(event, ev.PublishRequested):
            conn.reject_publish(
                event.stream_id,
                event.name,
                StatusCode.PUBLISH_DENIED,
                "publishing is not available on this server yet",
            )
        elif isinstance(event, ev.PlayRequested):
            conn.reject_play(
                event.stream_id,
                event.name,
                StatusCode.PLAY_FAILED,
                "playing is not available on this server yet",
            )

    def _call(self, event: ev.CallRequested) -> None:
        conn = self.connection
        assert conn is not None
        command = event.command
        if command.name in NULL_RESULT_CALLS:
            if command.transaction_id:
                conn.send_result(command.transaction_id, None)
        elif command.transaction_id:
            conn.send_error(
                command.transaction_id, StatusCode.CALL_FAILED, f"unknown method {command.name!r}"
            )


class RTMPServerFactory(Factory):
    """Builds one :class:`RTMPServerProtocol` per accepted connection."""

    protocol = RTMPServerProtocol
    noisy = False

    def __init__(self, config: Config, clock: IReactorTime | None = None) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = reactor  # type: ignore[assignment]
        assert clock is not None
        self.clock: IReactorTime = clock
        self.config = config
        self.limits = connection_limits(config)
        self.connections: set[RTMPServerProtocol] = set()

    def buildProtocol(self, addr: Any) -> RTMPServerProtocol:
        proto = RTMPServerProtocol()
        proto.factory = self
        return proto
