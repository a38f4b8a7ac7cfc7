"""HLS viewers of a pulled stream on ``fms run --workers 2``: Debian's FFmpeg publishes to
server A; server B (two workers sharing one HTTP port, an on-demand ``[[apps.live.pull]]``
from A) gets HLS requests on fresh connections, which the kernel hands to either worker. The
first playlist request starts the pull on the worker it reached; every request is answered
(both workers answer, one of them forwarding to the worker that pulls and muxes), FFmpeg
decodes B's HLS, and A serves one player and logs one play in all: one upstream for the node.
Once the requests stop, A loses B's pull no sooner than the viewer window plus
``idle_timeout`` after the last request."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from benchmarks.fanout import free_ports
from tests.e2e.harness import (
    ServerProcess,
    ffmpeg_publish_command,
    finish,
    require_client,
    run_client,
    start,
)
from tests.e2e.test_hls_workers import HTTP_LISTENING, get
from tests.e2e.test_http_api import wait_until
from tests.e2e.test_pull import _players, _server, _stream

pytestmark = pytest.mark.e2e

REQUESTS = 30
"""Playlist + segment request pairs, each on a new connection."""
IDLE = 2.0
VIEWER_TIMEOUT = 4.0


def test_hls_viewers_on_two_workers_share_one_pull_that_stops_after_window_and_idle(
    tmp_path: Path,
) -> None:
    origin, api_a = _server(tmp_path, "a", "")
    ports = free_ports(2)
    config = tmp_path / "b.toml"
    config.write_text(
        f"[server]\nworker_ports = {ports}\n[http]\nenabled = true\nport = 0\n"
        f"[hls]\nsegment_duration = 1.0\nviewer_timeout = {VIEWER_TIMEOUT}\n"
        f'[[apps.live.pull]]\nurl = "rtmp://127.0.0.1:{origin.port}/live"\n'
        f"idle_timeout = {IDLE}\nretry_initial = 0.5\nretry_max = 1.0\n"
    )
    edge = ServerProcess("--config", str(config), "--workers", "2")
    publisher: subprocess.Popen[bytes] | None = None
    try:
        match = HTTP_LISTENING.search(edge.wait_for_line(HTTP_LISTENING, timeout=30))
        assert match is not None
        port = int(match.group(1))
        publisher = start(ffmpeg_publish_command(f"{origin.url}/live/cam", 600))
        wait_until("the publish on A", lambda: (_stream(api_a, "cam") or {}).get("published"))
        assert _players(api_a, "cam") == 0

        muxers: set[str] = set()
        local = 0
        for _ in range(REQUESTS):
            status, headers, body = get(port, "/live/cam/index.m3u8")
            assert status == 200, body[-500:]
            segment = [line for line in body.decode().splitlines() if line.startswith("seg")][-1]
            status, seg_headers, data = get(port, f"/live/cam/{segment}")
            assert status == 200 and len(data) > 0, data[-500:]
            for answer in (headers, seg_headers):
                via = answer.get("x-fms-hls-muxer")
                if via is None:
                    local += 1
                else:
                    muxers.add(via)
        assert local > 0 and len(muxers) == 1, (local, muxers)  # both workers answered
        assert _players(api_a, "cam") == 1

        url = f"http://127.0.0.1:{port}/live/cam/index.m3u8"
        decoded = run_client(
            [require_client("ffprobe"), "-v", "error", "-count_frames", "-read_intervals",
             "%+3", "-show_entries", "stream=codec_name,nb_read_frames,width,height",
             "-of", "json", url],
            timeout=90,
        )  # fmt: skip
        text = decoded.stdout.decode()
        assert '"h264"' in text and '"aac"' in text and '"width": 320' in text, text
        frames = [int(n) for n in re.findall(r'"nb_read_frames": "(\d+)"', text)]
        assert frames and min(frames) > 0, text
        assert _players(api_a, "cam") == 1
        plays = [line for line in origin.log().splitlines() if "play live/cam for" in line]
        assert len(plays) == 1, plays  # one upstream for the node, all along

        before = time.monotonic()  # not after the last request's arrival at B
        status, _, body = get(port, "/live/cam/index.m3u8")
        assert status == 200
        target = re.search(r"#EXT-X-TARGETDURATION:(\d+)", body.decode())
        assert target is not None
        window = max(VIEWER_TIMEOUT, 3 * int(target.group(1)))
        gone_at = wait_until(
            "A's player (B's pull) gone",
            lambda: time.monotonic() if _players(api_a, "cam") == 0 else None,
            window + IDLE + 60,
        )
        assert gone_at - before >= window + IDLE, (gone_at - before, edge.log()[-3000:])
        assert f"no player for {IDLE:g}s: stopped" in edge.log()
    finally:
        if publisher is not None:
            if publisher.poll() is None:
                publisher.kill()
            finish(publisher)
        edge.stop()
        origin.stop()
