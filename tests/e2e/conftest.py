"""Fixtures for end-to-end tests: a real server process per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.harness import ServerProcess


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    """A fresh ``fms run`` on 127.0.0.1 and a free port; it must stop cleanly afterwards."""
    proc = ServerProcess("--log-level", "debug")
    try:
        yield proc
    finally:
        status = proc.stop()
    assert status == 0, f"server exited with {status}; log:\n{proc.log()}"
