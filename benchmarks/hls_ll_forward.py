"""What a Low-Latency HLS part costs when another worker forwards it (``--workers 2``).

A ``fms run --workers 2`` process with ``[http]`` on; Debian's FFmpeg publishes 640x360
H.264+AAC (~550 kbit/s, a keyframe every 2 s, 2 s segments, 0.5 s parts) to worker 0's own
port, so worker 0 muxes. Each round reads ``ll.m3u8``'s preload hint, then at once opens
``--requests`` fresh connections to the shared HTTP port asking the hinted part (not made
yet: held until it is) and as many asking the blocking reload for it
(``_HLS_msn``/``_HLS_part``); the kernel hands each to either worker. A held request answers
when the part is made, so within a round the time local answers (worker 0) and forwarded ones
(worker 1, ``X-FMS-HLS-Muxer``) complete differ by what the forwarding adds. Every other
round also asks, on fresh connections, for a part already made that worker 1 has not fetched
yet (time to last byte: one control round trip, then kept). Printed: per kind, the median over
rounds of (median forwarded - median local) in ms, and the load average. Not pass/fail.

Run:  .venv/bin/python -m benchmarks.hls_ll_forward
      .venv/bin/python -m benchmarks.hls_ll_forward --rounds 40 --requests 8
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.fanout import free_port
from benchmarks.hls_serve import playlist_with_segment, wait_listening

HINT = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="seg(\d+)\.(\d+)\.m4s"')


def fetch(port: int, path: str, out: list[tuple[bool, float, float]]) -> None:
    """GET ``path`` on a fresh connection; appends (forwarded, start, end) in monotonic s."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        if response.status == 200:
            forwarded = response.getheader("X-FMS-HLS-Muxer") is not None
            out.append((forwarded, started, time.monotonic()))
    finally:
        conn.close()


def together(port: int, paths: list[str]) -> list[tuple[bool, float, float]]:
    """Every path at once, each on its own connection and thread."""
    out: list[tuple[bool, float, float]] = []
    threads = [threading.Thread(target=fetch, args=(port, path, out)) for path in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return out


def gap(results: list[tuple[bool, float, float]], since_start: bool) -> float | None:
    """Median forwarded minus median local (s): of completion times (held requests, which
    complete when the part is made), or of request durations (``since_start``)."""
    values: dict[bool, list[float]] = {False: [], True: []}
    for forwarded, start, end in results:
        values[forwarded].append(end - start if since_start else end)
    if not values[False] or not values[True]:
        return None
    return statistics.median(values[True]) - statistics.median(values[False])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--requests", type=int, default=6, help="fresh connections per kind")
    args = parser.parse_args()
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        sys.exit("ffmpeg is needed (apt-get install ffmpeg)")
    rtmp, port = free_port(), free_port()
    workers = [free_port(), free_port()]
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "fms.toml"
        config.write_text(
            f'[server]\nlog_level = "warn"\nworker_ports = {workers}\n'
            f"[http]\nenabled = true\nport = {port}\nmax_connections = 256\n"
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "fms", "run", "--host", "127.0.0.1", "--port", str(rtmp),
             "--config", str(config), "--workers", "2"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        publisher = None
        try:
            wait_listening(port)
            publisher = subprocess.Popen(
                [ffmpeg, "-v", "error", "-re",
                 "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
                 "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
                 "-c:v", "libx264", "-preset", "veryfast", "-b:v", "480k", "-g", "50",
                 "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
                 "-f", "flv", f"rtmp://127.0.0.1:{workers[0]}/live/cam"],
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
            base = f"http://127.0.0.1:{port}/live/cam"
            playlist_with_segment(f"{base}/ll.m3u8")
            gaps: dict[str, list[float]] = {"hinted part": [], "blocking reload": [], "part": []}
            skipped: str | None = None
            for round_ in range(args.rounds):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("GET", "/live/cam/ll.m3u8")
                text = conn.getresponse().read().decode()
                conn.close()
                hint = HINT.search(text)
                if hint is None:
                    continue
                msn, part = hint.group(1), hint.group(2)
                if skipped is not None:
                    made = together(port, [f"/live/cam/{skipped}"] * args.requests)
                    found = gap(made, since_start=True)
                    if found is not None:
                        gaps["part"].append(found)
                    skipped = None
                if round_ % 2:
                    skipped = f"seg{msn}.{part}.m4s"  # nobody asks it now: made, not kept
                    time.sleep(0.6)
                    continue
                paths = [f"/live/cam/seg{msn}.{part}.m4s"] * args.requests
                held = together(port, paths)
                reloads = [f"/live/cam/ll.m3u8?_HLS_msn={msn}&_HLS_part={int(part) + 1}"]
                reloaded = together(port, reloads * args.requests)
                for kind, results in (("hinted part", held), ("blocking reload", reloaded)):
                    found = gap(results, since_start=False)
                    if found is not None:
                        gaps[kind].append(found)
            print(
                "command: "
                + " ".join([".venv/bin/python -m benchmarks.hls_ll_forward", *sys.argv[1:]])
            )
            print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
            for kind, values in gaps.items():
                if values:
                    print(
                        f"{kind}: forwarded - local, median of {len(values)} rounds:"
                        f" {statistics.median(values) * 1e3:.1f} ms"
                        f" (range {min(values) * 1e3:.1f} .. {max(values) * 1e3:.1f} ms)"
                    )
        finally:
            if publisher is not None:
                publisher.kill()
                publisher.wait()
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
