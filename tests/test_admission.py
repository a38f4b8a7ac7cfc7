"""Admission bookkeeping of the server factory, on in-memory transports and a fake clock.

The factory counts, per address group, the connections that have not had ``connect`` accepted
yet (``[limits] max_connecting_per_ip``), knows every open connection by id (for deadlines),
and finishes a shutdown once the last connection is gone. These tests pin the release side of
that bookkeeping: what a connection gives back when it connects, when it is lost, and in which
order. They were written to kill the mutants of ``scripts/mutate.py`` that survived the older
admission tests (see docs/testing.md).
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from fms.config import parse_config
from fms.server.factory import RTMPServerFactory
from fms.server.protocol import RTMPServerProtocol
from tests.support.rtmp_peer import ScriptedClient


def factory_for(text: str) -> RTMPServerFactory:
    return RTMPServerFactory(parse_config(text), clock=Clock())  # type: ignore[arg-type]


class Peer:
    """One client from ``host`` on an in-memory transport, driven by a scripted client."""

    def __init__(self, factory: RTMPServerFactory, host: str = "192.0.2.1", port: int = 1) -> None:
        address = IPv4Address("TCP", host, port)
        proto = factory.buildProtocol(address)
        assert proto is not None, "refused"
        self.proto: RTMPServerProtocol = proto
        self.transport = StringTransport(peerAddress=address)
        proto.makeConnection(self.transport)
        self.client = ScriptedClient()

    def _exchange(self, data: bytes) -> None:
        self.proto.dataReceived(data)
        reply = self.client.receive(self.transport.value())
        self.transport.clear()
        if reply:
            self.proto.dataReceived(reply)

    def connect(self) -> Peer:
        """Handshake and ``connect`` to ``live``; asserts that the server accepted it."""
        self._exchange(self.client.hello())
        self._exchange(self.client.connect("live"))
        self.client.receive(self.transport.value())
        self.transport.clear()
        assert "NetConnection.Connect.Success" in self.client.statuses()
        return self

    def lose(self) -> None:
        """The transport went away (what Twisted calls once a socket is closed)."""
        self.proto.connectionLost(None)


def test_a_connection_lost_before_connect_frees_its_per_address_slot() -> None:
    factory = factory_for("[limits]\nmax_connecting_per_ip = 1\n")
    Peer(factory, port=1).lose()  # gone during the handshake, never connected
    assert factory.connecting_from("192.0.2.1") == 0
    assert factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", 2)) is not None


def test_losing_a_connected_client_does_not_release_another_clients_slot() -> None:
    """A connection counts as connecting once: after ``connect`` released its slot, losing it
    must not release the slot of a second, still-handshaking connection from that address."""
    factory = factory_for(
        "[limits]\nmax_connecting_per_ip = 1\nconnecting_grace = 0\nmax_connections = 10\n"
    )
    first = Peer(factory, port=1).connect()
    Peer(factory, port=2)  # still connecting: holds the one slot of 192.0.2.1
    first.lose()
    assert factory.connecting_from("192.0.2.1") == 1
    assert factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", 3)) is None


def test_the_per_address_table_forgets_an_address_once_nothing_from_it_is_connecting() -> None:
    """Memory bound: the table of connecting counts holds only addresses with a count above
    zero, so clients from ever new addresses that connected do not make it grow."""
    factory = factory_for("[limits]\nmax_connecting_per_ip = 4\n")
    peers = [Peer(factory, host=f"192.0.2.{i}").connect() for i in range(1, 6)]
    assert factory.admission.tracked == 0
    for peer in peers:
        peer.lose()
    assert factory.admission.tracked == 0


def test_a_deadline_asked_for_after_the_connection_was_lost_is_not_queued() -> None:
    """A lost connection is no longer known by id: a late request to check it (a plugin's
    decision that completes afterwards, say) queues nothing and arms no timer."""
    factory = factory_for("[limits]\nidle_timeout = 60.0\n")
    peer = Peer(factory)
    peer.lose()
    assert len(factory.deadlines) == 0
    factory.schedule(peer.proto, factory.clock.seconds() + 5.0)
    assert len(factory.deadlines) == 0
    assert factory.clock.getDelayedCalls() == []  # type: ignore[attr-defined]


def test_shutdown_finishes_when_the_last_connection_closes_not_the_first() -> None:
    factory = factory_for("[streams]\nflush_interval = 0\n")
    peers = [Peer(factory, port=port).connect() for port in (1, 2, 3)]
    done = factory.shutdown(30.0)
    for peer in peers[:-1]:
        peer.lose()
        assert not done.called
    peers[-1].lose()
    assert done.called  # at once: no waiting for the 30 s timeout
