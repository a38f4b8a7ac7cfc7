"""HLS with ``fms run --workers 2``: any worker answers for any stream.

FFmpeg publishes H.264+AAC to worker 0's own RTMP port; HTTP requests go to the shared port,
each on a new connection so that the kernel hands them to either worker. Every playlist and
segment request succeeds; answers of both workers are seen (a forwarded answer says so in
``X-FMS-HLS-Muxer``, and worker 1's log says it answered from worker 0); a segment has the
same bytes whichever worker served it; the playlist is the same text from both; and FFmpeg
decodes the stream through the playlist (h264 320x240 + aac, 4 s = 100 frames, no error).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import subprocess
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

pytestmark = pytest.mark.e2e

HTTP_LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)/ \(2 workers\)")
FPS = 25
SECONDS = 4
REQUESTS = 40
"""Playlist + segment request pairs, each on a new connection."""


def get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection: (status, headers lower-cased, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, headers, body
    finally:
        conn.close()


def test_both_workers_answer_hls_for_a_stream_published_on_one(tmp_path: Path) -> None:
    ports = free_ports(2)
    config = tmp_path / "fms.toml"
    config.write_text(
        f"[server]\nworker_ports = {ports}\n[http]\nenabled = true\nport = 0\n"
        "[hls]\nsegment_duration = 1.0\nwindow = 10\n"
    )
    server = ServerProcess("--config", str(config), "--workers", "2")
    publisher: subprocess.Popen[bytes] | None = None
    try:
        match = HTTP_LISTENING.search(server.wait_for_line(HTTP_LISTENING, timeout=30))
        assert match is not None
        port = int(match.group(1))
        publisher = start(ffmpeg_publish_command(f"rtmp://127.0.0.1:{ports[0]}/live/cam", 40))
        server.wait_for_line(r"w0 .*publish started live/cam")

        forwarded = local = 0
        digests: dict[str, set[str]] = {}
        served_by: dict[str, set[str]] = {}
        playlists: dict[str, str] = {}
        for _ in range(REQUESTS):
            status, headers, body = get(port, "/live/cam/index.m3u8")
            assert status == 200, body
            assert headers["content-type"] == "application/vnd.apple.mpegurl"
            via = headers.get("x-fms-hls-muxer")
            if via is None:
                local += 1
            else:
                assert via == "0" and headers["x-fms-worker"] == "1"
                forwarded += 1
            text = body.decode()
            playlists.setdefault(via or "0", text)
            segments = [line for line in text.splitlines() if line.startswith("seg")]
            assert segments, text
            name = segments[0]
            status, headers, data = get(port, f"/live/cam/{name}")
            assert status == 200 and headers["content-type"] == "video/iso.segment"
            assert int(headers["content-length"]) == len(data) > 0
            digests.setdefault(name, set()).add(hashlib.sha256(data).hexdigest())
            served_by.setdefault(name, set()).add(headers.get("x-fms-hls-muxer", "local"))
        assert local > 0 and forwarded > 0  # both workers answered
        assert all(len(found) == 1 for found in digests.values())  # same bytes from both
        assert any(len(by) == 2 for by in served_by.values())  # ... for one name at least
        server.wait_for_line(r"w1 .*HLS of live/cam answered here from worker 0")

        url = f"http://127.0.0.1:{port}/live/cam/index.m3u8"
        decoded = run_client(
            [require_client("ffmpeg"), "-v", "error", "-i", url, "-t", str(SECONDS),
             "-map", "0", "-f", "framecrc", "-"],
            timeout=90,
        )  # fmt: skip
        assert (decoded.returncode, decoded.stderr.decode(errors="replace")) == (0, "")
        lines = decoded.stdout.decode().splitlines()
        kinds = dict(
            line[len("#media_type ") :].split(": ") for line in lines
            if line.startswith("#media_type ")
        )  # fmt: skip
        assert sorted(kinds.values()) == ["audio", "video"]
        video = next(index for index, kind in kinds.items() if kind == "video")
        frames = [line.split(",")[0].strip() for line in lines if line and line[0] != "#"]
        assert abs(frames.count(video) - SECONDS * FPS) <= 1
        probe = run_client(
            [require_client("ffprobe"), "-v", "error", "-show_entries",
             "stream=codec_name,width,height", "-of", "json", url],
            timeout=60,
        )  # fmt: skip
        streams = json.loads(probe.stdout)["streams"]
        assert sorted(s["codec_name"] for s in streams) == ["aac", "h264"]
        assert {(s.get("width"), s.get("height")) for s in streams} >= {(320, 240)}
        finish(publisher, timeout=90)
    finally:
        if publisher is not None and publisher.poll() is None:
            publisher.kill()
            publisher.wait()
        server.stop()
