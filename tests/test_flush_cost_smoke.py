"""``benchmarks.flush_cost`` keeps working (it asserts no timings): each flush it times hands
every player the messages published before it, in memory and over TCP."""

from __future__ import annotations

import pytest

from benchmarks import flush_cost


@pytest.mark.parametrize("sockets", [False, True])
def test_every_timed_flush_reaches_every_player(
    sockets: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    sinks: list[flush_cost.CountingSink] = []
    real = flush_cost.LiveStream.add_player

    def add_player(
        self: flush_cost.LiveStream, sink: flush_cost.CountingSink, *a: object
    ) -> object:
        sinks.append(sink)
        return real(self, sink, *a)  # type: ignore[arg-type]

    monkeypatch.setattr(flush_cost.LiveStream, "add_player", add_player)
    costs = flush_cost.flush_costs(players=3, batch=2, flushes=4, sockets=sockets)
    assert len(costs) == 4 and all(cost >= 0 for cost in costs)
    assert len(sinks) == 3
    # the preamble (2 sequence headers) in one write, then one write per timed flush
    assert [sink.writes for sink in sinks] == [5, 5, 5]
    assert len({sink.bytes for sink in sinks}) == 1 and sinks[0].bytes > 4 * 2 * 200
