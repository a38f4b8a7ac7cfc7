"""``benchmarks.latency_table`` keeps working (it asserts no timings): each flush mode it names
becomes the configuration it says, and a small run delivers every message in each mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.latency_table import mode_config
from fms.config import parse_config
from tests.support.ci import require_c_compiler

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("mode", "flush", "interval", "share"),
    [
        ("adaptive", "adaptive", 0.1, 0.7),
        ("adaptive:0.25", "adaptive", 0.1, 0.25),
        ("fixed", "fixed", 0.1, 0.7),
        ("fixed:0.02", "fixed", 0.02, 0.7),
    ],
)
def test_a_mode_is_the_flush_configuration_it_names(
    mode: str, flush: str, interval: float, share: float
) -> None:
    config = parse_config(mode_config(mode, 19_000))
    streams = config.streams
    assert (streams.flush, streams.flush_interval, streams.flush_share) == (flush, interval, share)
    assert config.limits.max_connections == 20_000
    assert config.limits.max_connecting_per_ip >= 19_000


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="sometimes"):
        mode_config("sometimes", 10)


@pytest.mark.e2e
def test_a_small_table_delivers_every_message_in_both_modes(tmp_path: Path) -> None:
    """20 players for 2 s, pyFMS only, adaptive then fixed: both rows, every message."""
    require_c_compiler()
    report = tmp_path / "table.json"
    command = [
        sys.executable, "-m", "benchmarks.latency_table", "--servers", "fms",
        "--players", "20", "--duration", "2", "--baseline", "0.5", "--settle", "0.5",
        "--drain", "1", "--json", str(report),
    ]  # fmt: skip
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "reproduce: " in done.stdout and "| players | server | p50 ms" in done.stdout
    results = json.loads(report.read_text())["results"]
    assert [r["label"] for r in results] == ["pyFMS adaptive (share 0.7)", "pyFMS fixed 0.1 s"]
    for result in results:
        assert result["players"] == 20 and result["delivery_ratio"] == 1.0
        assert isinstance(result["latency_p99_ms"], float)
        # the window's flushes, read from the server's /metrics
        assert result["flushes_per_second"] > 0
        assert isinstance(result["interval_p99_ms"], float)
