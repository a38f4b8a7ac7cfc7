"""Item 5: a player whose socket stops reading. It must be skipped to keyframes and closed
after ``stall_timeout`` (1 s here) without write progress, while the publisher and the other
players of the same stream go on at full speed and the server's memory stays bounded."""

from __future__ import annotations

import socket
import time

import pytest

from fms.rtmp.client import MediaArrived
from tests.hostile.conftest import HostileServer
from tests.hostile.support import (
    AVC_HEADER,
    Client,
    measure,
    rss_kib,
    wait_for_log,
)

pytestmark = pytest.mark.hostile

BIG_KEYFRAME = b"\x17\x01\x00\x00\x00" + b"K" * 100_000
BIG_FRAME = b"\x27\x01\x00\x00\x00" + b"f" * 100_000


def test_a_player_that_stops_reading_is_closed_and_stalls_nobody(good: HostileServer) -> None:
    mark = good.mark()
    stalled = Client(good.port)
    stalled.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect()
    stalled.play("firehose")
    fast = Client(good.port).connect()
    fast.play("firehose")
    publisher = Client(good.port).connect()
    sid = publisher.publish("firehose")
    publisher.send_video(sid, 0, AVC_HEADER)
    before = rss_kib(good.pid)
    stopped_reading = time.monotonic()  # from now on nobody reads the stalled socket
    frames = 0
    closed_at = None
    slowest_send = 0.0
    # 2.5 MB/s of 100 kB frames at 25 per second, a keyframe every second, for 3 seconds and
    # on until the server has closed the stalled player: the kernel's socket buffers take
    # about 4 MB before its writes stop progressing, so the close comes near 3 s (later on a
    # loaded machine), and only while frames keep coming.
    while time.monotonic() - stopped_reading < 3.0 or closed_at is None:
        assert time.monotonic() - stopped_reading < 30.0, "the stalled player was never closed"
        sent = time.monotonic()
        publisher.send_video(sid, frames * 40, BIG_KEYFRAME if frames % 25 == 0 else BIG_FRAME)
        slowest_send = max(slowest_send, time.monotonic() - sent)
        frames += 1
        end = sent + 0.04
        while (left := end - time.monotonic()) > 0:
            assert fast.read(left)
        publisher.read(0.0)
        if frames % 5 == 0 and closed_at is None:
            # It still talks (so it is not idle), it just never reads.
            stalled.conn.call("_checkbw", None)
            try:
                stalled.flush()
            except (ConnectionResetError, BrokenPipeError):
                pass  # the server closed it; its log line is on the way
        if closed_at is None and any("closing player" in line for line in good.lines[mark:]):
            closed_at = time.monotonic()
    line = wait_for_log(good.process, rf"closing player 127\.0\.0\.1:{stalled.port} of ", mark)
    assert "no write progress for 1s" in line or "bytes behind" in line
    last = (frames - 1) * 40
    fast.until(lambda e: isinstance(e, MediaArrived) and e.message.timestamp >= last)
    got = [e for e in fast.events if isinstance(e, MediaArrived)]
    assert len(got) == frames + 1  # every frame and the sequence header, none skipped
    assert slowest_send < 0.5, f"the publisher's send blocked for {slowest_send:.2f}s"
    growth = rss_kib(good.pid) - before
    measure(
        f"stalled player (stall_timeout 1 s): closed {closed_at - stopped_reading:.2f} s after "
        f"it stopped reading; {frames} frames of 100 kB; server grew {growth / 1024:.1f} MiB"
    )
    assert growth < 48 * 1024
    for client in (stalled, fast, publisher):
        client.close()
