"""The per-address cap judges a pending connection by its age (``[limits] connecting_grace``),
and ``max_connections`` defaults to what the open-file ceiling allows. In-memory transports and
the factory's fake clock: no sockets, no wall clock.

A burst from one address (a NAT, a restreaming service) has many connections pending at once
while the server brings each to ``connect``; they are young and do not count. Connections that
sit without reaching ``connect`` (idle sockets, slowloris) grow old and count, so the cap
still stops an address that parks them.
"""

from __future__ import annotations

import resource

import pytest
from twisted.internet.address import IPv4Address

from fms.server.admission import (
    FILE_DESCRIPTOR_MARGIN,
    PULSE_INTERVAL,
    AttentionClock,
    descriptor_ceiling,
)
from fms.server.admission import effective_max_connections as effective
from fms.server.factory import RTMPServerFactory
from tests.support.server_peer import HOST, Peer, clock_of, factory_for

GRACE = 2.0
CAP = 5
CONFIG = f"[limits]\nmax_connecting_per_ip = {CAP}\nconnecting_grace = {GRACE}\n"


def arrive(factory: RTMPServerFactory, port: int, host: str = HOST) -> bool:
    """Whether a connection from ``host`` would be admitted (only asked, not made)."""
    address = IPv4Address("TCP", host, port)
    proto = factory.buildProtocol(address)
    return proto is not None


def test_a_burst_of_young_pending_connections_from_one_address_is_admitted() -> None:
    """Twenty times the cap arrive from one address at one instant, none has connected yet:
    all are admitted, since none has been pending for the grace."""
    factory = factory_for(CONFIG)
    peers = [Peer(factory, port=port) for port in range(CAP * 20)]
    assert factory.connecting_from(HOST) == len(peers)


def test_a_burst_that_reaches_connect_within_the_grace_is_never_refused() -> None:
    """A steady stream from one address whose connections each reach ``connect`` within the
    grace: ten batches of twice the cap, one every ``GRACE / 2`` seconds, all admitted."""
    factory = factory_for(CONFIG)
    clock = clock_of(factory)
    pending: list[Peer] = []
    for batch in range(10):
        pending = [Peer(factory, port=batch * 100 + i) for i in range(CAP * 2)]
        clock.advance(GRACE / 2)
        for peer in pending:
            peer.connect()
        assert factory.connecting_from(HOST) == 0
    assert len(factory.connections) == 10 * CAP * 2


def test_connections_parked_for_the_grace_count_toward_the_cap() -> None:
    """``CAP`` connections that send nothing: just before the grace a new one from that
    address is admitted, at the grace the next one is refused."""
    factory = factory_for(CONFIG)
    clock = clock_of(factory)
    for port in range(CAP):
        Peer(factory, port=port)
    clock.advance(GRACE - 0.01)
    assert arrive(factory, 100)  # the parked ones do not count yet
    clock.advance(0.01)
    assert not arrive(factory, 101)
    assert arrive(factory, 102, host="192.0.2.77")  # other addresses are not affected


def test_a_slowloris_trickle_does_not_make_a_connection_young_again() -> None:
    """Bytes that do not bring a connection to ``connect`` do not reset its age: ``CAP``
    connections that each send one handshake byte every half second count at the grace."""
    factory = factory_for(CONFIG)
    clock = clock_of(factory)
    peers = [Peer(factory, port=port) for port in range(CAP)]
    hello = peers[0].client.hello()
    for step in range(int(GRACE / 0.5)):
        clock.advance(0.5)
        for peer in peers:
            peer.proto.dataReceived(hello[step : step + 1])
    assert not arrive(factory, 100)


def test_a_finished_handshake_starts_the_grace_again() -> None:
    """``CAP`` connections finish their handshake just before the grace and then wait for
    ``connect``: they count only ``GRACE`` after the handshake, not after their accept."""
    factory = factory_for(CONFIG)
    clock = clock_of(factory)
    peers = [Peer(factory, port=port) for port in range(CAP)]
    clock.advance(GRACE - 0.5)
    for peer in peers:
        peer.handshake()
    clock.advance(GRACE - 0.01)  # 2 * GRACE - 0.51 after the accept
    assert arrive(factory, 100)
    clock.advance(0.01)
    assert not arrive(factory, 101)


def test_refusal_names_the_grace_and_the_cap(logged: list[str]) -> None:
    factory = factory_for(CONFIG)
    for port in range(CAP):
        Peer(factory, port=port)
    clock_of(factory).advance(GRACE)
    assert not arrive(factory, 100)
    assert any(
        f"refusing connection from {HOST}: {CAP} connections from this address have not "
        f"connected within {GRACE:g}s (max_connecting_per_ip)" in line
        for line in logged
    ), logged


def test_max_connections_zero_is_the_descriptor_ceiling_less_the_margin() -> None:
    assert effective(0, ceiling=4096) == 4096 - FILE_DESCRIPTOR_MARGIN
    assert effective(0, ceiling=10) == 1
    assert effective(300, ceiling=4096) == 300  # a configured value wins


def test_the_default_max_connections_follows_the_hard_open_file_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the default, a process whose hard limit is 20,064 takes 20,000 connections: the
    10,001st player of a 10,000-player stream is not refused."""
    monkeypatch.setattr(resource, "getrlimit", lambda which: (1024, 20_064))
    assert descriptor_ceiling() == 20_064
    factory = factory_for(None)
    assert factory.max_connections == 20_000
    factory.admission.open = 19_999
    assert arrive(factory, 10, host="198.51.100.200")
    factory.admission.open = 20_000
    assert not arrive(factory, 11, host="198.51.100.201")


def test_an_unlimited_hard_limit_falls_back_to_the_kernel_ceiling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda which: (1024, resource.RLIM_INFINITY))
    ceiling = descriptor_ceiling()
    assert ceiling > 1024
    assert effective(0) == ceiling - FILE_DESCRIPTOR_MARGIN


# ------------------------------------------------------------ the server's lateness left out


def test_the_attention_clock_runs_with_the_wall_clock_while_beats_are_on_time() -> None:
    clock = AttentionClock(0.1)
    for step in range(11):
        clock.beat(step * 0.1)
    assert clock.time(1.05) == pytest.approx(1.05)


def test_the_attention_clock_leaves_out_a_late_beat_and_an_overdue_one() -> None:
    """A beat 3 s late (the loop was busy) adds only its interval; so does one overdue now."""
    clock = AttentionClock(0.1)
    clock.beat(0.0)
    clock.beat(3.1)
    assert clock.time(3.1) == pytest.approx(0.1)
    assert clock.time(6.1) == pytest.approx(0.2)  # 3 s overdue: frozen one interval on


def test_pending_connections_do_not_age_while_the_server_is_too_busy_to_serve_them() -> None:
    """The event loop stalls for 5 s (its timers run once, late): the ``CAP`` connections
    pending through it are not parked, so one more from their address is admitted."""
    factory = factory_for(CONFIG)
    factory.startFactory()
    for port in range(CAP):
        Peer(factory, port=port)
    clock_of(factory).advance(5.0)
    assert arrive(factory, 100)


def test_pending_connections_age_while_the_server_keeps_up() -> None:
    """The same connections while the loop runs its timers on time: parked at the grace."""
    factory = factory_for(CONFIG)
    factory.startFactory()
    for port in range(CAP):
        Peer(factory, port=port)
    beats = round(GRACE / PULSE_INTERVAL)
    clock_of(factory).pump([PULSE_INTERVAL] * (beats - 1))
    assert arrive(factory, 100)  # not parked before the grace
    clock_of(factory).pump([PULSE_INTERVAL] * 2)
    assert not arrive(factory, 101)
