"""WebSocket-FLV: ``ws://HOST:PORT/APP/STREAM.flv`` plays a live stream as the same endless FLV
file as HTTP-FLV, carried in WebSocket binary messages (mpegts.js and flv.js read it so, and
some networks pass a WebSocket where they buffer a long HTTP response).

A WebSocket viewer is an HTTP-FLV viewer (:class:`fms.http.flv.FLVViewer`) that carries its
bytes differently; everything else is shared: the decision (plugins are asked ``connect`` then
``play`` with the URL's query, and the client view's ``protocol`` is ``"websocket-flv"``), the
player in the stream's FLV log (encoded once for every HTTP and WebSocket viewer), its bounds
(``player_buffer``, skip to the next keyframe, closed past the hard bound or ``stall_timeout``)
and the wait for a publisher (``[http] flv_wait``).

The upgrade is the WebSocket form of HTTP-FLV's status line: it is answered (101) when the
first bytes are ready for the viewer, not before. So everything HTTP-FLV answers before its
first byte is still an HTTP answer here, before the upgrade: a plugin's refusal is a 403 with
its reason (``{"error": ...}``), an unknown application or a stream nobody published within
``flv_wait`` a 404, a bad name 400. Then the FLV header is the first binary message and every
flush of the fan-out one more; the messages' concatenation is the FLV file. When the publisher
leaves, the server closes the WebSocket with code 1000.

The WebSocket protocol is Autobahn's (``autobahn.twisted``): the handshake, the framing, the
close handshake and the limits on what a client sends. Its :class:`WebSocketResource` takes
over the connection of the twisted.web request (the HTTP channel stays in the site's count of
open connections until the WebSocket closes). What a viewer sends is read and dropped frame by
frame, each frame at most :data:`MAX_INCOMING` bytes (a bigger one fails the connection);
permessage compression is never accepted (the encode-once bytes are shared as they are).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionRequest
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET, Request

from fms.config import HTTPConfig
from fms.http.answers import error  # the same JSON error answer as HTTP-FLV's
from fms.http.flv import FLVViewer, FLVViewers
from fms.log import Logger

log = Logger(namespace="fms.http.wsflv")

PROTOCOL = "websocket-flv"
"""What :attr:`IClientView.protocol` says of a WebSocket-FLV viewer."""
MAX_INCOMING = 4096
"""The largest frame a viewer may send (bytes; a bigger one fails its connection): a viewer has
nothing to say but pings and a close, and frames are dropped as they end, so this bounds what
a hostile one makes the server hold."""
CLOSE_NORMAL = 1000
"""The close code when the publisher leaves (RFC 6455: normal closure)."""


def asks_upgrade(request: Request) -> bool:
    """The request asks for a WebSocket (``Upgrade: websocket``)."""
    upgrade = request.getHeader(b"upgrade")
    return upgrade is not None and upgrade.strip().lower() == b"websocket"


def handshake_problem(request: Request) -> str | None:
    """Why ``request`` is not an opening handshake that Autobahn will accept (RFC 6455
    section 4.2.1), or None. Checked before plugins are asked, so that a viewer they accept
    is not refused afterwards by the protocol."""
    if request.method != b"GET":
        return "a WebSocket opening handshake is a GET"
    if request.clientproto != b"HTTP/1.1":
        return "a WebSocket opening handshake is HTTP/1.1"
    connection = (request.getHeader(b"connection") or b"").lower()
    if b"upgrade" not in (token.strip() for token in connection.split(b",")):
        return "a WebSocket opening handshake has Connection: Upgrade"
    if request.getHeader(b"host") is None:
        return "a WebSocket opening handshake has a Host header"
    if request.getHeader(b"sec-websocket-version") != b"13":
        return "only WebSocket version 13 is spoken (Sec-WebSocket-Version: 13)"
    key = (request.getHeader(b"sec-websocket-key") or b"").strip()
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return "Sec-WebSocket-Key is not 16 bytes in base64"
    except binascii.Error:
        return "Sec-WebSocket-Key is not base64"
    return None


class WebSocketFLVViewer(FLVViewer):
    """One WebSocket-FLV viewer: the upgrade at its first write, then binary messages (see the
    module docstring)."""

    protocol = PROTOCOL
    scheme = "ws"
    label = "WebSocket-FLV"

    def __init__(
        self, viewers: FLVViewers, request: Request, app: str, peer: str, sockets: FLVSockets
    ) -> None:
        super().__init__(viewers, request, app, peer)
        self.sockets = sockets
        self.socket: FLVSocket | None = None
        self._channel: Any = None
        self._transport_: Any = None

    def _open(self, header: bytes) -> None:
        request = self.request
        self._channel, self._transport_ = request.channel, request.channel.transport
        self.socket = self.sockets.upgrade(self, request)
        if self.socket is None:
            self._abort()
            return
        self._send(header)

    def _send(self, data: bytes) -> None:
        socket = self.socket
        if socket is not None and socket.state == WebSocketServerProtocol.STATE_OPEN:
            socket.sendMessage(data, isBinary=True)

    def _finish(self) -> None:
        socket = self.socket
        if socket is not None and socket.state == WebSocketServerProtocol.STATE_OPEN:
            socket.sendClose(CLOSE_NORMAL, "the publisher left")

    def _transport(self) -> Any:
        if self._transport_ is not None:
            return self._transport_
        return super()._transport()

    def lost(self, reason: Failure) -> None:
        """The upgraded connection closed: the HTTP channel it came from is told, so that the
        site counts one connection less and the request's end reaches :meth:`ended`."""
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.connectionLost(reason)


class FLVSocket(WebSocketServerProtocol):
    """The WebSocket end of one viewer: Autobahn's protocol, sending what the viewer hands
    it and dropping what the client sends."""

    viewer: WebSocketFLVViewer | None = None

    def onConnect(self, request: ConnectionRequest) -> None:
        return None  # decided before the upgrade: no subprotocol, no extra headers

    def onMessageFrame(self, payload: object) -> None:
        pass  # a viewer has nothing to tell the server: its frames are dropped, not gathered

    def onMessageEnd(self) -> None:
        pass  # nothing was gathered, so there is no message to hand on

    def connectionLost(self, reason: Failure | None = None) -> None:
        super().connectionLost(reason)  # type: ignore[arg-type]
        viewer, self.viewer = self.viewer, None
        if viewer is not None and reason is not None:
            viewer.lost(reason)


class FLVSockets(WebSocketServerFactory):
    """Makes the WebSocket of each upgraded viewer (one per HTTP listener)."""

    protocol = FLVSocket

    def __init__(self, config: HTTPConfig) -> None:
        super().__init__(server=None)
        self.setProtocolOptions(
            # Autobahn holds a frame until it is whole; a message's frames are dropped one by
            # one (FLVSocket.onMessageFrame). Its message limit is 0 (none): Autobahn checks
            # it against what it sends too, and the fan-out's flushes are larger.
            maxFramePayloadSize=MAX_INCOMING,
            maxMessagePayloadSize=0,
            openHandshakeTimeout=0,  # handed over complete: the HTTP request deadline held it
            closeHandshakeTimeout=config.request_timeout,
            autoPingInterval=0,  # fan-out's stall_timeout judges a viewer that stops reading
        )
        self.resource = WebSocketResource(self)
        self._viewer: WebSocketFLVViewer | None = None

    def buildProtocol(self, addr: Any) -> FLVSocket:
        protocol = super().buildProtocol(addr)
        assert isinstance(protocol, FLVSocket)
        protocol.viewer = self._viewer
        return protocol

    def upgrade(self, viewer: WebSocketFLVViewer, request: Request) -> FLVSocket | None:
        """Hand ``request``'s connection to a new :class:`FLVSocket` and answer the opening
        handshake (101); the socket, or None when Autobahn did not open it."""
        channel = request.channel
        transport: Any = channel.transport
        self._viewer = viewer
        try:
            self.resource.render(request)
        finally:
            self._viewer = None
        # WebSocketResource detaches the transport from the channel; it is put back so that
        # stopping the listener aborts this connection with the others. The channel still
        # handles its one request, so it neither reads nor writes it again.
        channel.transport = transport
        socket = transport.protocol
        if not isinstance(socket, FLVSocket) or socket.state != FLVSocket.STATE_OPEN:
            return None
        return socket


class WebSocketFLV:
    """Answers ``GET /APP/STREAM.flv`` with ``Upgrade: websocket``: the opening handshake is
    checked, then the request is decided and served as an HTTP-FLV viewer's would be."""

    def __init__(self, viewers: FLVViewers) -> None:
        self.viewers = viewers
        self.sockets = FLVSockets(viewers.config)

    def render(self, request: Request) -> Any:
        problem = handshake_problem(request)
        if problem is not None:
            error(request, 400, problem)
            return NOT_DONE_YET
        sockets = self.sockets

        def make(viewers: FLVViewers, request: Request, app: str, peer: str) -> FLVViewer:
            return WebSocketFLVViewer(viewers, request, app, peer, sockets)

        return self.viewers.render(request, make)


__all__ = [
    "MAX_INCOMING",
    "PROTOCOL",
    "FLVSocket",
    "FLVSockets",
    "WebSocketFLV",
    "WebSocketFLVViewer",
    "asks_upgrade",
    "handshake_problem",
]
