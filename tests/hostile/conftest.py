"""The hostile suite's server: one real ``fms`` process with short deadlines for the whole
suite (tests that need other settings start their own), its memory watched after every test.

Deadlines here are a tenth of the defaults so that nothing waits 10 s; the defaults are the
same code with other numbers.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import ServerProcess
from tests.hostile.support import (
    MEASUREMENTS,
    GoodTraffic,
    measure,
    peak_rss_kib,
    roundtrip,
    rss_kib,
)

HERE = Path(__file__).resolve().parent

HOSTILE_CONFIG = f"""
[server]
shutdown_timeout = 3.0
plugin_dirs = [{json.dumps(str(HERE))}]

[limits]
handshake_timeout = 1.0
connect_timeout = 1.0
publish_or_play_timeout = 1.5
idle_timeout = 2.0
publisher_timeout = 1.0
ping_interval = 0.5
ping_timeout = 0.5

[streams]
stall_timeout = 1.0

[apps.chat]
publish_or_play_timeout = 0
[[apps.chat.plugins]]
use = "chat"

[apps.faulty]
decision_timeout = 1.0
[[apps.faulty.plugins]]
use = "faulty"
"""

_serial = itertools.count()

MEMORY_BOUND_KIB = 96 * 1024
"""How much the server may grow over its warmed-up size during the suite (generous: a
connection that may buffer 16 MiB of partial messages is one of the attacks)."""


class HostileServer:
    def __init__(self, process: ServerProcess) -> None:
        self.process = process
        self.port = process.port
        self.pid = process.process.pid
        self.baseline_kib = 0
        self.peak_growth_kib = 0

    @property
    def lines(self) -> list[str]:
        return self.process.lines

    def mark(self) -> int:
        return len(self.process.lines)

    def rss_growth_kib(self) -> int:
        growth = rss_kib(self.pid) - self.baseline_kib
        self.peak_growth_kib = max(self.peak_growth_kib, growth)
        return growth


@pytest.fixture(scope="session")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileServer]:
    folder = tmp_path_factory.mktemp("hostile")
    config = folder / "fms.toml"
    config.write_text(HOSTILE_CONFIG, encoding="utf-8")
    os.environ["FMS_HOSTILE_CANARY"] = str(folder / "canary")
    process = ServerProcess("--log-level", "info", config=config)
    server = HostileServer(process)
    try:
        for i in range(3):  # warm up: imports, first streams, allocator pools
            roundtrip(server.port, f"warmup{i}")
        server.baseline_kib = rss_kib(server.pid)
        yield server
        peak = peak_rss_kib(server.pid)
        measure(
            f"hostile server memory: warmed up {server.baseline_kib / 1024:.1f} MiB; largest "
            f"growth seen after a test {server.peak_growth_kib / 1024:.1f} MiB; peak RSS "
            f"{peak / 1024:.1f} MiB (+{(peak - server.baseline_kib) / 1024:.1f} MiB)"
        )
    finally:
        status = process.stop()
    assert status == 0, process.log()


class GoodTrafficSlot:
    """The suite's good traffic: one process (a publisher and a player, see
    :class:`GoodTraffic`) running beside every test that asks for ``good``. A test whose check
    fails ends it, and the next test starts a fresh one, so that one failure stays one."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.traffic: GoodTraffic | None = None
        self.largest_gap = 0.0
        self.windows = 0

    def running(self) -> GoodTraffic:
        if self.traffic is None or not self.traffic.alive:
            self.discard()
            self.traffic = GoodTraffic(self.port, f"good-{next(_serial)}")
        return self.traffic

    def discard(self) -> None:
        if self.traffic is not None:
            self.traffic.kill()
            self.traffic = None

    def stop(self) -> None:
        if self.traffic is not None:
            traffic, self.traffic = self.traffic, None
            traffic.stop()


@pytest.fixture(scope="session")
def good_traffic(hostile: HostileServer) -> Iterator[GoodTrafficSlot]:
    slot = GoodTrafficSlot(hostile.port)
    try:
        yield slot
        slot.stop()
        if slot.windows:
            measure(
                f"good traffic: {slot.windows} tests attacked beside it; the longest wait of "
                f"its player for a frame: {slot.largest_gap * 1000:.0f} ms"
            )
    finally:
        slot.discard()


@pytest.fixture
def good(
    hostile: HostileServer, good_traffic: GoodTrafficSlot, request: pytest.FixtureRequest
) -> Iterator[HostileServer]:
    """Good traffic flows during the test (in its own process) and goes on after it, never
    waiting :attr:`GoodTraffic.MAX_GAP` for a frame; afterwards a fresh publisher and player
    work too, and the server's memory stayed within bounds."""
    traffic = good_traffic.running()
    traffic.mark()
    yield hostile
    try:
        window = traffic.check()
    except BaseException:
        good_traffic.discard()
        raise
    good_traffic.windows += 1
    good_traffic.largest_gap = max(good_traffic.largest_gap, window["max_gap"])
    name = "good-" + re.sub(r"[^A-Za-z0-9_]+", "-", request.node.name)[:60] + f"-{next(_serial)}"
    roundtrip(hostile.port, name + "-after")
    growth = hostile.rss_growth_kib()
    assert growth < MEMORY_BOUND_KIB, f"the server grew by {growth} KiB"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if MEASUREMENTS:
        terminalreporter.section("hostile suite measurements")
        for line in MEASUREMENTS:
            terminalreporter.write_line(line)
