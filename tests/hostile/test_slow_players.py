"""Slow players cost a constant (issue 12): players that never read, with 4 KiB receive
buffers, while a publisher bursts a high-bitrate stream. The server's growth is bounded by a
constant plus ``player_buffer`` (256 KiB) per stalled player, in every run, and good players of
the same stream get every frame meanwhile. The scenario is ``benchmarks/slow_players.py``'s
(which also runs it against nginx-rtmp and prints the figures)."""

from __future__ import annotations

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


@pytest.fixture
def server() -> ServerProcess:
    process = ServerProcess()
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
