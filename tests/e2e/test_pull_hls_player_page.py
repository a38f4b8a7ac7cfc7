"""The player page's hls.js (``/play/live/cam#hls`` in headless Chromium) plays a stream that
server B has only through an on-demand pull from server A: the page's first playlist
request starts the pull and waits for it (hls.js would not retry a 404), then the video
plays, at the source's size, with no error; A serves one player, B's pull."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import ffmpeg_publish_command, start
from tests.e2e.test_http_api import wait_until
from tests.e2e.test_player_page import (  # noqa: F401  (browser is a fixture)
    DEADLINE,
    HEIGHT,
    PLAYED,
    WIDTH,
    browser,
)
from tests.e2e.test_pull import _players, _pull, _server, _stream

pytestmark = pytest.mark.e2e

POSITION = "() => document.getElementById('video').currentTime"


def test_hls_js_plays_a_stream_b_pulls_from_a_on_demand(
    tmp_path: Path,
    browser: Any,  # noqa: F811
) -> None:
    origin, api_a = _server(tmp_path, "a", "")
    edge, api_b = _server(
        tmp_path,
        "b",
        f'[[apps.live.pull]]\nurl = "rtmp://127.0.0.1:{origin.port}/live"\n'
        "retry_initial = 0.5\nretry_max = 1.0\n",
    )
    publisher = start(ffmpeg_publish_command(f"{origin.url}/live/cam", 120))
    try:
        wait_until("the publish on A", lambda: (_stream(api_a, "cam") or {}).get("published"))
        assert _pull(api_b, "cam") is None
        page = browser.new_page(viewport={"width": 900, "height": 600})
        failures: list[str] = []
        page.on("pageerror", lambda exc: failures.append(f"page error: {exc}"))
        page.goto(api_b + "/play/live/cam#hls")
        try:
            page.wait_for_function(f"{POSITION} > 0", timeout=2 * DEADLINE * 1000)
        except Exception:
            status = page.locator("#status").text_content()
            pytest.fail(f"the video never played; status {status!r}; log: {edge.log()[-2000:]}")
        first = page.evaluate(POSITION)
        positions = [first]
        deadline = time.monotonic() + DEADLINE
        while positions[-1] - first < PLAYED:
            assert time.monotonic() < deadline, f"the video did not play on: {positions}"
            time.sleep(0.25)
            positions.append(page.evaluate(POSITION))
        state = page.evaluate(
            """() => { const v = document.getElementById('video');
            return { width: v.videoWidth, height: v.videoHeight, error: v.error && v.error.code,
                     paused: v.paused,
                     failed: document.getElementById('status').classList.contains('error'),
                     status: document.getElementById('status').textContent };
            }"""
        )
        assert (state["width"], state["height"]) == (WIDTH, HEIGHT), state
        assert state["error"] is None and not state["failed"] and not state["paused"], state
        assert not failures, failures
        pull = _pull(api_b, "cam")
        assert pull is not None and pull["state"] == "live" and pull["connects"] == 1
        assert _players(api_a, "cam") == 1
    finally:
        if publisher.poll() is None:
            publisher.kill()
        publisher.communicate()
        edge.stop()
        origin.stop()
