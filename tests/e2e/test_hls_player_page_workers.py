"""The Low-Latency player page (``/play/live/cam#llhls``) in headless Chromium against
``fms run --workers 2``: FFmpeg publishes to worker 0, the page is served through the shared
HTTP port, so its blocking reloads and parts reach either worker, and worker 1 forwards its
share to worker 0. Checked as in tests/e2e/test_hls_player_page.py: the video plays 3 s, its
picture is the source's, parts and blocking reloads in use, no error, and the best latency
sample under 4 s; and worker 1 did answer some of the page's requests (its log says so).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from benchmarks.fanout import free_ports
from tests.e2e.harness import ServerProcess, ffmpeg_publish_command, start
from tests.e2e.test_hls_player_page import (
    LATENCY_BOUND,
    _open_low_latency,
    _page_state,
    _plays_on,
    _wait_full_window,
)
from tests.e2e.test_player_page import (  # noqa: F401  (fixtures)
    HEIGHT,
    PLAYED,
    WIDTH,
    _wait_published,
    browser,
)

pytestmark = pytest.mark.e2e

HTTP_LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)/ \(2 workers\)")
FORWARDED = r"w1 .*HLS of live/cam answered here from worker 0"
PAGES = 4
"""Pages opened at most until worker 1 has answered: each page's few connections land on
either worker, so all of one page's on worker 0 happens, rarely."""


def test_low_latency_player_page_plays_through_two_workers(
    tmp_path: Path,
    browser: Any,  # noqa: F811
) -> None:
    ports = free_ports(2)
    config = tmp_path / "fms.toml"
    config.write_text(f"[server]\nworker_ports = {ports}\n[http]\nenabled = true\nport = 0\n")
    server = ServerProcess("--config", str(config), "--workers", "2")
    publisher = None
    try:
        match = HTTP_LISTENING.search(server.wait_for_line(HTTP_LISTENING, timeout=30))
        assert match is not None
        base = match.group(1)
        publisher = start(ffmpeg_publish_command(f"rtmp://127.0.0.1:{ports[0]}/live/cam", 150))
        _wait_published(base, "live", "cam")
        _wait_full_window(base)
        for opened in range(1, PAGES + 1):
            page, failures, console = _open_low_latency(browser, base)
            _plays_on(page, console, PLAYED)
            samples: list[float] = []
            for _ in range(20):
                latency = page.evaluate(
                    "() => window.hls.playingDate"
                    " ? (Date.now() - window.hls.playingDate) / 1000 : null"
                )
                if latency is not None:
                    samples.append(latency)
                time.sleep(0.25)
            print(f"page {opened}: latency samples (s): {[round(s, 2) for s in samples]}")
            assert samples and 0 < min(samples) < LATENCY_BOUND, samples
            state = _page_state(page)
            assert (state["width"], state["height"]) == (WIDTH, HEIGHT), state
            assert state["error"] is None and not state["failed"], state
            assert not state["paused"], state
            assert state["protocol"] == "LL-HLS" and state["lowLatency"] is True, state
            assert state["parts"] and state["blocking"] is True, state
            assert not failures, failures
            page.close()
            if re.search(FORWARDED, server.log()):
                break
        assert re.search(FORWARDED, server.log()), f"worker 1 answered none of {opened} pages"
    finally:
        if publisher is not None and publisher.poll() is None:
            publisher.kill()
            publisher.wait()
        server.stop()
