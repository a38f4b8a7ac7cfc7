"""The HTTP listener's connections: the per-request deadline, size limits, the connection cap
and CORS, with Twisted's in-memory transport and a fake clock (no sockets, no wall clock)."""

from __future__ import annotations

import json

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from fms.config import Config, HTTPConfig
from fms.http.api import API
from fms.http.web import APISite, LimitedHTTPChannel
from fms.server.factory import RTMPServerFactory

GET = b"GET /api/v1/server HTTP/1.1\r\nHost: x\r\n\r\n"


def site_for(**options: object) -> tuple[APISite, Clock]:
    clock = Clock()
    config = HTTPConfig(enabled=True, token="t", **options)  # type: ignore[arg-type]
    api = API(RTMPServerFactory(Config(), clock=clock), config)
    return APISite(api, config, clock), clock


def connect(site: APISite, port: int = 5000) -> tuple[LimitedHTTPChannel, StringTransport]:
    address = IPv4Address("TCP", "192.0.2.7", port)
    channel = site.buildProtocol(address)
    assert isinstance(channel, LimitedHTTPChannel)
    transport = StringTransport(peerAddress=address)
    channel.makeConnection(transport)
    return channel, transport


def status_and_body(transport: StringTransport) -> tuple[int, object]:
    head, _, body = transport.value().partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body else None


def test_a_request_is_answered_with_json() -> None:
    site, _ = site_for()
    channel, transport = connect(site)
    channel.dataReceived(GET)
    status, body = status_and_body(transport)
    assert status == 200 and isinstance(body, dict) and body["workers"] == 1
    assert b"Content-Type: application/json; charset=utf-8" in transport.value()


def test_a_client_trickling_its_request_is_closed_at_the_deadline_and_not_before() -> None:
    """One byte a second: bytes that arrive do not move the deadline."""
    timeout = 5.0
    site, clock = site_for(request_timeout=timeout)
    channel, transport = connect(site)
    for byte in GET[: int(timeout) - 1]:
        channel.dataReceived(bytes([byte]))
        clock.advance(1)
    assert not transport.disconnected  # 4 s in: still within its deadline
    channel.dataReceived(GET[4:5])
    clock.advance(1)
    assert transport.disconnected and transport.value() == b""


def test_the_deadline_starts_again_after_each_response_of_a_kept_alive_connection() -> None:
    site, clock = site_for(request_timeout=5.0)
    channel, transport = connect(site)
    clock.advance(4.5)
    channel.dataReceived(GET)  # within the first deadline: answered
    assert status_and_body(transport)[0] == 200
    clock.advance(4.5)  # 9 s since accept, 4.5 s since the response
    assert not transport.disconnected
    clock.advance(0.5)
    assert transport.disconnected


def test_other_connections_are_served_while_one_trickles() -> None:
    site, clock = site_for(request_timeout=5.0)
    slow, slow_transport = connect(site, 5000)
    slow.dataReceived(b"GET /api/v1/")
    clock.advance(2)
    fast, fast_transport = connect(site, 5001)
    fast.dataReceived(GET)
    assert status_and_body(fast_transport)[0] == 200
    assert not slow_transport.disconnected


def test_headers_over_max_header_bytes_get_431_json_and_a_close() -> None:
    limit = 2048
    site, _ = site_for(max_header_bytes=limit)
    channel, transport = connect(site)
    channel.dataReceived(b"GET / HTTP/1.1\r\nX-Pad: " + b"a" * limit + b"\r\n\r\n")
    status, body = status_and_body(transport)
    assert status == 431 and isinstance(body, dict) and "max_header_bytes (2048)" in body["error"]
    assert transport.disconnecting


def test_many_short_headers_over_max_header_bytes_in_total_get_431() -> None:
    """Every line is short; their sum is over the limit (Twisted's own default, 16 KiB, is
    larger: this is the configured limit at work)."""
    limit = 2048
    site, _ = site_for(max_header_bytes=limit)
    channel, transport = connect(site)
    headers = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 90) for i in range(30))
    channel.dataReceived(b"GET /api/v1/server HTTP/1.1\r\n" + headers + b"\r\n")
    assert status_and_body(transport)[0] == 431
    assert transport.disconnecting


def test_a_request_line_over_max_header_bytes_gets_414_json_and_a_close() -> None:
    limit = 2048
    site, _ = site_for(max_header_bytes=limit)
    channel, transport = connect(site)
    channel.dataReceived(b"GET /" + b"a" * limit + b" HTTP/1.1\r\n\r\n")
    status, body = status_and_body(transport)
    assert status == 414 and isinstance(body, dict) and "request line" in body["error"]
    assert transport.disconnecting


def test_bytes_after_a_refused_head_are_dropped_unread() -> None:
    """After the 431 the connection is closing: what else the client sends is not buffered
    (an unbounded header would otherwise grow the server's memory)."""
    site, _ = site_for(max_header_bytes=2048)
    channel, transport = connect(site)
    channel.dataReceived(b"GET / HTTP/1.1\r\nX-Pad: " + b"a" * 4096)
    answered = transport.value()
    for _ in range(100):
        channel.dataReceived(b"a" * 65536)
    assert transport.value() == answered and len(channel._buffer) <= 2048 + 4096


def test_headers_just_under_max_header_bytes_are_served() -> None:
    limit = 2048
    site, _ = site_for(max_header_bytes=limit)
    channel, transport = connect(site)
    request_line = b"GET /api/v1/server HTTP/1.1"
    pad = limit - len(request_line) - len(b"X-Pad: ") - 10
    channel.dataReceived(request_line + b"\r\nX-Pad: " + b"a" * pad + b"\r\n\r\n")
    assert status_and_body(transport)[0] == 200


def test_a_malformed_request_line_gets_400_json() -> None:
    site, _ = site_for()
    channel, transport = connect(site)
    channel.dataReceived(b"NONSENSE\r\n\r\n")
    status, body = status_and_body(transport)
    assert status == 400 and isinstance(body, dict) and body["error"].startswith("malformed")


def test_a_body_announced_over_max_body_bytes_gets_413_at_once() -> None:
    site, _ = site_for(max_body_bytes=100)
    channel, transport = connect(site)
    channel.dataReceived(b"DELETE /api/v1/clients/0-1 HTTP/1.1\r\nContent-Length: 101\r\n\r\n")
    status, body = status_and_body(transport)
    assert status == 413 and body == {"error": "the request body is over max_body_bytes (100)"}
    assert transport.disconnecting


def test_a_chunked_body_growing_over_max_body_bytes_gets_413() -> None:
    site, _ = site_for(max_body_bytes=100)
    channel, transport = connect(site)
    channel.dataReceived(
        b"DELETE /api/v1/clients/0-1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    for _ in range(3):
        channel.dataReceived(b"32\r\n" + b"x" * 50 + b"\r\n")
    assert status_and_body(transport)[0] == 413


def test_a_body_within_max_body_bytes_is_read() -> None:
    site, _ = site_for(max_body_bytes=100)
    channel, transport = connect(site)
    channel.dataReceived(b"GET /api/v1/server HTTP/1.1\r\nContent-Length: 100\r\n\r\n" + b"x" * 100)
    assert status_and_body(transport)[0] == 200


def test_connections_over_max_connections_are_refused_at_accept() -> None:
    site, _ = site_for(max_connections=2)
    first, _ = connect(site, 1)
    connect(site, 2)
    assert site.buildProtocol(IPv4Address("TCP", "192.0.2.7", 3)) is None
    first.connectionLost(None)
    assert site.buildProtocol(IPv4Address("TCP", "192.0.2.7", 4)) is not None


def test_an_allowed_origin_gets_cors_headers_and_its_preflight_is_answered() -> None:
    site, _ = site_for(cors_origins=("https://grafana.example",))
    channel, transport = connect(site)
    channel.dataReceived(
        b"OPTIONS /api/v1/clients/0-1 HTTP/1.1\r\nHost: x\r\nOrigin: https://grafana.example\r\n"
        b"Access-Control-Request-Method: DELETE\r\n\r\n"
    )
    reply = transport.value()
    assert reply.startswith(b"HTTP/1.1 204")
    assert b"Access-Control-Allow-Origin: https://grafana.example" in reply
    assert b"Access-Control-Allow-Headers: Authorization" in reply


def test_another_origin_gets_no_cors_headers() -> None:
    site, _ = site_for(cors_origins=("https://grafana.example",))
    channel, transport = connect(site)
    channel.dataReceived(
        b"GET /api/v1/server HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n\r\n"
    )
    assert b"Access-Control-Allow-Origin" not in transport.value()
