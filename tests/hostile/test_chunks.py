"""Item 2: the chunk layer against hand-written chunks on a real socket.

Each bad connection must be closed at once (not at a deadline) with a log line that says why;
an announced size must never be allocated before its bytes arrive.
"""

from __future__ import annotations

import struct

import pytest

from fms.rtmp.client import AcknowledgementReceived
from tests.hostile.conftest import HostileServer
from tests.hostile.support import (
    CLOSE_TIMEOUT,
    Client,
    closed_within,
    fmt0_header,
    handshake,
    local_port,
    measure,
    open_socket,
    peak_rss_kib,
    reset_peak_rss,
    rss_kib,
    wait_for_log,
)

pytestmark = pytest.mark.hostile

ANNOUNCED = 8 * 1024 * 1024
"""The largest video message the suite's server accepts ([limits] max_video_message)."""

SET_CHUNK_SIZE = 1
COMMAND_AMF0 = 20
AUDIO = 8
VIDEO = 9


def basic(fmt: int, csid: int) -> bytes:
    """A basic header for any chunk stream id (1, 2 or 3 bytes)."""
    if csid < 64:
        return bytes(((fmt << 6) | csid,))
    if csid < 320:
        return bytes((fmt << 6, csid - 64))
    rest = csid - 64
    return bytes(((fmt << 6) | 1, rest & 0xFF, rest >> 8))


def set_chunk_size(size: int) -> bytes:
    return basic(0, 2) + fmt0_header(4, SET_CHUNK_SIZE) + struct.pack(">I", size)


def assert_refused(
    server: HostileServer, data: bytes, reason: str, *, connected: bool = False
) -> float:
    """Send ``data`` after the handshake (and ``connect`` if asked); wait for the server to
    close, check that its log names ``reason`` (so it closed on the error, not at a deadline)
    and return how long the close took."""
    mark = server.mark()
    if connected:
        client = Client(server.port).connect()
        sock, port = client.sock, client.port
    else:
        sock = open_socket(server.port)
        port = local_port(sock)
        handshake(sock)
    sock.sendall(data)
    took = closed_within(sock, CLOSE_TIMEOUT)
    wait_for_log(server.process, rf"closing 127\.0\.0\.1:{port}: .*{reason}", mark)
    return took


@pytest.mark.parametrize(
    ("size", "reason"),
    [
        (0, "invalid Set Chunk Size 0"),
        (0x80000000 | 4096, "invalid Set Chunk Size"),
        (1, "chunk size 1 below the minimum 128"),
        (127, "chunk size 127 below the minimum 128"),
    ],
)
def test_a_bad_chunk_size_closes_at_once(good: HostileServer, size: int, reason: str) -> None:
    took = assert_refused(good, set_chunk_size(size), reason)
    measure(f"Set Chunk Size {size:#x}: closed after {took * 1000:.0f} ms")


def test_the_largest_chunk_size_and_an_announced_length_allocate_nothing(
    good: HostileServer,
) -> None:
    """Chunk size 2^31-1, then a video message announcing the largest length allowed (8 MiB)
    of which only 100 bytes come: the server holds the bytes that came, not the announced
    length (nor the chunk size)."""
    client = Client(good.port).connect()
    sid = client.publish("announced")
    # The server acknowledges every read from now on: the sign that it has read our bytes.
    client.conn.set_window_acknowledgement_size(1)
    client.flush()
    ack = client.until(lambda e: isinstance(e, AcknowledgementReceived))
    assert isinstance(ack, AcknowledgementReceived)
    reset_peak_rss(good.pid)
    before = rss_kib(good.pid)
    data = (
        set_chunk_size(0x7FFFFFFF)
        + basic(0, 20)
        + fmt0_header(ANNOUNCED, VIDEO, stream_id=sid)
        + b"\x27" * 100
    )
    client.sock.sendall(data)
    client.until(
        lambda e: (
            isinstance(e, AcknowledgementReceived)
            and e.sequence_number >= ack.sequence_number + len(data)
        )
    )
    growth = peak_rss_kib(good.pid) - before
    measure(
        f"{ANNOUNCED} bytes announced, 100 sent (chunk size 2^31-1): the server's peak memory "
        f"grew {growth} KiB"
    )
    assert growth < ANNOUNCED // 1024 // 8  # an eighth of the announced length
    client.close()


def test_too_many_chunk_streams_with_partial_messages_close_at_once(good: HostileServer) -> None:
    data = b"".join(
        basic(0, csid) + fmt0_header(200, COMMAND_AMF0) + b"\x05" * 128 for csid in range(3, 68)
    )
    took = assert_refused(
        good, data, "too many chunk streams with a partial message: 65 > maximum 64"
    )
    measure(f"65 partial chunk streams: closed after {took * 1000:.0f} ms")


@pytest.mark.parametrize("fmt", [1, 2, 3])
def test_a_compressed_header_on_a_new_chunk_stream_closes_at_once(
    good: HostileServer, fmt: int
) -> None:
    header = {1: b"\x00" * 7, 2: b"\x00" * 3, 3: b""}[fmt]
    assert_refused(
        good, basic(fmt, 9) + header + b"\x00" * 16, f"fmt {fmt} chunk on chunk stream 9"
    )


def test_an_oversized_command_is_refused_on_its_header(good: HostileServer) -> None:
    took = assert_refused(
        good,
        basic(0, 3) + fmt0_header(65_537, COMMAND_AMF0),
        "type 20 message too large: 65537 bytes > maximum 65536",
    )
    measure(f"65,537-byte command header: closed after {took * 1000:.0f} ms")


def test_media_before_a_publish_is_held_to_the_command_size(good: HostileServer) -> None:
    assert_refused(
        good,
        basic(0, 6) + fmt0_header(70_000, VIDEO, stream_id=1),
        r"video \(before media was enabled\) message too large",
        connected=True,
    )


@pytest.mark.parametrize(
    ("type_id", "length", "reason"),
    [
        (VIDEO, 8 * 1024 * 1024 + 1, "video message too large: 8388609 bytes > maximum 8388608"),
        (AUDIO, 1024 * 1024 + 1, "audio message too large: 1048577 bytes > maximum 1048576"),
    ],
)
def test_media_past_its_limit_is_refused_after_publish(
    good: HostileServer, type_id: int, length: int, reason: str
) -> None:
    mark = good.mark()
    client = Client(good.port).connect()
    sid = client.publish(f"big{type_id}")
    client.sock.sendall(basic(0, 20) + fmt0_header(length, type_id, stream_id=sid))
    assert closed_within(client.sock, CLOSE_TIMEOUT) < CLOSE_TIMEOUT
    line = wait_for_log(good.process, rf"closing 127\.0\.0\.1:{client.port}: .*{reason}", mark)
    assert reason in line


def test_partial_messages_are_capped_per_connection(good: HostileServer) -> None:
    mark = good.mark()
    client = Client(good.port).connect()  # it announced chunk size 4096
    sid = client.publish("hoarder")
    size = 8 * 1024 * 1024  # three video messages of the largest size, none ever finished
    payload = b"\x27" * 4096
    sent = 0
    try:
        for csid in (20, 21, 22):
            client.sock.sendall(basic(0, csid) + fmt0_header(size, VIDEO, stream_id=sid) + payload)
            sent += 4096
        while sent < 3 * size - 3 * 4096:
            for csid in (20, 21, 22):
                client.sock.sendall(basic(3, csid) + payload)
                sent += 4096
    except (ConnectionResetError, BrokenPipeError):
        pass
    closed_within(client.sock, CLOSE_TIMEOUT)
    line = wait_for_log(good.process, rf"closing 127\.0\.0\.1:{client.port}: ", mark)
    assert "too many bytes buffered for partial messages" in line
    assert sent <= 32 * 1024 * 1024  # 16 MiB held, plus what the kernel buffers held
    measure(f"partial-message cap 16 MiB: closed after {sent / 1024 / 1024:.1f} MiB were sent")
