"""A small run of the fan-out benchmark keeps it working (it asserts no timings).

``benchmarks.fanout`` against pyFMS only, 20 players for 3 s: the load generator must build, the
publisher must publish, every player must get every message of the window, and the report must
carry latency figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ci import require_c_compiler

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("workers", [1, 2])
def test_fanout_benchmark_delivers_every_message_to_every_player(
    tmp_path: Path, workers: int
) -> None:
    """Every message sent in the window reaches all 20 players (with one process, and with two
    workers, where most players are on another worker than the publisher); latency numbers
    are reported."""
    require_c_compiler()
    report = tmp_path / "fanout.json"
    command = [
        sys.executable, "-m", "benchmarks.fanout", "--servers", "fms",
        "--players", "20", "--duration", "3", "--baseline", "0.5", "--settle", "0.5",
        "--drain", "1", "--json", str(report), "--fms-workers", str(workers),
    ]  # fmt: skip
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "reproduce: " in done.stdout
    (result,) = json.loads(report.read_text())["results"]
    assert result["server"] == ("pyFMS" if workers == 1 else "pyFMS 2 workers")
    assert result["expected_per_player"] > 0
    assert result["delivery_ratio"] == 1.0
    assert result["min_player_ratio"] == 1.0
    assert result["disconnected"] == 0 and result["failed_setup"] == 0
    for key in ("latency_p50_ms", "latency_p99_ms", "latency_max_ms"):
        assert isinstance(result[key], float), key
    assert result["cpu_per_million"] is not None


def test_fanout_benchmark_delivers_every_message_to_every_http_flv_viewer(
    tmp_path: Path,
) -> None:
    """With ``--viewers http-flv`` the load generator's 10 players are HTTP-FLV viewers of the
    server's HTTP listener (chunked FLV bodies, decoded tag by tag): every message sent in the
    window reaches each of them, and the report says which kind of player it measured."""
    require_c_compiler()
    report = tmp_path / "fanout.json"
    command = [
        sys.executable, "-m", "benchmarks.fanout", "--servers", "fms", "--viewers", "http-flv",
        "--players", "10", "--duration", "3", "--baseline", "0.5", "--settle", "0.5",
        "--drain", "1", "--json", str(report),
    ]  # fmt: skip
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "10 HTTP-FLV players" in done.stdout
    (result,) = json.loads(report.read_text())["results"]
    assert result["server"] == "pyFMS HTTP-FLV" and result["viewers"] == "http-flv"
    assert result["expected_per_player"] > 0
    assert result["delivered"] == 10 * result["expected_per_player"]
    assert result["min_player_ratio"] == 1.0
    assert result["disconnected"] == 0 and result["failed_setup"] == 0 and result["duplicates"] == 0
    assert result["latency_samples"] == result["delivered"]
    assert result["cpu_per_million"] is not None
