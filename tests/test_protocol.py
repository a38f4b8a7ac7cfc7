"""RTMPServerProtocol: the Twisted adapter, on in-memory transports and a fake clock."""

from __future__ import annotations

from twisted.internet.task import Clock

from fms.config import Config, LimitsConfig
from fms.rtmp.connection import ConnectionState
from fms.server.factory import RTMPServerFactory
from tests.support.server_peer import Peer

HOST = "192.0.2.7"


def make(clock: Clock, **limits: float) -> RTMPServerFactory:
    return RTMPServerFactory(Config(limits=LimitsConfig(**limits)), clock=clock)  # type: ignore[arg-type]


def arrive(factory: RTMPServerFactory, port: int = 5000) -> Peer:
    """A TCP connection from 192.0.2.7:``port`` that has sent nothing yet."""
    return Peer(factory, port, host=HOST)


def test_handshake_deadline_runs_from_accept_and_bytes_do_not_extend_it(
    logged: list[str],
) -> None:
    clock = Clock()
    peer = arrive(make(clock, handshake_timeout=10.0, idle_timeout=60.0))
    hello = peer.client.hello()
    for i in range(9):
        peer.proto.dataReceived(hello[i : i + 1])
        clock.advance(1.0)
    assert not peer.transport.disconnecting
    clock.advance(1.0)
    assert peer.transport.disconnecting
    assert any("192.0.2.7:5000" in line and "handshake deadline" in line for line in logged)


def test_connect_deadline_runs_from_the_handshake(logged: list[str]) -> None:
    clock = Clock()
    peer = arrive(make(clock, connect_timeout=5.0, idle_timeout=60.0)).handshake()
    clock.advance(4.9)
    assert not peer.transport.disconnecting
    clock.advance(0.2)
    assert peer.transport.disconnecting
    assert any("connect deadline" in line for line in logged)


def test_connect_in_time_cancels_the_connect_deadline() -> None:
    clock = Clock()
    factory = make(clock, connect_timeout=5.0, idle_timeout=60.0, publish_or_play_timeout=0.0)
    peer = arrive(factory).handshake()
    peer.proto.dataReceived(peer.client.connect())
    clock.advance(30.0)
    assert not peer.transport.disconnecting
    peer.pump()
    assert "NetConnection.Connect.Success" in peer.statuses()


def test_idle_timeout_counts_received_bytes_only(logged: list[str]) -> None:
    clock = Clock()
    peer = arrive(make(clock, idle_timeout=3.0)).handshake()
    peer.proto.dataReceived(peer.client.connect())
    clock.advance(2.0)
    peer.proto.dataReceived(peer.client.command("_checkbw", 2.0))
    clock.advance(2.0)
    assert not peer.transport.disconnecting
    clock.advance(1.5)
    assert peer.transport.disconnecting
    assert any("idle deadline" in line for line in logged)


def test_protocol_error_closes_only_that_connection_with_a_log_line(logged: list[str]) -> None:
    clock = Clock()
    factory = make(clock)
    bad = arrive(factory, 5000)
    good = arrive(factory, 6000).handshake()
    bad.handshake()
    bad.proto.dataReceived(bad.client.command("createStream", 1.0))  # before connect
    assert bad.transport.disconnecting
    assert any("192.0.2.7:5000" in line and "before connect" in line for line in logged), logged
    good.proto.dataReceived(good.client.connect())
    good.pump()
    assert not good.transport.disconnecting
    assert "NetConnection.Connect.Success" in good.statuses()


def test_tls_on_the_plain_port_is_named_in_the_log(logged: list[str]) -> None:
    clock = Clock()
    peer = arrive(make(clock))
    peer.proto.dataReceived(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    assert peer.transport.disconnecting
    assert any("TLS" in line for line in logged), logged


def test_fmle_calls_get_a_null_result_and_unknown_calls_an_error() -> None:
    clock = Clock()
    peer = arrive(make(clock)).handshake()
    client = peer.client
    data = client.connect() + client.command("releaseStream", 2.0, None, "cam")
    data += client.command("FCPublish", 3.0, None, "cam") + client.command("_checkbw", 4.0)
    data += client.command("createStream", 5.0) + client.command("noSuchMethod", 6.0)
    peer.send(data)
    answers = {c.transaction_id: c for c in client.commands() if c.name in ("_result", "_error")}
    assert [answers[t].name for t in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)] == [
        "_result",
        "_result",
        "_result",
        "_result",
        "_result",
        "_error",
    ]
    assert answers[2.0].arguments == (None,)
    assert answers[5.0].arguments == (1.0,)
    assert answers[6.0].arguments[0]["code"] == "NetConnection.Call.Failed"
    assert any(c.name == "onBWDone" for c in client.commands())


def test_connection_lost_cancels_timers_and_forgets_the_protocol() -> None:
    clock = Clock()
    factory = make(clock)
    proto = arrive(factory).proto
    assert proto in factory.connections
    proto.connectionLost(None)
    assert proto not in factory.connections
    assert clock.getDelayedCalls() == []
    assert proto.connection is not None
    assert proto.connection.state is ConnectionState.CLOSED
