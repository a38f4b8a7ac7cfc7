"""RTMPServerProtocol: the Twisted adapter, on in-memory transports and a fake clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogEvent, formatEvent, globalLogPublisher

from fms.config import Config, LimitsConfig
from fms.rtmp.connection import ConnectionState
from fms.server.factory import RTMPServerFactory
from fms.server.protocol import RTMPServerProtocol
from tests.support.rtmp_peer import ScriptedClient


@pytest.fixture
def logged() -> Iterator[list[str]]:
    lines: list[str] = []

    def observer(event: LogEvent) -> None:
        lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observer)
    yield lines
    globalLogPublisher.removeObserver(observer)


def make(
    clock: Clock, port: int = 5000, **limits: float
) -> tuple[RTMPServerFactory, RTMPServerProtocol, StringTransport]:
    factory = RTMPServerFactory(Config(limits=LimitsConfig(**limits)), clock=clock)  # type: ignore[arg-type]
    return (factory, *attach(factory, port))


def attach(factory: RTMPServerFactory, port: int) -> tuple[RTMPServerProtocol, StringTransport]:
    proto = factory.buildProtocol(None)
    transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.7", port))
    proto.makeConnection(transport)
    return proto, transport


def take(transport: StringTransport) -> bytes:
    data = transport.value()
    transport.clear()
    return data


def handshake(proto: RTMPServerProtocol, transport: StringTransport) -> ScriptedClient:
    client = ScriptedClient()
    proto.dataReceived(client.hello())
    proto.dataReceived(client.receive(take(transport)))
    return client


def test_handshake_deadline_runs_from_accept_and_bytes_do_not_extend_it(
    logged: list[str],
) -> None:
    clock = Clock()
    _, proto, transport = make(clock, handshake_timeout=10.0, idle_timeout=60.0)
    client = ScriptedClient()
    hello = client.hello()
    for i in range(9):
        proto.dataReceived(hello[i : i + 1])
        clock.advance(1.0)
    assert not transport.disconnecting
    clock.advance(1.0)
    assert transport.disconnecting
    assert any("192.0.2.7:5000" in line and "handshake deadline" in line for line in logged)


def test_connect_deadline_runs_from_the_handshake(logged: list[str]) -> None:
    clock = Clock()
    _, proto, transport = make(clock, connect_timeout=5.0, idle_timeout=60.0)
    handshake(proto, transport)
    clock.advance(4.9)
    assert not transport.disconnecting
    clock.advance(0.2)
    assert transport.disconnecting
    assert any("connect deadline" in line for line in logged)


def test_connect_in_time_cancels_the_connect_deadline() -> None:
    clock = Clock()
    _, proto, transport = make(
        clock, connect_timeout=5.0, idle_timeout=60.0, publish_or_play_timeout=0.0
    )
    client = handshake(proto, transport)
    proto.dataReceived(client.connect())
    clock.advance(30.0)
    assert not transport.disconnecting
    client.receive(take(transport))
    assert "NetConnection.Connect.Success" in client.statuses()


def test_idle_timeout_counts_received_bytes_only(logged: list[str]) -> None:
    clock = Clock()
    _, proto, transport = make(clock, idle_timeout=3.0)
    client = handshake(proto, transport)
    proto.dataReceived(client.connect())
    clock.advance(2.0)
    proto.dataReceived(client.command("_checkbw", 2.0))
    clock.advance(2.0)
    assert not transport.disconnecting
    clock.advance(1.5)
    assert transport.disconnecting
    assert any("idle deadline" in line for line in logged)


def test_protocol_error_closes_only_that_connection_with_a_log_line(logged: list[str]) -> None:
    clock = Clock()
    factory, bad, bad_transport = make(clock)
    good, good_transport = attach(factory, 6000)
    client = handshake(good, good_transport)
    bad_client = handshake(bad, bad_transport)
    bad.dataReceived(bad_client.command("createStream", 1.0))  # before connect
    assert bad_transport.disconnecting
    assert any("192.0.2.7:5000" in line and "before connect" in line for line in logged), logged
    good.dataReceived(client.connect())
    client.receive(take(good_transport))
    assert not good_transport.disconnecting
    assert "NetConnection.Connect.Success" in client.statuses()


def test_tls_on_the_plain_port_is_named_in_the_log(logged: list[str]) -> None:
    clock = Clock()
    _, proto, transport = make(clock)
    proto.dataReceived(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    assert transport.disconnecting
    assert any("TLS" in line for line in logged), logged


def test_fmle_calls_get_a_null_result_and_unknown_calls_an_error() -> None:
    clock = Clock()
    _, proto, transport = make(clock)
    client = handshake(proto, transport)
    data = client.connect() + client.command("releaseStream", 2.0, None, "cam")
    data += client.command("FCPublish", 3.0, None, "cam") + client.command("_checkbw", 4.0)
    data += client.command("createStream", 5.0) + client.command("noSuchMethod", 6.0)
    proto.dataReceived(data)
    client.receive(take(transport))
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
    factory, proto, _transport = make(clock)
    assert proto in factory.connections
    proto.connectionLost(None)
    assert proto not in factory.connections
    assert clock.getDelayedCalls() == []
    assert proto.connection is not None
    assert proto.connection.state is ConnectionState.CLOSED
