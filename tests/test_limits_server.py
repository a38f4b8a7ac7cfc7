"""Server-wide options of ``conf/fms.toml`` that no other unit test sets to a value of its own:
``[limits] ipv6_prefix_length``, ``[server] listen_backlog`` and ``shutdown_timeout``, and the
handshake deadline bounding a TLS handshake that stalls (``[tls]``).

Each test sets the option to something other than its default and checks the server acts on
that value, so an option that is dropped or left at its default fails a test. In-memory
transports, ``MemoryReactor`` and a fake clock: no sockets, no sleeps.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory

from fms.config import parse_config
from fms.server.endpoints import certificate_options
from fms.server.factory import RTMPServerFactory
from fms.server.service import RTMPListenerService
from tests.support.rtmp_peer import ScriptedClient
from tests.support.server_peer import Peer, arrive_v6, clock_of, factory_for

# -------------------------------------------------------------------------- ipv6_prefix_length


def test_with_a_48_bit_prefix_two_slash_64s_of_one_slash_48_share_the_per_address_cap() -> None:
    factory = factory_for(
        "[limits]\nmax_connecting_per_ip = 1\nconnecting_grace = 0\nipv6_prefix_length = 48\n"
    )
    assert arrive_v6(factory, "2001:db8:1:1::1") is not None
    assert arrive_v6(factory, "2001:db8:1:2::1") is None  # another /64, the same /48
    assert arrive_v6(factory, "2001:db8:2:1::1") is not None  # another /48


def test_with_a_128_bit_prefix_each_ipv6_address_has_its_own_cap() -> None:
    factory = factory_for(
        "[limits]\nmax_connecting_per_ip = 1\nconnecting_grace = 0\nipv6_prefix_length = 128\n"
    )
    assert arrive_v6(factory, "2001:db8:0:1::a") is not None
    assert arrive_v6(factory, "2001:db8:0:1::b") is not None  # the same /64: counted apart
    assert arrive_v6(factory, "2001:db8:0:1::a") is None


# ------------------------------------------------------------------------------ listen_backlog


def test_the_listener_asks_for_the_configured_backlog() -> None:
    reactor = MemoryReactor()
    config = parse_config('[server]\nhost = "127.0.0.1"\nport = 19350\nlisten_backlog = 77\n')
    factory = RTMPServerFactory(config, clock=Clock())  # type: ignore[arg-type]
    RTMPListenerService(reactor, config, factory).startService()  # type: ignore[arg-type]
    ((port, _, backlog, interface),) = reactor.tcpServers
    assert (port, backlog, interface) == (19350, 77, "127.0.0.1")


# ---------------------------------------------------------------------------- shutdown_timeout


def test_shutdown_waits_for_clients_until_the_configured_shutdown_timeout() -> None:
    factory = factory_for("[server]\nshutdown_timeout = 2.0\n")
    peer = Peer(factory, 1).handshake()  # a connected client that stops reading
    proto, transport = peer.proto, peer.transport
    proto.dataReceived(peer.client.connect())
    done = factory.shutdown()  # no timeout given: the configured one
    assert transport.disconnecting  # told, and asked to close once that is written
    clock_of(factory).advance(1.99)
    assert not transport.disconnected and not done.called
    clock_of(factory).advance(0.02)
    assert transport.disconnected  # aborted: it never closed on its own
    proto.connectionLost(None)
    clock_of(factory).advance(0.2)
    assert done.called


# --------------------------------------------------------------- a TLS handshake that stalls


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate and key for ``localhost``, valid for a day (PEM files in ``folder``)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def client_hello() -> bytes:
    """The first flight of a TLS client (its ClientHello), from OpenSSL over memory BIOs."""
    connection = SSL.Connection(SSL.Context(SSL.TLS_METHOD), None)
    connection.set_connect_state()
    try:
        connection.do_handshake()
    except SSL.WantReadError:
        pass
    hello: bytes = connection.bio_read(65536)
    return hello


def test_a_tls_handshake_that_stalls_is_closed_at_the_handshake_deadline(
    tmp_path: Path, logged: list[str]
) -> None:
    """Half a ClientHello, then nothing: RTMP bytes never come, and the RTMP handshake deadline,
    running from the TCP accept, closes the connection."""
    rtmp = factory_for("[limits]\nhandshake_timeout = 3.0\nidle_timeout = 600.0\n")
    options = certificate_options(*self_signed(tmp_path))
    factory = TLSMemoryBIOFactory(options, False, rtmp, clock=clock_of(rtmp))
    address = IPv4Address("TCP", "192.0.2.1", 443)
    tls = factory.buildProtocol(address)
    transport = StringTransport(peerAddress=address)
    tls.makeConnection(transport)
    hello = client_hello()
    tls.dataReceived(hello[: len(hello) // 2])
    clock_of(rtmp).advance(2.99)
    assert not transport.disconnecting
    clock_of(rtmp).advance(0.02)
    assert transport.disconnecting
    assert any("192.0.2.1:443" in line and "handshake deadline of 3s" in line for line in logged)


def test_rtmp_inside_tls_is_served_with_the_same_protocol(tmp_path: Path) -> None:
    """The counterpart of the test above: the same wrapping completes a TLS handshake and an
    RTMP handshake, so the deadline test does not pass merely because TLS never works."""
    rtmp = factory_for("")
    options = certificate_options(*self_signed(tmp_path))
    factory = TLSMemoryBIOFactory(options, False, rtmp, clock=clock_of(rtmp))
    address = IPv4Address("TCP", "192.0.2.1", 443)
    tls = factory.buildProtocol(address)
    transport = StringTransport(peerAddress=address)
    tls.makeConnection(transport)
    client = SSL.Connection(SSL.Context(SSL.TLS_METHOD), None)
    client.set_connect_state()
    plain = b""
    hello_sent = False
    for _ in range(20):  # TLS flights back and forth, then RTMP C0+C1 in, S0+S1+S2 out
        try:
            client.do_handshake()
            if not hello_sent:
                client.send(ScriptedClient().hello())
                hello_sent = True
            plain += client.recv(65536)
        except SSL.WantReadError:
            pass
        try:
            tls.dataReceived(client.bio_read(65536))
        except SSL.WantReadError:
            pass
        clock_of(rtmp).advance(0)  # Twisted's TLS transport writes at the next turn
        answer = transport.value()
        transport.clear()
        if answer:
            client.bio_write(answer)
        if len(plain) >= 1 + 1536 + 1536:
            break
    assert plain[:1] == b"\x03" and len(plain) == 1 + 1536 + 1536
