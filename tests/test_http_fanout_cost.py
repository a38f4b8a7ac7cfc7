"""What keeps an HTTP-FLV viewer's fan-out as cheap as an RTMP player's (issue 15's
benchmark, docs/performance.md "HTTP-FLV viewers at scale"), without sockets or a clock: the
chunk framing is made once per flush for every viewer at one position, and the single-process
HTTP listener queues ``[server] listen_backlog`` connections before accept, as RTMP does."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor

from fms.config import Config, HTTPConfig, ServerConfig
from fms.http.flv import FLVViewers
from fms.http.web import make_http_service
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
