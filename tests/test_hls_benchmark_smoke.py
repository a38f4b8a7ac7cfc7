"""A small run of benchmarks/hls_segmenter.py keeps it working (it asserts no timings): it makes its
stream, feeds it, and reports a cost per message and, for both muxers, the bytes they wrote
(within 2 % of each other: both carried the whole stream)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import require_client

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.e2e


def test_hls_mux_benchmark_reports_its_figures() -> None:
    require_client("ffmpeg")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.hls_segmenter", "--seconds", "6", "--passes", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    out = result.stdout
    assert "command: .venv/bin/python -m benchmarks.hls_segmenter --seconds 6 --passes 1" in out
    assert re.search(r"ours \(segmenter whole\): [0-9.]+ us per message, 3 segments", out)
    ours = re.search(r"ours \(muxer only\): [0-9.]+ us per sample, (\d+) bytes out", out)
    assert ours is not None
    theirs = re.search(r"PyAV \S+ \(mp4 muxer, fragmented\): [0-9.]+ us per sample, (\d+)", out)
    if theirs is not None:  # PyAV is optional: a comparison, not a dependency
        assert abs(int(ours.group(1)) - int(theirs.group(1))) < int(ours.group(1)) // 50
