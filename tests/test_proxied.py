"""``[server] proxy_protocol``: connections through a trusted proxy take the client's address
from the PROXY header (plugins, logs and the per-address cap see it); a trusted proxy that sends
no header, or anyone else who sends one, is closed with one log line. In-memory transports and
the factory's fake clock."""

from __future__ import annotations

import pytest

from fms.config import parse_config
from fms.errors import ConfigError
from fms.server.proxied import ProxiedRTMPServerProtocol
from tests.support.server_peer import Peer, clock_of, factory_for
from tests.test_proxy_header import v1, v2

PROXY = "127.0.0.1"
CLIENT = "203.0.113.7"
ON = "[server]\nproxy_protocol = true\n"


@pytest.mark.parametrize("header", [v1(CLIENT, 50123), v2(CLIENT, 50123)])
def test_a_client_through_a_trusted_proxy_is_known_by_its_own_address(
    header: bytes, logged: list[str]
) -> None:
    factory = factory_for(ON)
    peer = Peer(factory, host=PROXY, port=40000)
    assert isinstance(peer.proto, ProxiedRTMPServerProtocol)
    peer.proto.dataReceived(header)
    peer.connect()
    assert "NetConnection.Connect.Success" in peer.client.statuses()
    view = peer.proto.client_view
    assert view is not None
    assert (view.host, view.peer) == (CLIENT, f"{CLIENT}:50123")  # what plugins see
    assert peer.proto.peer == f"{CLIENT}:50123"  # what the log lines name


def test_the_header_and_the_handshake_may_arrive_in_one_read_or_byte_by_byte() -> None:
    factory = factory_for(ON)
    peer = Peer(factory, host=PROXY)
    for byte in v1(CLIENT, 7):
        peer.proto.dataReceived(bytes([byte]))
    peer.connect()
    assert "NetConnection.Connect.Success" in peer.client.statuses()
    together = Peer(factory, host=PROXY, port=2)
    together.proto.dataReceived(v2(CLIENT, 8) + together.client.hello())
    together.pump()
    together.send(together.client.connect("live"))
    assert "NetConnection.Connect.Success" in together.client.statuses()


def test_a_trusted_proxy_that_sends_no_header_is_closed_with_one_line(
    logged: list[str],
) -> None:
    factory = factory_for(ON)
    peer = Peer(factory, host=PROXY, port=40001)
    peer.proto.dataReceived(peer.client.hello())
    assert peer.closed_for(logged, "no PROXY header from a trusted proxy")
    assert peer.take() == b""  # no handshake answered


def test_a_proxy_header_from_an_untrusted_address_is_closed_with_one_line(
    logged: list[str],
) -> None:
    factory = factory_for(ON)
    peer = Peer(factory, host="198.51.100.9", port=40002)
    peer.proto.dataReceived(v1(CLIENT, 1))
    assert peer.closed_for(logged, "a PROXY header from an address not in")
    assert peer.proto.host == "198.51.100.9"  # it did not get to choose its address


def test_an_untrusted_address_may_still_connect_directly() -> None:
    factory = factory_for(ON)
    peer = Peer(factory, host="198.51.100.9").connect()
    assert "NetConnection.Connect.Success" in peer.client.statuses()


def test_without_proxy_protocol_even_a_trusted_address_is_plain_rtmp() -> None:
    factory = factory_for(None)
    peer = Peer(factory, host=PROXY).connect()
    assert "NetConnection.Connect.Success" in peer.client.statuses()


def test_a_proxy_health_check_keeps_the_proxys_address() -> None:
    factory = factory_for(ON)
    peer = Peer(factory, host=PROXY, port=40003)
    peer.proto.dataReceived(v2(None, local=True))
    peer.connect()
    assert peer.proto.peer == f"{PROXY}:40003"


def test_the_proxy_itself_is_exempt_from_the_per_address_cap() -> None:
    """Many connections from the proxy wait for their headers past the grace: all are
    admitted, since the proxy carries many clients."""
    factory = factory_for(ON + "[limits]\nmax_connecting_per_ip = 2\nconnecting_grace = 0\n")
    peers = [Peer(factory, host=PROXY, port=port) for port in range(10)]
    clock_of(factory).advance(1.0)
    assert not any(peer.closed for peer in peers)
    assert factory.connecting_from(PROXY) == 0


def test_the_per_address_cap_counts_the_clients_behind_the_proxy(logged: list[str]) -> None:
    factory = factory_for(ON + "[limits]\nmax_connecting_per_ip = 2\nconnecting_grace = 0\n")
    first, second, third = (Peer(factory, host=PROXY, port=port) for port in (1, 2, 3))
    first.proto.dataReceived(v1(CLIENT, 1))
    second.proto.dataReceived(v1(CLIENT, 2))
    assert factory.connecting_from(CLIENT) == 2
    third.proto.dataReceived(v1(CLIENT, 3))
    assert third.closed
    assert [line for line in logged if "refusing" in line] == [
        f"refusing connection from {CLIENT}: 2 connections from this address have not "
        "connected within 0s (max_connecting_per_ip)"
    ]
    other = Peer(factory, host=PROXY, port=4)
    other.proto.dataReceived(v1("203.0.113.8", 4))
    assert not other.closed
    first.connect()  # connected: its slot is free again
    assert factory.connecting_from(CLIENT) == 1


def test_a_proxied_connection_that_closes_gives_back_its_slots() -> None:
    factory = factory_for(ON)
    waiting = Peer(factory, host=PROXY, port=1)
    named = Peer(factory, host=PROXY, port=2)
    named.proto.dataReceived(v1(CLIENT, 2))
    assert factory.admission.open == 2
    waiting.proto.connectionLost(None)
    named.proto.connectionLost(None)
    assert factory.admission.open == 0
    assert factory.connecting_from(CLIENT) == 0


def test_the_wait_for_the_header_counts_against_the_handshake_deadline(
    logged: list[str],
) -> None:
    factory = factory_for(ON + "[limits]\nhandshake_timeout = 3.0\n")
    peer = Peer(factory, host=PROXY)
    clock_of(factory).advance(2.9)
    assert not peer.closed
    clock_of(factory).advance(0.2)
    assert peer.closed_for(logged, "handshake deadline")


def test_a_trusted_proxy_that_is_no_address_is_a_config_error() -> None:
    with pytest.raises(
        ConfigError, match=r"server\.trusted_proxies: 'proxy\.example' is no address"
    ):
        parse_config('[server]\ntrusted_proxies = ["10.0.0.0/8", "proxy.example"]\n')
    assert parse_config('[server]\ntrusted_proxies = ["10.0.0.0/8", "::1"]\n')
