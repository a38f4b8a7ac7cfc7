"""The PROXY protocol header (HAProxy's, versions 1 and 2), sans-IO: bytes in, the client's
address out. No Twisted, no sockets.

A load balancer in front of the server opens its own connection per client and starts it with
one header naming the client; without it every client would look like the proxy (one address
for admission caps, logs, plugins and stats). Only addresses in ``[server] trusted_proxies``
may send one (:class:`TrustedProxies`): from anyone else the header would let a client choose
its own address.

Version 1 is one text line of at most 107 bytes (``PROXY TCP4 src dst sport dport\\r\\n``);
version 2 is a 16-byte binary prefix (a 12-byte signature, version and command, family, length)
and the addresses. The parser holds at most one header's bytes and raises
:class:`ProxyHeaderError` as soon as the bytes cannot begin a valid header.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass

V1_PREFIX = b"PROXY "
V1_MAX_LENGTH = 107
"""Bytes of the longest version 1 line, CRLF included (the specification's bound)."""
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_HEADER_LENGTH = 16
V2_MAX_ADDRESS_LENGTH = 4096
"""Bytes of addresses and TLVs accepted after the version 2 prefix (HAProxy sends 12 or 36,
plus a few TLVs when configured to); a longer announced length is refused before it is read."""
V2_LOCAL = 0x0
V2_PROXY = 0x1
V2_TCP4 = 0x11
V2_TCP6 = 0x21


class ProxyHeaderError(Exception):
    """The bytes are not a valid PROXY header (or no header where one is required); the
    message says why, for the one log line that closes the connection."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A parsed header. ``source`` is the client's (host, port), or None when the proxy speaks
    for itself (v1 ``UNKNOWN``, v2 ``LOCAL`` such as a health check, or a family other than
    TCP): the connection's own address then stands. ``rest`` are the bytes that followed the
    header (the start of the RTMP handshake)."""

    version: int
    source: tuple[str, int] | None
    rest: bytes


class ProxyHeaderParser:
    """Feeds bytes until one header is complete. Use :meth:`feed` until it returns a header;
    after an error the parser stays failed."""

    def __init__(self) -> None:
        self._buffer = b""
        self._failed = False

    def feed(self, data: bytes) -> ProxyHeader | None:
        """Take ``data``; return the header once complete, else None (more bytes needed).
        Raises :class:`ProxyHeaderError` as soon as the bytes cannot start a header."""
        if self._failed:
            raise ProxyHeaderError("the PROXY header was already refused")
        self._buffer += data
        try:
            return self._parse()
        except ProxyHeaderError:
            self._failed = True
            self._buffer = b""
            raise

    def _parse(self) -> ProxyHeader | None:
        buffer = self._buffer
        if not buffer:
            return None
        if buffer[:1] == V1_PREFIX[:1]:
            return self._parse_v1()
        if buffer[:1] == V2_SIGNATURE[:1]:
            return self._parse_v2()
        raise ProxyHeaderError(
            f"no PROXY header from a trusted proxy (first byte 0x{buffer[0]:02x})"
        )

    def _parse_v1(self) -> ProxyHeader | None:
        buffer = self._buffer
        if not buffer.startswith(V1_PREFIX[: len(buffer)]):
            raise ProxyHeaderError("no PROXY header from a trusted proxy (not 'PROXY ')")
        end = buffer.find(b"\r\n", 0, V1_MAX_LENGTH)
        if end < 0:
            if len(buffer) >= V1_MAX_LENGTH or b"\n" in buffer:
                raise ProxyHeaderError("PROXY v1 line without CRLF within 107 bytes")
            return None
        line, rest = buffer[:end], buffer[end + 2 :]
        return ProxyHeader(1, _v1_source(line), rest)

    def _parse_v2(self) -> ProxyHeader | None:
        buffer = self._buffer
        head = buffer[: len(V2_SIGNATURE)]
        if not V2_SIGNATURE.startswith(head):
            raise ProxyHeaderError("no PROXY header from a trusted proxy (bad v2 signature)")
        if len(buffer) < V2_HEADER_LENGTH:
            return None
        version_command, family, length = struct.unpack_from("!BBH", buffer, 12)
        if version_command >> 4 != 2:
            raise ProxyHeaderError(f"PROXY v2 header of version {version_command >> 4}")
        command = version_command & 0x0F
        if command not in (V2_LOCAL, V2_PROXY):
            raise ProxyHeaderError(f"PROXY v2 command 0x{command:x} unknown")
        if length > V2_MAX_ADDRESS_LENGTH:
            raise ProxyHeaderError(f"PROXY v2 header announces {length} bytes (at most 4096)")
        if len(buffer) < V2_HEADER_LENGTH + length:
            return None
        body = buffer[V2_HEADER_LENGTH : V2_HEADER_LENGTH + length]
        rest = buffer[V2_HEADER_LENGTH + length :]
        if command == V2_LOCAL:
            return ProxyHeader(2, None, rest)
        return ProxyHeader(2, _v2_source(family, body), rest)


def _v1_source(line: bytes) -> tuple[str, int] | None:
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        raise ProxyHeaderError("PROXY v1 line is not ASCII") from None
    parts = text.split(" ")
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return None
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError(f"PROXY v1 line malformed: {text[:107]!r}")
    kind = ipaddress.IPv4Address if parts[1] == "TCP4" else ipaddress.IPv6Address
    try:
        source = kind(parts[2])
        kind(parts[3])
    except ValueError:
        raise ProxyHeaderError(f"PROXY v1 addresses are not {parts[1]}: {text!r}") from None
    ports = [_port(p) for p in parts[4:6]]
    return str(source), ports[0]


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= len(text) <= 5 or int(text) > 65535:
        raise ProxyHeaderError(f"PROXY v1 port {text!r} is not 0..65535")
    return int(text)


def _v2_source(family: int, body: bytes) -> tuple[str, int] | None:
    if family == V2_TCP4:
        if len(body) < 12:
            raise ProxyHeaderError("PROXY v2 TCP4 addresses shorter than 12 bytes")
        host = str(ipaddress.IPv4Address(body[0:4]))
        (port,) = struct.unpack_from("!H", body, 8)
        return host, port
    if family == V2_TCP6:
        if len(body) < 36:
            raise ProxyHeaderError("PROXY v2 TCP6 addresses shorter than 36 bytes")
        host = str(ipaddress.IPv6Address(body[0:16]))
        (port,) = struct.unpack_from("!H", body, 32)
        return host, port
    return None  # UNSPEC, UDP or Unix sockets: the proxy's own address stands


def looks_like_proxy_header(first: bytes) -> bool:
    """Whether ``first`` (at least one byte) could start a PROXY header; RTMP's first byte is
    its version, 3 (or 6 for RTMPE), so the two never overlap."""
    return first[:1] in (V1_PREFIX[:1], V2_SIGNATURE[:1])


class TrustedProxies:
    """``[server] trusted_proxies``: addresses and networks whose connections carry a PROXY
    header. ``host in proxies`` for a peer's address (IPv4-mapped IPv6 counts as IPv4)."""

    def __init__(self, entries: Iterable[str]) -> None:
        self._networks = [ipaddress.ip_network(entry, strict=False) for entry in entries]

    def __contains__(self, host: object) -> bool:
        if not isinstance(host, str):
            return False
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)
