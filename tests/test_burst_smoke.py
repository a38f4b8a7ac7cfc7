"""A small run of the burst benchmark (:mod:`benchmarks.burst`): 240 players set up all at once
from 4 source addresses, 60 each, on a server with every admission limit at its default.

60 connections of one address pending ``connect`` at the same moment is more than
``max_connecting_per_ip`` (50): counting every pending connection would refuse at least 10
players of each address. They are all younger than ``connecting_grace``, so none is refused and
every player gets every message. (It asserts no timings; the full run is the benchmark.)
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


def test_a_burst_of_60_players_per_address_is_served_with_the_default_limits(
    tmp_path: Path,
) -> None:
    require_c_compiler()
    report = tmp_path / "burst.json"
    command = [
        sys.executable, "-m", "benchmarks.burst",
        "--players", "240", "--arrival-rate", "0", "--setup-concurrency", "240",
        "--duration", "2", "--baseline", "0.5", "--settle", "0.5", "--drain", "1",
        "--json", str(report),
    ]  # fmt: skip
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "--sources 127.0.0.11,127.0.0.12,127.0.0.13,127.0.0.14" in done.stdout
    (result,) = json.loads(report.read_text())["results"]
    assert result["players"] == 240
    assert result["failed_setup"] == 0, done.stdout
    assert result["delivery_ratio"] == 1.0
    assert result["min_player_ratio"] == 1.0
