"""The player page in a real headless Chromium playing a real publish through HTTP-FLV.

Debian's ``chromium`` plays H.264+AAC through Media Source Extensions (INTEROP.md); the page
feeds it with the vendored mpegts.js. What is checked is what the ``<video>`` element did
(its position advanced, its picture has the source's size, no error), not that a request
was sent.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fms.http
from tests.e2e.harness import ServerProcess, ffmpeg_publish_command, require_client, start
from tests.support.ci import IN_CI

pytestmark = pytest.mark.e2e

SCREENSHOT_ENV = "FMS_PLAYER_SCREENSHOT"
"""Set: copy the screenshot of the playing page to docs/player.png."""
WIDTH, HEIGHT = 320, 240
"""The publisher's picture size (tests/e2e/harness.py ffmpeg_publish_command)."""
PLAYED = 3.0
"""Seconds of media the video element must play."""
DEADLINE = 30.0
"""Seconds to wait for each step on a loaded machine (never a timing under test)."""
VENDORED = Path(fms.http.__file__).parent / "static" / "mpegts.js"


@pytest.fixture
def browser() -> Iterator[Any]:
    executable = require_client("chromium")
    try:
        from playwright import sync_api
    except ImportError:
        message = "playwright is not installed (the test extra has it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable,
            headless=True,
            args=["--autoplay-policy=no-user-gesture-required"],
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    config = tmp_path / "fms.toml"
    config.write_text('[http]\nenabled = true\nhost = "127.0.0.1"\nport = 0\n')
    proc = ServerProcess("--config", str(config))
    try:
        line = proc.wait_for_line(re.compile(r"listening on (http://\S+)"))
        match = re.search(r"listening on (http://[^\s/]+)", line)
        assert match is not None, line
        yield proc, match.group(1)
    finally:
        status = proc.stop()
    assert status == 0, f"server exited with {status}; log:\n{proc.log()}"


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _wait_published(base: str, app: str, name: str) -> None:
    """Until the API shows ``app/name`` published with its video header known."""
    deadline = time.monotonic() + DEADLINE
    while True:
        status, _, body = _get(f"{base}/api/v1/streams/{app}/{name}")
        if status == 200:
            doc = json.loads(body)
            if doc.get("published") and doc.get("video"):
                return
        assert time.monotonic() < deadline, f"{app}/{name} not published: {status} {body!r}"
        time.sleep(0.2)


def test_static_mpegts_is_the_vendored_file(http_server: tuple[ServerProcess, str]) -> None:
    """/static/mpegts.js serves the vendored bytes as JavaScript; other names are 404."""
    _, base = http_server
    status, headers, body = _get(base + "/static/mpegts.js")
    assert status == 200
    assert body == VENDORED.read_bytes()
    assert headers["Content-Type"].startswith("text/javascript")
    assert "max-age=" in headers["Cache-Control"]
    assert _get(base + "/static/..%2Fapi.py")[0] == 404
    assert _get(base + "/static/player.html")[0] == 404


def test_player_page_plays_the_stream_in_chromium(
    http_server: tuple[ServerProcess, str], browser: Any, tmp_path: Path
) -> None:
    """From the dashboard's watch link, the page plays live/cam: the video's position advances
    PLAYED seconds, its picture is the source's 320x240, and no error is reported. H.264+AAC
    from Debian's FFmpeg."""
    server, base = http_server
    publisher = start(ffmpeg_publish_command(f"{server.url}/live/cam", 120))
    try:
        _wait_published(base, "live", "cam")
        page = browser.new_page(viewport={"width": 900, "height": 600})
        failures: list[str] = []
        page.on("pageerror", lambda exc: failures.append(f"page error: {exc}"))
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text))
        page.goto(base + "/")
        watch = page.locator('tr.stream[data-stream="live/cam"] a[data-action="watch"]')
        watch.wait_for(timeout=DEADLINE * 1000)
        href = watch.get_attribute("href")
        assert href == "/play/live/cam"

        page.goto(base + href)
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
                     status: document.getElementById('status').textContent,
                     failed: document.getElementById('status').classList.contains('error'),
                     stream: document.querySelector('[data-field="stream"]').textContent }; }"""
        )
        assert (state["width"], state["height"]) == (WIDTH, HEIGHT), state
        assert state["error"] is None and not state["failed"], state
        assert not state["paused"], state
        assert state["frames"] > 0, state
        assert state["stream"] == "live/cam", state
        assert not failures, failures
        page.wait_for_function(
            "() => /^\\d+\\.\\d\\d s$/.test("
            "document.querySelector('[data-field=\"latency\"]').textContent)",
            timeout=DEADLINE * 1000,
        )
        latency = page.locator('[data-field="latency"]').text_content()
        print(f"player latency shown: {latency}; positions: {positions}")

        shot = tmp_path / "player.png"
        page.screenshot(path=str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get(SCREENSHOT_ENV):
            target = Path(__file__).resolve().parents[2] / "docs" / "player.png"
            shutil.copyfile(shot, target)
    finally:
        if publisher.poll() is None:
            publisher.kill()
            publisher.wait()
