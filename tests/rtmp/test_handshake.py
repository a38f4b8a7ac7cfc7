"""Tests of the sans-IO RTMP handshake (simple and Flash Player 9 digest, both sides).

Expected digests and signatures are computed here with hmac/hashlib from the published key
constants written out below, never with the module's own helpers, so a mistake in the module
cannot hide behind the same mistake in its test. Captured C1s from FFmpeg and rtmpdump live in
``handshake_vectors``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import itertools
import random
from collections.abc import Callable, Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fms.errors import LocalProtocolError
from fms.rtmp.errors import HandshakeError
from fms.rtmp.handshake import ClientHandshake, DigestScheme, ServerHandshake
from tests.rtmp import handshake_vectors as vectors

# Published constants (Flash Player 9 handshake), written out independently of the module.
KEY_TAIL = bytes(
    [
        0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E,
        0x57, 0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB,
        0x31, 0xAE,
    ]
)  # fmt: skip
PLAYER_KEY = b"Genuine Adobe Flash Player 001" + KEY_TAIL  # 62 bytes
SERVER_KEY = b"Genuine Adobe Flash Media Server 001" + KEY_TAIL  # 68 bytes
PLAYER_DIGEST_KEY = PLAYER_KEY[:30]
SERVER_DIGEST_KEY = SERVER_KEY[:36]
SIZE = 1536
SET_CHUNK_SIZE_4096 = bytes.fromhex("02000000000004010000000000001000")
"""What OBS sends in the same segment as C2: Set Chunk Size 4096 on chunk stream 2."""


# --- independent reference computations -------------------------------------------------------


def sha256_hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def digest_offset(packet: bytes, scheme: int) -> int:
    base = 8 if scheme == 0 else 772
    return sum(packet[base : base + 4]) % 728 + base + 4


def digest_at(packet: bytes, offset: int, key: bytes) -> bytes:
    return sha256_hmac(key, packet[:offset] + packet[offset + 32 :])


def has_digest(packet: bytes, scheme: int, key: bytes) -> bool:
    offset = digest_offset(packet, scheme)
    return packet[offset : offset + 32] == digest_at(packet, offset, key)


def embed_digest(packet: bytes, scheme: int, key: bytes) -> bytes:
    offset = digest_offset(packet, scheme)
    return packet[:offset] + digest_at(packet, offset, key) + packet[offset + 32 :]


def packet_digest(packet: bytes, scheme: int) -> bytes:
    offset = digest_offset(packet, scheme)
    return packet[offset : offset + 32]


def signature(signed: bytes, peer_digest: bytes, key: bytes) -> bytes:
    return sha256_hmac(sha256_hmac(key, peer_digest), signed)


def seeded(seed: int) -> Callable[[int], bytes]:
    """A deterministic stand-in for os.urandom."""
    return random.Random(seed).randbytes


def player_c1(scheme: int, seed: int = 1, version: bytes = bytes([9, 0, 124, 2])) -> bytes:
    """A Flash-Player-like C1 with a valid digest in ``scheme``."""
    plain = bytes(4) + version + random.Random(seed).randbytes(SIZE - 8)
    return embed_digest(plain, scheme, PLAYER_DIGEST_KEY)


def simple_c1(seed: int = 1) -> bytes:
    """An OBS-like C1: time, zero version bytes, random filler, no digest."""
    return bytes(4) + bytes(4) + random.Random(seed).randbytes(SIZE - 8)


def fms_s1(scheme: int, seed: int = 2) -> bytes:
    """An FMS-like S1: version 3.5.1.1, server digest in ``scheme``."""
    plain = bytes(4) + bytes([3, 5, 1, 1]) + random.Random(seed).randbytes(SIZE - 8)
    return embed_digest(plain, scheme, SERVER_DIGEST_KEY)


def fms_s2(client_c1: bytes, client_scheme: int, seed: int = 3) -> bytes:
    """An FMS-like S2: random bytes signed with the key derived from the client's digest."""
    signed = random.Random(seed).randbytes(SIZE - 32)
    return signed + signature(signed, packet_digest(client_c1, client_scheme), SERVER_KEY)


# --- helpers driving the module ----------------------------------------------------------------


def server_reply(c0c1: bytes, *, now_ms: int = 0, seed: int = 0) -> tuple[ServerHandshake, bytes]:
    server = ServerHandshake(now_ms=now_ms, random_bytes=seeded(seed))
    server.receive_data(c0c1)
    return server, server.data_to_send()


def split_reply(reply: bytes) -> tuple[bytes, bytes, bytes]:
    assert len(reply) == 1 + 2 * SIZE
    return reply[:1], reply[1 : 1 + SIZE], reply[1 + SIZE :]


def initiated_client(
    *, digest: bool = True, scheme: DigestScheme = DigestScheme.OFFSET_AT_8, seed: int = 5
) -> tuple[ClientHandshake, bytes]:
    client = ClientHandshake(digest=digest, scheme=scheme, random_bytes=seeded(seed))
    client.initiate()
    return client, client.data_to_send()


def feed(side: ServerHandshake | ClientHandshake, pieces: Iterable[bytes]) -> tuple[bytes, bytes]:
    """Feed pieces until done, as an adapter would; return (all output, chunk-stream bytes)."""
    output = b""
    after = b""
    for piece in pieces:
        if side.done:
            after += piece
            continue
        side.receive_data(piece)
        output += side.data_to_send()
        if side.done:
            after += side.leftover
    return output, after


def cut(data: bytes, points: Iterable[int]) -> list[bytes]:
    edges = [0, *sorted(points), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


# --- the reference computations agree with the real clients ------------------------------------


@pytest.mark.parametrize(
    ("c0c1", "offset"),
    [
        (vectors.FFMPEG_C0C1, vectors.FFMPEG_DIGEST_OFFSET),
        (vectors.RTMPDUMP_C0C1, vectors.RTMPDUMP_DIGEST_OFFSET),
    ],
    ids=["ffmpeg", "rtmpdump"],
)
def test_reference_digest_matches_captured_clients(c0c1: bytes, offset: int) -> None:
    """The test's own key constants and offset rule verify what FFmpeg and librtmp sent."""
    c1 = c0c1[1:]
    assert digest_offset(c1, 0) == offset
    assert has_digest(c1, 0, PLAYER_DIGEST_KEY)


# --- server: digest handshake --------------------------------------------------------------------


@pytest.mark.parametrize(
    "c0c1", [vectors.FFMPEG_C0C1, vectors.RTMPDUMP_C0C1], ids=["ffmpeg", "rtmpdump"]
)
def test_server_recognises_captured_client_digest_in_scheme_0(c0c1: bytes) -> None:
    server, _ = server_reply(c0c1)
    assert server.digest_scheme == DigestScheme.OFFSET_AT_8


@pytest.mark.parametrize("scheme", [0, 1])
def test_server_recognises_digest_in_either_scheme(scheme: int) -> None:
    server, _ = server_reply(b"\x03" + player_c1(scheme))
    assert server.digest_scheme == scheme


@pytest.mark.parametrize("scheme", [0, 1])
def test_s1_carries_server_digest_in_clients_scheme(scheme: int) -> None:
    _, reply = server_reply(b"\x03" + player_c1(scheme))
    _, s1, _ = split_reply(reply)
    assert has_digest(s1, scheme, SERVER_DIGEST_KEY)


def test_s1_version_is_non_zero_and_at_least_3_for_a_digest_client() -> None:
    """librtmp verifies when bytes 4-7 are non-zero; FFmpeg's player when byte 4 >= 3."""
    _, reply = server_reply(vectors.FFMPEG_C0C1)
    _, s1, _ = split_reply(reply)
    assert s1[4] >= 3


@pytest.mark.parametrize(
    "c0c1",
    [b"\x03" + player_c1(0), b"\x03" + player_c1(1), vectors.FFMPEG_C0C1, vectors.RTMPDUMP_C0C1],
    ids=["scheme0", "scheme1", "ffmpeg", "rtmpdump"],
)
def test_s2_signature_verifies_with_key_from_client_digest(c0c1: bytes) -> None:
    """S2[-32:] = HMAC(HMAC(68-byte FMS key, client digest), S2[:1504]), as librtmp checks."""
    c1 = c0c1[1:]
    scheme = 0 if has_digest(c1, 0, PLAYER_DIGEST_KEY) else 1
    _, reply = server_reply(c0c1)
    _, _, s2 = split_reply(reply)
    assert s2[-32:] == signature(s2[:-32], packet_digest(c1, scheme), SERVER_KEY)


def test_digest_s2_keeps_c1_time_and_filler_before_the_signature() -> None:
    c1 = player_c1(0)
    _, reply = server_reply(b"\x03" + c1)
    _, _, s2 = split_reply(reply)
    assert s2[:4] == c1[:4]
    assert s2[8:-32] == c1[8:-32]


def test_server_reports_client_version() -> None:
    server, _ = server_reply(vectors.RTMPDUMP_C0C1)
    assert server.client_version == (10, 0, 45, 2)


# --- server: simple handshake --------------------------------------------------------------------


def test_c1_without_digest_gets_simple_handshake() -> None:
    server, _ = server_reply(b"\x03" + simple_c1())
    assert server.digest_scheme is None


def test_simple_s1_has_zero_version_so_fp9_clients_fall_back() -> None:
    _, reply = server_reply(b"\x03" + simple_c1())
    _, s1, _ = split_reply(reply)
    assert s1[4:8] == bytes(4)


def test_c1_with_version_but_broken_digest_falls_back_to_simple() -> None:
    c1 = bytearray(player_c1(0))
    c1[digest_offset(bytes(c1), 0)] ^= 0xFF
    server, reply = server_reply(b"\x03" + bytes(c1))
    _, s1, _ = split_reply(reply)
    assert (server.digest_scheme, s1[4:8]) == (None, bytes(4))


def test_simple_s2_echoes_c1_verbatim_as_librtmp_checks() -> None:
    c1 = (1000).to_bytes(4, "big") + simple_c1()[4:]
    server = ServerHandshake(now_ms=5, random_bytes=seeded(0))
    server.receive_data(b"\x03" + c1[:100], now_ms=6)
    server.receive_data(c1[100:], now_ms=2500)
    _, _, s2 = split_reply(server.data_to_send())
    assert s2 == c1


def test_s0_is_version_3_and_s1_time_is_now_ms() -> None:
    _, reply = server_reply(b"\x03" + simple_c1(), now_ms=123456)
    s0, s1, _ = split_reply(reply)
    assert (s0, s1[:4]) == (b"\x03", (123456).to_bytes(4, "big"))


def test_time_fields_wrap_at_32_bits() -> None:
    _, reply = server_reply(b"\x03" + simple_c1(), now_ms=2**32 + 7)
    _, s1, _ = split_reply(reply)
    assert s1[:4] == (7).to_bytes(4, "big")


# --- server: flow and buffering ------------------------------------------------------------------


def test_server_sends_nothing_until_c1_is_complete() -> None:
    server = ServerHandshake(random_bytes=seeded(0))
    server.receive_data(b"\x03" + simple_c1()[:-1])
    assert server.data_to_send() == b""


def test_server_sends_s0_s1_s2_together_once_c1_is_complete() -> None:
    _, reply = server_reply(b"\x03" + simple_c1())
    assert len(reply) == 1 + 2 * SIZE


def test_data_to_send_returns_each_byte_once() -> None:
    server, _ = server_reply(b"\x03" + simple_c1())
    assert server.data_to_send() == b""


def test_server_is_done_only_after_the_whole_c2() -> None:
    server, reply = server_reply(b"\x03" + simple_c1())
    server.receive_data(reply[1:SIZE])
    assert not server.done
    server.receive_data(b"\x00")
    assert server.done


def test_server_does_not_verify_c2() -> None:
    """Clients disagree on what C2 holds; an arbitrary C2 completes the handshake."""
    server, _ = server_reply(vectors.FFMPEG_C0C1)
    server.receive_data(bytes(SIZE))
    assert server.done


def test_bytes_after_c2_in_the_same_call_become_leftover() -> None:
    """OBS sends Set Chunk Size in the same segment as C2."""
    server, reply = server_reply(b"\x03" + simple_c1())
    server.receive_data(reply[1 : 1 + SIZE] + SET_CHUNK_SIZE_4096)
    assert server.leftover == SET_CHUNK_SIZE_4096


def test_leftover_is_empty_when_c2_ends_the_data() -> None:
    server, reply = server_reply(b"\x03" + simple_c1())
    server.receive_data(reply[1 : 1 + SIZE])
    assert (server.done, server.leftover) == (True, b"")


def test_whole_handshake_in_one_call_keeps_everything_after_c2() -> None:
    c1 = simple_c1()
    tail = SET_CHUNK_SIZE_4096 * 1000
    server = ServerHandshake(random_bytes=seeded(0))
    server.receive_data(b"\x03" + c1 + c1 + tail)
    assert server.leftover == tail


def test_receiving_after_done_is_a_local_error() -> None:
    server, reply = server_reply(b"\x03" + simple_c1())
    server.receive_data(reply[1 : 1 + SIZE])
    with pytest.raises(LocalProtocolError, match="chunk stream"):
        server.receive_data(b"\x02")


def test_empty_data_changes_nothing() -> None:
    server = ServerHandshake(random_bytes=seeded(0))
    server.receive_data(b"")
    server.receive_data(b"\x03" + simple_c1())
    assert len(server.data_to_send()) == 1 + 2 * SIZE


def test_short_random_source_is_a_local_error() -> None:
    server = ServerHandshake(random_bytes=lambda n: bytes(n - 1))
    with pytest.raises(LocalProtocolError, match="random_bytes"):
        server.receive_data(b"\x03" + simple_c1())


# --- server: not RTMP ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "message"),
    [
        (0x16, "TLS ClientHello on a plain RTMP port"),
        (ord("G"), "HTTP request"),
        (ord("P"), "HTTP request"),
        (ord("H"), "HTTP request"),
        (ord("O"), "HTTP request"),
        (ord("D"), "HTTP request"),
        (ord("C"), "HTTP request"),
        (ord("T"), "HTTP request"),
        (0x06, r"RTMPE \(encrypted RTMP, not supported\)"),
        (0x08, r"RTMPE \(encrypted RTMP, not supported\)"),
        (0x09, r"RTMPE \(encrypted RTMP, not supported\)"),
        (0x00, r"not RTMP \(first byte 0x00\)"),
        (0x04, r"not RTMP \(first byte 0x04\)"),
        (0xFF, r"not RTMP \(first byte 0xff\)"),
    ],
)
def test_first_byte_other_than_3_names_what_it_looks_like(first: int, message: str) -> None:
    server = ServerHandshake()
    with pytest.raises(HandshakeError, match=message):
        server.receive_data(bytes([first]))


def test_first_byte_is_judged_alone_without_waiting_for_c1() -> None:
    server = ServerHandshake()
    with pytest.raises(HandshakeError, match="HTTP request"):
        server.receive_data(b"G")


def test_receiving_after_a_handshake_error_is_a_local_error() -> None:
    server = ServerHandshake()
    with pytest.raises(HandshakeError):
        server.receive_data(b"GET / HTTP/1.1\r\n")
    with pytest.raises(LocalProtocolError, match="already failed"):
        server.receive_data(b"\x03")


@given(st.binary(max_size=2 * SIZE + 40))
def test_arbitrary_bytes_raise_only_handshake_error(data: bytes) -> None:
    server = ServerHandshake(random_bytes=seeded(0))
    try:
        server.receive_data(data)
    except HandshakeError:
        assert data[0] != 3


# --- client --------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", list(DigestScheme))
def test_client_c1_carries_player_digest_in_chosen_scheme(scheme: DigestScheme) -> None:
    _, c0c1 = initiated_client(scheme=scheme)
    assert (c0c1[0], has_digest(c0c1[1:], scheme, PLAYER_DIGEST_KEY)) == (3, True)


def test_client_c1_announces_a_flash_player_version() -> None:
    _, c0c1 = initiated_client()
    assert c0c1[5:9] != bytes(4)


def test_client_without_digest_sends_version_0_c1() -> None:
    _, c0c1 = initiated_client(digest=False)
    assert c0c1[5:9] == bytes(4)


def test_client_c1_time_is_now_ms() -> None:
    client = ClientHandshake(now_ms=4242, random_bytes=seeded(0))
    client.initiate()
    assert client.data_to_send()[1:5] == (4242).to_bytes(4, "big")


def test_client_receiving_before_initiate_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError, match="initiate"):
        ClientHandshake().receive_data(b"\x03")


def test_client_initiating_twice_is_a_local_error() -> None:
    client, _ = initiated_client()
    with pytest.raises(LocalProtocolError, match="already initiated"):
        client.initiate()


@pytest.mark.parametrize("scheme", [0, 1])
def test_client_accepts_an_independently_computed_fms_response(scheme: int) -> None:
    client, c0c1 = initiated_client(scheme=DigestScheme(scheme))
    client.receive_data(b"\x03" + fms_s1(scheme) + fms_s2(c0c1[1:], scheme))
    assert (client.done, client.digest_scheme) == (True, scheme)


def test_client_finds_server_digest_in_the_other_scheme() -> None:
    """Like librtmp, the client accepts the server's digest in either scheme."""
    client, c0c1 = initiated_client(scheme=DigestScheme.OFFSET_AT_8)
    client.receive_data(b"\x03" + fms_s1(1) + fms_s2(c0c1[1:], 0))
    assert client.digest_scheme == DigestScheme.OFFSET_AT_772


def test_client_c2_is_signed_with_key_from_server_digest() -> None:
    """C2[-32:] = HMAC(HMAC(62-byte player key, server digest), C2[:1504]), as FMS checks."""
    client, _ = initiated_client()
    s1 = fms_s1(1)
    client.receive_data(b"\x03" + s1)
    c2 = client.data_to_send()
    assert c2[-32:] == signature(c2[:-32], packet_digest(s1, 1), PLAYER_KEY)


def test_client_sends_c2_after_s1_before_s2() -> None:
    client, _ = initiated_client()
    client.receive_data(b"\x03" + fms_s1(0))
    assert (len(client.data_to_send()), client.done) == (SIZE, False)


def test_client_rejects_corrupted_s1_digest() -> None:
    client, _ = initiated_client()
    s1 = bytearray(fms_s1(0))
    s1[digest_offset(bytes(s1), 0) + 5] ^= 0x01
    with pytest.raises(HandshakeError, match="digest in S1 does not verify"):
        client.receive_data(b"\x03" + bytes(s1))


def test_client_rejects_corrupted_s2_signature() -> None:
    client, c0c1 = initiated_client()
    s2 = bytearray(fms_s2(c0c1[1:], 0))
    s2[-1] ^= 0x01
    with pytest.raises(HandshakeError, match="S2 signature does not verify"):
        client.receive_data(b"\x03" + fms_s1(0) + bytes(s2))


def test_client_rejects_s2_signed_for_another_client() -> None:
    client, _ = initiated_client(seed=5)
    _, other_c0c1 = initiated_client(seed=6)
    with pytest.raises(HandshakeError, match="S2 signature"):
        client.receive_data(b"\x03" + fms_s1(0) + fms_s2(other_c0c1[1:], 0))


def test_client_accepts_version_0_s1_as_simple_handshake() -> None:
    client, _ = initiated_client()
    s1 = bytes(8) + random.Random(9).randbytes(SIZE - 8)
    client.receive_data(b"\x03" + s1 + bytes(SIZE))
    assert (client.done, client.digest_scheme) == (True, None)


def test_client_simple_c2_echoes_s1_with_time2() -> None:
    client, _ = initiated_client()
    s1 = (77).to_bytes(4, "big") + bytes(4) + random.Random(9).randbytes(SIZE - 8)
    client.receive_data(b"\x03" + s1, now_ms=300)
    assert client.data_to_send() == s1[:4] + (300).to_bytes(4, "big") + s1[8:]


def test_client_without_digest_ignores_server_digest_claims() -> None:
    """With no client digest there is nothing S2 could be signed with, so nothing is checked."""
    client, _ = initiated_client(digest=False)
    client.receive_data(b"\x03" + fms_s1(0) + bytes(SIZE))
    assert (client.done, client.digest_scheme) == (True, None)


def test_client_reports_server_version() -> None:
    client, c0c1 = initiated_client()
    client.receive_data(b"\x03" + fms_s1(0) + fms_s2(c0c1[1:], 0))
    assert client.server_version == (3, 5, 1, 1)


def test_client_rejects_non_rtmp_s0() -> None:
    client, _ = initiated_client()
    with pytest.raises(HandshakeError, match="S0 0x48"):
        client.receive_data(b"HTTP/1.1 400 Bad Request\r\n")


def test_client_keeps_bytes_after_s2_as_leftover() -> None:
    client, c0c1 = initiated_client()
    client.receive_data(b"\x03" + fms_s1(0) + fms_s2(c0c1[1:], 0) + SET_CHUNK_SIZE_4096)
    assert client.leftover == SET_CHUNK_SIZE_4096


@given(st.binary(max_size=2 * SIZE + 40))
def test_client_arbitrary_server_bytes_raise_only_handshake_error(data: bytes) -> None:
    client, _ = initiated_client()
    try:
        client.receive_data(data)
    except HandshakeError:
        with pytest.raises(LocalProtocolError):  # it stays failed
            client.receive_data(b"\x03")
    else:
        assert client.done == (len(data) >= 1 + 2 * SIZE)


# --- our server with our client ----------------------------------------------------------------


def run_pair(client: ClientHandshake, server: ServerHandshake) -> None:
    client.initiate()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())


@pytest.mark.parametrize("scheme", list(DigestScheme))
def test_round_trip_digest_handshake_in_each_scheme(scheme: DigestScheme) -> None:
    client = ClientHandshake(scheme=scheme, random_bytes=seeded(1))
    server = ServerHandshake(random_bytes=seeded(2))
    run_pair(client, server)
    assert (client.done, server.done) == (True, True)
    assert (client.digest_scheme, server.digest_scheme) == (scheme, scheme)


def test_round_trip_simple_handshake() -> None:
    client = ClientHandshake(digest=False, random_bytes=seeded(1))
    server = ServerHandshake(random_bytes=seeded(2))
    run_pair(client, server)
    assert (client.done, server.done) == (True, True)
    assert (client.digest_scheme, server.digest_scheme) == (None, None)


# --- split anywhere ------------------------------------------------------------------------------

SERVER_INPUT = vectors.FFMPEG_C0C1 + bytes(range(256)) * 6 + SET_CHUNK_SIZE_4096
"""FFmpeg's C0+C1, a C2, then the chunk stream's first bytes."""


def server_run(pieces: Iterable[bytes]) -> tuple[bytes, bytes, DigestScheme | None]:
    server = ServerHandshake(now_ms=9, random_bytes=seeded(0))
    output, after = feed(server, pieces)
    return output, after, server.digest_scheme


def client_run(pieces: Iterable[bytes]) -> tuple[bytes, bytes, DigestScheme | None]:
    client, _ = initiated_client()
    output, after = feed(client, pieces)
    return output, after, client.digest_scheme


@functools.cache
def client_input() -> bytes:
    """An FMS-like S0+S1+S2 for ``initiated_client()``, then the chunk stream's first bytes."""
    c1 = initiated_client()[1][1:]
    return b"\x03" + fms_s1(1) + fms_s2(c1, 0) + SET_CHUNK_SIZE_4096


@functools.cache
def server_whole() -> tuple[bytes, bytes, DigestScheme | None]:
    return server_run([SERVER_INPUT])


@functools.cache
def client_whole() -> tuple[bytes, bytes, DigestScheme | None]:
    return client_run([client_input()])


def test_split_reference_runs_complete() -> None:
    """The one-shot runs the split tests compare against are themselves right."""
    assert server_whole()[1:] == (SET_CHUNK_SIZE_4096, DigestScheme.OFFSET_AT_8)
    assert client_whole()[1:] == (SET_CHUNK_SIZE_4096, DigestScheme.OFFSET_AT_772)


def test_server_split_at_every_byte_boundary_gives_same_result() -> None:
    for point in range(len(SERVER_INPUT) + 1):
        assert server_run(cut(SERVER_INPUT, [point])) == server_whole(), point


def test_server_fed_byte_by_byte_gives_same_result() -> None:
    pieces = [SERVER_INPUT[i : i + 1] for i in range(len(SERVER_INPUT))]
    assert server_run(pieces) == server_whole()


def test_client_split_at_every_byte_boundary_gives_same_result() -> None:
    data = client_input()
    for point in range(len(data) + 1):
        assert client_run(cut(data, [point])) == client_whole(), point


def test_client_fed_byte_by_byte_gives_same_result() -> None:
    data = client_input()
    assert client_run([data[i : i + 1] for i in range(len(data))]) == client_whole()


@given(st.lists(st.integers(0, len(SERVER_INPUT)), max_size=12))
def test_server_any_chunking_gives_same_result(points: list[int]) -> None:
    assert server_run(cut(SERVER_INPUT, points)) == server_whole()


@given(st.lists(st.integers(0, 1 + 2 * SIZE + len(SET_CHUNK_SIZE_4096)), max_size=12))
def test_client_any_chunking_gives_same_result(points: list[int]) -> None:
    assert client_run(cut(client_input(), points)) == client_whole()
