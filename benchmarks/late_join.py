"""Late join: how long a player that arrives mid-stream waits for its first decoded picture.

A real server process, FFmpeg publishing 320x240 H.264 at 25 fps with a keyframe every
``--gop`` frames; after ``--delay`` seconds an FFmpeg player starts and decodes to raw I420 on
its stdout. The figure is the wall time from starting the player to reading its first whole
picture (115,200 bytes), which includes FFmpeg's own start-up, handshake, connect and probing:
FFmpeg's default probing waits for more than the cached GOP, so the benchmark also runs a player
with a short probe, which shows what the server itself costs.

Run:  .venv/bin/python benchmarks/late_join.py --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.harness import ServerProcess, ffmpeg_publish_command

PICTURE = 320 * 240 * 3 // 2
CLIENTS = {
    "ffmpeg default probing": [],
    "ffmpeg -analyzeduration 0.1s -probesize 32k": [
        "-analyzeduration",
        "100000",
        "-probesize",
        "32768",
    ],
}


def first_picture_after_join(
    server: ServerProcess, name: str, delay: float, gop: int, extra: list[str]
) -> float:
    url = f"{server.url}/live/{name}"
    publisher = subprocess.Popen(
        ffmpeg_publish_command(url, delay + 6, gop=gop), stderr=subprocess.DEVNULL
    )
    try:
        server.wait_for_line(rf"publish started live/{name}\b", timeout=20)
        time.sleep(delay)
        started = time.monotonic()
        player = subprocess.Popen(
            [
                "ffmpeg",
                "-v",
                "error",
                *extra,
                "-i",
                url,
                "-f",
                "rawvideo",
                "-pix_fmt",
                "yuv420p",
                "-",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert player.stdout is not None
        got = 0
        while got < PICTURE:
            chunk = player.stdout.read(PICTURE - got)
            if not chunk:
                raise RuntimeError("player ended before its first picture")
            got += len(chunk)
        elapsed = time.monotonic() - started
        player.kill()
        player.wait()
        return elapsed
    finally:
        publisher.kill()
        publisher.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--delay", type=float, default=4.0, help="seconds after publish start")
    parser.add_argument("--gop", type=int, default=25, help="frames between keyframes")
    args = parser.parse_args(argv)
    server = ServerProcess()
    print(f"gop={args.gop} frames (25 fps), join {args.delay}s after publish, {args.runs} runs")
    try:
        for label, extra in CLIENTS.items():
            times = [
                first_picture_after_join(server, f"late{label[:6]}{i}", args.delay, args.gop, extra)
                for i in range(args.runs)
            ]
            print(
                f"{label}: time to first decoded picture "
                + ", ".join(f"{t * 1000:.0f}" for t in times)
                + f" ms; median {statistics.median(times) * 1000:.0f} ms"
            )
    finally:
        server.stop()
    print("reproduce: .venv/bin/python benchmarks/late_join.py " + " ".join(argv or sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
