"""What muxing many live streams into HLS at once costs: CPU per stream-hour and memory.

Debian's FFmpeg encodes ``--seconds`` of the issue's reference stream (640x360 H.264 at 25 fps,
480 kbit/s, a keyframe every 2 s, + 64 kbit/s AAC: about 550 kbit/s, 68 messages/s; the
same stream as ``benchmarks/hls_segmenter.py``). ``--streams`` segmenters (one
:class:`~fms.hls.segmenter.StreamSegments`, or :class:`~fms.hls.tssegments.TsStreamSegments`
with ``--container mpegts``, per stream, default settings: 2 s segments, 6 in the window)
are then fed that stream's messages *interleaved*, as a server with that many publishers
sees them: every stream starts at its own offset (spread over one keyframe interval, so that
segments do not all close at once), and the messages of all streams go in time order. The
muxing runs in one process, as it does in one worker.

Printed: CPU seconds (``time.process_time``) for the whole run, per stream-hour of media and
as a share of one core for that many live streams; the resident memory (``VmRSS``) the
segmenters added, in all and per stream, with the bytes of segments they hold. Not
pass/fail: figures, for ``docs/performance.md``.

Run:  .venv/bin/python -m benchmarks.hls_many
      .venv/bin/python -m benchmarks.hls_many --container mpegts
      .venv/bin/python -m benchmarks.hls_many --streams 20 --seconds 20   # a quick look
"""

from __future__ import annotations

import argparse
import heapq
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks.hls_segmenter import make_stream
from fms.hls.segmenter import SegmentSettings, StreamSegments
from fms.hls.tssegments import TsStreamSegments


def rss_bytes() -> int:
    """This process's resident memory (bytes)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def shifted(
    tags: list[tuple[int, int, bytes]], index: int, offset: int
) -> Iterator[tuple[int, int, int, bytes]]:
    """Stream ``index``'s messages: (time ms shifted by ``offset``, index, type, payload)."""
    for kind_id, timestamp, payload in tags:
        yield timestamp + offset, index, kind_id, payload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=60, help="length of each stream (s)")
    parser.add_argument("--container", choices=("fmp4", "mpegts"), default="fmp4")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tags = make_stream(args.seconds, Path(folder))
    length = (tags[-1][1] - tags[0][1]) / 1000
    settings = SegmentSettings()
    kind = TsStreamSegments if args.container == "mpegts" else StreamSegments
    # Every stream's messages, shifted by its offset, merged in time order (lazily).
    offsets = [i * 2000 // args.streams for i in range(args.streams)]
    merged = heapq.merge(*(shifted(tags, index, offset) for index, offset in enumerate(offsets)))
    before = rss_bytes()
    streams = [kind(settings, first_sequence=1000) for _ in range(args.streams)]
    for stream in streams:
        stream.start()
    messages = 0
    started_wall = time.monotonic()
    started = time.process_time()
    for timestamp, index, kind_id, payload in merged:
        streams[index].publish(kind_id, timestamp, payload, timestamp / 1000)
        messages += 1
    cpu = time.process_time() - started
    wall = time.monotonic() - started_wall
    added = rss_bytes() - before
    held = sum(stream.memory for stream in streams)
    segments = sum(len(stream.segments) for stream in streams)
    stream_hours = args.streams * length / 3600
    load = os.getloadavg()
    command = " ".join([".venv/bin/python -m benchmarks.hls_many", *sys.argv[1:]])
    print(f"command: {command}")
    print(
        f"{args.streams} streams x {length:.0f} s of ~550 kbit/s ({len(tags)} messages each),"
        f" {args.container}, interleaved; load average {load[0]:.1f} {load[1]:.1f} on"
        f" {os.cpu_count()} cores"
    )
    print(
        f"CPU {cpu:.2f} s ({wall:.2f} s wall) for {messages} messages:"
        f" {cpu / messages * 1e6:.1f} us per message,"
        f" {cpu / stream_hours:.1f} CPU-seconds per stream-hour,"
        f" {cpu / length * 100:.1f}% of a core for {args.streams} live streams"
    )
    print(
        f"memory: {added / 1e6:.1f} MB resident added ({added / args.streams / 1e6:.2f} MB per"
        f" stream), {held / 1e6:.1f} MB of segments held ({segments} segments)"
    )


if __name__ == "__main__":
    main()
