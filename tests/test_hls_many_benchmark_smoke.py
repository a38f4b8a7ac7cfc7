"""A small run of benchmarks/hls_many.py keeps it working (it asserts no timings): every one of
its segmenters gets the whole stream (6 s with a keyframe every 2 s: 2 closed segments each,
in both containers), and it reports CPU per stream-hour and memory."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import require_client

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("container", ["fmp4", "mpegts"])
def test_hls_many_benchmark_feeds_every_stream(container: str) -> None:
    require_client("ffmpeg")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.hls_many", "--streams", "5", "--seconds", "6",
         "--container", container],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    out = result.stdout
    assert "5 streams x 6 s of ~550 kbit/s" in out and f", {container}, interleaved" in out
    assert re.search(r"[0-9.]+ CPU-seconds per stream-hour", out)
    assert "(10 segments)" in out, out
