"""What the HTTP API and metrics cost the fan-out: the fan-out benchmark (:mod:`benchmarks.fanout`)
run with ``[http]`` on, alternately without and with a scraper that fetches ``/metrics``,
``/api/v1/streams``, ``/api/v1/clients?limit=100`` and ``/api/v1/server`` once a second
(what a Prometheus server and the dashboard do), comparing the server's CPU per million delivered
messages. Each scrape's size and time are printed too. Not pass/fail.

Run:  .venv/bin/python -m benchmarks.http_scrape --players 10000 --duration 30 --rounds 2
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from benchmarks.fanout import FMSServer, Scenario, build_loadgen, free_port, run_scenario

PATHS = ("/metrics", "/api/v1/streams", "/api/v1/clients?limit=100", "/api/v1/server")


class Scraper(threading.Thread):
    """Fetches every path of :data:`PATHS` once a second until stopped; keeps each fetch's
    time (s) and size (bytes)."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stopping = threading.Event()
        self.fetches: dict[str, list[tuple[float, int]]] = {path: [] for path in PATHS}
        self.errors = 0

    def run(self) -> None:
        while not self.stopping.is_set():
            started = time.monotonic()
            for path in PATHS:
                begin = time.monotonic()
                try:
                    with urllib.request.urlopen(
                        f"http://127.0.0.1:{self.port}{path}", timeout=10
                    ) as r:
                        size = len(r.read())
                    self.fetches[path].append((time.monotonic() - begin, size))
                except OSError:
                    if any(self.fetches.values()):  # not the server still starting
                        self.errors += 1
            self.stopping.wait(max(0.0, 1.0 - (time.monotonic() - started)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--players", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs")
    args = parser.parse_args(argv)
    scenario = Scenario(
        players=args.players, duration=args.duration, profile="550k",
        procs=max(1, -(-args.players // 5000)), setup_concurrency=100, setup_timeout=30.0,
        setup_budget=120.0, settle=2.0, drain=3.0, baseline=2.0, pin=True,
    )  # fmt: skip
    loadgen = build_loadgen()
    cpu: dict[bool, list[float]] = {False: [], True: []}
    temp = Path(tempfile.mkdtemp(prefix="pyfms-http-scrape-"))
    for round_ in range(args.rounds):
        for scraping in (False, True):
            workdir = temp / f"{round_}-{int(scraping)}"
            workdir.mkdir()
            port = free_port()
            config = workdir / "fms.toml"
            config.write_text(
                f"[limits]\nmax_connections = {max(10_000, args.players + 1_000)}\n"
                f"max_connecting_per_ip = {args.players + 10}\n"
                f"[http]\nenabled = true\nport = {port}\n"
            )
            scraper = Scraper(port) if scraping else None
            if scraper is not None:
                scraper.start()
            server = FMSServer(workdir, config, "info", players=args.players)
            result = run_scenario(server, scenario, loadgen, workdir)
            if scraper is not None:
                scraper.stopping.set()
                scraper.join()
            print(
                f"round {round_} scraping={scraping}: delivery {result.delivery_ratio:.4f}, "
                f"CPU {result.cpu_per_million} s per million messages",
                flush=True,
            )
            if result.cpu_per_million is not None:
                cpu[scraping].append(result.cpu_per_million)
            if scraper is not None:
                for path, fetches in scraper.fetches.items():
                    if fetches:
                        times = sorted(t for t, _ in fetches)
                        print(
                            f"  {path}: {len(fetches)} fetches, {fetches[-1][1]} bytes, "
                            f"median {statistics.median(times) * 1000:.1f} ms, "
                            f"max {times[-1] * 1000:.1f} ms",
                            flush=True,
                        )
                print(f"  failed fetches (the server stops before the scraper): {scraper.errors}")
    if cpu[False] and cpu[True]:
        off, on = statistics.mean(cpu[False]), statistics.mean(cpu[True])
        print(
            f"CPU per million messages: {off:.2f} s without scraping, {on:.2f} s with "
            f"({(on - off) / off * 100:+.1f} %)"
        )
    print("command: " + shlex.join([sys.executable, "-m", "benchmarks.http_scrape", *sys.argv[1:]]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
