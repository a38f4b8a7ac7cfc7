"""The sans-IO PROXY header parser (:mod:`fms.server.proxy`): versions 1 and 2, fed at every
split, arbitrary bytes raising only :class:`ProxyHeaderError`, and the trusted-proxy test."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fms.server.proxy import (
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderError,
    ProxyHeaderParser,
    TrustedProxies,
    looks_like_proxy_header,
)

RTMP_C0 = b"\x03" + b"\x00" * 8


def v1(source: str, port: int, dport: int = 1935) -> bytes:
    family, dest = ("TCP6", "2001:db8::200") if ":" in source else ("TCP4", "192.0.2.200")
    return f"PROXY {family} {source} {dest} {port} {dport}\r\n".encode()


def v2(source: str | None, port: int = 0, *, local: bool = False, tlvs: bytes = b"") -> bytes:
    """A version 2 header as HAProxy's ``send-proxy-v2`` writes it (written here from the
    specification, independently of the parser)."""
    command = 0x20 if local else 0x21
    if source is None:
        family, body = 0x00, b""
    elif ":" in source:
        family = 0x21
        dest = ipaddress.IPv6Address("2001:db8::200").packed
        body = ipaddress.IPv6Address(source).packed + dest + struct.pack("!HH", port, 1935)
    else:
        family = 0x11
        dest = ipaddress.IPv4Address("192.0.2.200").packed
        body = ipaddress.IPv4Address(source).packed + dest + struct.pack("!HH", port, 1935)
    body += tlvs
    return V2_SIGNATURE + struct.pack("!BBH", command, family, len(body)) + body


def feed_in_pieces(data: bytes, size: int) -> tuple[ProxyHeader | None, int]:
    """Feed ``data`` in reads of ``size`` bytes until a header is returned; the header and how
    many bytes had been fed by then."""
    parser = ProxyHeaderParser()
    for start in range(0, len(data), size):
        header = parser.feed(data[start : start + size])
        if header is not None:
            return header, min(start + size, len(data))
    return None, len(data)


@pytest.mark.parametrize(
    ("data", "version", "source"),
    [
        (v1("203.0.113.7", 50123), 1, ("203.0.113.7", 50123)),
        (v1("2001:db8::7", 65535), 1, ("2001:db8::7", 65535)),
        (b"PROXY UNKNOWN\r\n", 1, None),
        (b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", 1, None),
        (v2("203.0.113.7", 50123), 2, ("203.0.113.7", 50123)),
        (v2("2001:db8::7", 1), 2, ("2001:db8::7", 1)),
        (v2("203.0.113.7", 9, tlvs=b"\x03\x00\x04abcd"), 2, ("203.0.113.7", 9)),
        (v2("203.0.113.7", 9, local=True), 2, None),  # a health check: the proxy itself
        (v2(None), 2, None),
    ],
)
def test_a_header_fed_at_every_split_names_the_client_and_keeps_what_follows(
    data: bytes, version: int, source: tuple[str, int] | None
) -> None:
    stream = data + RTMP_C0
    for size in range(1, len(stream) + 1):
        header, fed = feed_in_pieces(stream, size)
        assert header is not None
        assert (header.version, header.source) == (version, source)
        assert fed - len(header.rest) == len(data)  # the header, and only it, consumed
        assert header.rest == stream[len(data) : fed]  # the rest, exactly


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (RTMP_C0, "no PROXY header"),
        (b"GET / HTTP/1.1\r\n", "no PROXY header"),
        (b"PROXI TCP4", "no PROXY header"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "without CRLF"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "malformed"),
        (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "not TCP4"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", "port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 \xff 2\r\n", "not ASCII"),
        (b"PROXY " + b"x" * 200, "107 bytes"),
        (V2_SIGNATURE[:5] + b"X", "bad v2 signature"),
        (V2_SIGNATURE + b"\x11\x11\x00\x0c" + b"\x00" * 12, "version 1"),
        (V2_SIGNATURE + b"\x25\x11\x00\x0c" + b"\x00" * 12, "command 0x5"),
        (V2_SIGNATURE + b"\x21\x11\x00\x08" + b"\x00" * 8, "shorter than 12"),
        (V2_SIGNATURE + b"\x21\x21\x00\x0c" + b"\x00" * 12, "shorter than 36"),
        (V2_SIGNATURE + b"\x21\x11\xff\xff", "announces 65535 bytes"),
    ],
)
def test_what_is_not_a_valid_header_is_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ProxyHeaderError, match=reason):
        ProxyHeaderParser().feed(data)


def test_a_v1_line_is_refused_once_107_bytes_hold_no_crlf_not_later() -> None:
    """The parser holds at most one header: at 106 bytes without CRLF it waits, at 107 it
    refuses (bytes that never end a header are not buffered)."""
    parser = ProxyHeaderParser()
    assert parser.feed(b"PROXY " + b"1" * 100) is None
    with pytest.raises(ProxyHeaderError):
        parser.feed(b"1")


def test_a_v2_length_too_large_is_refused_before_its_bytes_arrive() -> None:
    parser = ProxyHeaderParser()
    with pytest.raises(ProxyHeaderError):
        parser.feed(V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", 4097))


def test_a_refused_parser_stays_refused() -> None:
    parser = ProxyHeaderParser()
    with pytest.raises(ProxyHeaderError):
        parser.feed(RTMP_C0)
    with pytest.raises(ProxyHeaderError):
        parser.feed(v1("203.0.113.7", 1))


@given(
    st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)),
    st.integers(0, 65535),
    st.booleans(),
    st.binary(max_size=64),
    st.integers(1, 200),
)
def test_any_address_and_port_round_trip_through_either_version(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    port: int,
    second: bool,
    after: bytes,
    size: int,
) -> None:
    data = v2(str(address), port) if second else v1(str(address), port)
    parser = ProxyHeaderParser()
    header = parser.feed(data[:size])
    if header is None:
        header = parser.feed(data[size:] + after)
    else:
        header = ProxyHeader(header.version, header.source, header.rest + data[size:] + after)
    assert header is not None
    assert header.source == (str(address), port)
    assert header.rest == after


@given(st.binary(max_size=300), st.integers(1, 300))
def test_arbitrary_bytes_raise_only_the_documented_error(data: bytes, size: int) -> None:
    """Whatever the bytes, the parser answers a header, asks for more, or raises its own
    error, after which it stays failed."""
    parser = ProxyHeaderParser()
    try:
        for start in range(0, len(data), size):
            if parser.feed(data[start : start + size]) is not None:
                break
    except ProxyHeaderError:
        with pytest.raises(ProxyHeaderError):
            parser.feed(b"\r\n")


@given(st.binary(min_size=1, max_size=16))
def test_rtmp_never_looks_like_a_proxy_header(rest: bytes) -> None:
    """RTMP's first byte is its version (3, or 6 for RTMPE): a plain client is never mistaken
    for one that sends a PROXY header."""
    assert not looks_like_proxy_header(b"\x03" + rest)
    assert not looks_like_proxy_header(b"\x06" + rest)


def test_both_versions_look_like_a_proxy_header() -> None:
    assert looks_like_proxy_header(v1("203.0.113.7", 1))
    assert looks_like_proxy_header(v2("203.0.113.7", 1))


def test_trusted_proxies_match_addresses_networks_and_ipv4_mapped_peers() -> None:
    proxies = TrustedProxies(["127.0.0.1", "10.1.0.0/16", "2001:db8:5::/48"])
    assert "127.0.0.1" in proxies
    assert "::ffff:127.0.0.1" in proxies
    assert "10.1.200.3" in proxies
    assert "2001:db8:5:1::9" in proxies
    assert "127.0.0.2" not in proxies
    assert "10.2.0.1" not in proxies
    assert "2001:db8:6::1" not in proxies
    assert "?" not in proxies
