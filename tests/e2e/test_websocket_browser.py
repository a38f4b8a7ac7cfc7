"""WebSocket-FLV in a real headless Chromium: the vendored mpegts.js, served by the server at
/static/mpegts.js, plays ``ws://HOST:PORT/live/cam.flv`` while Debian's FFmpeg publishes
H.264+AAC over RTMP. The page is the test's own (the player page speaks HTTP-FLV), written into
a document of the server's origin, so mpegts.js and the WebSocket come from the server itself.
What is checked is what the ``<video>`` element did: its position advanced, its picture has the
source's size, no error; and the server logged a WebSocket-FLV play.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e import test_player_page as player_page
from tests.e2e.harness import ServerProcess, ffmpeg_publish_command, start
from tests.e2e.test_player_page import DEADLINE, HEIGHT, PLAYED, WIDTH, _wait_published

pytestmark = pytest.mark.e2e

browser = player_page.browser
http_server = player_page.http_server
"""The player page test's fixtures: Debian's Chromium, and a server with the HTTP listener."""

PAGE = """<!doctype html>
<html><body>
<video id="video" muted playsinline></video>
<p id="status">loading</p>
<script src="/static/mpegts.js"></script>
<script>
"use strict";
const video = document.getElementById("video");
const status = document.getElementById("status");
const player = mpegts.createPlayer(
  { type: "flv", isLive: true, url: "ws://" + location.host + "/live/cam.flv" },
  { enableStashBuffer: false, liveBufferLatencyChasing: true },
);
player.on(mpegts.Events.ERROR, (type, detail) => {
  status.textContent = "error " + type + " " + detail;
});
video.addEventListener("error", () => { status.textContent = "video error"; });
player.attachMediaElement(video);
player.load();
player.play();
</script>
</body></html>
"""


def test_mpegts_js_in_chromium_plays_websocket_flv(
    http_server: tuple[ServerProcess, str], browser: Any
) -> None:
    server, base = http_server
    publisher = start(ffmpeg_publish_command(f"{server.url}/live/cam", 120))
    try:
        _wait_published(base, "live", "cam")
        page = browser.new_page()
        failures: list[str] = []
        page.on("pageerror", lambda exc: failures.append(f"page error: {exc}"))
        # A document of the server's own origin: Chromium's local network access checks keep
        # a page from an unknown address (one Playwright made up) from opening a WebSocket to
        # loopback, so the test's page is written into a document the server served.
        page.goto(base + "/api/v1/server")
        page.set_content(PAGE)
        try:
            page.wait_for_function(
                "() => document.getElementById('video').currentTime > 0", timeout=DEADLINE * 1000
            )
        except Exception:
            status = page.locator("#status").text_content()
            pytest.fail(f"the video never played; status {status!r}; {failures}")
        first = page.evaluate("() => document.getElementById('video').currentTime")
        positions = [first]
        deadline = time.monotonic() + DEADLINE
        while positions[-1] - first < PLAYED:
            assert time.monotonic() < deadline, f"the video did not play on: {positions}"
            time.sleep(0.25)
            positions.append(page.evaluate("() => document.getElementById('video').currentTime"))
        state = page.evaluate(
            """() => { const v = document.getElementById('video');
            return { width: v.videoWidth, height: v.videoHeight, error: v.error && v.error.code,
                     status: document.getElementById('status').textContent }; }"""
        )
        assert (state["width"], state["height"]) == (WIDTH, HEIGHT), state
        assert state["error"] is None and not state["status"].startswith("error"), state
        assert not failures, failures
        server.wait_for_line(r"WebSocket-FLV play live/cam for 127\.0\.0\.1:\d+$")
    finally:
        if publisher.poll() is None:
            publisher.kill()
            publisher.wait()
