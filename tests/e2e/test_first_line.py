"""README's promise: the first log line of ``fms run`` says where the server listens, with
``--workers`` too, and even at ``--log-level debug`` (where Twisted and the workers have
things to say before the listening line is due)."""

from __future__ import annotations

import re

import pytest

from tests.e2e.harness import ServerProcess
from tests.hostile.support import Client

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_first_line_is_the_listening_line_and_the_lines_held_back_follow(workers: str) -> None:
    server = ServerProcess("--workers", workers, "--log-level", "debug")
    try:
        expected = "" if workers == "1" else rf" \({workers} workers\)"
        assert re.search(rf"\] listening on rtmp://127\.0\.0\.1:\d+{expected}$", server.lines[0])
        # What was logged before it was held back, not lost: each process's start-up lines.
        if workers == "1":
            server.wait_for_line(r"\[log_legacy\] RTMPServerFactory starting on")
        else:
            server.wait_for_lines(r"\[fms\.cluster\.supervisor\] worker \d started", 2)
            server.wait_for_lines(r" w\d \[fms\.server\.service\] worker \d accepting on", 2)
        Client(server.port).connect("live").close()
        server.wait_for_line(r"connect from 127\.0\.0\.1")
        assert sum("listening on" in line for line in server.lines) == 1
    finally:
        assert server.stop() == 0, server.log()
