"""Outgoing RTMP connections: this server as a client of another one.

A push (:mod:`fms.server.push`) publishes a stream on another server; a pull
(:mod:`fms.server.pull`) plays one from it. Both need the same thing below their own logic,
which lives here: the target's address read from an ``rtmp://`` or ``rtmps://`` URL
(:class:`RTMPTarget`), the reconnect delays (:class:`Backoff`), and :class:`OutgoingLink`,
the Twisted protocol around the sans-IO :class:`~fms.rtmp.client.ClientConnection` that
connects, asks ``connect`` and ``createStream`` and then hands every event to its
:class:`LinkOwner`, which decides what to publish or play. The link also writes bytes
chunk-encoded elsewhere (a stream's shared fan-out bytes) and holds its own control output
(acknowledgements, ping answers) while such a message is only partly written, so chunk
streams are never cut in the middle of a chunk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import ClientFactory
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from fms.errors import LocalProtocolError, RemoteProtocolError
from fms.rtmp import client as rc
from fms.server.delivery import buffered

DEFAULT_PORTS = {"rtmp": 1935, "rtmps": 443}
CONNECT_TIMEOUT = 10.0
"""Seconds allowed for the TCP (and TLS) connection to be made."""
ANSWER_TIMEOUT = 10.0
"""Seconds allowed from the connection until the owner has its answer (handshake, ``connect``,
``createStream``, then ``publish`` or ``play``; the owner calls :meth:`OutgoingLink.settled`):
a target that accepts the connection and says nothing is given up on."""


@dataclass(frozen=True, slots=True)
class RTMPTarget:
    """Where an outgoing link goes: ``scheme`` (``rtmp``/``rtmps``), ``host``, ``port``, the
    ``app`` to connect to (the URL's path, without its slashes at either end) and the
    ``tc_url`` sent with ``connect`` (the URL up to the app)."""

    scheme: str
    host: str
    port: int
    app: str
    tc_url: str

    @classmethod
    def parse(cls, url: str) -> RTMPTarget:
        """Read ``rtmp[s]://host[:port]/app[?query]``; raises ValueError (see
        :func:`fms.config.push_url_problem` for what is checked at load time)."""
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"not an rtmp:// or rtmps:// URL: {url!r}")
        app = parts.path.strip("/")
        if parts.query:
            app = f"{app}?{parts.query}"
        if not app:
            raise ValueError(f"no application in {url!r}")
        port = parts.port or DEFAULT_PORTS[parts.scheme]
        return cls(parts.scheme, parts.hostname, port, app, url.split("#", 1)[0])

    @property
    def tls(self) -> bool:
        return self.scheme == "rtmps"


class Backoff:
    """Reconnect delays: ``initial`` seconds, doubled after each failure up to ``maximum``,
    back to ``initial`` once a connection worked (:meth:`reset`)."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = max(maximum, initial)
        self._next = initial

    def next(self) -> float:
        """The delay before the next attempt (seconds); the one after is doubled."""
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial


class LinkOwner(Protocol):
    """What an :class:`OutgoingLink` reports to (a push, later a pull)."""

    def link_ready(self, link: OutgoingLink, stream_id: int) -> None:
        """``connect`` was accepted and ``createStream`` answered with ``stream_id``: publish
        or play on it now."""
        ...

    def link_event(self, link: OutgoingLink, event: rc.ClientEvent) -> None:
        """Any other event of the connection (statuses, calls, media)."""
        ...

    def link_failed(self, link: OutgoingLink | None, reason: str) -> None:
        """The link could not be made, was refused, or was lost (``reason`` for the log and
        the figures); it is closed or closing. Called once per link."""
        ...

    def link_writable(self, link: OutgoingLink) -> None:
        """The transport's buffer drained: what was held back may be written now."""
        ...


@implementer(IPushProducer)
class OutgoingLink(TwistedProtocol):
    """One client connection to another RTMP server, for one owner.

    ``chunk_size`` (bytes) is announced before ``connect``: bytes handed to
    :meth:`write_encoded` must be chunked with it. ``flash_ver`` goes in ``connect``, and
    ``connect_extra``'s properties with it."""

    def __init__(
        self,
        owner: LinkOwner,
        target: RTMPTarget,
        reactor: Any,
        *,
        chunk_size: int = 4096,
        flash_ver: str = rc.DEFAULT_FLASH_VER,
        connect_extra: dict[str, Any] | None = None,
    ) -> None:
        self.owner = owner
        self.target = target
        self.reactor = reactor
        self.chunk_size = chunk_size
        self.flash_ver = flash_ver
        self.connect_extra = connect_extra
        self.conn: rc.ClientConnection | None = None
        self.paused = False
        """True while the transport pushes back (its buffer is full)."""
        self.mid_message = False
        """Whether the last bytes of :meth:`write_encoded` ended inside a message: control
        output waits until it is finished."""
        self.bytes_sent = 0
        self.bytes_received = 0
        self.closed = False
        self._reported = False
        self._answer_due: Any = None

    # ----------------------------------------------------------------------- lifecycle

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]
        conn = self.conn = rc.ClientConnection(
            digest=False,
            chunk_size=self.chunk_size,
            now=self.reactor.seconds(),
            random_bytes=os.urandom,
        )
        conn.initiate()
        conn.connect(
            self.target.app, self.target.tc_url, flash_ver=self.flash_ver, extra=self.connect_extra
        )
        conn.create_stream()
        self._answer_due = self.reactor.callLater(ANSWER_TIMEOUT, self._no_answer)
        self.send()

    def _no_answer(self) -> None:
        self._answer_due = None
        self.fail(f"no answer within {ANSWER_TIMEOUT:g}s")

    def settled(self) -> None:
        """The owner got the answer it waited for (``Publish.Start``, ``Play.Start``): the
        answer deadline no longer applies."""
        if self._answer_due is not None and self._answer_due.active():
            self._answer_due.cancel()
        self._answer_due = None

    def dataReceived(self, data: bytes) -> None:
        conn = self.conn
        if conn is None or self.closed:
            return
        self.bytes_received += len(data)
        try:
            events = conn.receive_data(data, self.reactor.seconds())
        except (RemoteProtocolError, LocalProtocolError) as exc:
            self.fail(f"protocol error: {exc}")
            return
        for event in events:
            if self.closed:
                return
            if isinstance(event, rc.StreamCreated):
                self.owner.link_ready(self, event.stream_id)
            elif isinstance(event, rc.ConnectRejected):
                self.fail(f"connect refused: {event.code} {event.description}".strip())
            elif isinstance(event, rc.ErrorReceived):
                self.fail(f"{event.request} refused: {event.code}".strip())
            else:
                self.owner.link_event(self, event)
        self.send()

    def fail(self, reason: str) -> None:
        """Close the link and report ``reason`` to the owner (once)."""
        self._report(reason)
        self.abort()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.abortConnection()  # type: ignore[attr-defined]

    def close(self) -> None:
        """Write what is queued, then close (the owner is not told)."""
        self._reported = True
        if not self.closed:
            self.closed = True
            self.send(force=True)
            if self.transport is not None:
                self.transport.loseConnection()

    def _report(self, reason: str) -> None:
        if not self._reported:
            self._reported = True
            self.owner.link_failed(self, reason)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.closed = True
        if self._answer_due is not None and self._answer_due.active():
            self._answer_due.cancel()
        self._answer_due = None
        if self.conn is not None:
            self.conn.close()
        why = "connection lost"
        if reason is not None and reason.getErrorMessage():
            why = f"connection lost: {reason.getErrorMessage()}"
        self._report(why)

    # ------------------------------------------------------------------------- output

    def send(self, *, force: bool = False) -> None:
        """Write what the client connection queued, unless a message is half written."""
        conn = self.conn
        if conn is None or self.transport is None or (self.mid_message and not force):
            return
        data = conn.data_to_send()
        if data:
            self.bytes_sent += len(data)
            self.transport.write(data)

    def write_encoded(self, data: bytes, ends_message: bool) -> None:
        """Write bytes chunk-encoded with :attr:`chunk_size` (a stream's shared bytes), after
        the connection's own output when the previous write ended a message. ``ends_message``:
        whether ``data`` ends at a message boundary."""
        if self.closed or self.transport is None:
            return
        if not self.mid_message:
            self.send()
        self.mid_message = not ends_message
        self.bytes_sent += len(data)
        self.transport.write(data)
        if ends_message:
            self.send()

    def buffered(self) -> int:
        """Bytes written that the socket has not taken yet."""
        return buffered(self.transport) if self.transport is not None else 0

    # IPushProducer: Twisted pauses us when the socket buffer is full.
    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self.owner.link_writable(self)

    def stopProducing(self) -> None:
        self.paused = True


class LinkFactory(ClientFactory):
    """Builds the one :class:`OutgoingLink` of one connection attempt; reports a connection
    that could not be made to the owner."""

    noisy = False

    def __init__(self, owner: LinkOwner, build: Any) -> None:
        self.owner = owner
        self.build = build
        self.link: OutgoingLink | None = None

    def buildProtocol(self, addr: Any) -> OutgoingLink:
        link: OutgoingLink = self.build()
        link.factory = self
        self.link = link
        return link

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.owner.link_failed(None, f"cannot connect: {reason.getErrorMessage()}")


def tls_options(target: RTMPTarget, trust: str) -> Any:
    """Client TLS options for ``target``: the certificate must be valid for its host, signed
    by the system's authorities or, with ``trust`` (a PEM file), by the certificates in it."""
    from twisted.internet import ssl

    if trust:
        with open(trust, "rb") as pem:
            root: Any = ssl.Certificate.loadPEM(pem.read())
        return ssl.optionsForClientTLS(target.host, trustRoot=root)
    return ssl.optionsForClientTLS(target.host)


def dial(reactor: Any, target: RTMPTarget, factory: LinkFactory, *, trust: str = "") -> Any:
    """Start connecting to ``target`` (TLS for ``rtmps``); returns the connector."""
    if target.tls:
        return reactor.connectSSL(
            target.host, target.port, factory, tls_options(target, trust),
            timeout=CONNECT_TIMEOUT,
        )  # fmt: skip
    return reactor.connectTCP(target.host, target.port, factory, timeout=CONNECT_TIMEOUT)
