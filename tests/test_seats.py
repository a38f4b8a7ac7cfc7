"""Seats (``app.take_seat``): how many there are and when each goes back.

:class:`Seating` over :class:`LocalSeats` decides alone; then the real server (in memory,
:class:`tests.support.server_peer.Peer`) with the viewer-limit plugin of ``docs/plugins.md``
(its block, as written), where a seat must come back when the play ends, when the client
leaves, and when the play is refused after the plugin took the seat. The seats of several
processes are in ``tests/test_seats_lock.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred

from fms.apps.api import Plugin, Reject
from fms.apps.interfaces import IClientView
from fms.apps.shared import MAX_SEATS, LocalSeats, Seating
from fms.testing import FakeApp, run_hook
from tests.support.server_peer import Peer, factory_for
from tests.test_notifications import documented_plugin


def seating() -> tuple[Seating, LocalSeats]:
    table = LocalSeats()
    return Seating("live", table), table


def test_seats_up_to_the_limit_are_given_and_the_next_is_refused() -> None:
    seats, table = seating()
    assert [seats.take("cam", 2, client) for client in (1, 2, 3)] == [True, True, False]
    assert table.held("live", "cam") == 2


def test_a_client_holds_one_seat_per_key_however_often_it_asks() -> None:
    seats, table = seating()
    assert seats.take("cam", 2, 1) and seats.take("cam", 2, 1)
    assert table.held("live", "cam") == 1
    assert seats.take("cam", 2, 2)


def test_keys_count_apart() -> None:
    seats, _ = seating()
    assert seats.take("cam", 1, 1) and seats.take("other", 1, 1)
    assert not seats.take("cam", 1, 2)


def test_a_limit_of_zero_gives_no_seat_and_a_wrong_limit_or_key_is_an_error() -> None:
    seats, _ = seating()
    assert not seats.take("cam", 0, 1)
    with pytest.raises(ValueError):
        seats.take("cam", MAX_SEATS + 1, 1)
    with pytest.raises(ValueError):
        seats.take("cam", -1, 1)
    with pytest.raises(TypeError):
        seats.take(3, 1, 1)  # type: ignore[arg-type]


def test_a_seat_taken_outside_a_play_lasts_until_the_client_leaves() -> None:
    seats, table = seating()
    seats.take("cam", 1, 1)
    seats.play_stopped(1, "cam")
    assert table.held("live", "cam") == 1
    seats.client_left(1)
    assert table.held("live", "cam") == 0 and seats.take("cam", 1, 2)


def test_a_seat_taken_while_a_play_is_decided_goes_back_when_the_play_is_refused() -> None:
    seats, table = seating()
    decision = seats.deciding(1)
    seats.take("cam", 1, 1)
    seats.decided(decision, False, "cam")
    assert table.held("live", "cam") == 0


def test_a_seat_of_an_accepted_play_goes_back_when_that_play_stops() -> None:
    seats, table = seating()
    decision = seats.deciding(1)
    seats.take("cam", 1, 1)
    seats.decided(decision, True, "cam")
    seats.play_stopped(1, "other")
    assert table.held("live", "cam") == 1
    seats.play_stopped(1, "cam")
    assert table.held("live", "cam") == 0


def test_a_seat_bound_to_two_plays_lasts_until_both_stopped() -> None:
    seats, table = seating()
    first, second = seats.deciding(1), seats.deciding(1)
    seats.take("all", 1, 1)
    seats.decided(first, True, "a")
    seats.decided(second, True, "b")
    seats.play_stopped(1, "a")
    assert table.held("live", "all") == 1
    seats.play_stopped(1, "b")
    assert table.held("live", "all") == 0


def test_a_seat_taken_outside_a_play_and_again_in_one_outlasts_the_play() -> None:
    seats, table = seating()
    seats.take("cam", 1, 1)  # in connect, say
    decision = seats.deciding(1)
    assert seats.take("cam", 1, 1)
    seats.decided(decision, True, "cam")
    seats.play_stopped(1, "cam")
    assert table.held("live", "cam") == 1
    seats.client_left(1)
    assert table.held("live", "cam") == 0


def test_nothing_is_kept_of_a_client_that_left() -> None:
    seats, _ = seating()
    accepted, open_ = seats.deciding(1), seats.deciding(1)
    seats.take("cam", 2, 1)
    seats.decided(accepted, True, "cam")
    seats.client_left(1)
    assert seats.tracked == 0
    seats.decided(open_, True, "other")  # a decision that ends after the client left
    assert seats.tracked == 0


def test_nothing_is_kept_of_a_play_that_ended() -> None:
    seats, table = seating()
    decision = seats.deciding(1)
    seats.take("cam", 1, 1)
    seats.decided(decision, True, "cam")
    seats.play_stopped(1, "cam")
    refused = seats.deciding(1)
    seats.decided(refused, False, "cam")
    assert seats.tracked == 0 and len(table) == 0


def test_a_seat_taken_after_a_play_was_decided_lasts_until_the_client_leaves() -> None:
    """A decision that ended no longer claims the seats its client takes (in a call, say)."""
    seats, table = seating()
    seats.decided(seats.deciding(1), True, "cam")
    seats.take("all", 1, 1)
    seats.play_stopped(1, "cam")
    assert table.held("live", "all") == 1


def test_the_largest_limit_is_2_to_the_20() -> None:
    """As documented (``IAppView.take_seat``): 1,048,576 seats, no more."""
    seats, _ = seating()
    assert seats.take("cam", 1_048_576, 1)
    with pytest.raises(ValueError):
        seats.take("cam", 1_048_577, 2)


def test_the_memory_table_forgets_keys_without_seats() -> None:
    table = LocalSeats()
    assert table.take("live", "cam", 0) is None
    assert len(table) == 0
    seat = table.take("live", "cam", 1)
    assert seat == 0 and len(table) == 1
    table.release("live", "cam", seat)
    assert len(table) == 0


def test_release_gives_a_seat_back_at_once() -> None:
    seats, table = seating()
    decision = seats.deciding(1)
    seats.take("cam", 1, 1)
    seats.decided(decision, True, "cam")
    seats.release("cam", 1)
    assert table.held("live", "cam") == 0
    seats.play_stopped(1, "cam")  # nothing left to give back
    assert seats.take("cam", 1, 2) and table.held("live", "cam") == 1


def test_the_stand_in_app_counts_seats_until_the_client_leaves() -> None:
    app = FakeApp()
    a, b = app.connect(), app.connect()
    plugin = documented_plugin("plugins/viewerlimit.py").ViewerLimit(max_players=1)
    assert run_hook(plugin.play, a, "cam", {}) is None
    assert isinstance(run_hook(plugin.play, b, "cam", {}), Reject)
    assert app.seated("cam") == 1
    app.leave(a)
    assert run_hook(plugin.play, b, "cam", {}) is None


# ------------------------------------------------------------------ the server, in memory


documented_plugin("plugins/viewerlimit.py")  # module tests.doc_viewerlimit


class RefuseLate(Plugin):
    """After the limit in the chain: refuses plays of names starting with 'no'."""

    def play(self, client: IClientView, name: str, query: dict[str, str]) -> Any:
        return Reject("not this one") if name.startswith("no") else None


class LateSeat(Plugin):
    """Takes one seat of the name after a gate the test opens (``gates``, in order)."""

    gates: list[Deferred[None]] = []

    async def play(self, client: IClientView, name: str, query: dict[str, str]) -> Any:
        gate: Deferred[None] = Deferred()
        LateSeat.gates.append(gate)
        await gate
        if not client.application.take_seat(name, 1, client):
            return Reject("taken")
        return None


LIMIT_2 = (
    "[[apps.live.plugins]]\nuse = 'tests.doc_viewerlimit:ViewerLimit'\nmax_players = 2\n"
    "[[apps.live.plugins]]\nuse = 'tests.test_seats:RefuseLate'\n"
)


def player(factory: Any, port: int, name: str = "cam") -> Peer:
    return Peer(factory, port).connect(create_stream=True).play(name)


def test_players_beyond_the_limit_are_refused_play_failed() -> None:
    factory = factory_for(LIMIT_2)
    peers = [player(factory, port) for port in (1, 2, 3)]
    assert [p.statuses()[-1] for p in peers] == [
        "NetStream.Play.Start", "NetStream.Play.Start", "NetStream.Play.Failed",
    ]  # fmt: skip
    assert "all the players it can take" in peers[2].infos()[-1]["description"]


def test_a_player_that_leaves_gives_its_seat_to_the_next() -> None:
    factory = factory_for(LIMIT_2)
    first, _second = player(factory, 1), player(factory, 2)
    assert player(factory, 3).statuses()[-1] == "NetStream.Play.Failed"
    first.lose()
    assert player(factory, 4).statuses()[-1] == "NetStream.Play.Start"
    assert player(factory, 5).statuses()[-1] == "NetStream.Play.Failed"


def test_a_player_that_stops_playing_gives_its_seat_back_while_connected() -> None:
    factory = factory_for(LIMIT_2)
    first, _second = player(factory, 1), player(factory, 2)
    first.send(first.client.command("closeStream", 0.0, None, stream_id=1))
    assert player(factory, 3).statuses()[-1] == "NetStream.Play.Start"
    assert player(factory, 4).statuses()[-1] == "NetStream.Play.Failed"


def test_a_play_refused_after_the_seat_was_taken_gives_it_back() -> None:
    """RefuseLate refuses every play of 'nocam' after the limit took a seat: were the seats
    kept, the third player would be refused by the limit instead."""
    factory = factory_for(LIMIT_2)
    refused = [player(factory, port, "nocam") for port in range(1, 6)]
    assert [p.infos()[-1]["code"] for p in refused] == ["NetStream.Play.Failed"] * 5
    assert all(p.infos()[-1]["description"] == "not this one" for p in refused)


def test_players_waiting_for_a_publisher_hold_seats() -> None:
    factory = factory_for(LIMIT_2)
    waiting = [player(factory, port, "later") for port in (1, 2)]
    assert all(p.statuses()[-1] == "NetStream.Play.Start" for p in waiting)
    assert player(factory, 3, "later").statuses()[-1] == "NetStream.Play.Failed"


def test_a_hook_that_takes_a_seat_after_its_client_left_gets_none() -> None:
    """Nothing would ever give back a seat taken for a client that is gone."""
    LateSeat.gates.clear()
    factory = factory_for("[[apps.live.plugins]]\nuse = 'tests.test_seats:LateSeat'\n")
    gone = player(factory, 1)
    gone.lose()
    LateSeat.gates[0].callback(None)
    second = player(factory, 2)
    LateSeat.gates[1].callback(None)
    second.pump()
    assert second.statuses()[-1] == "NetStream.Play.Start"
