"""Requests per second for a hot HLS segment and for the playlist, from the real server.

A ``fms run`` process with ``[http]`` on; Debian's FFmpeg publishes 640x360 H.264+AAC
(~550 kbit/s, 2 s segments of ~140 kB) in real time; once the playlist lists a segment, this
process opens ``--connections`` keep-alive HTTP/1.1 connections and, for ``--duration``
seconds each, asks them for the newest segment over and over, then for the playlist (a
viewer's session is decided once, then remembered). Printed: responses per second, bytes per
second, and the server's CPU (user + system, from /proc) per thousand responses. The client
runs in this process (asyncio), on the same machine: on 2 cores it takes a share of the CPU
the server could have used, so the figures are a floor. Not pass/fail.

With ``--workers 2`` the server runs two workers, FFmpeg publishes to worker 0's own port,
and the connections land on either worker: those on worker 1 are answered with worker 0's
bytes over the control channel (``fms.http.hlsforward``). Then the CPU is that of every
process of the server, and the responses are told apart by ``X-FMS-HLS-Muxer`` (forwarded)
with the median time from request to last byte of each kind.

Run:  .venv/bin/python -m benchmarks.hls_serve
      .venv/bin/python -m benchmarks.hls_serve --connections 50 --duration 5
      .venv/bin/python -m benchmarks.hls_serve --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.fanout import free_port


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its children (workers) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return total + sum(cpu_seconds(int(child)) for child in children)


async def hammer(
    port: int, path: str, connections: int, duration: float, times: dict[bool, list[float]]
) -> tuple[int, int, int]:
    """Responses, body bytes and non-200 answers of ``connections`` keep-alive clients
    asking ``path`` for ``duration`` seconds; ``times[forwarded]`` gets each response's
    seconds from request to last byte."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    counts = [0, 0, 0]
    stop = time.monotonic() + duration

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < stop:
                asked = time.monotonic()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
                await reader.readexactly(length)
                times[b"X-Fms-Hls-Muxer" in head].append(time.monotonic() - asked)
                counts[0] += 1
                counts[1] += length
                if not head.startswith(b"HTTP/1.1 200"):
                    counts[2] += 1
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    return counts[0], counts[1], counts[2]


def wait_listening(port: int, deadline: float = 30.0) -> None:
    """Until 127.0.0.1:``port`` accepts a connection."""
    end = time.monotonic() + deadline
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > end:
                sys.exit(f"nothing listens on port {port} after {deadline:g}s")
            time.sleep(0.1)


def playlist_with_segment(url: str, deadline: float = 60.0) -> str:
    """The playlist once the publisher is on and a segment is listed."""
    end = time.monotonic() + deadline
    while True:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                text = str(response.read().decode())
            if "#EXTINF" in text:
                return text
        except OSError:
            pass  # 404 until the publisher's stream is there
        if time.monotonic() > end:
            sys.exit(f"no segment in {url} after {deadline:g}s")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per path")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    args = parser.parse_args()
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        sys.exit("ffmpeg is needed (apt-get install ffmpeg)")
    rtmp, http = free_port(), free_port()
    workers = [free_port() for _ in range(args.workers)] if args.workers > 1 else []
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "fms.toml"
        config.write_text(
            f'[server]\nlog_level = "warn"\nworker_ports = {workers}\n'
            f"[http]\nenabled = true\nport = {http}\n"
            f"max_connections = {args.connections + 16}\n"
        )
        extra = ["--workers", str(args.workers)] if workers else []
        server = subprocess.Popen(
            [sys.executable, "-m", "fms", "run", "--host", "127.0.0.1", "--port", str(rtmp),
             "--config", str(config), *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        if workers:
            rtmp = workers[0]  # publish to worker 0: the others forward
        publisher = None
        try:
            wait_listening(http)
            publisher = subprocess.Popen(
                [ffmpeg, "-v", "error", "-re",
                 "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
                 "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
                 "-c:v", "libx264", "-preset", "veryfast", "-b:v", "480k", "-g", "50",
                 "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
                 "-f", "flv", f"rtmp://127.0.0.1:{rtmp}/live/cam"],
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
            base = f"http://127.0.0.1:{http}/live/cam"
            playlist = playlist_with_segment(f"{base}/index.m3u8")
            segment = [line for line in playlist.splitlines() if line.startswith("seg")][-1]
            command = " ".join([".venv/bin/python -m benchmarks.hls_serve", *sys.argv[1:]])
            print(f"command: {command}")
            print(f"{args.connections} keep-alive connections, {args.duration:g} s per path")
            for label, path in (
                (f"segment {segment}", f"/live/cam/{segment}"),
                ("playlist", "/live/cam/index.m3u8"),
            ):
                before = cpu_seconds(server.pid)
                started = time.monotonic()
                times: dict[bool, list[float]] = {False: [], True: []}
                done, size, bad = asyncio.run(
                    hammer(http, path, args.connections, args.duration, times)
                )
                elapsed = time.monotonic() - started
                cpu = cpu_seconds(server.pid) - before
                print(
                    f"{label}: {done / elapsed:.0f} responses/s, {size / elapsed / 1e6:.1f} MB/s,"
                    f" {bad} not 200; server CPU {cpu / elapsed * 100:.0f}% of a core,"
                    f" {cpu / max(done, 1) * 1e6:.0f} us per response"
                )
                for forwarded, spent in times.items():
                    if spent and workers:
                        kind = "forwarded" if forwarded else "local"
                        print(
                            f"  {kind}: {len(spent)} responses,"
                            f" median {statistics.median(spent) * 1e3:.2f} ms"
                        )
        finally:
            if publisher is not None:
                publisher.kill()
                publisher.wait()
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
