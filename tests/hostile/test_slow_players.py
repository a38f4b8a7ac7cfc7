"""Slow players cost a constant (issue 12): players that never read, with 4 KiB receive
buffers, while a publisher bursts a high-bitrate stream. The server's growth is bounded by a
constant plus ``player_buffer`` (256 KiB) per stalled player, in every run, and good players of
the same stream get every frame meanwhile. The scenario is ``benchmarks/slow_players.py``'s
(which also runs it against nginx-rtmp and prints the figures)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.slow_players import run_scenario
from tests.e2e.harness import ServerProcess
from tests.hostile.support import measure

pytestmark = pytest.mark.hostile

CONSTANT_MIB = 64
"""What the server may grow by whatever the number of stalled players (the stream's shared log
and GOP, interpreter and allocator slack)."""
PLAYER_BUFFER_KIB = 256
"""``[streams] player_buffer``'s default: what one stalled player may hold of its own."""


GOOD_PLAYER_PATIENCE = """
[streams]
soft_seconds = 150.0
"""
"""The defaults but for ``soft_seconds``. The good players are Python readers beside the server
on a CI machine that may be busy; how fast they drain a 32 MB burst is not what these tests
show (the stalled players' cost, and that nobody else loses a frame to them), so what they lack
may wait longer than their own 120 s deadline before ``soft_seconds`` skips them forward. The
stalled players, which take nothing, are still judged on their lag after ``stall_grace`` as by
default; ``soft_seconds`` itself is shown in ``tests/test_slow_players.py`` and
``tests/test_limits_stream.py``. (Two CI runs lost frames of the good player here, 431 and 456
of 500: what was found behind it is the last test below.)"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    config = tmp_path / "fms.toml"
    config.write_text(GOOD_PLAYER_PATIENCE)
    process = ServerProcess(config=config)
    yield process
    process.stop()


def test_200_stalled_players_of_a_burst_cost_a_constant_each(server: ServerProcess) -> None:
    """10 s of an 8 Mbit/s stream (40 KB frames, a keyframe every 2 s) sent at once."""
    outcome = run_scenario(
        server.port, server.process.pid, stalled=200, good=2, frames=250, frame_size=40_000
    )
    measure(
        f"200 stalled players, 10 s of 8 Mbit/s sent in {outcome.sent_seconds} s: the server "
        f"grew {outcome.peak_growth_mib} MiB ({outcome.growth_per_stalled_kib} KiB per stalled "
        f"player); good players received {[g['received'] for g in outcome.good]} of 250"
    )
    assert outcome.peak_growth_mib <= CONSTANT_MIB + 200 * PLAYER_BUFFER_KIB / 1024
    for good in outcome.good:
        assert good == {"received": 250, "in_order": True, "closed": False}


def test_4_stalled_players_of_32_mb_cost_at_most_the_constant(server: ServerProcess) -> None:
    """500 frames of 64 KB pushed at once: the backlog lives once, in the shared log."""
    outcome = run_scenario(
        server.port, server.process.pid, stalled=4, good=1, frames=500, frame_size=64_000
    )
    measure(
        f"4 stalled players, 500 x 64 KB at once: the server grew {outcome.peak_growth_mib} MiB;"
        f" the good player received {outcome.good[0]['received']} of 500"
    )
    assert outcome.peak_growth_mib <= CONSTANT_MIB
    assert outcome.good == [{"received": 500, "in_order": True, "closed": False}]


def pause_now_and_then(pids: list[int], pause: float = 0.05, run: float = 0.02) -> None:
    """Stop each process for ``pause`` seconds, let it run ``run`` seconds, until it exits: a
    reader that keeps up on average but stops now and then (a busy client, a GC pause)."""
    live = list(pids)
    while live:
        for pid in list(live):
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                live.remove(pid)
        time.sleep(pause)
        for pid in live:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        time.sleep(run)


def test_a_good_player_that_stops_reading_for_moments_in_a_burst_loses_no_frame(
    server: ServerProcess,
) -> None:
    """With the adaptive flush, flushes run milliseconds apart: a reader stopped for 50 ms at a
    time in the middle of a 32 MB burst meets many flushes that find its socket full. It is
    judged on its lag only after ``stall_grace`` (0.5 s) without taking anything, so it keeps
    every frame (with the grace at 0 it received 186 to 372 of the 500 in seven runs)."""
    outcome = run_scenario(
        server.port,
        server.process.pid,
        stalled=0,
        good=1,
        frames=500,
        frame_size=64_000,
        while_sending=pause_now_and_then,
    )
    measure(
        f"a player stopped 50 ms of every 70 during 500 x 64 KB at once received "
        f"{outcome.good[0]['received']} of 500"
    )
    assert outcome.good == [{"received": 500, "in_order": True, "closed": False}]
