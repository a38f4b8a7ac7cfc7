"""HLS as MPEG-TS end to end, and which tracks HLS carries of a multitrack stream.

A real server with ``[hls] container = "mpegts"``, Debian's FFmpeg publishing H.264+AAC over
RTMP, FFmpeg and ffprobe reading ``/live/cam/index.m3u8``: the playlist is version 3 without
``#EXT-X-MAP`` and lists ``seg<N>.ts`` served as ``video/mp2t``; ffprobe finds h264 at
320x240 and aac; FFmpeg decodes 4 s (100 frames at 25 fps) without an error line; a segment
alone runs from a keyframe to the next; the publisher leaving ends the playlist, and one
coming back continues it after ``#EXT-X-DISCONTINUITY`` with a first segment whose first
packet of every PID carries the discontinuity_indicator (read by the tests' own TS reader),
and FFmpeg decodes across it without an error line.

FFmpeg 9 publishing HEVC+AAC to an application served as MPEG-TS: no segment (the playlist
request waits ``[hls] wait`` then is a 404), and the log says why once.

FFmpeg 9 publishing a two-video-track Enhanced RTMP multitrack stream (320x240 and 160x120
H.264, AAC): the HLS, in both containers, holds the main video track (320x240) and the audio
track, nothing else, and decodes frame for frame.
"""

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
from tests.e2e.test_enhanced_rtmp import (  # noqa: F401  (ffmpeg9 is a fixture)
    CASES,
    aac,
    ffmpeg9,
    hevc,
    publish_command,
)
from tests.e2e.test_hls import HTTP_LISTENING, fetch, playlist_until
from tests.hls import ts_reader

pytestmark = pytest.mark.e2e

FPS = 25
SECONDS = 4
GOP = 40
"""Frames from keyframe to keyframe (1.6 s, over the 1 s target): a cut elsewhere shows."""


def hls_server(tmp_path: Path, container: str, extra: str = "") -> tuple[ServerProcess, str]:
    config = tmp_path / "fms.toml"
    config.write_text(
        "[http]\nenabled = true\nport = 0\n"
        f'[hls]\nsegment_duration = 1.0\ncontainer = "{container}"\n{extra}'
    )
    server = ServerProcess("--config", str(config))
    match = HTTP_LISTENING.search(server.wait_for_line(HTTP_LISTENING, timeout=20))
    assert match is not None
    return server, match.group(1)


def video_frames(decoded: bytes) -> dict[str, int]:
    """Frames per stream index of FFmpeg's ``framecrc`` output, by media type and index."""
    lines = decoded.decode().splitlines()
    kinds = dict(
        line[len("#media_type ") :].split(": ") for line in lines if line.startswith("#media_type ")
    )
    frames = [line.split(",")[0].strip() for line in lines if line and line[0] != "#"]
    return {f"{kinds[index]}{index}": frames.count(index) for index in kinds}


def test_ffmpeg_plays_the_ts_hls_of_a_live_rtmp_stream(tmp_path: Path) -> None:
    server, http = hls_server(tmp_path, "mpegts")
    publisher = None
    try:
        publisher = start(ffmpeg_publish_command(f"{server.url}/live/cam", 14, fps=FPS, gop=GOP))
        url = f"{http}/live/cam/index.m3u8"
        text = playlist_until(url, "#EXTINF", deadline=60)
        assert "#EXT-X-VERSION:3\n" in text and "#EXT-X-MAP" not in text
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

        text = playlist_until(url, "#EXTINF")
        first = next(line for line in text.splitlines() if line.startswith("seg"))
        assert first.endswith(".ts")
        status, headers, segment = fetch(f"{http}/live/cam/{first}")
        assert (status, headers["Content-Type"]) == (200, "video/mp2t")
        assert headers["Cache-Control"] == "public, max-age=86400, immutable"
        (tmp_path / "one.ts").write_bytes(segment)
        keys = run_client(
            [require_client("ffprobe"), "-v", "error", "-select_streams", "v",
             "-show_entries", "frame=key_frame", "-of", "csv=p=0", str(tmp_path / "one.ts")]
        )  # fmt: skip
        flags = [flag.strip(",") for flag in keys.stdout.decode().split()]
        assert flags == ["1"] + ["0"] * (GOP - 1)  # from one keyframe to the next
        assert set(re.findall(r"#EXTINF:([0-9.]+),", text)) == {f"{GOP / FPS:.3f}"}

        assert finish(publisher, timeout=90)[0] == 0
        ended = playlist_until(url, "#EXT-X-ENDLIST", deadline=30)
        assert ended.rstrip().endswith("#EXT-X-ENDLIST")
    finally:
        if publisher is not None and publisher.poll() is None:
            publisher.kill()
            publisher.wait()
        server.stop()


def test_a_ts_publisher_coming_back_continues_after_a_discontinuity(tmp_path: Path) -> None:
    server, http = hls_server(tmp_path, "mpegts")
    publisher = None
    try:
        url = f"{http}/live/cam/index.m3u8"
        publisher = start(ffmpeg_publish_command(f"{server.url}/live/cam", 4, fps=FPS))
        assert finish(publisher, timeout=90)[0] == 0
        before = playlist_until(url, "#EXT-X-ENDLIST", deadline=30)
        publisher = start(ffmpeg_publish_command(f"{server.url}/live/cam", 14, fps=FPS))
        after = playlist_until(url, "#EXT-X-DISCONTINUITY\n", deadline=60)
        assert "#EXT-X-ENDLIST" not in after and "#EXT-X-MAP" not in after
        lines = after.splitlines()
        at = lines.index("#EXT-X-DISCONTINUITY")
        back = next(line for line in lines[at:] if line.startswith("seg"))
        assert back.endswith(".ts") and back not in before
        status, _, data = fetch(f"{http}/live/cam/{back}")
        assert status == 200
        found = ts_reader.packets(data)
        firsts: dict[int, ts_reader.Packet] = {}
        for packet in found:
            firsts.setdefault(packet.pid, packet)
        assert [p for p in found if p.discontinuity] == list(firsts.values())
        assert set(firsts) == {0, 0x1000, 0x100, 0x101}
        decoded = run_client(
            [require_client("ffmpeg"), "-v", "error", "-live_start_index", "0", "-i", url,
             "-map", "0", "-t", "8", "-f", "null", "-"],
            timeout=90,
        )  # fmt: skip
        assert (decoded.returncode, decoded.stderr.decode(errors="replace")) == (0, "")
    finally:
        if publisher is not None and publisher.poll() is None:
            publisher.kill()
            publisher.wait()
        server.stop()


@pytest.mark.parametrize("container", ["fmp4", "mpegts"])
def test_hls_of_a_multitrack_stream_carries_the_main_video_and_audio_tracks(
    tmp_path: Path,
    ffmpeg9: str,  # noqa: F811  (the fixture)
    container: str,
) -> None:
    server, http = hls_server(tmp_path, container)
    publisher = None
    try:
        publisher = start(publish_command(ffmpeg9, f"{server.url}/live/mt", CASES["two-h264"]))
        url = f"{http}/live/mt/index.m3u8"
        playlist_until(url, "#EXTINF", deadline=60)
        probe = run_client(
            [require_client("ffprobe"), "-v", "error", "-show_entries",
             "stream=codec_name,width,height", "-of", "json", url],
            timeout=60,
        )  # fmt: skip
        streams = json.loads(probe.stdout)["streams"]
        assert sorted(s["codec_name"] for s in streams) == ["aac", "h264"]
        video = next(s for s in streams if s["codec_name"] == "h264")
        assert (video["width"], video["height"]) == (320, 240)
        decoded = run_client(
            [ffmpeg9, "-v", "error", "-i", url, "-t", "2", "-map", "0", "-f", "framecrc", "-"],
            timeout=90,
        )  # fmt: skip
        assert (decoded.returncode, decoded.stderr.decode(errors="replace")) == (0, "")
        counts = video_frames(decoded.stdout)
        assert sorted(counts) == ["audio1", "video0"]
        assert abs(counts["video0"] - 2 * FPS) <= 1
    finally:
        if publisher is not None and publisher.poll() is None:
            publisher.kill()
            publisher.wait()
        server.stop()


def test_hevc_under_mpegts_gets_no_segments_and_one_log_line(
    tmp_path: Path,
    ffmpeg9: str,  # noqa: F811  (the fixture)
) -> None:
    server, http = hls_server(tmp_path, "fmp4", 'wait = 2.0\nmpegts_apps = ["old"]\n')
    publisher = None
    try:
        publisher = start(
            publish_command(ffmpeg9, f"{server.url}/old/cam", [hevc("320x240"), aac()])
        )
        server.wait_for_line(r"publish started old/cam", timeout=30)
        line = server.wait_for_line(r"HLS of old/cam: no MPEG-TS segments", timeout=30)
        assert "hvc1" in line
        status, _, body = fetch(f"{http}/old/cam/index.m3u8")  # waits 2 s for a segment
        assert status == 404, body
        assert finish(publisher, timeout=60)[0] == 0
        assert len([x for x in server.lines if "no MPEG-TS segments" in x]) == 1
    finally:
        if publisher is not None and publisher.poll() is None:
            publisher.kill()
            publisher.wait()
        server.stop()
