"""The recorder plugin end to end: FFmpeg publishes to the real server, ffprobe reads the file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.e2e.harness import (
    ServerProcess,
    ffmpeg_publish_command,
    finish,
    require_client,
    run_client,
    start,
)

pytestmark = pytest.mark.e2e

FPS = 25
SECONDS = 3


def test_a_published_stream_is_recorded_with_its_duration_and_every_frame(
    tmp_path: Path,
) -> None:
    recordings = tmp_path / "recordings"
    config = tmp_path / "fms.toml"
    config.write_text(
        f'[[apps.live.plugins]]\nuse = "recorder"\ndirectory = {json.dumps(str(recordings))}\n',
        encoding="utf-8",
    )
    server = ServerProcess("--log-level", "info", config=config)
    try:
        publisher = start(ffmpeg_publish_command(f"{server.url}/live/cam", SECONDS, fps=FPS))
        status, _, err = finish(publisher)
        assert status == 0, err.decode(errors="replace")
        line = server.wait_for_line(r"recording finished \S+cam-\d{8}T\d{6}Z\.flv", timeout=10)
    finally:
        assert server.stop() == 0, server.log()
    match = re.search(r"recording finished (\S+\.flv)", line)
    assert match is not None
    path = Path(match.group(1))
    assert path.parent == recordings / "live" and path.is_file()

    probe = run_client([
        require_client("ffprobe"), "-v", "error", "-count_frames",
        "-show_entries", "format=duration:stream=codec_type,codec_name,nb_read_frames",
        "-of", "json", str(path),
    ])  # fmt: skip
    assert probe.returncode == 0, probe.stderr.decode(errors="replace")
    report = json.loads(probe.stdout)
    codecs = {s["codec_type"]: s["codec_name"] for s in report["streams"]}
    assert codecs == {"video": "h264", "audio": "aac"}
    frames = {s["codec_name"]: int(s["nb_read_frames"]) for s in report["streams"]}
    assert frames["h264"] == SECONDS * FPS
    assert frames["aac"] >= SECONDS * 44100 // 1024 - 2
    assert float(report["format"]["duration"]) == pytest.approx(SECONDS, abs=0.2)
