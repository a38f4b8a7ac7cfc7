"""RTMP connections on a listener with ``[server] proxy_protocol = true``.

A connection from a trusted proxy (:class:`ProxiedRTMPServerProtocol`) must start with a PROXY
header (:mod:`fms.server.proxy`); once it is read, the connection's ``host`` and ``peer`` are
the client's, so plugins, logs, stats and the per-address admission cap see the client, not
the proxy. A missing or broken header closes the connection with one log line. The wait for
the header counts against the handshake deadline (the connection's clock starts on accept).

Any other connection (:class:`ProxyCheckingRTMPServerProtocol`) is plain RTMP; one that starts
with a PROXY header is closed with one log line, since an untrusted client could otherwise
choose its own address.
"""

from __future__ import annotations

from typing import Protocol, cast

from fms.log import Logger, PeerLabel
from fms.server.protocol import RTMPServerProtocol
from fms.server.proxy import ProxyHeaderError, ProxyHeaderParser, looks_like_proxy_header

log = Logger(namespace="fms.server.proxied")


class ProxyAdmission(Protocol):
    """What the factory does once a header named the client (``RTMPServerFactory.proxied``):
    count it per the client's address, or refuse it (closed; False)."""

    def proxied(self, proto: RTMPServerProtocol) -> bool: ...


class ProxiedRTMPServerProtocol(RTMPServerProtocol):
    """A connection from a trusted proxy: a PROXY header (v1 or v2), then RTMP."""

    _header: ProxyHeaderParser | None = None

    def connectionMade(self) -> None:
        self._header = ProxyHeaderParser()
        super().connectionMade()

    def dataReceived(self, data: bytes) -> None:
        parser = self._header
        if parser is None:
            super().dataReceived(data)
            return
        if self._closing:
            return
        try:
            header = parser.feed(data)
        except ProxyHeaderError as exc:
            log.info("closing {peer}: {reason}", peer=self.peer, reason=str(exc))
            self._abort()
            return
        if header is None:
            return
        self._header = None
        proxy = self.peer
        if header.source is not None:
            host, port = header.source
            self.host = host
            self.peer = PeerLabel(f"{host}:{port}", self.id)
        log.debug("{peer} arrives through {proxy}", peer=self.peer, proxy=proxy)
        if not cast(ProxyAdmission, self.server).proxied(self):
            return
        if header.rest:
            super().dataReceived(header.rest)


class ProxyCheckingRTMPServerProtocol(RTMPServerProtocol):
    """A connection from an address that is not a trusted proxy, on a listener that accepts
    PROXY headers: plain RTMP, and a PROXY header is refused by name."""

    _checked = False

    def dataReceived(self, data: bytes) -> None:
        if not self._checked and data:
            self._checked = True
            if looks_like_proxy_header(data):
                log.info(
                    "closing {peer}: a PROXY header from an address not in "
                    "[server] trusted_proxies",
                    peer=self.peer,
                )
                self._abort()
                return
        super().dataReceived(data)
