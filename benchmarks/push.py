"""What pushes (restreams) cost the server that pushes, and whether they slow its publisher.

For each count in ``--pushes``, the benchmark starts a target server B and a server A whose
``[[apps.live.push]]`` tables push every publish to B under that many names, publishes one
synthetic stream (:mod:`benchmarks.publisher`, profile ``--profile``) to A, waits until every
push is live (A's HTTP API), and measures over ``--duration`` seconds: A's CPU, A's resident
memory, the bytes the pushes handed over, and the publisher's largest schedule slip (a
publisher slowed by the server would slip).

Run:  .venv/bin/python -m benchmarks.push --pushes 0,1,4,8 --duration 15
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.fanout import ROOT, cpu_seconds, free_ports, rss_bytes


def _start(temp: Path, name: str, port: int, text: str) -> tuple[subprocess.Popen[str], Path]:
    config = temp / f"{name}.toml"
    config.write_text(text)
    log = temp / f"{name}.log"
    command = [sys.executable, "-m", "fms", "run", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--config", str(config)]
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out, cwd=ROOT, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if "ready" in log.read_text():
            return process, log
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    process.wait()
    raise RuntimeError(f"{name} did not start:\n{log.read_text()}")


def _pushes(http: int) -> list[dict[str, Any]]:
    try:
        url = f"http://127.0.0.1:{http}/api/v1/streams/live/bench"
        with urllib.request.urlopen(url, timeout=5) as response:
            return list(json.loads(response.read()).get("pushes") or [])
    except OSError:
        return []


def run_one(count: int, args: argparse.Namespace, temp: Path) -> dict[str, Any]:
    a_port, b_port, http = free_ports(3)
    target, _ = _start(temp, f"b{count}", b_port, "")
    text = f"[http]\nenabled = true\nport = {http}\n"
    for index in range(count):
        text += f'[[apps.live.push]]\nurl = "rtmp://127.0.0.1:{b_port}/live"\n'
        text += f'name = "{{name}}-{index}"\n'
    try:
        origin, _ = _start(temp, f"a{count}", a_port, text)
    except Exception:
        target.terminate()
        target.wait(30)
        raise
    summary = temp / f"publisher{count}.json"
    publisher = subprocess.Popen(
        [
            sys.executable, "-m", "benchmarks.publisher", "--port", str(a_port),
            "--stream", "bench", "--profile", args.profile, "--no-stdin",
            "--max-seconds", str(args.settle + args.duration + 2), "--out", str(summary),
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if sum(p["state"] == "live" for p in _pushes(http)) == count:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"not every push went live: {_pushes(http)}")
        time.sleep(args.settle)
        cpu, sent = cpu_seconds(origin.pid), sum(p["bytes_sent"] for p in _pushes(http))
        time.sleep(args.duration)
        cpu = cpu_seconds(origin.pid) - cpu
        pushes = _pushes(http)
        sent = sum(p["bytes_sent"] for p in pushes) - sent
        rss = rss_bytes(origin.pid)
        publisher.wait(args.settle + args.duration + 30)
        slip = json.loads(summary.read_text()).get("max_slip_ms", 0.0)
        skipped = sum(p["skipped_messages"] for p in pushes)
    finally:
        publisher.kill()
        for process in (origin, target):
            process.terminate()
            process.wait(30)
    return {
        "pushes": count,
        "cpu_percent": 100 * cpu / args.duration,
        "rss_mib": rss / 2**20,
        "push_kbit_s": sent * 8 / 1000 / args.duration,
        "skipped": skipped,
        "max_slip_ms": slip,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.push")
    parser.add_argument("--pushes", default="0,1,4,8", help="push counts, comma-separated")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--profile", default="550k")
    args = parser.parse_args(argv)
    counts = [int(n) for n in re.split(r"[, ]+", args.pushes.strip()) if n]
    temp = Path(tempfile.mkdtemp(prefix="pyfms-push-"))
    rows = [run_one(count, args, temp) for count in counts]
    print(f"one {args.profile} publish to A, pushed to B; {args.duration:g} s measured per row")
    print("pushes  A CPU %  A RSS MiB  pushed kbit/s  skipped  publisher max slip ms")
    for row in rows:
        print(
            f"{row['pushes']:>6}  {row['cpu_percent']:>7.1f}  {row['rss_mib']:>9.1f}  "
            f"{row['push_kbit_s']:>13.0f}  {row['skipped']:>7}  {row['max_slip_ms']:>21.1f}"
        )
    print("reproduce: " + shlex.join([".venv/bin/python", "-m", "benchmarks.push", *sys.argv[1:]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
