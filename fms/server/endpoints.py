"""Where the server listens: URLs of listening addresses, the RTMPS endpoint, and the
``SO_REUSEPORT`` endpoint that lets every worker of ``fms run --workers`` listen on one port.

RTMPS: the TLS listener's endpoint, built from a PEM certificate (chain) and private key.

Twisted's TLS endpoints do the work (they need pyOpenSSL, installed with ``twisted[tls]``). The
RTMP protocol runs unchanged inside TLS, with the same limits. No separate TLS handshake timer is
needed: the RTMP handshake deadline runs from the TCP accept, and RTMP bytes arrive only after
the TLS handshake, so a client that stalls in TLS is closed by that same deadline.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IReactorSocket,
    IReactorSSL,
    IStreamServerEndpoint,
)
from twisted.python.failure import Failure
from zope.interface import implementer

from fms.errors import ConfigError


def certificate_options(certificate: Path, private_key: Path) -> Any:
    """Twisted's ``CertificateOptions`` for a PEM chain and key; ConfigError when unusable."""
    try:
        from OpenSSL import crypto
        from twisted.internet.ssl import CertificateOptions
    except ImportError as exc:  # pragma: no cover - twisted[tls] is a dependency
        raise ConfigError([f"tls: TLS support is not installed ({exc})"]) from None
    try:
        chain_pem = certificate.read_bytes()
        key_pem = private_key.read_bytes()
    except OSError as exc:
        raise ConfigError([f"tls: cannot read {exc.filename}: {exc.strerror}"]) from None
    try:
        key = crypto.load_privatekey(crypto.FILETYPE_PEM, key_pem)
        certs = _split_pem(chain_pem)
        if not certs:
            raise ConfigError([f"tls.certificate: {certificate} holds no PEM certificate"])
        leaf = crypto.load_certificate(crypto.FILETYPE_PEM, certs[0])
        extra = [crypto.load_certificate(crypto.FILETYPE_PEM, c) for c in certs[1:]]
        return CertificateOptions(privateKey=key, certificate=leaf, extraCertChain=extra)
    except crypto.Error as exc:
        raise ConfigError([f"tls: certificate or key is not valid PEM: {exc}"]) from None
    except ValueError as exc:  # e.g. the key does not match the certificate
        raise ConfigError([f"tls: {exc}"]) from None


def tls_server_endpoint(
    reactor: IReactorSSL, host: str, port: int, certificate: Path, private_key: Path
) -> IStreamServerEndpoint:
    """An SSL server endpoint for ``host:port``; ConfigError when the files are unusable."""
    from twisted.internet.endpoints import SSL4ServerEndpoint

    options = certificate_options(certificate, private_key)
    endpoint: IStreamServerEndpoint = SSL4ServerEndpoint(reactor, port, options, interface=host)
    return endpoint


def tls_wrapper(certificate: Path, private_key: Path) -> Callable[[IProtocolFactory], Any]:
    """Wraps a factory in TLS (for a listening socket adopted by a worker)."""
    from twisted.protocols.tls import TLSMemoryBIOFactory

    options = certificate_options(certificate, private_key)
    return lambda factory: TLSMemoryBIOFactory(options, False, factory)


def _split_pem(data: bytes) -> list[bytes]:
    marker = b"-----END CERTIFICATE-----"
    parts = []
    for chunk in data.split(marker)[:-1]:
        start = chunk.find(b"-----BEGIN CERTIFICATE-----")
        if start >= 0:
            parts.append(chunk[start:] + marker + b"\n")
    return parts


def format_url(host: str, port: int, scheme: str = "rtmp") -> str:
    """The URL of a listening address (IPv6 hosts in brackets)."""
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` that other processes may bind too (SO_REUSEPORT)."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


@implementer(IStreamServerEndpoint)
class ReusePortEndpoint:
    """Listens on ``host:port`` with ``SO_REUSEPORT`` so that every worker has a socket of its
    own on the shared port. ``wrap`` turns the factory into the one the port serves (TLS)."""

    def __init__(
        self,
        reactor: IReactorSocket,
        host: str,
        port: int,
        backlog: int,
        wrap: Any = None,
    ) -> None:
        self._reactor = reactor
        self._host = host
        self._port = port
        self._backlog = backlog
        self._wrap = wrap

    def listen(self, factory: IProtocolFactory) -> Deferred[IListeningPort]:
        try:
            sock = reuseport_socket(self._host, self._port)
            sock.listen(self._backlog)
            sock.setblocking(False)
        except OSError:
            return fail(Failure())
        try:
            served = self._wrap(factory) if self._wrap is not None else factory
            port = self._reactor.adoptStreamPort(
                sock.fileno(),
                _family(self._host),
                served,  # type: ignore[arg-type]
            )
        finally:
            sock.close()  # the reactor holds its own duplicate
        return succeed(port)
