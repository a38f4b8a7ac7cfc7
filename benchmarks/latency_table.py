"""Latency against players: the adaptive flush, the fixed flush and nginx-rtmp (issue 21).

For each player count (``--players``, default 1,000 / 5,000 / 10,000 / 19,000) and each server
(``--servers``: pyFMS in each flush mode of ``--modes``, then nginx-rtmp), runs the scenario of
:mod:`benchmarks.fanout` (one 550 kbit/s publisher, the C load generator, the server pinned to
CPU 0) one after the other, and prints one table: p50/p99 latency (publisher write to player
read), the share of the window's messages delivered, and the server's CPU-seconds per million
delivered messages, with the load average before each run (the machine's other work shows in
latency first). A pyFMS mode is ``adaptive``, ``fixed`` (``flush_interval = 0.1``), or either
with its number: ``adaptive:0.25`` (``flush_share``) or ``fixed:0.02`` (``flush_interval``).
``--viewers http-flv`` (or ``both``) measures pyFMS's HTTP-FLV viewers too, in each mode, after
its RTMP players (:mod:`benchmarks.fanout`'s ``--viewers``). For pyFMS the table also gives the
window's fan-out flushes, read from its ``/metrics`` (``fms_flush_seconds`` and
``fms_flush_interval_seconds``): flushes a second, their mean duration, and the histogram
buckets holding the p50 and p99 of the time from one flush's start to the next.
Benchmarks are not pass/fail: the table is printed with the command line that reproduces it.

Run:  .venv/bin/python -m benchmarks.latency_table                    # the whole table
      .venv/bin/python -m benchmarks.latency_table --players 1000 --duration 8
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

from benchmarks.fanout import (
    VIEWERS,
    BenchmarkError,
    FMSServer,
    NginxServer,
    Result,
    Scenario,
    Server,
    build_loadgen,
    http_section,
    run_scenario,
)
from benchmarks.fanout import label as viewers_label
from fms.live.pacing import SHARE

DEFAULT_PLAYERS = "1000,5000,10000,19000"


def mode_config(mode: str, players: int) -> str:
    """The ``fms.toml`` of one pyFMS mode (``adaptive``, ``fixed``, ``adaptive:SHARE``,
    ``fixed:INTERVAL``), with the admission caps lifted to fit ``players`` from one address."""
    kind, _, number = mode.partition(":")
    if kind not in ("adaptive", "fixed"):
        raise ValueError(f"unknown mode {mode!r}: adaptive[:share] or fixed[:interval]")
    streams = f'flush = "{kind}"\nflush_interval = {0.1 if kind == "adaptive" else number or 0.1}\n'
    if kind == "adaptive" and number:
        streams += f"flush_share = {float(number)}\n"
    return (
        '[server]\nlog_level = "info"\n'
        f"[limits]\nmax_connections = {max(10_000, players + 1_000)}\n"
        f"max_connecting_per_ip = {players + 10}\n[streams]\n{streams}"
    )


def label(mode: str) -> str:
    kind, _, number = mode.partition(":")
    if kind == "adaptive":
        return f"pyFMS adaptive (share {number or SHARE})"
    return f"pyFMS fixed {number or 0.1} s"


def flush_columns(r: Result) -> str:
    """pyFMS's flushes in the window (its /metrics): how many a second, the mean duration, and
    the histogram buckets that hold the p50 and p99 of the time from one start to the next
    (``<= bound``); dashes for nginx-rtmp."""
    if r.flushes_per_second is None:
        return "- | - | -"
    mean = "-" if r.flush_mean_ms is None else f"{r.flush_mean_ms:.1f}"
    p50 = "-" if r.interval_p50_ms is None else f"{r.interval_p50_ms:g}"
    p99 = "-" if r.interval_p99_ms is None else f"{r.interval_p99_ms:g}"
    return f"{r.flushes_per_second:.1f} | {mean} | <={p50} / <={p99}"


def format_latency_table(rows: list[tuple[str, float, Result]]) -> str:
    lines = [
        "| players | server | p50 ms | p99 ms | delivered % | worst player % | CPU-s per M msgs "
        "| server CPU % | flushes/s | flush ms | flush interval p50/p99 ms | load before |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, load, r in rows:
        p50 = "-" if r.latency_p50_ms is None else f"{r.latency_p50_ms:.1f}"
        p99 = "-" if r.latency_p99_ms is None else f"{r.latency_p99_ms:.1f}"
        cpu = "-" if r.cpu_per_million is None else f"{r.cpu_per_million:.2f}"
        lines.append(
            f"| {r.players:,} | {name} | {p50} | {p99} | {100 * r.delivery_ratio:.2f} "
            f"| {100 * r.min_player_ratio:.2f} | {cpu} | {r.server_cpu_percent:.0f} "
            f"| {flush_columns(r)} | {load:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.latency_table", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--players", default=DEFAULT_PLAYERS, help="comma-separated counts")
    parser.add_argument("--modes", default="adaptive,fixed", help="pyFMS flush modes")
    parser.add_argument("--servers", default="fms,nginx", help="fms, nginx or both")
    parser.add_argument(
        "--viewers",
        default="rtmp",
        choices=[*VIEWERS, "both"],
        help="pyFMS's players: rtmp, http-flv, or both (RTMP then HTTP-FLV in each mode)",
    )
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--settle", type=float, default=2.0)
    parser.add_argument("--drain", type=float, default=3.0)
    parser.add_argument("--baseline", type=float, default=2.0)
    parser.add_argument("--json", type=Path, help="write every result here")
    args = parser.parse_args(argv)
    counts = [int(p) for p in args.players.split(",") if p.strip()]
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not counts or min(counts) < 1 or set(servers) - {"fms", "nginx"}:
        print("--players: counts >= 1; --servers: fms, nginx", file=sys.stderr)
        return 2
    for mode in modes:
        mode_config(mode, 1)  # an unknown mode stops here, before any run
    rows: list[tuple[str, float, Result]] = []
    temp = Path(tempfile.mkdtemp(prefix="pyfms-latency-"))
    try:
        loadgen = build_loadgen()
        for players in counts:
            scenario = Scenario(
                players=players,
                duration=args.duration,
                profile="550k",
                procs=max(1, math.ceil(players / 5000)),
                setup_concurrency=100,
                setup_timeout=30.0,
                setup_budget=max(120.0, players / 50),
                settle=args.settle,
                drain=args.drain,
                baseline=args.baseline,
                pin=True,
            )
            runs: list[tuple[str, Server, str]] = []
            kinds = list(VIEWERS) if args.viewers == "both" else [args.viewers]
            for index, mode in enumerate(modes if "fms" in servers else []):
                for kind in kinds:
                    # modes may repeat: the index keeps the folders apart
                    workdir = temp / f"{players}-{index}-{mode.replace(':', '-')}-{kind}"
                    workdir.mkdir()
                    config = workdir / "fms.toml"
                    # The HTTP listener serves HTTP-FLV viewers, and /metrics in every run
                    # (the flush figures).
                    config.write_text(mode_config(mode, players) + http_section(players))
                    server = FMSServer(workdir, config, "info", players=players, http=True)
                    name = label(mode) + ("" if kind == "rtmp" else f" {viewers_label(kind)}")
                    runs.append((name, server, kind))
            if "nginx" in servers:
                workdir = temp / f"{players}-nginx"
                workdir.mkdir()
                runs.append(("nginx-rtmp", NginxServer(workdir), "rtmp"))
            for name, server, kind in runs:
                load = os.getloadavg()[0]
                try:
                    run = replace(scenario, viewers=kind)
                    result = run_scenario(server, run, loadgen, server.workdir)
                except BenchmarkError as exc:
                    print(f"== {name}, {players} players: failed: {exc}", file=sys.stderr)
                    continue
                rows.append((name, load, result))
                print(format_latency_table(rows[-1:]).splitlines()[-1], flush=True)
    except BenchmarkError as exc:
        print(f"the benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    print()
    print(format_latency_table(rows))
    argv_used = argv if argv is not None else sys.argv[1:]
    command = shlex.join([".venv/bin/python", "-m", "benchmarks.latency_table", *argv_used])
    print(f"reproduce: {command}")
    if args.json:
        payload = {
            "command": command,
            "results": [{**asdict(r), "label": n, "load": load} for n, load, r in rows],
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
