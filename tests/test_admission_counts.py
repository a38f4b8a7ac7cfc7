"""Admission's numbers: the refusal log's interval, the descriptor ceiling when the system says
nothing, a configured ``max_connections`` of 1, the attention clock's beat, the cap on what a
refusal counts, and the age order of pending connections. In memory, on fake clocks.

Written to kill the survivors of ``scripts/mutate.py`` on ``fms/server/admission.py`` (see
docs/testing.md): each test pins one number or one order that no earlier test depended on.
"""

from __future__ import annotations

import resource

import pytest
from twisted.internet.address import IPv4Address

from fms.config import LimitsConfig
from fms.server import admission
from fms.server.admission import Admission, descriptor_ceiling
from fms.server.admission import effective_max_connections as effective
from fms.server.factory import RTMPServerFactory
from tests.support.server_peer import HOST, Peer, clock_of, factory_for


def arrive(factory: RTMPServerFactory, port: int, host: str = HOST) -> bool:
    """Whether a connection from ``host`` would be admitted (only asked, not made)."""
    return factory.buildProtocol(IPv4Address("TCP", host, port)) is not None


# ------------------------------------------------------------------ the refusal log


def test_refusals_are_logged_again_once_ten_seconds_have_passed(logged: list[str]) -> None:
    """With ``max_connections = 1`` full, refusals at 0 s, 5 s and 10 s give two lines (the
    README promises one per 10 s with a count): the second counts the one held back."""
    factory = factory_for("[limits]\nmax_connections = 1\n")
    Peer(factory, port=1)
    clock = clock_of(factory)
    assert not arrive(factory, 2)
    clock.advance(5.0)
    assert not arrive(factory, 3)
    clock.advance(5.0)
    assert not arrive(factory, 4)
    refusals = [line for line in logged if line.startswith("refusing connection")]
    assert refusals == [
        f"refusing connection from {HOST}: 1 connections open (max_connections)",
        f"refusing connection from {HOST}: 1 connections open (max_connections); "
        "1 more refused since the last report",
    ]


# ------------------------------------------------------------ the descriptor ceiling


class _Unreadable:
    """Stands in for ``/proc/sys/fs/nr_open`` where there is none (not Linux, no /proc)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def read_text(self) -> str:
        raise FileNotFoundError(self.path)


def test_without_a_kernel_ceiling_an_unlimited_hard_limit_falls_back_to_the_soft_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda which: (4096, resource.RLIM_INFINITY))
    monkeypatch.setattr(admission, "Path", _Unreadable)
    assert descriptor_ceiling() == 4096


def test_with_no_limit_known_at_all_the_ceiling_is_the_linux_default_nr_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both limits unlimited and no ``/proc``: 1,048,576 (``fs.nr_open``'s default), not an
    unbounded number of connections."""
    unlimited = resource.RLIM_INFINITY
    monkeypatch.setattr(resource, "getrlimit", lambda which: (unlimited, unlimited))
    monkeypatch.setattr(admission, "Path", _Unreadable)
    assert descriptor_ceiling() == 1_048_576


def test_a_configured_max_connections_of_one_is_taken_as_it_is() -> None:
    """Only 0 means "from the descriptors"; 1 is a cap like any other."""
    assert effective(1, ceiling=4096) == 1
    factory = factory_for("[limits]\nmax_connections = 1\n")
    Peer(factory, port=1)
    assert not arrive(factory, 2, host="198.51.100.9")


# ---------------------------------------------------------------- the attention clock


def test_a_stall_shorter_than_a_second_is_left_out_of_pending_ages() -> None:
    """The clock beats every 0.1 s: an event loop stalled for a whole grace of 1 s (one late
    beat at its end) leaves out all but one beat's interval, so the connections pending
    through it are not parked and one more from their address is admitted. A beat as long
    as the stall would leave out nothing."""
    cap = 3
    factory = factory_for(f"[limits]\nmax_connecting_per_ip = {cap}\nconnecting_grace = 1.0\n")
    factory.startFactory()
    for port in range(cap):
        Peer(factory, port=port)
    clock_of(factory).advance(1.0)
    assert arrive(factory, 100)


# ------------------------------------------------------------- counting the parked


def test_parked_counts_stop_at_the_cap() -> None:
    """A refusal looks at no more pending connections than the cap (a flood of parked ones
    from one address costs each further arrival at most ``cap`` steps)."""
    table = Admission()
    for key in range(5):
        table.admit("g", key, 0.0)
    assert table.parked("g", admitted_by=10.0, stop_at=3) == 3
    assert table.parked("g", admitted_by=10.0, stop_at=5) == 5


def test_a_connection_that_progressed_does_not_hide_an_older_parked_one() -> None:
    """A admitted at 0 s, B at 0.5 s; A finishes its handshake at 1 s, so A is younger than B
    from then on. At 2.6 s with a grace of 2 s, B (0.5 s) is parked and A (1 s) is not: the
    cap of 1 is reached and a third connection is refused."""
    limits = LimitsConfig(max_connecting_per_ip=1, connecting_grace=2.0)
    table = Admission()
    table.admit("g", 1, 0.0)
    table.admit("g", 2, 0.5)
    table.progressed("g", 1, 1.0)
    assert table.parked("g", admitted_by=2.6 - 2.0, stop_at=5) == 1
    assert table.address_refusal("g", limits, 2.6) is not None
