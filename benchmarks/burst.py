"""A burst of players from a few addresses, with the server's default admission settings.

Issue 12's load test: 10,000 players arriving at 1,000 a second from 4 source addresses (a
NAT, a restreaming service, an office), all playing one stream. With the old per-address rule
(at most 50 connections of one address pending ``connect``), a third of them were closed during
the handshake: under load the server takes longer than 200 ms to reach ``connect``, so more
than 50 of one address are pending at once. The rule now counts only connections pending longer
than ``[limits] connecting_grace`` (2 s), so none should be refused.

This is :mod:`benchmarks.fanout` with the burst's options and a configuration that sets nothing
but the log level (every admission limit at its default); any fanout option may be added or
overridden after these. "failed setup" in the report counts the players refused or closed
during their setup. Compare with an older tree: ``--fms-tree DIR`` (a ``git archive``).

Run:  .venv/bin/python -m benchmarks.burst
      .venv/bin/python -m benchmarks.burst --players 2000 --duration 3   # a quick look
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from benchmarks import fanout

SOURCES = ("127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14")
"""Four client addresses (Linux routes all of 127.0.0.0/8 to the loopback)."""


def burst_arguments(config: Path) -> list[str]:
    return [
        "--servers", "fms",
        "--players", "10000",
        "--arrival-rate", "1000",
        "--sources", ",".join(SOURCES),
        "--setup-concurrency", "10000",  # the arrival rate alone paces the players
        "--duration", "5",
        "--fms-config", str(config),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    extra = list(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="pyfms-burst-") as temp:
        config = Path(temp) / "fms.toml"
        config.write_text('[server]\nlog_level = "info"\n')  # every limit at its default
        arguments = burst_arguments(config) + extra
        print("benchmarks.burst: python -m benchmarks.fanout " + " ".join(arguments), flush=True)
        return fanout.main(arguments)


if __name__ == "__main__":
    raise SystemExit(main())
