"""The player page in HLS mode (``/play/APP/STREAM#hls``) in a real headless
Chromium, playing a real publish through our HLS with the vendored hls.js.

What is checked is what the ``<video>`` element did: its position advanced, its picture has
the source's size, it is not paused, no error was reported (hls.js fatal errors and the
element's own go to the page's status), and the page says it plays over HLS.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import fms.http
from tests.e2e.harness import ServerProcess, ffmpeg_publish_command, start
from tests.e2e.test_player_page import (  # noqa: F401  (fixtures)
    DEADLINE,
    HEIGHT,
    PLAYED,
    WIDTH,
    _get,
    _wait_published,
    browser,
    http_server,
)

pytestmark = pytest.mark.e2e

VENDORED = Path(fms.http.__file__).parent / "static" / "hls.min.js"


def test_static_hls_js_is_the_vendored_file(
    http_server: tuple[ServerProcess, str],  # noqa: F811
) -> None:
    _, base = http_server
    status, headers, body = _get(base + "/static/hls.min.js")
    assert status == 200 and body == VENDORED.read_bytes()
    assert headers["Content-Type"].startswith("text/javascript")
    assert _get(base + "/static/hls.js.LICENSE")[0] == 200


def test_player_page_plays_the_stream_over_hls_in_chromium(
    http_server: tuple[ServerProcess, str],  # noqa: F811
    browser: Any,  # noqa: F811
) -> None:
    server, base = http_server
    publisher = start(ffmpeg_publish_command(f"{server.url}/live/cam", 120))
    try:
        _wait_published(base, "live", "cam")
        page = browser.new_page(viewport={"width": 900, "height": 600})
        failures: list[str] = []
        page.on("pageerror", lambda exc: failures.append(f"page error: {exc}"))
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text))
        page.goto(base + "/play/live/cam#hls")
        try:
            page.wait_for_function(
                "() => document.getElementById('video').currentTime > 0", timeout=DEADLINE * 1000
            )
        except Exception:
            status = page.locator("#status").text_content()
            pytest.fail(f"the video never played; status {status!r}; console: {console}")
        first = page.evaluate("() => document.getElementById('video').currentTime")
        positions = [first]
        deadline = time.monotonic() + DEADLINE
        while positions[-1] - first < PLAYED:
            assert time.monotonic() < deadline, f"the video did not play on: {positions}"
            time.sleep(0.25)
            positions.append(page.evaluate("() => document.getElementById('video').currentTime"))
        assert positions == sorted(positions), f"the position went back: {positions}"
        state = page.evaluate(
            """() => { const v = document.getElementById('video');
            return { width: v.videoWidth, height: v.videoHeight, error: v.error && v.error.code,
                     paused: v.paused,
                     frames: v.getVideoPlaybackQuality().totalVideoFrames,
                     failed: document.getElementById('status').classList.contains('error'),
                     status: document.getElementById('status').textContent,
                     protocol: document.querySelector('[data-field="protocol"]').textContent };
            }"""
        )
        assert (state["width"], state["height"]) == (WIDTH, HEIGHT), state
        assert state["error"] is None and not state["failed"], state
        assert not state["paused"] and state["frames"] > 0, state
        assert state["protocol"] == "HLS", state
        assert not failures, failures
    finally:
        if publisher.poll() is None:
            publisher.kill()
            publisher.wait()
