"""HLS viewers of a pulled stream, between real server processes: Debian's FFmpeg publishes
H.264+AAC to server A; server B, configured with an on-demand ``[[apps.live.pull]]`` from A and
HLS, has nothing of the stream until an HLS playlist request arrives. That request starts the
pull and is answered with a playlist (not a 404), FFmpeg decodes B's HLS, and A serves one
player (B's pull); once the HLS requests stop, B's pull stops no sooner than the HLS viewer
window plus ``idle_timeout`` after the last one, and A loses its player."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.e2e.harness import ffmpeg_publish_command, finish, require_client, run_client, start
from tests.e2e.test_hls import fetch
from tests.e2e.test_http_api import wait_until
from tests.e2e.test_pull import _players, _pull, _server, _stream

pytestmark = pytest.mark.e2e

FPS = 25
SECONDS = 3
"""What the HLS viewer decodes (``-t``)."""
IDLE = 2.0
VIEWER_TIMEOUT = 4.0


def test_an_hls_request_starts_the_pull_and_the_pull_stops_after_the_window_and_idle(
    tmp_path: Path,
) -> None:
    origin, api_a = _server(tmp_path, "a", "")
    edge, api_b = _server(
        tmp_path,
        "b",
        f"[hls]\nsegment_duration = 1.0\nviewer_timeout = {VIEWER_TIMEOUT}\n"
        f'[[apps.live.pull]]\nurl = "rtmp://127.0.0.1:{origin.port}/live"\nmatch = "c*"\n'
        f"idle_timeout = {IDLE}\nretry_initial = 0.5\nretry_max = 1.0\n",
    )
    publisher = start(ffmpeg_publish_command(f"{origin.url}/live/cam", 600, fps=FPS))
    try:
        wait_until("the publish on A", lambda: (_stream(api_a, "cam") or {}).get("published"))
        assert _pull(api_b, "cam") is None and _players(api_a, "cam") == 0
        url = f"{api_b}/live/cam/index.m3u8"

        # The first request waits for the pull and its first segment: a playlist, no 404.
        status, headers, body = fetch(url)
        assert status == 200, body[-500:]
        assert headers["Content-Type"] == "application/vnd.apple.mpegurl"
        assert "#EXTINF" in body.decode()
        pull = _pull(api_b, "cam")
        assert pull is not None and pull["state"] == "live" and pull["connects"] == 1
        assert _players(api_a, "cam") == 1  # B's one pull

        # FFmpeg plays B's HLS: H.264 and AAC decoded, frame for frame.
        decoded = tmp_path / "decoded.nut"
        viewer = start(
            [require_client("ffmpeg"), "-v", "error", "-i", url, "-t", str(SECONDS),
             "-map", "0", "-c:v", "rawvideo", "-c:a", "pcm_s16le", "-f", "nut", "-y",
             str(decoded)]
        )  # fmt: skip
        code, _, err = finish(viewer, timeout=90)
        assert (code, err.decode(errors="replace")) == (0, "")
        for kind, codec in (("v", "rawvideo"), ("a", "pcm_s16le")):
            counted = run_client(
                [require_client("ffprobe"), "-v", "error", "-count_frames", "-select_streams",
                 kind, "-show_entries", "stream=codec_name,nb_read_frames,width,height",
                 "-of", "csv=p=0", str(decoded)]
            )  # fmt: skip
            fields = counted.stdout.decode().strip().split(",")
            assert fields[0] == codec, fields
            if kind == "v":
                assert fields[1:3] == ["320", "240"], fields
                assert abs(int(fields[3]) - SECONDS * FPS) <= 1, fields
            else:
                assert int(fields[1]) > 0, fields
        probe = run_client(
            [require_client("ffprobe"), "-v", "error", "-show_entries", "stream=codec_name",
             "-of", "csv=p=0", url]
        )  # fmt: skip
        assert set(probe.stdout.decode().split()) == {"aac", "h264"}  # (also per program)
        assert (_pull(api_b, "cam") or {}).get("connects") == 1  # one pull all along
        assert _players(api_a, "cam") == 1

        # The last HLS request; the pull outlives it by the viewer window plus idle_timeout.
        before = time.monotonic()  # not after the request's arrival at B
        status, _, body = fetch(url)
        assert status == 200
        target = re.search(r"#EXT-X-TARGETDURATION:(\d+)", body.decode())
        assert target is not None
        window = max(VIEWER_TIMEOUT, 3 * int(target.group(1)))
        gone_at = wait_until(
            "B's pull gone",
            lambda: time.monotonic() if _pull(api_b, "cam") is None else None,
            window + IDLE + 60,
        )
        assert gone_at - before >= window + IDLE, (gone_at - before, edge.log()[-3000:])
        wait_until("A's player gone", lambda: _players(api_a, "cam") == 0, 30)
        assert f"no player for {IDLE:g}s: stopped" in edge.log()
    finally:
        if publisher.poll() is None:
            publisher.kill()
        publisher.communicate()
        edge.stop()
        origin.stop()
