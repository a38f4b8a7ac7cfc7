"""In-memory fan-out: memory per subscriber and CPU per delivered message.

No sockets: a publisher's messages go through :class:`fms.live.stream.LiveStream` to N in-memory
sinks, flushed every ``--flush-ms`` of media time, as the server's timer does. This isolates what
the stream itself costs (caches, one encode per message, cursors, joined writes) from the
kernel's per-send cost, which the socket benchmarks of the fan-out issue measure.

Run:  .venv/bin/python benchmarks/inmemory_fanout.py --players 1000 --seconds 10
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc

from fms.live.stream import FanoutLimits, LiveStream
from fms.rtmp.constants import MessageType
from fms.rtmp.messages import Media

AVC_HEADER = b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f\xff\xe1\x00\x04gd\x00\x1f"
AAC_HEADER = b"\xaf\x00\x12\x10"


class CountingSink:
    """Counts what it is given, keeps nothing (like a socket that always drains)."""

    __slots__ = ("bytes", "writes")

    def __init__(self) -> None:
        self.writes = 0
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.bytes += len(data)

    def can_write(self) -> bool:
        return True

    def pending(self) -> int:
        return 0

    def close(self, reason: str) -> None:
        raise AssertionError(reason)

    def publish_started(self) -> None:
        pass

    def publish_stopped(self) -> None:
        pass


def media(seconds: float, fps: int = 30, gop: int = 30) -> list[Media]:
    """A 550 kbit/s stream: 30 fps video of 2,000 B, 43 AAC frames/s of 200 B."""
    out = [Media(MessageType.VIDEO, 0, 1, AVC_HEADER), Media(MessageType.AUDIO, 0, 1, AAC_HEADER)]
    frames = []
    for i in range(int(seconds * fps)):
        first = b"\x17" if i % gop == 0 else b"\x27"
        frames.append(
            (
                i * 1000 // fps,
                Media(
                    MessageType.VIDEO, i * 1000 // fps, 1, first + b"\x01\x00\x00\x00" + b"v" * 1995
                ),
            )
        )
    for i in range(int(seconds * 43)):
        ts = i * 1000 // 43
        frames.append((ts, Media(MessageType.AUDIO, ts, 1, b"\xaf\x01" + b"a" * 198)))
    frames.sort(key=lambda pair: pair[0])
    return out + [m for _, m in frames]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--flush-ms", type=int, default=20)
    args = parser.parse_args(argv)

    messages = media(args.seconds)
    gc.collect()
    tracemalloc.start()
    stream = LiveStream("live", "bench", FanoutLimits())
    stream.start_publish(object())
    for m in messages[:2]:
        stream.publish_message(m)
    before = tracemalloc.get_traced_memory()[0]
    sinks = [CountingSink() for _ in range(args.players)]
    for sink in sinks:
        stream.add_player(sink, 1)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    per_player = (after - before) / args.players

    start = time.process_time()
    next_flush = 0
    for m in messages[2:]:
        stream.publish_message(m)
        if m.timestamp >= next_flush:
            stream.flush(m.timestamp / 1000)
            next_flush = m.timestamp + args.flush_ms
    stream.flush(args.seconds)
    cpu = time.process_time() - start
    delivered = (len(messages) - 2) * args.players
    received = sum(s.bytes for s in sinks)
    print(f"players={args.players} messages={len(messages) - 2} flush={args.flush_ms}ms")
    print(f"memory per player: {per_player:.0f} bytes (tracemalloc, player + sink objects)")
    print(f"encodes: {stream.encodes} for {len(messages) - 2} messages")
    print(
        f"cpu: {cpu:.3f} s for {delivered} deliveries = "
        f"{cpu / delivered * 1e6:.1f} s per million messages"
    )
    print(f"writes per player: {sinks[0].writes}; bytes delivered: {received}")
    print("reproduce: .venv/bin/python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
