"""WebSocket-FLV on the HTTP listener, in memory: Autobahn's own WebSocket client protocol
talks to the server's HTTP channel over Twisted's string transports and a fake clock (no
sockets, no wall clock). What is checked is what the client got: the upgrade, the binary
messages whose concatenation is the FLV file, the close when the publisher leaves; and the HTTP
answers before any upgrade (a plugin's 403, a 404, a 400 for a bad handshake)."""

from __future__ import annotations

import json
from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from fms.apps.api import Plugin, Reject
from fms.apps.interfaces import IClientView
from fms.config import Config, HTTPConfig
from fms.http.api import API
from fms.http.web import APISite, LimitedHTTPChannel
from fms.http.wsflv import MAX_INCOMING, FLVSocket
from fms.live import flv
from fms.live.stream import FanoutLimits
from fms.rtmp.constants import MessageType
from fms.rtmp.messages import Media
from fms.server.factory import RTMPServerFactory
from tests.support.live_sink import AVC_HEADER, inter, key

ADDRESS = IPv4Address("TCP", "192.0.2.7", 5000)


class Transport(StringTransport):
    """A string transport whose protocol hears of the end when it is lost or aborted, as a
    TCP transport's does (once)."""

    def __init__(self, peer: IPv4Address = ADDRESS) -> None:
        super().__init__(peerAddress=peer)
        self.protocol: Any = None
        self.lost = False

    def _lose(self) -> None:
        if not self.lost:
            self.lost = True
            self.protocol.connectionLost(Failure(ConnectionDone()))

    def loseConnection(self) -> None:
        super().loseConnection()
        self._lose()

    def abortConnection(self) -> None:
        super().abortConnection()
        self._lose()

    def unregisterProducer(self) -> None:
        self.producer = None  # as a TCP transport: no error when none is registered


class Client(WebSocketClientProtocol):
    """Autobahn's client: keeps the messages it receives and how it was closed."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[tuple[bytes, bool]] = []
        self.opened = False
        self.closed: tuple[bool, int | None, str | None] | None = None

    def onOpen(self) -> None:
        self.opened = True

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.messages.append((payload, isBinary))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.closed = (wasClean, code, reason)


class Pipe:
    """One WebSocket client connected to the site: bytes are moved by :meth:`pump`."""

    def __init__(self, site: APISite, path: str = "/live/cam.flv") -> None:
        factory = WebSocketClientFactory(url=f"ws://x{path}")
        factory.setProtocolOptions(openHandshakeTimeout=0)
        self.client = Client()
        self.client.factory = factory
        self.client_transport = Transport()
        self.client_transport.protocol = self.client
        channel = site.buildProtocol(ADDRESS)
        assert isinstance(channel, LimitedHTTPChannel)
        self.channel = channel
        self.server_transport = Transport()
        self.server_transport.protocol = channel
        channel.makeConnection(self.server_transport)
        self.written = b""
        """Every byte the server wrote."""
        self.client.makeConnection(self.client_transport)  # writes the opening handshake
        self.pump()

    def pump(self) -> bytes:
        """Move bytes both ways until none are left; what the server wrote."""
        written = b""
        while True:
            to_server, to_client = self.client_transport.value(), self.server_transport.value()
            if not to_server and not to_client:
                # One end closed the TCP connection: the other hears of it.
                if self.server_transport.lost and not self.client_transport.lost:
                    self.client_transport._lose()
                elif self.client_transport.lost and not self.server_transport.lost:
                    self.server_transport._lose()
                return written
            self.client_transport.clear()
            self.server_transport.clear()
            written += to_client
            self.written += to_client
            if to_server and not self.server_transport.lost:
                self.server_transport.protocol.dataReceived(to_server)
            if to_client and not self.client_transport.lost:
                self.client.dataReceived(to_client)

    def body(self) -> bytes:
        """The concatenation of the binary messages received."""
        assert all(binary for _, binary in self.client.messages)
        return b"".join(payload for payload, _ in self.client.messages)


def setup(**options: object) -> tuple[APISite, RTMPServerFactory, Clock]:
    clock = Clock()
    config = HTTPConfig(enabled=True, **options)  # type: ignore[arg-type]
    server = RTMPServerFactory(Config(), clock=clock)
    return APISite(API(server, config), config, clock), server, clock


def publish(server: RTMPServerFactory) -> object:
    publisher = object()
    stream = server.registry.claim("live", "cam", publisher)
    assert stream is not None
    stream.set_metadata(("onMetaData", {"videocodecid": 7}))
    stream.publish_message(Media(MessageType.VIDEO, 0, 1, AVC_HEADER))
    stream.publish_message(key(0))
    stream.publish_message(inter(40))
    return publisher


def status(written: bytes) -> tuple[int, bytes]:
    """The status code and body of an HTTP response."""
    head, _, body = written.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


class Recorder(Plugin):
    """Sees every hook a viewer is asked; refuses play when ``refuse`` is set."""

    def __init__(self, refuse: str | None = None) -> None:
        self.refuse = refuse
        self.seen: list[tuple[str, str, dict[str, str]]] = []

    def connect(self, client: IClientView) -> None:
        self.seen.append(("connect", client.protocol, dict(client.query)))

    def play(self, client: IClientView, name: str, query: dict[str, str]) -> Reject | None:
        self.seen.append(("play", client.protocol, dict(query)))
        return Reject(self.refuse) if self.refuse else None


def with_plugin(server: RTMPServerFactory, plugin: Plugin) -> None:
    application = server.application_for("live")
    assert application is not None
    application.plugins.append(plugin)


def test_a_websocket_viewer_gets_binary_messages_that_make_the_flv_file() -> None:
    site, server, _ = setup()
    publish(server)
    pipe = Pipe(site)
    server.registry.flush(0.0)
    pipe.pump()
    assert pipe.written.startswith(b"HTTP/1.1 101 ")
    assert pipe.client.opened
    assert pipe.client.messages[0] == (flv.file_header(audio=False, video=True), True)
    flags, tags = flv.read_file(pipe.body())
    assert flags == flv.FLAG_VIDEO
    assert [t.tag_type for t in tags] == [18, 9, 9, 9]
    assert tags[1].payload == AVC_HEADER
    stream = server.registry.get("live", "cam")
    assert stream is not None
    stream.publish_message(inter(80))
    server.registry.flush(0.1)
    pipe.pump()
    _, more = flv.read_file(pipe.body())
    assert [t.timestamp for t in more[2:]] == [0, 40, 80]


def test_plugins_are_asked_with_protocol_websocket_flv_and_the_url_query() -> None:
    site, server, _ = setup()
    plugin = Recorder()
    with_plugin(server, plugin)
    publish(server)
    Pipe(site, "/live/cam.flv?key=s3cret")
    query = {"key": "s3cret"}
    assert plugin.seen == [("connect", "websocket-flv", query), ("play", "websocket-flv", query)]


def test_a_refused_viewer_gets_a_403_with_the_reason_and_no_upgrade() -> None:
    site, server, _ = setup()
    with_plugin(server, Recorder(refuse="members only"))
    publish(server)
    pipe = Pipe(site)
    code, body = status(pipe.written)
    assert (code, json.loads(body)) == (403, {"error": "members only"})
    assert not pipe.client.opened
    stream = server.registry.get("live", "cam")
    assert stream is not None and not stream.players


def test_the_upgrade_waits_for_the_publisher_and_then_the_stream_starts_at_its_beginning() -> None:
    site, server, clock = setup(flv_wait=5.0)
    pipe = Pipe(site)
    clock.advance(4.0)
    assert pipe.written == b"" and not pipe.client.opened
    publish(server)
    server.registry.flush(4.0)
    pipe.pump()
    assert pipe.client.opened
    _, tags = flv.read_file(pipe.body())
    assert [t.tag_type for t in tags] == [18, 9, 9, 9]  # metadata, header, key, inter


def test_a_stream_nobody_publishes_is_a_404_before_the_upgrade_with_flv_wait_0() -> None:
    site, _server, _ = setup(flv_wait=0.0)
    pipe = Pipe(site)
    code, body = status(pipe.written)
    assert (code, json.loads(body)) == (404, {"error": "nobody publishes live/cam"})
    assert not pipe.client.opened


def test_a_viewer_waiting_for_a_publisher_that_never_comes_gets_a_404_without_upgrade() -> None:
    site, server, clock = setup(flv_wait=5.0)
    pipe = Pipe(site)
    clock.advance(4.9)
    assert pipe.pump() == b""
    clock.advance(0.2)
    code, body = status(pipe.pump())
    assert code == 404 and b"within 5s" in body
    assert not pipe.client.opened and server.registry.get("live", "cam") is None


def test_the_websocket_is_closed_with_code_1000_when_the_publisher_leaves() -> None:
    site, server, _ = setup()
    publisher = publish(server)
    pipe = Pipe(site)
    server.registry.flush(0.0)
    pipe.pump()
    stream = server.registry.get("live", "cam")
    assert stream is not None and len(stream.players) == 1
    assert server.registry.release(stream, publisher)
    pipe.pump()
    assert pipe.client.closed == (True, 1000, "the publisher left")
    assert not stream.players and server.registry.get("live", "cam") is None


def test_a_viewer_that_goes_away_leaves_the_stream_and_its_connection_is_no_longer_open() -> None:
    site, server, _ = setup()
    publish(server)
    pipe = Pipe(site)
    server.registry.flush(0.0)
    pipe.pump()
    stream = server.registry.get("live", "cam")
    assert stream is not None and len(stream.players) == 1 and len(site.open) == 1
    socket = pipe.server_transport.protocol
    assert isinstance(socket, FLVSocket)
    socket.connectionLost(Failure(ConnectionLost()))
    assert not stream.players
    assert not site.open  # counted against max_connections no more


def test_a_viewer_whose_connection_pushes_back_is_handed_nothing_and_closed_at_stall() -> None:
    """The transport's producer is still the HTTP channel after the upgrade; its pause reaches
    the viewer, which is then handed nothing, and the stream closes it after stall_timeout."""
    site, server, _ = setup()
    application = server.application_for("live")
    assert application is not None
    publisher = object()
    stream = server.registry.claim("live", "cam", publisher)
    assert stream is not None
    stream.limits = FanoutLimits(stall_timeout=2.0)
    stream.publish_message(Media(MessageType.VIDEO, 0, 1, AVC_HEADER))
    stream.publish_message(key(0))
    pipe = Pipe(site)
    server.registry.flush(0.0)
    pipe.pump()
    received = len(pipe.body())
    pipe.server_transport.producer.pauseProducing()  # the socket buffer is full
    for ms in range(40, 4000, 40):
        stream.publish_message(inter(ms))
        server.registry.flush(ms / 1000)
    pipe.pump()
    assert len(pipe.body()) == received  # nothing handed while paused
    assert pipe.server_transport.disconnected  # aborted at the stall bound
    assert not stream.players


def test_an_opening_handshake_autobahn_would_refuse_is_a_400_before_plugins_are_asked() -> None:
    site, server, _ = setup()
    plugin = Recorder()
    with_plugin(server, plugin)
    channel = site.buildProtocol(ADDRESS)
    assert isinstance(channel, LimitedHTTPChannel)
    transport = Transport()
    transport.protocol = channel
    channel.makeConnection(transport)
    channel.dataReceived(
        b"GET /live/cam.flv HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    code, body = status(transport.value())
    assert code == 400 and b"version 13" in body
    assert plugin.seen == []


def test_a_frame_from_the_viewer_over_max_incoming_fails_its_connection() -> None:
    site, server, _ = setup()
    publish(server)
    pipe = Pipe(site)
    server.registry.flush(0.0)
    pipe.pump()
    pipe.client.sendMessage(b"x" * MAX_INCOMING, isBinary=True)
    pipe.pump()
    assert not pipe.server_transport.lost  # at the limit: read and dropped
    pipe.client.sendMessage(b"x" * (MAX_INCOMING + 1), isBinary=True)
    pipe.pump()
    assert pipe.server_transport.lost
    stream = server.registry.get("live", "cam")
    assert stream is not None and not stream.players


def test_a_long_message_in_small_frames_is_dropped_frame_by_frame() -> None:
    """Each frame is within MAX_INCOMING: the connection stays, and the server gathers none of
    the message (what it holds is bounded by one frame, however long the message)."""
    site, server, _ = setup()
    publish(server)
    pipe = Pipe(site)
    server.registry.flush(0.0)
    pipe.pump()
    socket = pipe.server_transport.protocol
    pipe.client.sendMessage(b"x" * (10 * MAX_INCOMING), isBinary=True, fragmentSize=MAX_INCOMING)
    pipe.pump()
    assert not pipe.server_transport.lost
    assert socket.message_data == []
