"""Low-Latency HLS with ``fms run --workers 2``: blocking reloads and parts through any worker.

FFmpeg publishes H.264+AAC (a keyframe a second) to worker 0's own RTMP port, so worker 0
muxes; HTTP requests go to the shared port, each on a new connection, so the kernel hands them
to either worker and worker 1 forwards them to worker 0. A player's blocking reloads are
followed: each asks for the part the previous playlist hinted (not made yet when asked), and
every answer, from either worker, is a playlist holding that part. The parts the last playlist
lists download with the same bytes from both workers and, after the init segment, FFmpeg
decodes them: as many video frames as their durations say, not one error line.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import subprocess
from pathlib import Path

import pytest

from benchmarks.fanout import free_ports
from tests.e2e.harness import (
    ServerProcess,
    ffmpeg_publish_command,
    require_client,
    run_client,
    start,
)

pytestmark = pytest.mark.e2e

HTTP_LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)/ \(2 workers\)")
FPS = 25
RELOADS = 30
"""Blocking reloads followed (0.5 s parts: about 15 s of stream)."""
HINT = re.compile(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="seg(\d+)\.(\d+)\.m4s"')
PART = re.compile(r'#EXT-X-PART:DURATION=([0-9.]+),URI="(seg\d+\.\d+\.m4s)"')
MAP = re.compile(r'#EXT-X-MAP:URI="(init\d+\.mp4)"')


def get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection: (status, headers lower-cased, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, headers, body
    finally:
        conn.close()


def via(headers: dict[str, str]) -> str:
    """Who answered: "local" (worker 0, the muxer) or "forwarded" (worker 1 asked worker 0)."""
    if "x-fms-hls-muxer" not in headers:
        return "local"
    assert headers["x-fms-hls-muxer"] == "0" and headers["x-fms-worker"] == "1", headers
    return "forwarded"


def test_blocking_reloads_and_parts_work_through_both_workers(tmp_path: Path) -> None:
    ports = free_ports(2)
    config = tmp_path / "fms.toml"
    config.write_text(
        f"[server]\nworker_ports = {ports}\n[http]\nenabled = true\nport = 0\n"
        "[hls]\nsegment_duration = 2.0\npart_duration = 0.5\nwindow = 6\n"
    )
    server = ServerProcess("--config", str(config), "--workers", "2")
    publisher: subprocess.Popen[bytes] | None = None
    try:
        match = HTTP_LISTENING.search(server.wait_for_line(HTTP_LISTENING, timeout=30))
        assert match is not None
        port = int(match.group(1))
        publisher = start(ffmpeg_publish_command(f"rtmp://127.0.0.1:{ports[0]}/live/cam", 90))
        server.wait_for_line(r"w0 .*publish started live/cam")

        status, _, body = get(port, "/live/cam/ll.m3u8")  # waits for the first segment
        assert status == 200, body
        hint = HINT.search(body.decode())
        assert hint is not None, body
        msn, part = int(hint.group(1)), int(hint.group(2))
        answered: dict[str, int] = {"local": 0, "forwarded": 0}
        text = ""
        for _ in range(RELOADS):
            path = f"/live/cam/ll.m3u8?_HLS_msn={msn}&_HLS_part={part}"
            status, headers, body = get(port, path)
            assert status == 200, (path, body)
            assert headers["content-type"] == "application/vnd.apple.mpegurl"
            answered[via(headers)] += 1
            text = body.decode()
            listed = [name for _, name in PART.findall(text)]
            assert f"seg{msn}.{part}.m4s" in listed, (path, text)
            hint = HINT.search(text)
            assert hint is not None, text
            msn, part = int(hint.group(1)), int(hint.group(2))
        assert answered["local"] > 0 and answered["forwarded"] > 0, answered

        init = MAP.findall(text)[-1]
        parts = PART.findall(text)
        assert len(parts) >= 6, text
        digests: dict[str, set[str]] = {}
        fetched_by: set[str] = set()
        media = bytearray()
        for name in [init] + [name for _, name in parts]:
            copies = []
            for _ in range(2):
                status, headers, data = get(port, f"/live/cam/{name}")
                assert status == 200 and int(headers["content-length"]) == len(data) > 0
                fetched_by.add(via(headers))
                copies.append(data)
            digests[name] = {hashlib.sha256(data).hexdigest() for data in copies}
            media += copies[0]
        assert all(len(found) == 1 for found in digests.values())
        assert fetched_by == {"local", "forwarded"}

        joined = tmp_path / "parts.mp4"
        joined.write_bytes(bytes(media))
        decoded = run_client(
            [require_client("ffmpeg"), "-v", "error", "-i", str(joined), "-map", "0",
             "-f", "framecrc", "-"],
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
        listed_seconds = sum(float(duration) for duration, _ in parts)
        assert abs(frames.count(video) - round(listed_seconds * FPS)) <= 1
    finally:
        if publisher is not None and publisher.poll() is None:
            publisher.kill()
            publisher.wait()
        server.stop()
