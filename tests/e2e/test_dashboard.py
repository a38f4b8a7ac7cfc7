"""The dashboard page in a real headless Chromium against a real server.

Debian's ``chromium`` (installed by ``scripts/test``) is driven by Playwright with that
executable: no browser download. What is checked is what the page shows and what the player
on the other end of a kick experiences, not that a request was sent.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import (
    ServerProcess,
    ffmpeg_publish_command,
    finish,
    frames_by_codec,
    probe_command,
    require_client,
    start,
)
from tests.support.ci import IN_CI

pytestmark = pytest.mark.e2e

TOKEN = "dashboard-test-token"
SCREENSHOT_ENV = "FMS_DASHBOARD_SCREENSHOT"
"""Where to copy the screenshot too (docs/dashboard.png is made this way)."""


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
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    config = tmp_path / "fms.toml"
    config.write_text(f'[http]\nenabled = true\nhost = "127.0.0.1"\nport = 0\ntoken = "{TOKEN}"\n')
    proc = ServerProcess("--config", str(config), "--log-level", "debug")
    try:
        line = proc.wait_for_line(re.compile(r"listening on (http://\S+)"))
        match = re.search(r"listening on (http://[^\s/]+)", line)
        assert match is not None, line
        yield proc, match.group(1)
    finally:
        status = proc.stop()
    assert status == 0, f"server exited with {status}; log:\n{proc.log()}"


def _players_selector(stream: str) -> str:
    return f'tr.stream[data-stream="{stream}"] td[data-field="players"]'


def _players_cell(page: Any, stream: str) -> Any:
    return page.locator(_players_selector(stream))


def _wait_text(page: Any, selector: str, predicate: str) -> None:
    """Wait until the element at ``selector`` exists and ``predicate`` (JavaScript, of ``t``,
    its text) holds. The page rebuilds its table at every refresh, so a handle to one element
    would go stale: the selector is looked up anew at each check."""
    page.wait_for_function(
        "([selector, body]) => { const el = document.querySelector(selector);"
        " if (!el) return false; const t = el.textContent; return eval(body); }",
        arg=[selector, predicate],
        timeout=30_000,
    )


def test_dashboard_lists_a_stream_counts_its_player_and_kicks_it(
    http_server: tuple[ServerProcess, str], browser: Any, tmp_path: Path
) -> None:
    server, base = http_server
    publisher = start(ffmpeg_publish_command(f"{server.url}/live/dash", 120))
    player = None
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 560})
        page.goto(base + "/")
        row = page.locator('tr.stream[data-stream="live/dash"]')
        row.wait_for(timeout=30_000)
        video = row.locator('td[data-field="video"]')
        # the figures come from the stream's own headers: 320x240 H.264 from the publisher
        _wait_text(
            page,
            'tr.stream[data-stream="live/dash"] td[data-field="video"]',
            "t.includes('320x240')",
        )
        assert "h264" in video.text_content().lower()
        assert _players_cell(page, "live/dash").text_content() == "0"

        player = start(probe_command(f"{server.url}/live/dash"))
        _wait_text(page, _players_selector("live/dash"), "t === '1'")
        kick = page.locator('tr.clients[data-stream="live/dash"] button[data-action="kick"]')
        kick.wait_for(timeout=30_000)

        shot = tmp_path / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get(SCREENSHOT_ENV):
            shutil.copyfile(shot, os.environ[SCREENSHOT_ENV])

        page.fill("#token", TOKEN)
        page.dispatch_event("#token", "change")
        kick.click()
        # the page reports the server's answer to the kick, then the player is cut off
        page.wait_for_function(
            "() => document.getElementById('status').textContent === 'kick: done'",
            timeout=30_000,
        )
        _, out, err = finish(player, timeout=30)
        player = None
        # the player was cut off while the stream went on: it had decoded frames, and the
        # publisher is still live
        assert frames_by_codec(out).get("h264", 0) > 0, err.decode(errors="replace")
        assert publisher.poll() is None
        _wait_text(page, _players_selector("live/dash"), "t === '0'")
    finally:
        for proc in (player, publisher):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_a_kick_without_the_token_changes_nothing(
    http_server: tuple[ServerProcess, str], browser: Any
) -> None:
    server, base = http_server
    publisher = start(ffmpeg_publish_command(f"{server.url}/live/keep", 120))
    player = start(probe_command(f"{server.url}/live/keep"))
    try:
        page = browser.new_page()
        page.goto(base + "/")
        kick = page.locator('tr.clients[data-stream="live/keep"] button[data-action="kick"]')
        kick.wait_for(timeout=30_000)
        kick.click()
        status = page.locator("#status")
        page.wait_for_function(
            "() => document.getElementById('status').classList.contains('error')",
            timeout=30_000,
        )
        assert re.search(r"\b40[13]\b", status.text_content())
        # the refused kick left the player playing: the page still counts it after the refusal
        # and its process is still running
        time_limit = time.monotonic() + 5
        while time.monotonic() < time_limit and player.poll() is None:
            time.sleep(0.2)
        assert player.poll() is None
        assert _players_cell(page, "live/keep").text_content() == "1"
    finally:
        for proc in (player, publisher):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
