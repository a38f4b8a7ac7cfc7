"""The RTMP handshake, server side and client side, sans-IO.

Each side is an object fed the bytes that arrived (:meth:`receive_data`) and asked for the bytes
to write (:meth:`data_to_send`), in the manner of h11: no sockets, no Twisted, no clock of its own
(the time in milliseconds is passed in). Errors the peer causes raise
:class:`~fms.rtmp.errors.HandshakeError`; after one, the object refuses further input.

Two handshakes share one wire format (C0/S0 = version byte 3; C1/S1/C2/S2 = 1536 bytes each):

* The simple handshake of Adobe's RTMP specification: S1/C1 carry a time and zero version bytes,
  S2/C2 echo the peer's packet with the time it was read. OBS sends this one.
* The Flash Player 9 "digest" handshake, which Flash Player needs before it plays H.264 and which
  librtmp and FFmpeg clients send and verify. C1 carries an HMAC-SHA256 digest at an offset that
  one of two schemes (:class:`DigestScheme`) derives from four bytes of C1 itself; the server
  answers with an S1 digest in the same scheme and an S2 whose last 32 bytes sign it with a key
  derived from the client's digest. A client that finds non-zero version bytes in S1 checks both
  and hangs up on a mismatch ("Couldn't verify the server digest", "Server not genuine Adobe!").

The server answers a C1 that carries a valid digest with the digest handshake and any other C1
with the simple one (zero S1 version bytes tell FP9 clients to fall back). It does not verify C2:
clients disagree on what C2 holds, and the servers they were tested against do not check it.

Buffers hold one packet at most (1536 bytes). Bytes that arrive after the peer's last handshake
packet (OBS sends Set Chunk Size in the same segment as C2) are kept in ``leftover``: they are the
chunk stream's first bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from enum import Enum, IntEnum

from fms.errors import LocalProtocolError
from fms.rtmp.constants import HANDSHAKE_SIZE, RTMP_VERSION, U32_MASK
from fms.rtmp.errors import HandshakeError

__all__ = [
    "CLIENT_VERSION",
    "SERVER_VERSION",
    "ClientHandshake",
    "DigestScheme",
    "ServerHandshake",
]

SERVER_VERSION = (4, 5, 0, 1)
"""Version bytes 4-7 of a digest S1: an FMS-like 4.5.0.1.

Non-zero tells librtmp the server does the digest handshake (it then verifies S1 and S2); FFmpeg's
player verifies when the first byte is >= 3. A simple S1 carries zeros here.
"""

CLIENT_VERSION = (9, 0, 124, 2)
"""Version bytes 4-7 of a digest C1: Flash Player 9.0.124, the version FFmpeg announces."""

_DIGEST_SIZE = 32
"""An HMAC-SHA256 digest (bytes)."""

_SIGNED_SIZE = HANDSHAKE_SIZE - _DIGEST_SIZE
"""Bytes of S2/C2 covered by its signature: all but the last 32."""

_KEY_TAIL = bytes.fromhex("f0eec24a8068bee82e00d0d1029e7e576eec5d2d29806fab93b8e636cfeb31ae")
_PLAYER_KEY = b"Genuine Adobe Flash Player 001" + _KEY_TAIL
_SERVER_KEY = b"Genuine Adobe Flash Media Server 001" + _KEY_TAIL
# The digests in C1/S1 use the readable part of a key; the S2/C2 signatures the whole key.
_PLAYER_DIGEST_KEY = _PLAYER_KEY[:30]
_SERVER_DIGEST_KEY = _SERVER_KEY[:36]

_HTTP_FIRST_LETTERS = frozenset(b"GPHODCT")  # GET POST PUT PATCH PRI HEAD OPTIONS DELETE ...
_RTMPE_VERSIONS = frozenset({6, 8, 9})  # RTMPE, RTMPE with XTEA, RTMPE with Blowfish


class DigestScheme(IntEnum):
    """Where a digest handshake packet says its 32-byte digest sits.

    The four bytes at ``base`` are summed; the digest starts at ``sum % 728 + base + 4``. The
    client picks the scheme (FFmpeg and Debian's rtmpdump use 0 for plain RTMP; FFmpeg's RTMPE and
    librtmp builds with FP10 use 1) and the server answers in the same one.
    """

    OFFSET_AT_8 = 0
    """Offset base in bytes 8-11; the digest lies within bytes 12-770."""

    OFFSET_AT_772 = 1
    """Offset base in bytes 772-775; the digest lies within bytes 776-1534."""

    @property
    def base(self) -> int:
        """Index of the four bytes whose sum places the digest."""
        return 8 if self is DigestScheme.OFFSET_AT_8 else 772


def _hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _digest_offset(packet: bytes, scheme: DigestScheme) -> int:
    base = scheme.base
    return sum(packet[base : base + 4]) % 728 + base + 4


def _packet_digest(packet: bytes, offset: int, key: bytes) -> bytes:
    """The digest of ``packet`` with its own 32 digest bytes left out."""
    return _hmac_sha256(key, packet[:offset] + packet[offset + _DIGEST_SIZE :])


def _find_digest(
    packet: bytes, key: bytes, first: DigestScheme = DigestScheme.OFFSET_AT_8
) -> tuple[DigestScheme, bytes] | None:
    """The scheme (tried ``first``, then the other) and digest that verify with ``key``, if any."""
    for scheme in (first, DigestScheme(1 - first)):
        offset = _digest_offset(packet, scheme)
        found = packet[offset : offset + _DIGEST_SIZE]
        if hmac.compare_digest(found, _packet_digest(packet, offset, key)):
            return scheme, found
    return None


def _with_digest(packet: bytes, scheme: DigestScheme, key: bytes) -> tuple[bytes, bytes]:
    """``packet`` with its digest written in place for ``scheme``, and that digest."""
    offset = _digest_offset(packet, scheme)
    digest = _packet_digest(packet, offset, key)
    return packet[:offset] + digest + packet[offset + _DIGEST_SIZE :], digest


def _signature(signed: bytes, peer_digest: bytes, key: bytes) -> bytes:
    """The last 32 bytes of S2/C2: ``signed`` under a key derived from the peer's digest."""
    return _hmac_sha256(_hmac_sha256(key, peer_digest), signed)


def _echo(packet: bytes, now_ms: int) -> bytes:
    """S2/C2 as the spec has it: the peer's packet with time2 set to when it was read.

    The digest handshake keeps its first 1504 bytes and replaces the last 32 with a signature.
    """
    return packet[:4] + (now_ms & U32_MASK).to_bytes(4, "big") + packet[8:]


def _not_rtmp(first: int) -> str:
    """Why a connection whose first byte is ``first`` (not 3) is not plain RTMP."""
    if first == 0x16:
        return "TLS ClientHello on a plain RTMP port (first byte 0x16)"
    if first in _HTTP_FIRST_LETTERS:
        return f"HTTP request on an RTMP port (first byte {chr(first)!r})"
    if first in _RTMPE_VERSIONS:
        return f"RTMPE (encrypted RTMP, not supported) (first byte 0x{first:02x})"
    return f"not RTMP (first byte 0x{first:02x})"


class _Phase(Enum):
    """Which packet a side waits for next."""

    IDLE = "idle"  # a client before initiate()
    VERSION = "version"  # C0 / S0
    FIRST = "first"  # C1 / S1
    SECOND = "second"  # C2 / S2
    DONE = "done"


class _HandshakeSide:
    """The buffering both sides share: collect one packet at a time, hand it to the subclass."""

    def __init__(self, now_ms: int, random_bytes: Callable[[int], bytes]) -> None:
        self._now_ms = now_ms
        self._random_bytes = random_bytes
        self._phase = _Phase.VERSION
        self._buffer = bytearray()
        self._outgoing = bytearray()
        self._error: HandshakeError | None = None
        self.leftover: bytes = b""
        """Bytes received after the peer's last handshake packet: the chunk stream's start."""

    @property
    def done(self) -> bool:
        """True once the peer's last handshake packet was read (and verified, where we do)."""
        return self._phase is _Phase.DONE

    def receive_data(self, data: bytes, now_ms: int | None = None) -> None:
        """Take bytes the peer sent, read at ``now_ms`` (ms; default: the constructor's time).

        ``now_ms`` becomes time2 of the S2/C2 we answer with when these bytes complete C1/S1.

        Raises :class:`HandshakeError` when the peer is not speaking RTMP or fails
        verification, and :class:`LocalProtocolError` when called before the handshake started,
        after it finished (feed the chunk stream instead) or after an error.
        """
        if self._error is not None:
            raise LocalProtocolError(f"handshake already failed: {self._error}")
        if self._phase is _Phase.IDLE:
            raise LocalProtocolError("handshake not started: call initiate() first")
        if self._phase is _Phase.DONE:
            raise LocalProtocolError("handshake is done: feed these bytes to the chunk stream")
        now = self._now_ms if now_ms is None else now_ms
        position = 0
        try:
            while position < len(data) and not self.done:
                size = 1 if self._phase is _Phase.VERSION else HANDSHAKE_SIZE
                taken = data[position : position + size - len(self._buffer)]
                self._buffer += taken
                position += len(taken)
                if len(self._buffer) == size:
                    packet = bytes(self._buffer)
                    self._buffer.clear()
                    self._receive_packet(packet, now)
        except HandshakeError as error:
            self._error = error
            self._buffer.clear()
            raise
        if self.done:
            self.leftover = bytes(data[position:])

    def data_to_send(self) -> bytes:
        """The bytes to write to the peer now (possibly empty); each byte is returned once."""
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    def _receive_packet(self, packet: bytes, now_ms: int) -> None:
        raise NotImplementedError

    def _random(self, size: int) -> bytes:
        data = self._random_bytes(size)
        if len(data) != size:
            raise LocalProtocolError(f"random_bytes({size}) returned {len(data)} bytes")
        return data

    def _first_packet(self, version: tuple[int, int, int, int]) -> bytes:
        """C1/S1 before any digest: our time, version bytes, random filler."""
        time = (self._now_ms & U32_MASK).to_bytes(4, "big")
        return time + bytes(version) + self._random(HANDSHAKE_SIZE - 8)


class ServerHandshake(_HandshakeSide):
    """The server side: read C0+C1, answer S0+S1+S2, read C2.

    ``now_ms`` is the time (ms) written into S1 (the epoch of what we send) and, unless
    :meth:`receive_data` is given one, the time2 written into S2. ``random_bytes(n)`` fills S1;
    tests pass a deterministic one.
    """

    def __init__(
        self, *, now_ms: int = 0, random_bytes: Callable[[int], bytes] = os.urandom
    ) -> None:
        super().__init__(now_ms, random_bytes)
        self.digest_scheme: DigestScheme | None = None
        """The scheme of the client's valid C1 digest; None for a simple handshake."""
        self.client_version: tuple[int, int, int, int] | None = None
        """C1 bytes 4-7 (the Flash Player version a digest client claims; 0.0.0.0 from OBS)."""

    def _receive_packet(self, packet: bytes, now_ms: int) -> None:
        if self._phase is _Phase.VERSION:
            if packet[0] != RTMP_VERSION:
                raise HandshakeError(_not_rtmp(packet[0]))
            self._phase = _Phase.FIRST
        elif self._phase is _Phase.FIRST:
            self._receive_c1(packet, now_ms)
            self._phase = _Phase.SECOND
        else:
            self._phase = _Phase.DONE

    def _receive_c1(self, c1: bytes, now_ms: int) -> None:
        self.client_version = (c1[4], c1[5], c1[6], c1[7])
        found = _find_digest(c1, _PLAYER_DIGEST_KEY)
        if found is None:
            s1 = self._first_packet((0, 0, 0, 0))
            # S2 is C1 verbatim: the spec puts our read time in bytes 4-7, but librtmp compares
            # the whole packet and warns ("client signature does not match!") when it differs,
            # and no client reads time2.
            s2 = c1
        else:
            self.digest_scheme, client_digest = found
            s1, _ = _with_digest(
                self._first_packet(SERVER_VERSION), self.digest_scheme, _SERVER_DIGEST_KEY
            )
            signed = _echo(c1, now_ms)[:_SIGNED_SIZE]
            s2 = signed + _signature(signed, client_digest, _SERVER_KEY)
        self._outgoing += bytes((RTMP_VERSION,)) + s1 + s2


class ClientHandshake(_HandshakeSide):
    """The client side: send C0+C1, read S0+S1, answer C2, read S2.

    With ``digest`` (the default) C1 carries a Flash Player digest in ``scheme``, and when S1's
    version bytes are non-zero (the server claims the digest handshake) S1's digest and S2's
    signature must verify, as librtmp requires, or :class:`HandshakeError` is raised. With zero
    version bytes the server chose the simple handshake, which is accepted. Without ``digest``
    C1 is a simple one (version 0) and nothing is verified.
    """

    def __init__(
        self,
        *,
        digest: bool = True,
        scheme: DigestScheme = DigestScheme.OFFSET_AT_8,
        now_ms: int = 0,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        super().__init__(now_ms, random_bytes)
        self._phase = _Phase.IDLE
        self._digest = digest
        self._scheme = scheme
        self._client_digest = b""
        self.digest_scheme: DigestScheme | None = None
        """The scheme of the server's verified S1 digest; None for a simple handshake."""
        self.server_version: tuple[int, int, int, int] | None = None
        """S1 bytes 4-7: zero from a server doing the simple handshake."""

    def initiate(self) -> None:
        """Queue C0+C1; call once, before any :meth:`receive_data`."""
        if self._phase is not _Phase.IDLE:
            raise LocalProtocolError("handshake already initiated")
        if self._digest:
            c1, self._client_digest = _with_digest(
                self._first_packet(CLIENT_VERSION), self._scheme, _PLAYER_DIGEST_KEY
            )
        else:
            c1 = self._first_packet((0, 0, 0, 0))
        self._outgoing += bytes((RTMP_VERSION,)) + c1
        self._phase = _Phase.VERSION

    def _receive_packet(self, packet: bytes, now_ms: int) -> None:
        if self._phase is _Phase.VERSION:
            if packet[0] != RTMP_VERSION:
                raise HandshakeError(
                    f"server answered with S0 0x{packet[0]:02x}, not RTMP version 3"
                )
            self._phase = _Phase.FIRST
        elif self._phase is _Phase.FIRST:
            self._receive_s1(packet, now_ms)
            self._phase = _Phase.SECOND
        else:
            self._receive_s2(packet)
            self._phase = _Phase.DONE

    def _receive_s1(self, s1: bytes, now_ms: int) -> None:
        self.server_version = (s1[4], s1[5], s1[6], s1[7])
        if not (self._digest and any(self.server_version)):
            self._outgoing += _echo(s1, now_ms)
            return
        # Like librtmp, accept the server's digest in either scheme, ours first.
        found = _find_digest(s1, _SERVER_DIGEST_KEY, first=self._scheme)
        if found is None:
            version = ".".join(map(str, self.server_version))
            raise HandshakeError(
                f"server claims the digest handshake (version {version}) "
                "but the digest in S1 does not verify"
            )
        self.digest_scheme, server_digest = found
        signed = _echo(s1, now_ms)[:_SIGNED_SIZE]
        self._outgoing += signed + _signature(signed, server_digest, _PLAYER_KEY)

    def _receive_s2(self, s2: bytes) -> None:
        if self.digest_scheme is None:
            return  # simple handshake: S2 should echo C1, but as librtmp we do not insist
        expected = _signature(s2[:_SIGNED_SIZE], self._client_digest, _SERVER_KEY)
        if not hmac.compare_digest(expected, s2[_SIGNED_SIZE:]):
            raise HandshakeError("S2 signature does not verify: the server is not genuine FMS")
