"""What the stream figures cost: CPU per published message (``StreamStats.observe``) and per
read of the figures (``LiveStream.figures``), in memory, no sockets.

The stream is the 550 kbit/s one of ``benchmarks/inmemory_fanout.py`` (30 fps H.264 of
2,000 B with a keyframe a second, 43 AAC frames/s of 200 B); ``--tracks`` makes it an Enhanced
RTMP multitrack stream of that many HEVC tracks (ManyTracks: one message carries them all).
The publish-path figure is compared with the same messages through ``LiveStream.publish_message``
without players, so the share the figures take of the publish path is visible.

Run:  .venv/bin/python benchmarks/stream_figures.py --seconds 60 --players 10000
"""

from __future__ import annotations

import argparse
import sys
import time

from fms.live.media import describe
from fms.live.stats import StreamStats
from fms.live.stream import FanoutLimits, LiveStream
from fms.rtmp.constants import MessageType
from fms.rtmp.messages import Media


class NullSink:
    """A player that takes everything and keeps nothing."""

    def write(self, data: bytes) -> None:
        pass

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


def video_payload(key: bool, tracks: int) -> bytes:
    if tracks <= 1:
        return (b"\x17" if key else b"\x27") + b"\x01\x00\x00\x00" + b"v" * 2000
    head = bytes([0x80 | (0x10 if key else 0x20) | 6, 0x10 | 3]) + b"hvc1"
    body = b"v" * (2000 // tracks)
    return head + b"".join(
        bytes([track]) + len(body).to_bytes(3, "big") + body for track in range(tracks)
    )


def messages(seconds: float, tracks: int) -> list[tuple[Media, float]]:
    """(message, arrival time in seconds) in publishing order."""
    out = []
    for i in range(int(seconds * 30)):
        ts = i * 1000 // 30
        out.append((Media(MessageType.VIDEO, ts, 1, video_payload(i % 30 == 0, tracks)), ts / 1e3))
    for i in range(int(seconds * 43)):
        ts = i * 1000 // 43
        out.append((Media(MessageType.AUDIO, ts, 1, b"\xaf\x01" + b"a" * 200), ts / 1000))
    out.sort(key=lambda item: item[1])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--tracks", type=int, default=1)
    parser.add_argument("--players", type=int, default=10000, help="for the read cost")
    parser.add_argument("--reads", type=int, default=1000)
    args = parser.parse_args(argv)
    feed = messages(args.seconds, args.tracks)
    infos = [describe(m.type_id, m.payload) for m, _ in feed]

    stats = StreamStats(started=0.0)
    start = time.process_time()
    for (message, now), info in zip(feed, infos, strict=True):
        stats.observe(message, info, now)
    observe = (time.process_time() - start) / len(feed)

    stream = LiveStream("live", "bench", FanoutLimits())
    stream.start_publish(object(), now=0.0)
    start = time.process_time()
    for message, now in feed:
        stream.publish_message(message, now)
    publish = (time.process_time() - start) / len(feed)

    for _ in range(args.players):
        stream.add_player(NullSink(), 1)
    end = feed[-1][1]
    start = time.process_time()
    for _ in range(args.reads):
        stream.figures(end)
    read = (time.process_time() - start) / args.reads

    print(f"messages={len(feed)} tracks={args.tracks} ({args.seconds:g} s of a 550 kbit/s stream)")
    print(f"observe: {observe * 1e6:.1f} us per published message")
    print(
        f"publish_message without players (figures included): {publish * 1e6:.1f} us per "
        f"message; the figures are {observe / publish:.0%} of it"
    )
    print(f"figures(): {read * 1e6:.0f} us per read with {args.players} players")
    print("reproduce: .venv/bin/python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
