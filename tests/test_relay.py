"""The worker relay (:mod:`fms.cluster.relay`) between two server factories, in memory.

Worker 0 and worker 1 are two :class:`RTMPServerFactory` objects on one fake clock; a relay
link is a pair of in-memory transports between worker 0's :class:`RelayLink` and a trusted
protocol of worker 1, pumped by hand. No sockets, no processes: the end-to-end version with
real clients is ``tests/e2e/test_workers.py``.
"""

from __future__ import annotations

import itertools
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from fms.apps.api import Plugin, Reject
from fms.cluster.link import InternalFactory
from fms.cluster.relay import RelayHub, RelayLink
from fms.cluster.spec import WorkerSpec
from fms.config import parse_config
from fms.rtmp.constants import MessageType
from fms.rtmp.messages import Data
from fms.server.factory import RTMPServerFactory
from fms.server.protocol import RTMPServerProtocol
from tests.support.server_peer import Peer

AVC_HEADER = b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f"
AAC_HEADER = b"\xaf\x00\x12\x10"


def frame(key: bool, n: int) -> bytes:
    return (b"\x17" if key else b"\x27") + b"\x01\x00\x00\x00" + bytes([n]) * 40


class Refuser(Plugin):
    """Refuses every publish and counts what plugins must not see from a relay."""

    seen: list[str] = []

    def connect(self, client: Any) -> Any:
        Refuser.seen.append("connect")

    def publish(self, client: Any, name: str, query: dict[str, str], kind: str) -> Any:
        Refuser.seen.append("publish")
        return Reject("no publishing here")

    def media(self, stream: Any, message: Any) -> None:
        Refuser.seen.append("media")

    def unpublish(self, client: Any, stream: Any) -> Any:
        Refuser.seen.append("unpublish")


class Pair:
    """One relay link: worker 0's RelayLink and worker 1's trusted protocol, in memory."""

    def __init__(self, client: RelayLink, server: RTMPServerProtocol) -> None:
        self.client, self.server = client, server
        self.client_transport = StringTransport()
        self.server_transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 1))
        self.closed = False
        self.sent_up = 0
        """Bytes worker 0 sent on the link."""
        server.makeConnection(self.server_transport)
        client.makeConnection(self.client_transport)

    def pump(self) -> None:
        for _ in range(50):
            up = self.client_transport.value()
            self.client_transport.clear()
            down = self.server_transport.value()
            self.server_transport.clear()
            if up:
                self.sent_up += len(up)
                self.server.dataReceived(up)
            if down:
                self.client.dataReceived(down)
            if not up and not down:
                break
        if not self.closed and (
            self.client_transport.disconnecting or self.server_transport.disconnecting
        ):
            self.closed = True
            self.server.connectionLost(Failure(ConnectionError("closed")))
            self.client.connectionLost(Failure(ConnectionError("closed")))


class FakeReactor(Clock):
    """Worker 0's reactor: ``connectUNIX`` reaches worker 1's relay listener in memory."""

    def __init__(self) -> None:
        super().__init__()
        self.target: RTMPServerFactory | None = None
        self.pairs: list[Pair] = []
        self.refuse = False

    def connectUNIX(self, path: str, factory: Any, timeout: int = 30) -> None:
        if self.refuse or self.target is None:
            factory.clientConnectionFailed(None, Failure(ConnectionRefusedError(path)))
            return
        server = InternalFactory(self.target).buildProtocol(None)
        assert server is not None
        self.pairs.append(Pair(factory.buildProtocol(None), server))

    def pump(self) -> None:
        for pair in list(self.pairs):
            pair.pump()


def connected(factory: RTMPServerFactory, port: int) -> Peer:
    """A scripted client of one worker from 192.0.2.9:``port``, connected to app live with
    stream 1 created."""
    return Peer(factory, port, host="192.0.2.9").connect(create_stream=True)


class Workers:
    def __init__(self, toml: str = "") -> None:
        config = "[streams]\nflush_interval = 0.0\n" + toml
        self.reactor = FakeReactor()
        self.w0 = RTMPServerFactory(parse_config(config), clock=self.reactor)
        self.w1 = RTMPServerFactory(parse_config(config), clock=self.reactor)
        self.reactor.target = self.w1
        self.hub = RelayHub(self.reactor, WorkerSpec(0, 2, "/nonexistent", 1935), self.w0)
        self.w0.publish_listener = self.hub

    def start_stream(self, publisher: Peer) -> None:
        meta = ("@setDataFrame", "onMetaData", {"width": 320.0})
        publisher.send(publisher.client.send(Data(meta, 1)))
        publisher.send_media(MessageType.VIDEO, 0, AVC_HEADER)
        publisher.send_media(MessageType.AUDIO, 0, AAC_HEADER)
        publisher.send_media(MessageType.VIDEO, 0, frame(True, 0))


def test_a_publish_on_worker_0_plays_on_worker_1() -> None:
    w = Workers()
    watcher = connected(w.w1, 2000).play()
    assert watcher.statuses()[-1] == "NetStream.Play.Start"
    publisher = connected(w.w0, 1000).publish()
    w.reactor.pump()
    mirror = w.w1.registry.get("live", "cam")
    assert mirror is not None
    assert mirror.publisher.peer.endswith(" via worker 0")  # type: ignore[union-attr]
    w.start_stream(publisher)
    for n in range(1, 4):
        publisher.send_media(MessageType.VIDEO, 40 * n, frame(False, n))
    w.reactor.pump()
    watcher.pump()
    assert "NetStream.Play.PublishNotify" in watcher.statuses()
    assert watcher.video() == [AVC_HEADER, frame(True, 0), *(frame(False, n) for n in (1, 2, 3))]
    metadata = [m for m in watcher.client.received if isinstance(m, Data) and m.values]
    assert any(m.values[0] == "onMetaData" for m in metadata)


def test_a_relayed_publish_skips_the_other_workers_plugins() -> None:
    Refuser.seen = []
    plugin = f'[[apps.live.plugins]]\nuse = "{__name__}:Refuser"\n'
    w = Workers(plugin)
    w.w0.chains = {"live": []}  # worker 0 accepts; worker 1's chain refuses every publish
    w.w0.applications.clear()
    publisher = connected(w.w0, 1000).publish()
    assert publisher.statuses()[-1] == "NetStream.Publish.Start"
    w.reactor.pump()
    w.start_stream(publisher)
    w.reactor.pump()
    mirror = w.w1.registry.get("live", "cam")
    assert mirror is not None and mirror.published
    publisher.send(publisher.client.command("deleteStream", 4.0, None, 1.0))
    w.reactor.pump()
    assert w.w1.registry.get("live", "cam") is None
    assert Refuser.seen == []  # no connect, publish, media or unpublish of the relay link
    # The same chain does decide for a client of worker 1.
    direct = connected(w.w1, 1001).publish("other")
    assert direct.statuses()[-1] == "NetStream.Publish.Denied"
    assert Refuser.seen == ["connect", "publish"]


def test_the_relay_link_is_not_one_of_the_applications_clients() -> None:
    w = Workers()
    connected(w.w0, 1000).publish()
    w.reactor.pump()
    application = w.w1.application_for("live")
    assert application is not None
    assert application.clients == ()
    stream = application.stream("cam")
    assert stream is not None and stream.publisher is not None
    assert stream.publisher.peer == "192.0.2.9:1000 via worker 0"


def test_a_link_made_mid_stream_starts_with_metadata_headers_and_the_gop() -> None:
    w = Workers()
    w.reactor.refuse = True  # worker 1 is down when the publish starts
    publisher = connected(w.w0, 1000).publish()
    w.start_stream(publisher)
    publisher.send_media(MessageType.VIDEO, 40, frame(False, 1))
    w.reactor.refuse = False  # worker 1 is back: the retry links
    w.reactor.advance(0.5)
    w.reactor.pump()
    watcher = connected(w.w1, 2000).play()
    publisher.send_media(MessageType.VIDEO, 80, frame(False, 2))
    w.reactor.pump()
    watcher.pump()
    assert watcher.video() == [AVC_HEADER, frame(True, 0), frame(False, 1), frame(False, 2)]


def test_retries_back_off_while_the_other_worker_is_down() -> None:
    w = Workers()
    w.reactor.refuse = True
    attempts: list[float] = []
    connect = w.reactor.connectUNIX

    def counting(path: str, factory: Any, timeout: int = 30) -> None:
        attempts.append(w.reactor.seconds())
        connect(path, factory, timeout)

    w.reactor.connectUNIX = counting  # type: ignore[method-assign]
    connected(w.w0, 1000).publish()
    for _ in range(60):
        w.reactor.advance(0.25)
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps[:4] == [0.5, 1.0, 2.0, 4.0]
    assert max(gaps) == 5.0


def test_unpublish_on_worker_0_ends_the_stream_on_worker_1() -> None:
    w = Workers()
    publisher = connected(w.w0, 1000).publish()
    w.start_stream(publisher)
    w.reactor.pump()
    watcher = connected(w.w1, 2000).play()
    publisher.send(publisher.client.command("deleteStream", 4.0, None, 1.0))
    w.reactor.pump()
    watcher.pump()
    assert watcher.statuses()[-1] == "NetStream.Play.UnpublishNotify"
    assert all(pair.closed for pair in w.reactor.pairs)


def test_a_name_relayed_to_worker_1_cannot_be_published_there() -> None:
    w = Workers()
    connected(w.w0, 1000).publish()
    w.reactor.pump()
    second = connected(w.w1, 1001).publish()
    assert second.statuses()[-1] == "NetStream.Publish.BadName"


def test_a_link_that_cannot_keep_up_skips_to_the_next_keyframe() -> None:
    w = Workers()
    publisher = connected(w.w0, 1000).publish()
    w.start_stream(publisher)
    w.reactor.pump()
    watcher = connected(w.w1, 2000).play()
    w.reactor.pump()  # worker 1 reports its player: the flow starts with headers and the GOP
    link = w.reactor.pairs[0].client
    link.pauseProducing()  # the socket buffer to worker 1 is full
    publisher.send_media(MessageType.VIDEO, 40, frame(False, 1))
    publisher.send_media(MessageType.VIDEO, 80, frame(False, 2))
    link.resumeProducing()
    publisher.send_media(MessageType.VIDEO, 120, frame(False, 3))  # still skipped: no keyframe yet
    publisher.send_media(MessageType.VIDEO, 160, frame(True, 4))
    publisher.send_media(MessageType.VIDEO, 200, frame(False, 5))
    w.reactor.pump()
    watcher.pump()
    assert watcher.video() == [AVC_HEADER, frame(True, 0), frame(True, 4), frame(False, 5)]
    assert link.skipped == 0  # reported and reset once the keyframe went out


def test_every_worker_counts_the_players_of_every_worker() -> None:
    w = Workers()
    publisher = connected(w.w0, 1000).publish()
    w.start_stream(publisher)
    w.reactor.pump()
    connected(w.w0, 2000).play()
    connected(w.w1, 2001).play()
    connected(w.w1, 2002).play()
    for _ in range(4):  # worker 1 reports, worker 0 adds up and tells it the rest
        w.reactor.advance(0.5)
        w.reactor.pump()
    counts = []
    for factory in (w.w0, w.w1):
        application = factory.application_for("live")
        assert application is not None
        view = application.stream("cam")
        assert view is not None
        counts.append(view.subscriber_count)
    assert counts == [3, 3]


def big(key: bool, n: int) -> bytes:
    return (b"\x17" if key else b"\x27") + b"\x01\x00\x00\x00" + bytes([n]) * 5000


def test_no_media_crosses_to_a_worker_without_players() -> None:
    w = Workers()
    publisher = connected(w.w0, 1000).publish()
    w.start_stream(publisher)
    for n in range(1, 20):
        publisher.send_media(MessageType.VIDEO, 40 * n, big(n % 10 == 0, n))
    w.reactor.pump()
    (pair,) = w.reactor.pairs
    assert pair.sent_up < 5000  # the handshake, connect, publish and metadata: no frame
    mirror = w.w1.registry.get("live", "cam")
    assert mirror is not None and mirror.published and mirror.metadata is not None
    assert mirror.replay() == []


def test_the_flow_stops_with_the_last_player_and_restarts_at_a_fresh_keyframe() -> None:
    w = Workers()
    publisher = connected(w.w0, 1000).publish()
    w.start_stream(publisher)
    w.reactor.pump()
    first = connected(w.w1, 2000).play()
    w.reactor.pump()
    publisher.send_media(MessageType.VIDEO, 40, frame(False, 1))
    w.reactor.pump()
    first.pump()
    assert first.video() == [AVC_HEADER, frame(True, 0), frame(False, 1)]
    first.send(first.client.command("deleteStream", 4.0, None, 1.0))
    w.reactor.advance(0.5)  # worker 1 reports that it has no player left
    w.reactor.pump()
    (pair,) = w.reactor.pairs
    before = pair.sent_up
    for n in range(2, 6):  # frames nobody on worker 1 wants: they stay on worker 0
        publisher.send_media(MessageType.VIDEO, 40 * n, big(n == 4, n))
    w.reactor.pump()
    assert pair.sent_up - before < 100
    second = connected(w.w1, 2001).play()
    w.reactor.pump()
    publisher.send_media(MessageType.VIDEO, 240, frame(False, 6))
    w.reactor.pump()
    second.pump()
    # Headers and the GOP from the newest keyframe (4), never the stale frames 0 and 1.
    assert second.video() == [AVC_HEADER, big(True, 4), big(False, 5), frame(False, 6)]


def test_metadata_changes_reach_the_other_worker() -> None:
    w = Workers()
    publisher = connected(w.w0, 1000).publish()
    w.start_stream(publisher)
    w.reactor.pump()
    mirror = w.w1.registry.get("live", "cam")
    assert mirror is not None and mirror.metadata is not None
    assert mirror.metadata.values[1] == {"width": 320.0}
    new = ("@setDataFrame", "onMetaData", {"width": 640.0})
    publisher.send(publisher.client.send(Data(new, 1)))
    w.reactor.pump()
    assert mirror.metadata is not None and mirror.metadata.values[1] == {"width": 640.0}
    publisher.send(publisher.client.send(Data(("@clearDataFrame",), 1)))
    w.reactor.pump()
    assert mirror.metadata is None
