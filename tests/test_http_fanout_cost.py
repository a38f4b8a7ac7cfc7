"""What keeps an HTTP-FLV viewer's fan-out as cheap as an RTMP player's (issue 15's
benchmark, docs/performance.md "HTTP-FLV viewers at scale"), without sockets or a clock: the
chunk framing is made once per flush for every viewer at one position, a viewer's connection
sends without Nagle's delay, and the single-process HTTP listener queues ``[server]
listen_backlog`` connections before accept, as RTMP does."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor, StringTransport

from fms.config import Config, HTTPConfig, ServerConfig
from fms.http.api import API
from fms.http.flv import FLVViewers
from fms.http.web import APISite, make_http_service
from fms.server.factory import RTMPServerFactory


def viewers() -> FLVViewers:
    server = RTMPServerFactory(Config(), clock=Clock())
    return FLVViewers(server, HTTPConfig(enabled=True))


def test_a_flush_is_framed_as_one_http_chunk() -> None:
    """The chunk is the size in hex, CRLF, the bytes, CRLF (RFC 9112 section 7.1)."""
    data = bytes(range(256)) * 3
    assert viewers().chunk(data) == b"300\r\n" + data + b"\r\n"


def test_viewers_handed_the_same_bytes_share_one_framed_chunk() -> None:
    """Two viewers at one position get the same ``bytes`` object in a flush: the second is
    served the chunk made for the first (the same object, not a copy)."""
    shared = viewers()
    data = b"\x09" + bytes(2000)
    first = shared.chunk(data)
    assert shared.chunk(data) is first


def test_other_bytes_are_framed_anew_even_when_equal() -> None:
    """Only the very object is recognised: bytes of another flush (here equal in value but
    another object) get their own chunk, so a viewer is never served a stale one."""
    shared = viewers()
    data = b"\x08" + bytes(300)
    first = shared.chunk(data)
    other = bytearray(data)
    again = shared.chunk(bytes(other))
    assert again == first and again is not first
    later = b"\x09" + bytes(10)
    assert shared.chunk(later) == b"b\r\n" + later + b"\r\n"


def test_the_http_listener_queues_listen_backlog_connections_before_accept() -> None:
    """One process's HTTP listener is bound with ``[server] listen_backlog`` (not Twisted's
    default of 50), as the RTMP listener and the workers' HTTP listeners are."""
    reactor = MemoryReactor()
    config = Config(server=ServerConfig(listen_backlog=4321), http=HTTPConfig(enabled=True, port=0))
    service = make_http_service(reactor, config.http, RTMPServerFactory(config, clock=Clock()))
    service.startService()
    (port,) = reactor.tcpServers
    assert port[2] == 4321  # (port, factory, backlog, interface)
    service.stopService()


class TCPTransport(StringTransport):
    """An in-memory transport that records ``setTcpNoDelay`` as a TCP one would apply it."""

    no_delay = False

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.no_delay = enabled


def test_an_http_flv_viewer_s_connection_sends_without_nagle_delay() -> None:
    """A viewer that becomes a player has TCP_NODELAY set on its connection, as RTMP players
    do: its flushes are small writes, and the viewer sends nothing that would carry the ACK
    Nagle's algorithm waits for (measured: seconds of p99 latency at 10,000 viewers)."""
    clock = Clock()
    config = HTTPConfig(enabled=True)
    server = RTMPServerFactory(Config(), clock=clock)
    site = APISite(API(server, config), config, clock)
    address = IPv4Address("TCP", "192.0.2.7", 5000)
    channel = site.buildProtocol(address)
    transport = TCPTransport(peerAddress=address)
    channel.makeConnection(transport)
    assert not transport.no_delay
    channel.dataReceived(b"GET /live/cam.flv HTTP/1.1\r\nHost: x\r\n\r\n")
    stream = server.registry.get("live", "cam")
    assert stream is not None and len(stream.players) == 1  # waiting for its publisher
    assert transport.no_delay
