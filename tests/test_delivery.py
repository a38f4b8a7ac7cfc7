"""The fan-out's direct socket write (:func:`fms.server.delivery.write_through`, used by
Twisted's own TCP transport: bytes never overtake what the transport still holds.

``write_through`` sends straight to the socket when Twisted's ``tcp.Server`` holds nothing unsent,
which it reads from Twisted's private buffer state (``_tempDataLen``, ``dataBuffer``,
``offset``); what the kernel does not take goes to ``transport.write``. These tests pin that
state on the Twisted version installed, so an upgrade that changes it fails here rather than
reordering a player's bytes.

Why real sockets: the state lives in ``tcp.Server`` and only means something next to a real
socket's send buffer (a partial ``send``). There is still no reactor: the transport is built
as ``tcp.Port`` builds it, on a connected loopback TCP pair made with plain blocking
``accept``, and :class:`~twisted.internet.testing.MemoryReactor` records its reader and writer
registrations; the test calls ``transport.doWrite()`` where a reactor would on a writable
socket. Small kernel buffers (4 KiB asked, 4.6 KB or so granted on Linux) make partial sends
happen with little data. Reads wait with ``select`` (1 s at a time, 30 times at most): no
sleeps.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from twisted.internet import tcp
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor

from fms.config import Config
from fms.rtmp.handshake import ClientHandshake
from fms.server.factory import RTMPServerFactory
from fms.server.protocol import RTMPServerProtocol

SMALL_BUFFER = 4096
"""Kernel send (server side) and receive (peer) buffer sizes asked for, in bytes."""


@dataclass
class Wire:
    """One server protocol on a real ``tcp.Server`` transport, and the peer's socket."""

    proto: RTMPServerProtocol
    transport: tcp.Server
    reactor: MemoryReactor
    peer: socket.socket

    @property
    def handed_to_twisted(self) -> bool:
        """Whether the transport holds bytes and asked to be told when it may write them."""
        return self.transport in self.reactor.writers

    def available(self) -> bytes:
        """What the peer can read now, without waiting."""
        got = bytearray()
        while True:
            try:
                chunk = self.peer.recv(1 << 20)
            except BlockingIOError:
                return bytes(got)
            if not chunk:
                return bytes(got)
            got += chunk

    def arrived(self) -> bytes:
        """What has reached the peer (at least one byte: waits up to 30 s for the first)."""
        readable, _, _ = select.select([self.peer], [], [], 30.0)
        assert readable, "nothing arrived"
        return self.available()

    def receive(self, size: int) -> bytes:
        """Read ``size`` bytes, letting the transport write what it holds, as a reactor would
        when the socket turns writable. Fails if they do not come within 30 empty waits."""
        got = bytearray()
        empty = 0
        while len(got) < size:
            if self.handed_to_twisted:
                self.transport.doWrite()
            readable, _, _ = select.select([self.peer], [], [], 1.0)
            if not readable:
                empty += 1
                assert empty < 30, f"only {len(got)} of {size} bytes arrived"
                continue
            got += self.available()
        return bytes(got)


def connected_pair(small: bool) -> tuple[socket.socket, socket.socket]:
    """A loopback TCP connection: (server side, peer side), both non-blocking."""
    listener = socket.create_server(("127.0.0.1", 0))
    peer = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if small:  # before connect, so the advertised window is small too
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
    peer.connect(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    if small:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    peer.setblocking(False)
    return server, peer


MakeWire = Callable[..., Wire]


@pytest.fixture
def make_wire() -> Iterator[MakeWire]:
    made: list[Wire] = []

    def make(*, small: bool = False) -> Wire:
        server, peer = connected_pair(small)
        host, port = server.getpeername()
        factory = RTMPServerFactory(Config(), clock=Clock())  # type: ignore[arg-type]
        proto = factory.buildProtocol(IPv4Address("TCP", host, port))
        assert proto is not None
        reactor = MemoryReactor()
        transport = tcp.Server(server, proto, (host, port), None, 1, reactor)  # type: ignore[arg-type]
        transport.repstr = "<test transport>"
        proto.makeConnection(transport)
        wire = Wire(proto, transport, reactor, peer)
        made.append(wire)
        return wire

    yield make
    for wire in made:
        wire.proto.connectionLost(None)
        wire.transport.socket.close()
        wire.peer.close()


def pattern(letter: bytes, size: int) -> bytes:
    return letter * size


def test_the_protocol_writes_to_the_socket_itself_on_a_plain_tcp_transport(
    make_wire: MakeWire,
) -> None:
    wire = make_wire()
    assert wire.proto._direct_socket is wire.transport.socket


def test_with_nothing_buffered_bytes_go_straight_to_the_socket(make_wire: MakeWire) -> None:
    wire = make_wire()
    data = pattern(b"a", 10_000)
    wire.proto._write(data)
    assert not wire.handed_to_twisted  # no buffering, no writable-event registration
    assert wire.receive(len(data)) == data  # and nothing had to be written by doWrite


def test_bytes_written_after_ones_twisted_has_not_sent_yet_wait_behind_them(
    make_wire: MakeWire,
) -> None:
    """Twisted's ``write`` only queues (``_tempDataBuffer``) until the reactor says the socket
    is writable: bytes written directly now would overtake them."""
    wire = make_wire()
    first, second = pattern(b"a", 100), pattern(b"b", 100)
    wire.transport.write(first)
    assert wire.transport._tempDataLen == len(first)  # the state _write reads
    wire.proto._write(second)
    assert wire.receive(len(first) + len(second)) == first + second


def test_bytes_written_while_twisted_holds_a_partly_sent_buffer_wait_behind_it(
    make_wire: MakeWire,
) -> None:
    """After a partial send Twisted keeps the rest in ``dataBuffer`` from ``offset``; once the
    peer has read, the kernel has room again before the reactor calls ``doWrite``: a direct
    write then would overtake the rest."""
    wire = make_wire(small=True)
    first, second = pattern(b"a", 1 << 20), pattern(b"b", 1000)
    wire.transport.write(first)
    wire.transport.doWrite()  # sends what the kernel takes
    transport = wire.transport
    assert transport._tempDataLen == 0 and 0 < transport.offset < len(transport.dataBuffer)
    early = wire.arrived()  # the peer reads: the kernel has room again
    assert 0 < len(early) < len(first)
    _, writable, _ = select.select([], [transport.socket], [], 30.0)
    assert writable, "the kernel never had room again"
    wire.proto._write(second)
    assert early + wire.receive(len(first) + len(second) - len(early)) == first + second


def test_what_the_kernel_does_not_take_goes_to_twisted_and_later_bytes_follow_it(
    make_wire: MakeWire,
) -> None:
    wire = make_wire(small=True)
    first, second = pattern(b"a", 1 << 20), pattern(b"b", 1000)
    wire.proto._write(first)
    assert wire.handed_to_twisted  # the kernel took part of it; Twisted holds the rest
    early = wire.arrived()
    assert 0 < len(early) < len(first)  # sent before any doWrite: the direct part
    wire.proto._write(second)
    assert early + wire.receive(len(first) + len(second) - len(early)) == first + second


@pytest.mark.parametrize("way", ["write_shared", "offer_shared"])
def test_fan_out_bytes_follow_what_the_connection_queued(make_wire: MakeWire, way: str) -> None:
    """Statuses and handshake bytes the connection queued go out before a fan-out write, by
    either way a flush writes (the whole-write ``offer_shared`` and ``write_shared``)."""
    wire = make_wire()
    client = ClientHandshake()
    client.initiate()
    conn = wire.proto.connection
    assert conn is not None
    conn.receive_data(client.data_to_send(), 0.0)  # S0 S1 S2 queued, not yet flushed
    media = pattern(b"m", 5000)
    if way == "offer_shared":
        assert wire.proto.offer_shared(media, 1 << 20) is True
    else:
        wire.proto.write_shared(media)
    received = wire.receive(1 + 1536 + 1536 + len(media))
    client.receive_data(received)
    assert client.done and client.leftover == media


def test_a_players_pending_bytes_are_what_twisted_still_holds(make_wire: MakeWire) -> None:
    """``player_buffer`` counts what the transport holds unsent: after a direct write that the
    kernel took only in part, ``buffered`` is the rest, exactly."""
    from fms.server.delivery import buffered

    wire = make_wire(small=True)
    assert buffered(wire.transport) == 0
    data = pattern(b"a", 1 << 20)
    wire.proto._write(data)
    held = buffered(wire.transport)
    assert 0 < held < len(data)
    assert held == len(wire.transport.dataBuffer) - wire.transport.offset + (
        wire.transport._tempDataLen
    )
    assert wire.proto.pending_bytes() == held


def test_an_offer_with_nothing_buffered_goes_straight_to_the_socket(make_wire: MakeWire) -> None:
    """The fan-out's whole-write (``offer_shared``) takes the direct path too."""
    wire = make_wire()
    data = pattern(b"a", 10_000)
    assert wire.proto.offer_shared(data, len(data)) is True
    assert not wire.handed_to_twisted
    assert wire.receive(len(data)) == data


def test_an_offer_that_would_hold_more_than_the_budget_writes_nothing(
    make_wire: MakeWire,
) -> None:
    """Held unsent bytes plus the offer over ``budget``: refused whole (the stream then hands
    over pieces that fit), not one byte written, and the queue left for a later write."""
    wire = make_wire(small=True)
    wire.proto._write(pattern(b"a", 1 << 20))
    held = wire.proto.pending_bytes()
    assert held > 0
    offered = pattern(b"b", 1000)
    assert wire.proto.offer_shared(offered, held + len(offered) - 1) is False
    assert wire.proto.pending_bytes() == held
    assert wire.proto.offer_shared(offered, held + len(offered)) is True  # exactly at budget
    assert wire.proto.pending_bytes() == held + len(offered)
    got = wire.receive((1 << 20) + len(offered))
    assert got == pattern(b"a", 1 << 20) + offered
