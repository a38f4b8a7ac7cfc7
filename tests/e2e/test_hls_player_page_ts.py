"""The player page in HLS mode playing MPEG-TS segments in a real headless Chromium: hls.js
(vendored) reads ``seg<N>.ts`` as well as fMP4 (it remuxes TS itself). The same checks as the
fMP4 case (``test_hls_player_page``): position advances, 320x240, not paused, no error; plus
the playlist the page played lists ``.ts`` segments and no ``#EXT-X-MAP``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import ServerProcess
from tests.e2e.test_hls_player_page import (
    test_player_page_plays_the_stream_over_hls_in_chromium as plays_over_hls,
)
from tests.e2e.test_player_page import _get, browser  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e


@pytest.fixture
def ts_server(tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    config = tmp_path / "fms.toml"
    config.write_text(
        '[http]\nenabled = true\nhost = "127.0.0.1"\nport = 0\n[hls]\ncontainer = "mpegts"\n'
    )
    proc = ServerProcess("--config", str(config))
    try:
        line = proc.wait_for_line(re.compile(r"listening on (http://\S+)"))
        match = re.search(r"listening on (http://[^\s/]+)", line)
        assert match is not None, line
        yield proc, match.group(1)
    finally:
        status = proc.stop()
    assert status == 0, f"server exited with {status}; log:\n{proc.log()}"


def test_player_page_plays_ts_segments_over_hls_in_chromium(
    ts_server: tuple[ServerProcess, str],
    browser: Any,  # noqa: F811
) -> None:
    played: list[str] = []
    original = browser.new_page

    def new_page(**options: Any) -> Any:
        page = original(**options)
        page.on("request", lambda request: played.append(request.url))
        return page

    browser.new_page = new_page
    try:
        plays_over_hls(ts_server, browser)
    finally:
        browser.new_page = original
    segments = [url for url in played if "/live/cam/seg" in url]
    assert segments and all(url.split("?")[0].endswith(".ts") for url in segments), played
    _, base = ts_server
    status, _, body = _get(base + "/live/cam/index.m3u8")
    assert status == 200 and b"#EXT-X-MAP" not in body and b".ts" in body
