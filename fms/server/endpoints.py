"""RTMPS: the TLS listener's endpoint, built from a PEM certificate (chain) and private key.

Twisted's TLS endpoints do the work (they need pyOpenSSL, installed with ``twisted[tls]``). The
RTMP protocol runs unchanged inside TLS, with the same limits. No separate TLS handshake timer is
needed: the RTMP handshake deadline runs from the TCP accept, and RTMP bytes arrive only after
the TLS handshake, so a client that stalls in TLS is closed by that same deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.interfaces import IProtocolFactory, IReactorSSL, IStreamServerEndpoint

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
