"""HLS end to end: a real server process, Debian's FFmpeg publishing H.264+AAC over RTMP, and
FFmpeg/ffprobe reading ``http://127.0.0.1:PORT/live/cam/index.m3u8`` as players do.

What is checked is what the clients got: ffprobe finds h264 (at the published size) and aac
in the playlist's segments; FFmpeg decodes 4 s of the live stream (as many frames as 4 s
hold) without one error line; every listed segment runs from a keyframe to the next; the
playlist, init and segments come with their content types and caching; and once the
publisher stops, the playlist ends with #EXT-X-ENDLIST. And FFmpeg 9 publishing HEVC+AAC and
AV1+Opus over Enhanced RTMP: ffprobe finds those codecs at the published size in the HLS, and
FFmpeg decodes 2 s of it (every frame, no error line).
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import (
    ServerProcess,
    ffmpeg_publish_command,
    finish,
    require_client,
    run_client,
    start,
)
from tests.e2e.test_enhanced_rtmp import (  # noqa: F401  (ffmpeg9 is a fixture)
    aac,
    audio,
    av1,
    ffmpeg9,
    hevc,
    publish_command,
)

pytestmark = pytest.mark.e2e

HTTP_LISTENING = re.compile(r"listening on (http://\S+)/")
FPS = 25
SECONDS = 4
"""What the viewer decodes of the live stream (``-t``)."""
GOP = 40
"""Frames from keyframe to keyframe (1.6 s): longer than the 1 s target, and not a multiple
of it, so a segment cut anywhere but at a keyframe shows."""


def hls_server(tmp_path: Path) -> tuple[ServerProcess, str]:
    config = tmp_path / "fms.toml"
    config.write_text("[http]\nenabled = true\nport = 0\n[hls]\nsegment_duration = 1.0\n")
    server = ServerProcess("--config", str(config))
    match = HTTP_LISTENING.search(server.wait_for_line(HTTP_LISTENING, timeout=20))
    assert match is not None
    return server, match.group(1)


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def playlist_until(url: str, wanted: str, deadline: float = 60.0) -> str:
    """The playlist once it contains ``wanted`` (asked again as a player would, every half
    second, until ``deadline`` seconds have passed)."""
    end = time.monotonic() + deadline
    text = ""
    while time.monotonic() < end:
        status, _, body = fetch(url)
        text = body.decode(errors="replace")
        if status == 200 and wanted in text:
            return text
        time.sleep(0.5)
    raise AssertionError(f"no {wanted!r} in the playlist within {deadline}s:\n{text}")


def test_ffmpeg_plays_the_hls_of_a_live_rtmp_stream_and_sees_it_end(tmp_path: Path) -> None:
    server, http = hls_server(tmp_path)
    publisher = None
    try:
        publisher = start(ffmpeg_publish_command(f"{server.url}/live/cam", 14, fps=FPS, gop=GOP))
        url = f"{http}/live/cam/index.m3u8"
        text = playlist_until(url, "#EXTINF", deadline=60)
        status, headers, _ = fetch(url)
        assert headers["Content-Type"] == "application/vnd.apple.mpegurl"
        assert headers["Cache-Control"] == "no-cache"

        viewer = start(
            [require_client("ffmpeg"), "-v", "error", "-i", url, "-t", str(SECONDS),
             "-map", "0", "-c:v", "rawvideo", "-c:a", "pcm_s16le", "-f", "nut", "-y",
             str(tmp_path / "decoded.nut")]
        )  # fmt: skip
        probe = run_client(
            [require_client("ffprobe"), "-v", "error", "-show_entries",
             "stream=codec_name,width,height", "-of", "json", url],
            timeout=60,
        )  # fmt: skip
        code, _, err = finish(viewer, timeout=90)
        assert (code, err.decode(errors="replace")) == (0, "")
        streams = json.loads(probe.stdout)["streams"]
        assert sorted(s["codec_name"] for s in streams) == ["aac", "h264"]
        video = next(s for s in streams if s["codec_name"] == "h264")
        assert (video["width"], video["height"]) == (320, 240)
        counted = run_client(
            [require_client("ffprobe"), "-v", "error", "-count_frames", "-select_streams", "v",
             "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0",
             str(tmp_path / "decoded.nut")]
        )  # fmt: skip
        assert abs(int(counted.stdout) - SECONDS * FPS) <= 1

        # The first listed segment, with its init segment, starts with a keyframe.
        text = playlist_until(url, "#EXTINF")
        init_uri = re.search(r'#EXT-X-MAP:URI="([^"]+)"', text)
        assert init_uri is not None
        first = next(line for line in text.splitlines() if line.startswith("seg"))
        status, headers, init = fetch(f"{http}/live/cam/{init_uri.group(1)}")
        assert (status, headers["Content-Type"]) == (200, "video/mp4")
        status, headers, segment = fetch(f"{http}/live/cam/{first}")
        assert (status, headers["Content-Type"]) == (200, "video/iso.segment")
        assert headers["Cache-Control"] == "public, max-age=86400, immutable"
        (tmp_path / "one.mp4").write_bytes(init + segment)
        keys = run_client(
            [require_client("ffprobe"), "-v", "error", "-select_streams", "v",
             "-show_entries", "frame=key_frame", "-of", "csv=p=0", str(tmp_path / "one.mp4")]
        )  # fmt: skip
        flags = [flag.strip(",") for flag in keys.stdout.decode().split()]
        assert flags == ["1"] + ["0"] * (GOP - 1)  # from one keyframe to the next
        durations = re.findall(r"#EXTINF:([0-9.]+),", text)
        assert set(durations) == {f"{GOP / FPS:.3f}"}

        assert finish(publisher, timeout=90)[0] == 0
        ended = playlist_until(url, "#EXT-X-ENDLIST", deadline=30)
        assert ended.rstrip().endswith("#EXT-X-ENDLIST")
    finally:
        if publisher is not None and publisher.poll() is None:
            publisher.kill()
            publisher.wait()
        server.stop()


@pytest.mark.parametrize(
    ("tracks", "names"),
    [
        pytest.param(lambda: [hevc("320x240"), aac()], ("hevc", "aac"), id="hevc-aac"),
        pytest.param(
            lambda: [av1("320x240"), audio("libopus", "opus")], ("av1", "opus"), id="av1-opus"
        ),
    ],
)
def test_enhanced_rtmp_codecs_reach_hls_and_decode(
    tmp_path: Path,
    ffmpeg9: str,  # noqa: F811  (the fixture)
    tracks: Any,
    names: tuple[str, str],
) -> None:
    """FFmpeg 9 publishes over Enhanced RTMP (FourCC tags); the HLS segments carry the codecs
    (hvc1/av01 + mp4a/Opus sample entries) and FFmpeg decodes them from the playlist at the
    published size without an error line."""
    server, http = hls_server(tmp_path)
    publisher = None
    try:
        publisher = start(publish_command(ffmpeg9, f"{server.url}/live/cam", tracks()))
        url = f"{http}/live/cam/index.m3u8"
        playlist_until(url, "#EXTINF", deadline=60)
        probe = run_client(
            [require_client("ffprobe"), "-v", "error", "-show_entries",
             "stream=codec_name,width,height", "-of", "json", url],
            timeout=60,
        )  # fmt: skip
        streams = json.loads(probe.stdout)["streams"]
        assert sorted(s["codec_name"] for s in streams) == sorted(names)
        video = next(s for s in streams if s["codec_name"] == names[0])
        assert (video["width"], video["height"]) == (320, 240)
        decoded = run_client(
            [ffmpeg9, "-v", "error", "-i", url, "-t", "2", "-map", "0", "-f", "framecrc", "-"],
            timeout=90,
        )  # fmt: skip
        assert (decoded.returncode, decoded.stderr.decode(errors="replace")) == (0, "")
        lines = decoded.stdout.decode().splitlines()
        kinds = dict(
            line[len("#media_type ") :].split(": ") for line in lines
            if line.startswith("#media_type ")
        )  # fmt: skip
        frames = [line.split(",")[0] for line in lines if line and line[0] != "#"]
        video_frames = frames.count(next(i for i, k in kinds.items() if k == "video"))
        assert abs(video_frames - 2 * FPS) <= 1  # the 2 s asked, all decoded
    finally:
        if publisher is not None and publisher.poll() is None:
            publisher.kill()
            publisher.wait()
        server.stop()


def test_a_publisher_coming_back_continues_the_playlist_after_a_discontinuity(
    tmp_path: Path,
) -> None:
    """The publisher stops (the playlist ends) and comes back: the playlist goes on, without
    #EXT-X-ENDLIST, the new segments after one #EXT-X-DISCONTINUITY and a new #EXT-X-MAP, and
    FFmpeg decodes the stream from it without an error line."""
    server, http = hls_server(tmp_path)
    publisher = None
    try:
        url = f"{http}/live/cam/index.m3u8"
        publisher = start(ffmpeg_publish_command(f"{server.url}/live/cam", 4, fps=FPS))
        assert finish(publisher, timeout=90)[0] == 0
        before = playlist_until(url, "#EXT-X-ENDLIST", deadline=30)
        publisher = start(ffmpeg_publish_command(f"{server.url}/live/cam", 14, fps=FPS))
        after = playlist_until(url, "#EXT-X-DISCONTINUITY\n", deadline=60)
        assert "#EXT-X-ENDLIST" not in after
        maps = re.findall(r'#EXT-X-MAP:URI="([^"]+)"', after)
        assert len(maps) == 2 and maps[0] in before and maps[1] not in before
        old = [line for line in before.splitlines() if line.startswith("seg")]
        assert all(line in after.splitlines() for line in old[-2:])  # still listed
        decoded = run_client(
            [require_client("ffmpeg"), "-v", "error", "-i", url, "-t", "3", "-map", "0",
             "-f", "null", "-"],
            timeout=90,
        )  # fmt: skip
        assert (decoded.returncode, decoded.stderr.decode(errors="replace")) == (0, "")
    finally:
        if publisher is not None and publisher.poll() is None:
            publisher.kill()
            publisher.wait()
        server.stop()
