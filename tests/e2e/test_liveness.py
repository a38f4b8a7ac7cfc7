"""Liveness is judged by bytes received: a player that only watches stays alive by answering
pings, however long it watches a stream too thin for FFmpeg to acknowledge (it acknowledges
every 1.25 MB with our 2.5 MB window)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.harness import (
    ServerProcess,
    finish,
    frames_by_codec,
    probe_command,
    require_client,
    start,
)

pytestmark = pytest.mark.e2e

SECONDS = 6
FPS = 10


def test_ffprobe_watching_a_thin_stream_three_idle_timeouts_long_decodes_every_frame(
    tmp_path: Path,
) -> None:
    config = tmp_path / "fms.toml"
    config.write_text(
        "[limits]\nidle_timeout = 2.0\nping_interval = 0.5\nping_timeout = 1.0\n"
        "publisher_timeout = 2.0\n"
    )
    server = ServerProcess("--log-level", "info", config=config)
    try:
        url = f"{server.url}/live/thin"
        player = start(probe_command(url))
        server.wait_for_line(r"play live/thin for .*waiting for publisher", timeout=15)
        publisher = start([
            require_client("ffmpeg"), "-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", f"testsrc2=size=160x120:rate={FPS}",
            "-t", str(SECONDS), "-c:v", "libx264", "-preset", "ultrafast", "-g", str(FPS),
            "-b:v", "30k", "-pix_fmt", "yuv420p", "-f", "flv", url,
        ])  # fmt: skip
        assert finish(publisher)[0] == 0
        status, out, err = finish(player, timeout=30)
        assert status == 0, err.decode(errors="replace")
        assert frames_by_codec(out) == {"h264": SECONDS * FPS}
    finally:
        assert server.stop() == 0, server.log()
    play = next(line for line in server.lines if "play live/thin for" in line)
    peer = re.search(r"for (127\.0\.0\.1:\d+)", play)
    assert peer is not None
    assert not any(f"closing {peer.group(1)}" in line for line in server.lines), server.log()
