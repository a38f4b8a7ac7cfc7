"""A short run of the HLS muxing benchmark keeps it working (it asserts no timings)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.e2e.harness import require_client

ROOT = Path(__file__).resolve().parents[1]


def test_hls_mux_benchmark_reports_every_contender(tmp_path: Path) -> None:
    """2 s of 320x240: our MPEG-TS muxer gets a figure, PyAV and our fMP4 muxer either get one
    or the reason they were left out, and the command that reproduces the run is printed."""
    require_client("ffmpeg")
    command = [
        sys.executable, "-m", "benchmarks.hls_mux", "--seconds", "2", "--size", "320x240",
        "--bitrate", "300k", "--segment", "1", "--rounds", "1", "--cache", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    figure = r"\s+[0-9.]+\s+[0-9.]+\s+[0-9]+$"
    assert re.search(r"^ours mpegts" + figure, done.stdout, re.MULTILINE), done.stdout
    for label in ("ours fmp4", "pyav mpegts", "pyav fmp4", "pyav mpegts, a container per"):
        assert re.search(rf"^{label}.*({figure}|skipped: .+)", done.stdout, re.MULTILINE), label
    assert "reproduce: " in done.stdout
    assert "2 segments" in done.stdout
