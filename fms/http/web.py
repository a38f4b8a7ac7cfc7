"""The Twisted side of the HTTP listener: a ``twisted.web`` site whose connections keep the
same deadline discipline as RTMP, and the service that listens.

Limits (``[http]``): a request (line, headers, body) must have fully arrived
``request_timeout`` seconds after the connection was accepted or after the previous response
was written, whatever arrives meanwhile (a client that trickles a byte a second is closed at
the deadline, like an RTMP handshake that stalls); the request line and headers may not exceed
``max_header_bytes`` (414 for a request line alone over it, 431 otherwise), the body
``max_body_bytes`` (413: by Content-Length at once, or as it arrives when chunked); at most
``max_connections`` connections are open at once (one more is closed at accept; an upgraded
WebSocket counts until it closes). Every request is answered by :class:`fms.http.api.API`,
but ``.flv`` requests: :mod:`fms.http.flv` and :mod:`fms.http.wsflv`.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.application.service import Service
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IStreamServerEndpoint
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from fms.config import HTTPConfig
from fms.http.api import API, Response
from fms.http.flv import FLVViewers
from fms.http.hls import HLSViewers
from fms.http.hls import parse_path as hls_path
from fms.http.hlsforward import HLSForwarder
from fms.http.wsflv import WebSocketFLV, asks_upgrade
from fms.log import Logger, LogThrottle
from fms.server.endpoints import format_url

log = Logger(namespace="fms.http.web")


def _raw_error(status: bytes, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    return (
        b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json; charset=utf-8\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
    )


class APIResource(Resource):
    """Every path: hands the request to the :class:`API` and writes what it answers."""

    isLeaf = True

    def __init__(self, api: API, config: HTTPConfig) -> None:
        super().__init__()
        self.api = api
        self.config = config
        self.flv = FLVViewers(api.server, config, api.http_clients)
        self.websocket = WebSocketFLV(self.flv)
        self.hls = HLSViewers(api.server)
        if api.peers.count > 1:
            HLSForwarder(self.hls, api.peers)  # any worker answers for any stream

    def render(self, request: Request) -> Any:
        method = request.method.decode("latin-1")
        origin = request.getHeader(b"origin")
        allowed = self._allowed_origin(origin.decode("latin-1") if origin else None)
        if allowed is not None:
            request.setHeader(b"Access-Control-Allow-Origin", allowed.encode("latin-1"))
            request.setHeader(b"Vary", b"Origin")
        if method == "OPTIONS" and allowed is not None:
            request.setResponseCode(204)
            request.setHeader(b"Access-Control-Allow-Methods", b"GET, HEAD, DELETE, POST")
            request.setHeader(b"Access-Control-Allow-Headers", b"Authorization, Content-Type")
            request.setHeader(b"Access-Control-Max-Age", b"600")
            return b""
        if request.path.endswith(b".flv") and method in ("GET", "HEAD"):
            if asks_upgrade(request):
                return self.websocket.render(request)  # WebSocket-FLV (fms.http.wsflv)
            return self.flv.render(request)  # HTTP-FLV: a live stream (fms.http.flv)
        if method in ("GET", "HEAD"):
            hls = hls_path(request.path)
            if hls is not None:
                return self.hls.render(request, hls)  # HLS (fms.http.hls)
        headers = {
            name.decode("latin-1").lower(): values[-1].decode("latin-1")
            for name, values in request.requestHeaders.getAllRawHeaders()
        }
        finished = request.notifyFinish()
        gone: list[bool] = []
        finished.addErrback(lambda _: gone.append(True))
        body = request.content.read() if request.content is not None else b""
        d = self.api.handle(method, request.path, request.args or {}, headers, body)
        d.addCallback(self._write, request, gone, method == "HEAD", self.api.peers.index)
        return NOT_DONE_YET

    def _allowed_origin(self, origin: str | None) -> str | None:
        origins = self.config.cors_origins
        if origin is None or not origins:
            return None
        if "*" in origins:
            return "*"
        return origin if origin in origins else None

    @staticmethod
    def _write(
        response: Response, request: Request, gone: list[bool], head: bool, worker: int
    ) -> None:
        if gone:
            return  # the client went away meanwhile
        request.setResponseCode(response.status)
        request.setHeader(b"X-FMS-Worker", str(worker).encode())  # which worker answered
        request.setHeader(b"Content-Type", response.content_type.encode("latin-1"))
        request.setHeader(b"Cache-Control", b"no-store")
        for name, value in response.headers:
            request.setHeader(name.encode("latin-1"), value.encode("latin-1"))
        request.setHeader(b"Content-Length", str(len(response.body)).encode())
        if not head:
            request.write(response.body)
        request.finish()


class LimitedHTTPChannel(HTTPChannel):
    """An HTTP connection with an absolute deadline per request and size limits (see the
    module docstring)."""

    def __init__(self, config: HTTPConfig, clock: Any) -> None:
        super().__init__()
        self.limits = config
        self.clock = clock
        self.totalHeadersSize = config.max_header_bytes
        self.MAX_LENGTH = config.max_header_bytes
        self._deadline: IDelayedCall | None = None
        self._body_bytes = 0
        self.peer = "?"

    def connectionMade(self) -> None:
        super().connectionMade()
        address = self.transport.getPeer()  # type: ignore[union-attr]
        self.peer = f"{getattr(address, 'host', '?')}:{getattr(address, 'port', '?')}"
        self._arm()

    def _arm(self) -> None:
        self._cancel()
        self._body_bytes = 0
        self._deadline = self.clock.callLater(self.limits.request_timeout, self._late)

    def _cancel(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _late(self) -> None:
        self._deadline = None
        log.info(
            "closing HTTP client {peer}: request deadline of {s:g}s passed",
            peer=self.peer, s=self.limits.request_timeout,
        )  # fmt: skip
        self.transport.abortConnection()  # type: ignore[union-attr]

    def allHeadersReceived(self) -> None:
        length = self.length
        if length is not None and length > self.limits.max_body_bytes:
            self._refuse_body()
            return
        super().allHeadersReceived()

    def rawDataReceived(self, data: bytes) -> None:
        if not self._handlingRequest:
            self._body_bytes += len(data)
            if self._body_bytes > self.limits.max_body_bytes + 16:  # chunked framing
                self._refuse_body()
                return
        super().rawDataReceived(data)

    def _refuse_body(self) -> None:
        message = f"the request body is over max_body_bytes ({self.limits.max_body_bytes})"
        self._close_with(_raw_error(b"413 Payload Too Large", message))

    def lineReceived(self, line: bytes) -> None:
        if self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            self._refuse_head(request_line=self._receivedHeaderSize == 0)
            return
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        # One line (or bytes without a line end) over max_header_bytes: the request line if
        # no line of this request came before it, a header otherwise.
        self._refuse_head(request_line=self._receivedHeaderSize == 0)

    def _refuse_head(self, *, request_line: bool) -> None:
        limit = self.limits.max_header_bytes
        if request_line:
            message = f"the request line is over max_header_bytes ({limit})"
            self._close_with(_raw_error(b"414 URI Too Long", message))
        else:
            message = f"the request line and headers are over max_header_bytes ({limit})"
            self._close_with(_raw_error(b"431 Request Header Fields Too Large", message))

    def _respondToBadRequestAndDisconnect(self) -> None:
        # Twisted's own answer to a malformed request line or headers is a bare 400: ours
        # says why, as JSON (sizes are answered 414 or 431 before Twisted sees them).
        message = "malformed request: a bad request line or header"
        self._close_with(_raw_error(b"400 Bad Request", message))

    def _close_with(self, data: bytes) -> None:
        self._cancel()
        self.dataReceived = lambda data: None  # type: ignore[method-assign]
        self.transport.write(data)  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]
        self.clock.callLater(self.limits.request_timeout, self._abort_if_open)

    def _abort_if_open(self) -> None:
        transport: Any = self.transport
        if transport is not None and getattr(transport, "connected", False):
            transport.abortConnection()

    def allContentReceived(self) -> None:
        self._cancel()
        super().allContentReceived()

    def requestDone(self, request: Any) -> None:
        super().requestDone(request)
        if self.persistent and self.transport is not None and not self._deadline:
            self._arm()

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._cancel()
        site = self.factory
        if isinstance(site, APISite):
            site.open.discard(self)
        super().connectionLost(reason)


class APISite(Site):
    """The site of the HTTP listener: limited channels, at most ``max_connections`` open."""

    noisy = False

    def __init__(self, api: API, config: HTTPConfig, clock: Any) -> None:
        super().__init__(APIResource(api, config), timeout=None)
        self.config = config
        self.clock = clock
        self.open: set[LimitedHTTPChannel] = set()
        self.displayTracebacks = False
        self._refusals = LogThrottle(10.0)

    def buildProtocol(self, addr: Any) -> Any:
        if len(self.open) >= self.config.max_connections:
            held = self._refusals.allow("full", self.clock.seconds())
            if held is not None:  # one line per 10 s in a flood
                log.warn(
                    "refusing HTTP connection from {host}: {count} open (max_connections)"
                    "{more}", host=getattr(addr, "host", "?"), count=len(self.open),
                    more=f"; {held} more refused since the last report" if held else "",
                )  # fmt: skip
            return None
        channel = LimitedHTTPChannel(self.config, self.clock)
        channel.factory = self
        channel.requestFactory = self.requestFactory
        channel.site = self  # type: ignore[attr-defined]
        self.open.add(channel)
        return channel

    def log(self, request: Any) -> None:
        pass  # no access log: the RTMP log is the operator's


class HTTPListenerService(Service):
    """Listens for HTTP with an :class:`APISite`; ``listening`` fires with the port once bound
    and the log says ``listening on http://HOST:PORT/`` (a worker: ``worker N accepting on``)."""

    def __init__(
        self,
        reactor: Any,
        config: HTTPConfig,
        site: APISite,
        *,
        endpoint: IStreamServerEndpoint | None = None,
        announce: str = "listening on {url}",
        backlog: int = 50,
    ) -> None:
        self._reactor = reactor
        self._config = config
        self._backlog = backlog
        """Connections the kernel queues before accept (``[server] listen_backlog``)."""
        self.site = site
        self.api: API = site.resource.api
        self._endpoint = endpoint
        self._announce = announce
        self.port: IListeningPort | None = None
        self.listening: Deferred[IListeningPort] = Deferred()

    def endpoint(self) -> IStreamServerEndpoint:
        if self._endpoint is not None:
            return self._endpoint
        host = self._config.host
        endpoint_type = TCP6ServerEndpoint if ":" in host else TCP4ServerEndpoint
        endpoint: IStreamServerEndpoint = endpoint_type(
            self._reactor, self._config.port, backlog=self._backlog, interface=host
        )
        return endpoint

    def startService(self) -> None:
        super().startService()
        d = self.endpoint().listen(self.site)
        d.addCallbacks(self._listened, self.listening.errback)

    def _listened(self, port: IListeningPort) -> None:
        self.port = port
        address = port.getHost()
        assert isinstance(address, (IPv4Address, IPv6Address))
        log.info(self._announce, url=format_url(address.host, address.port, "http") + "/")
        self.listening.callback(port)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        for channel in list(self.site.open):
            transport: Any = channel.transport
            if transport is not None:
                transport.abortConnection()
        if self.port is None:
            return None
        port, self.port = self.port, None
        return port.stopListening()


def make_http_service(
    reactor: Any,
    config: HTTPConfig,
    server: Any,
    *,
    peers: Any = None,
    endpoint: IStreamServerEndpoint | None = None,
    announce: str = "listening on {url}",
) -> HTTPListenerService:
    """The HTTP listener of one process serving ``server`` (its RTMP factory); ``peers`` are
    the other workers (:class:`fms.http.peers.Peers`; None on one process). The listener
    queues ``[server] listen_backlog`` connections before accept, as the RTMP one does: a
    crowd of HTTP-FLV viewers arriving at once overflowed Twisted's default of 50 (each
    overflow costs its viewer a SYN retry, a second or more)."""
    api = API(server, config, peers=peers)
    return HTTPListenerService(
        reactor, config, APISite(api, config, reactor), endpoint=endpoint, announce=announce,
        backlog=server.config.server.listen_backlog,
    )  # fmt: skip
