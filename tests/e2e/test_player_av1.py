"""The player page in a real headless Chromium playing AV1+Opus that FFmpeg 9 publishes over
Enhanced RTMP, through HTTP-FLV and the vendored mpegts.js 1.8.2; and what ``?packets=media``
(which the page asks for) leaves out of the stream, read by curl and FFmpeg 9.

What is checked is what a person would see and hear: the video element's position advances,
its picture has the source's size, Chromium decoded both video and audio bytes, and neither
the element nor mpegts.js reported an error.

Two things about mpegts.js 1.8.2 shape this test (docs/enhanced-rtmp.md has the details):

- FFmpeg 9 sends a video Metadata packet (``colorInfo``) with AV1 and an audio
  MultichannelConfig with Opus; mpegts.js fires an error event for each. The page asks for
  ``?packets=media`` (:mod:`fms.live.flvfilter`), which leaves them out; removing that makes
  this test fail on the page's error status.
- Its AV1 frame-header reader, run on every keyframe, reads a shown keyframe's header 57 bits
  out of step with the AV1 specification (it reads ``showable_frame`` and eight
  ``ref_order_hint`` values that the specification skips for such a frame), then takes the bit
  it finds there as ``render_and_frame_size_different``; when that bit is 1 it reads a 16-bit
  field as a bit count and throws (``ExpGolomb: readBits() bits exceeded max 32bits!``), and
  the player stops. On SVT-AV1's keyframes that bit is the top bit of
  ``cdef_uv_pri_strength[0]`` (1: every SVT-AV1 stream fails, served by pyFMS or as a plain
  file); on libaom's realtime keyframes of this source it is 0. So the publisher encodes with
  libaom: what is under test is the server's delivery, not mpegts.js's AV1 parser.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from fms.live import flv
from fms.live.flvfilter import is_side_data
from tests.e2e.harness import ServerProcess, finish, run_client, start
from tests.e2e.test_http_flv import (  # noqa: F401 - ffmpeg9 is a fixture
    WAITING,
    curl,
    ffmpeg9,
    flv_server,
    frame_counts,
)
from tests.e2e.test_player_page import (  # noqa: F401 - fixtures
    DEADLINE,
    HEIGHT,
    PLAYED,
    WIDTH,
    _get,
    browser,
    http_server,
)

pytestmark = pytest.mark.e2e

AV1 = 'video/mp4; codecs="av01.0.05M.08"'
OPUS = 'audio/mp4; codecs="opus"'
FPS = 25


def publish_av1_opus(ffmpeg: str, url: str, seconds: float) -> list[str]:
    """FFmpeg 9 publishing ``seconds`` of generated AV1 (libaom, realtime, 8-bit 4:2:0, a
    keyframe every 2 s) and stereo Opus in real time to ``url``."""
    command = [ffmpeg, "-hide_banner", "-loglevel", "error", "-re"]
    command += ["-f", "lavfi", "-i", f"testsrc=size={WIDTH}x{HEIGHT}:rate={FPS}"]
    command += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    command += ["-t", str(seconds), "-c:v", "libaom-av1", "-usage", "realtime", "-cpu-used", "8"]
    command += ["-g", str(2 * FPS), "-pix_fmt", "yuv420p"]
    command += ["-c:a", "libopus", "-ac", "2", "-b:a", "64k", "-f", "flv", url]
    return command


def _wait_av1_opus(base: str) -> dict[str, Any]:
    """Until the API shows live/cam published with its AV1 and Opus headers read."""
    deadline = time.monotonic() + DEADLINE
    while True:
        status, _, body = _get(f"{base}/api/v1/streams/live/cam")
        if status == 200:
            doc: dict[str, Any] = json.loads(body)
            if doc.get("published") and doc.get("video") and doc.get("audio"):
                return doc
        assert time.monotonic() < deadline, f"live/cam not published: {status} {body!r}"
        time.sleep(0.2)


def test_player_page_plays_av1_and_opus_published_by_ffmpeg9_in_chromium(
    http_server: tuple[ServerProcess, str],  # noqa: F811 - the imported fixtures
    browser: Any,  # noqa: F811
    ffmpeg9: str,  # noqa: F811
) -> None:
    """Chromium can decode AV1 and Opus through MSE; the page plays live/cam: its position
    advances PLAYED seconds, the picture is the source's, video and audio bytes were decoded,
    and no error was reported by the element or by mpegts.js."""
    server, base = http_server
    publisher = start(publish_av1_opus(ffmpeg9, f"{server.url}/live/cam", 120))
    try:
        doc = _wait_av1_opus(base)
        assert (doc["video"]["fourcc"], doc["audio"]["fourcc"]) == ("av01", "Opus"), doc
        page = browser.new_page(viewport={"width": 900, "height": 600})
        failures: list[str] = []
        page.on("pageerror", lambda exc: failures.append(f"page error: {exc}"))
        console: list[str] = []
        page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
        page.goto(base + "/play/live/cam")
        supported = page.evaluate(
            "(types) => types.map((type) => MediaSource.isTypeSupported(type))", [AV1, OPUS]
        )
        assert supported == [True, True], f"this Chromium's MSE cannot take {AV1} / {OPUS}"
        try:
            page.wait_for_function(
                "() => document.getElementById('video').currentTime > 0", timeout=DEADLINE * 1000
            )
        except Exception:
            status = page.locator("#status").text_content()
            pytest.fail(f"the video never played; status {status!r}; console: {console}")
        position = "() => document.getElementById('video').currentTime"
        first = page.evaluate(position)
        positions = [first]
        deadline = time.monotonic() + DEADLINE
        while positions[-1] - first < PLAYED:
            assert time.monotonic() < deadline, f"the video did not play on: {positions}"
            time.sleep(0.25)
            positions.append(page.evaluate(position))
        assert positions == sorted(positions), f"the position went back: {positions}"

        state = page.evaluate(
            """() => { const v = document.getElementById('video');
            const s = document.getElementById('status');
            return { width: v.videoWidth, height: v.videoHeight, error: v.error && v.error.code,
                     paused: v.paused, frames: v.getVideoPlaybackQuality().totalVideoFrames,
                     videoBytes: v.webkitVideoDecodedByteCount,
                     audioBytes: v.webkitAudioDecodedByteCount,
                     status: s.textContent, failed: s.classList.contains('error') }; }"""
        )
        assert (state["width"], state["height"]) == (WIDTH, HEIGHT), state
        assert state["error"] is None and not state["failed"], (state, console)
        assert not state["paused"] and state["frames"] > 0, state
        assert state["videoBytes"] > 0 and state["audioBytes"] > 0, state
        # mpegts.js logs what it fired an error event for (the page's status may have moved on).
        reported = [line for line in console if line.startswith("error:") and "Exception" in line]
        assert not reported, reported
        assert not failures, failures
        print(f"AV1+Opus positions: {positions}; state: {state}")
    finally:
        if publisher.poll() is None:
            publisher.kill()
        publisher.communicate()


def test_ffmpeg9_decodes_the_media_only_stream_and_only_side_data_tags_are_left_out(
    tmp_path: Path,
    ffmpeg9: str,  # noqa: F811
) -> None:
    """Three viewers wait for FFmpeg 9's AV1+Opus publish: the plain one gets the colorInfo
    Metadata and Opus MultichannelConfig tags, the ``?packets=media`` one the same tags less
    exactly those, and FFmpeg 9 reading ``?packets=media`` decodes AV1 and Opus frames from it."""
    server, http = flv_server(tmp_path)
    try:
        url = f"{http}/live/cam.flv"
        plain, media = tmp_path / "plain.flv", tmp_path / "media.flv"
        readers = [curl(url, plain), curl(url + "?packets=media", media)]
        decoded = tmp_path / "media.crc"
        command = [ffmpeg9, "-v", "error", "-i", url + "?packets=media", "-map", "0"]
        readers.append(start([*command, "-f", "framecrc", str(decoded)]))
        server.wait_for_lines(WAITING, 3, timeout=DEADLINE)
        publisher = start(publish_av1_opus(ffmpeg9, f"{server.url}/live/cam", 3))
        assert finish(publisher, timeout=120)[0] == 0
        results = [finish(reader, timeout=120) for reader in readers]
        assert [code for code, _, _ in results] == [0, 0, 0], results
        _, everything = flv.read_file(plain.read_bytes())
        _, media_only = flv.read_file(media.read_bytes())
        side = [
            (t.tag_type, t.payload[0] & 0x0F)
            for t in everything
            if is_side_data(t.tag_type, t.payload)
        ]
        assert sorted(set(side)) == [(8, 4), (9, 4)], side  # MultichannelConfig, Metadata
        assert media_only == [t for t in everything if not is_side_data(t.tag_type, t.payload)]
        frames = frame_counts(decoded)
        assert len(frames) == 2 and min(frames.values()) > 0, frames  # AV1 and Opus decoded
        described = run_client([ffmpeg9, "-hide_banner", "-i", str(media)]).stderr.decode()
        assert "Video: av1" in described and "Audio: opus" in described, described
    finally:
        server.stop()
