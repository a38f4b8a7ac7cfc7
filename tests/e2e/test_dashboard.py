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
def browser() -> Iterator[object]:
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


def _players_cell(page: object, stream: str) -> str:
    return page.locator(f'tr.stream[data-stream="{stream}"] td[data-field="players"]')  # type: ignore[attr-defined,no-any-return]


def test_dashboard_lists_a_stream_counts_its_player_and_kicks_it(
    http_server: tuple[ServerProcess, str], browser: object, tmp_path: Path
) -> None:
    server, base = http_server
    publisher = start(ffmpeg_publish_command(f"{server.url}/live/dash", 120))
    player = None
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 560})  # type: ignore[attr-defined]
        page.goto(base + "/")
        row = page.locator('tr.stream[data-stream="live/dash"]')
        row.wait_for(timeout=30_000)
        video = row.locator('td[data-field="video"]')
        # the figures come from the stream's own headers: 320x240 H.264 from the publisher
        page.wait_for_function(
            "el => el.textContent.includes('320x240')", arg=video.element_handle(), timeout=30_000
        )
        assert "h264" in video.text_content().lower()
        assert _players_cell(page, "live/dash").text_content() == "0"

        player = start(probe_command(f"{server.url}/live/dash"))
        page.wait_for_function(
            "el => el.textContent === '1'",
            arg=_players_cell(page, "live/dash").element_handle(),
            timeout=30_000,
        )
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
        _, out, err = finish(player, timeout=30)
        player = None
        # the player was cut off while the stream went on: it had decoded frames, and the
        # publisher is still live
        assert frames_by_codec(out).get("h264", 0) > 0, err.decode(errors="replace")
        assert publisher.poll() is None
        page.wait_for_function(
            "el => el.textContent === '0'",
            arg=_players_cell(page, "live/dash").element_handle(),
            timeout=30_000,
        )
    finally:
        for proc in (player, publisher):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_a_kick_without_the_token_changes_nothing(
    http_server: tuple[ServerProcess, str], browser: object
) -> None:
    server, base = http_server
    publisher = start(ffmpeg_publish_command(f"{server.url}/live/keep", 120))
    player = start(probe_command(f"{server.url}/live/keep"))
    try:
        page = browser.new_page()  # type: ignore[attr-defined]
        page.goto(base + "/")
        kick = page.locator('tr.clients[data-stream="live/keep"] button[data-action="kick"]')
        kick.wait_for(timeout=30_000)
        kick.click()
        status = page.locator("#status")
        page.wait_for_function(
            "el => el.classList.contains('error')", arg=status.element_handle(), timeout=30_000
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
