"""What streams nobody watches cost the other workers (``fms run --workers 2``).

Every publish is relayed to every other worker (so a name is claimed, and the stream listed,
everywhere), but media crosses only to a worker that has players for it. This benchmark
publishes ``--streams`` synthetic 550 kbit/s streams (:mod:`benchmarks.publisher`) to worker
0's own port, with no player anywhere, and reports each worker's CPU over ``--duration``
seconds: worker 0 does the ingest, worker 1 should do almost nothing.

Run:  .venv/bin/python -m benchmarks.idle_relay --streams 20 --duration 20
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.fanout import ROOT, cpu_seconds, free_ports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.idle_relay")
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--settle", type=float, default=5.0)
    args = parser.parse_args(argv)
    temp = Path(tempfile.mkdtemp(prefix="pyfms-idle-relay-"))
    ports = free_ports(2)
    config = temp / "fms.toml"
    config.write_text(f'[server]\nworker_ports = {ports}\nlog_level = "warn"\n')
    log = (temp / "fms.log").open("w")
    command = [sys.executable, "-m", "fms", "run", "--host", "127.0.0.1", "--port", "0"]
    command += ["--workers", "2", "--config", str(config), "--log-level", "info"]
    server = subprocess.Popen(command, stderr=log, stdout=log, cwd=ROOT)
    publishers: list[subprocess.Popen[bytes]] = []
    try:
        pids: dict[int, int] = {}
        deadline = time.monotonic() + 30
        while len(pids) < 2 and time.monotonic() < deadline:
            text = (temp / "fms.log").read_text()
            for index, pid in re.findall(r"worker (\d) started \(pid (\d+)\)", text):
                pids[int(index)] = int(pid)
            if "listening on rtmp://" not in text:
                pids.clear()
            time.sleep(0.1)
        if len(pids) < 2:
            print("the server did not start:\n" + (temp / "fms.log").read_text(), file=sys.stderr)
            return 1
        bound = args.settle + args.duration + 30
        for n in range(args.streams):
            publisher = [sys.executable, "-m", "benchmarks.publisher", "--port", str(ports[0])]
            publisher += ["--stream", f"idle{n}", "--max-seconds", str(bound), "--no-stdin"]
            publisher += ["--out", str(temp / f"publisher{n}.json")]
            publishers.append(
                subprocess.Popen(
                    publisher, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT
                )
            )
        time.sleep(args.settle)
        before = {i: cpu_seconds(pid) for i, pid in pids.items()}
        time.sleep(args.duration)
        after = {i: cpu_seconds(pid) for i, pid in pids.items()}
    finally:
        for publisher in publishers:
            publisher.kill()
        server.terminate()
        server.wait(30)
        log.close()
    print(
        f"{args.streams} streams of 550 kbit/s published to worker 0, no players, "
        f"{args.duration:g} s measured:"
    )
    for index in sorted(pids):
        used = after[index] - before[index]
        print(f"  worker {index}: {used:.2f} CPU-s = {100 * used / args.duration:.1f} % of a core")
    command_line = shlex.join([".venv/bin/python", "-m", "benchmarks.idle_relay", *sys.argv[1:]])
    print(f"reproduce: {command_line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
