"""One scripted client driving one :class:`RTMPServerProtocol` in memory, for adapter tests.

A :class:`Peer` is what the listener would make for one TCP connection (the factory's
``buildProtocol`` with the peer's address, a Twisted :class:`StringTransport`) plus a
:class:`~tests.support.rtmp_peer.ScriptedClient` that writes the client's bytes and reads the
server's. Nothing runs by itself: a test sends, then :meth:`Peer.pump` reads what the server
wrote, and time passes only on the factory's fake clock. No sockets, no wall clock.

Each step returns the peer, so a test says where its client stands in one line:
``Peer(factory).connect(create_stream=True).publish("cam")``.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from fms.config import Config, parse_config
from fms.rtmp.constants import MessageType, UserControlEvent
from fms.rtmp.messages import Media, UserControl
from fms.server.factory import RTMPServerFactory
from fms.server.protocol import RTMPServerProtocol
from tests.support.rtmp_peer import ScriptedClient

HOST = "192.0.2.1"
"""The peer's address unless a test names another (TEST-NET-1: never a real client)."""


def factory_for(text: str | None = None) -> RTMPServerFactory:
    """A server factory configured by the TOML ``text`` (the defaults, not read from any text,
    when None), on its own fake clock."""
    config = Config() if text is None else parse_config(text)
    return RTMPServerFactory(config, clock=Clock())


def clock_of(factory: RTMPServerFactory) -> Clock:
    """The fake clock of a factory made by :func:`factory_for` (or given a Clock)."""
    assert isinstance(factory.clock, Clock)
    return factory.clock


def arrive_v6(factory: RTMPServerFactory, host: str) -> RTMPServerProtocol | None:
    """A connection from IPv6 ``host`` (port 1) as the listener would make it; None when the
    factory refuses it. Only admission is exercised: nothing is sent."""
    address = IPv6Address("TCP", host, 1)
    proto = factory.buildProtocol(address)
    if proto is not None:
        proto.makeConnection(StringTransport(peerAddress=address))
    return proto


class Peer:
    """A scripted client on an in-memory transport of ``factory``, from ``host``:``port``.

    Made, it is a TCP connection that has sent nothing; :meth:`handshake`, :meth:`connect`,
    :meth:`create_stream`, :meth:`publish` and :meth:`play` move it on. Everything the server
    writes stays in the transport until :meth:`pump` (or :meth:`send`, which pumps) hands it to
    the client; what the client answers by itself (C2 of the handshake) goes back at once.
    Pings are answered only when the test says so (:meth:`answer_pings`).
    """

    def __init__(self, factory: RTMPServerFactory, port: int = 1000, *, host: str = HOST) -> None:
        address = IPv4Address("TCP", host, port)
        proto = factory.buildProtocol(address)
        assert proto is not None, "refused"
        self.proto: RTMPServerProtocol = proto
        self.transport = StringTransport(peerAddress=address)
        self.proto.makeConnection(self.transport)
        self.client = ScriptedClient()
        self.host = host
        self.port = port
        self.answered: list[int] = []
        """Ping values already answered by :meth:`answer_pings`."""

    # ------------------------------------------------------------------------------ bytes

    def take(self) -> bytes:
        """What the server wrote since the last take, removed from the transport."""
        data: bytes = self.transport.value()
        self.transport.clear()
        return data

    def send(self, data: bytes) -> None:
        """Deliver ``data`` to the server in one read, then :meth:`pump`."""
        self.proto.dataReceived(data)
        self.pump()

    def pump(self) -> None:
        """Hand what the server wrote to the client; send back what the client answers."""
        reply = self.client.receive(self.take())
        if reply:
            self.proto.dataReceived(reply)

    # ------------------------------------------------------------------------------ steps

    def handshake(self) -> Peer:
        self.proto.dataReceived(self.client.hello())
        self.pump()
        return self

    def connect(self, app: str = "live", *, create_stream: bool = False, **fields: Any) -> Peer:
        """Handshake, then ``connect`` to ``app`` with ``fields`` added to (or replacing those
        of) the command object; with ``create_stream``, ``createStream`` (transaction 2, so
        stream 1) follows in the same read as ``connect``."""
        self.handshake()
        data = self.client.connect(app, **fields)
        if create_stream:
            data += self.client.command("createStream", 2.0)
        self.send(data)
        return self

    def create_stream(self) -> Peer:
        """``createStream`` as transaction 2: stream 1 on a fresh connection."""
        self.send(self.client.command("createStream", 2.0))
        return self

    def publish(self, name: str = "cam") -> Peer:
        """Publish ``name`` live on stream 1."""
        self.send(self.client.command("publish", 3.0, None, name, "live", stream_id=1))
        return self

    def play(self, name: str = "cam") -> Peer:
        """Play ``name`` on stream 1, live or recorded (start -2)."""
        self.send(self.client.command("play", 3.0, None, name, -2.0, stream_id=1))
        return self

    def send_media(self, type_id: MessageType, timestamp: int, payload: bytes) -> None:
        """One audio or video message on stream 1; ``timestamp`` in ms."""
        self.send(self.client.send(Media(type_id, timestamp, 1, payload)))

    def send_video(self, timestamp: int, payload: bytes) -> None:
        self.send_media(MessageType.VIDEO, timestamp, payload)

    def answer_pings(self) -> None:
        """Answer every ping request received and not answered yet, in order."""
        for value in self.pings()[len(self.answered) :]:
            self.answered.append(value)
            self.send(self.client.send(UserControl(UserControlEvent.PING_RESPONSE, value)))

    def lose(self) -> None:
        """The TCP connection is gone, as Twisted would report it."""
        self.proto.connectionLost(None)

    # --------------------------------------------------------------------- what it received

    def statuses(self) -> list[str]:
        """The ``code`` of every info object received, in order."""
        return self.client.statuses()

    def infos(self) -> list[dict[str, Any]]:
        """Every info object (a dict with a ``code``) received, in order."""
        out: list[dict[str, Any]] = []
        for c in self.client.commands():
            out.extend(v for v in (c.command_object, *c.arguments) if isinstance(v, dict))
        return [i for i in out if "code" in i]

    def answers(self, tid: float) -> list[str]:
        """Names of the answers (``_result``/``_error``) to transaction ``tid``."""
        return [
            c.name
            for c in self.client.commands()
            if c.transaction_id == tid and c.name in ("_result", "_error")
        ]

    def media(self) -> list[Media]:
        """The audio and video messages received, in order."""
        return [m for m in self.client.received if isinstance(m, Media)]

    def video(self) -> list[bytes]:
        """The payloads of the video messages received, in order."""
        return [m.payload for m in self.media() if m.type_id == MessageType.VIDEO]

    def pings(self) -> list[int]:
        """The values of the ping requests received, in order."""
        return [
            m.value
            for m in self.client.received
            if isinstance(m, UserControl) and m.event == UserControlEvent.PING_REQUEST
        ]

    @property
    def closed(self) -> bool:
        """The server asked the transport to close (it may still be writing)."""
        return bool(self.transport.disconnecting)

    def closed_for(self, logged: list[str], reason: str) -> bool:
        """Closed, with the one log line about this peer naming ``reason``."""
        lines = [line for line in logged if f"closing {self.host}:{self.port}:" in line]
        return self.closed and len(lines) == 1 and reason in lines[0]
