"""HLS as MPEG-TS on the HTTP listener and HLS across workers, in memory (Twisted's
StringTransport, a fake clock, two servers whose control channel is a dictionary): the TS
playlist and segment types, names of the other container refused, and a worker that does
not mux a stream answering with the bytes of the worker that does."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from fms.config import Config, HLSConfig, HTTPConfig
from fms.http import hlsforward
from fms.http.api import API
from fms.http.peers import Handler
from fms.http.web import APISite
from fms.live.stream import LiveStream
from fms.rtmp.constants import MessageType
from fms.rtmp.messages import Media
from fms.server.factory import RTMPServerFactory
from tests.hls.test_tssegments import AAC_HEADER, AVC_HEADER, frame
from tests.test_http_hls import START, get, parse, uris


def make(clock: Clock, peers: Any = None, **hls: object) -> tuple[APISite, RTMPServerFactory]:
    http = HTTPConfig(enabled=True)
    config = Config(http=http, hls=HLSConfig(**hls))  # type: ignore[arg-type]
    server = RTMPServerFactory(config, clock=clock)
    return APISite(API(server, http, peers=peers), http, clock), server


def publish(server: RTMPServerFactory, seconds: float, name: str = "cam", size: int = 60) -> None:
    """Claim live/NAME and publish ``seconds`` of 25 fps H.264 (a keyframe a second) + AAC,
    frames of ``size`` bytes."""
    stream = server.registry.claim("live", name, object())
    assert stream is not None
    feed(stream, seconds, size)


def feed(stream: LiveStream, seconds: float, size: int = 60) -> None:
    stream.publish_message(Media(MessageType.VIDEO, 0, 1, AVC_HEADER))
    stream.publish_message(Media(MessageType.AUDIO, 0, 1, AAC_HEADER))
    for i in range(int(seconds * 25)):
        stream.publish_message(Media(MessageType.AUDIO, i * 40, 1, b"\xaf\x01" + bytes(10)))
        body = frame(i % 25 == 0)
        if size > 60:
            body = body[:5] + (size - 4).to_bytes(4, "big") + body[9:10] + bytes(size - 5)
        stream.publish_message(Media(MessageType.VIDEO, i * 40, 1, body))


def test_ts_playlist_and_segments_have_their_types_and_the_other_name_is_404() -> None:
    """container = "mpegts": the playlist lists seg<N>.ts (no map), a segment is video/mp2t
    and cached long, seg<N>.m4s and init.mp4 of that stream are 404."""
    clock = Clock()
    clock.advance(START)
    site, server = make(clock, container="mpegts")
    publish(server, 4.5)
    status, headers, body = get(site, "/live/cam/index.m3u8")
    assert status == 200 and b"#EXT-X-MAP" not in body and b"#EXT-X-VERSION:3" in body
    names = uris(body)
    assert len(names) == 2 and all(n.endswith(".ts") for n in names)
    status, headers, data = get(site, f"/live/cam/{names[0]}")
    assert status == 200
    assert headers["Content-Type"] == "video/mp2t"
    assert headers["Cache-Control"] == "public, max-age=86400, immutable"
    assert data[0] == 0x47 and len(data) % 188 == 0
    assert get(site, f"/live/cam/{names[0][:-3]}.m4s")[0] == 404
    assert get(site, "/live/cam/init.mp4")[0] == 404


def test_mpegts_apps_choose_ts_for_their_apps_only() -> None:
    """mpegts_apps = ["live"] next to container = "fmp4": live is TS, other apps fMP4."""
    config = HLSConfig(mpegts_apps=("live",))
    assert config.container_for("live") == "mpegts"
    assert config.container_for("live/room") == "mpegts"
    assert config.container_for("other") == "fmp4"


class DictPeers:
    """The control channel of in-memory workers: every worker's handlers in one dict."""

    def __init__(self, index: int, workers: dict[int, dict[str, Handler]]) -> None:
        self.index = index
        self.count = 2
        self.workers = workers
        self.asked: list[tuple[int, int]] = []
        """(worker asked, offset) of every request sent."""
        workers[index] = {}

    def handle(self, op: str, handler: Handler) -> None:
        self.workers[self.index][op] = handler

    def ask(self, worker: int, op: str, payload: dict[str, Any]) -> Deferred[dict[str, Any]]:
        self.asked.append((worker, int(payload.get("offset", 0))))
        return maybeDeferred(self.workers[worker][op], payload)

    def ask_others(self, op: str, payload: dict[str, Any]) -> Deferred[list[dict[str, Any]]]:
        others = [w for w in self.workers if w != self.index]
        asked = [self.ask(w, op, payload) for w in others]
        return DeferredList(asked, consumeErrors=True).addCallback(
            lambda results: [value for ok, value in results if ok]
        )


def two_workers(**hls: object) -> tuple[Clock, list[APISite], list[RTMPServerFactory], DictPeers]:
    clock = Clock()
    clock.advance(START)
    workers: dict[int, dict[str, Handler]] = {}
    peers = [DictPeers(0, workers), DictPeers(1, workers)]
    made = [make(clock, peer, **hls) for peer in peers]
    return clock, [m[0] for m in made], [m[1] for m in made], peers[1]


def test_a_worker_without_the_stream_answers_with_the_muxing_workers_bytes() -> None:
    """Published on worker 0: worker 1's playlist and segments are worker 0's, byte for
    byte, with X-FMS-HLS-Muxer 0; a stream nobody has is 404 on worker 1 too."""
    _clock, sites, servers, _ = two_workers()
    publish(servers[0], 4.5)
    here = get(sites[0], "/live/cam/index.m3u8")
    there = get(sites[1], "/live/cam/index.m3u8")
    assert there[0] == 200 and there[2] == here[2]
    lower = {name.lower(): value for name, value in there[1].items()}
    assert lower["x-fms-hls-muxer"] == "0" and lower["x-fms-worker"] == "1"
    for name in [*uris(here[2]), "init.mp4"]:
        mine, theirs = get(sites[0], f"/live/cam/{name}"), get(sites[1], f"/live/cam/{name}")
        assert theirs[0] == 200 and theirs[2] == mine[2] and len(mine[2]) > 0
        assert theirs[1]["Content-Type"] == mine[1]["Content-Type"]
        assert theirs[1]["Cache-Control"] == mine[1]["Cache-Control"]
    assert get(sites[1], "/live/nobody/index.m3u8")[0] == 404
    assert get(sites[1], "/live/cam/seg1.m4s")[0] == 404


def test_a_segment_bigger_than_a_control_message_comes_in_chunks() -> None:
    """A segment of more than CHUNK bytes reaches worker 1's viewer whole, asked for in
    CHUNK-sized pieces by offset."""
    _clock, sites, servers, peers = two_workers()
    publish(servers[0], 4.5, size=30_000)  # 25 x 30 kB per second: 1.5 MB segments
    first = uris(get(sites[0], "/live/cam/index.m3u8")[2])[0]
    mine = get(sites[0], f"/live/cam/{first}")[2]
    assert len(mine) > 2 * hlsforward.CHUNK
    peers.asked.clear()
    status, headers, theirs = get(sites[1], f"/live/cam/{first}")
    assert status == 200 and theirs == mine and int(headers["Content-Length"]) == len(mine)
    chunks = -(-len(mine) // hlsforward.CHUNK)
    assert peers.asked == [(0, k * hlsforward.CHUNK) for k in range(chunks)]


def test_a_forwarded_playlist_waits_for_the_first_segment() -> None:
    """Published on worker 0 without a segment yet: worker 1's playlist request is answered
    once worker 0 closes its first segment, not with a 404."""
    clock, sites, servers, _ = two_workers()
    stream = servers[0].registry.claim("live", "cam", object())
    assert stream is not None
    address = IPv4Address("TCP", "192.0.2.7", 5000)
    channel = sites[1].buildProtocol(address)
    transport = StringTransport(peerAddress=address)
    channel.makeConnection(transport)
    channel.dataReceived(b"GET /live/cam/index.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n")
    clock.advance(1.0)
    assert transport.value() == b""
    feed(stream, 2.5)
    clock.advance(hlsforward.PENDING_WAIT)
    status, _, body = parse(transport)
    assert status == 200 and uris(body)


def test_a_forwarded_segment_is_fetched_once_then_served_from_the_cache() -> None:
    """Two requests for the same segment arriving together on worker 1 cause one request to
    worker 0; a third one later none; a playlist is asked for every time."""
    _clock, sites, servers, peers = two_workers()
    publish(servers[0], 4.5)
    first = uris(get(sites[0], "/live/cam/index.m3u8")[2])[0]
    peers.asked.clear()
    held: list[Deferred[dict[str, Any]]] = []
    real_ask = peers.ask

    def slow_ask(worker: int, op: str, payload: dict[str, Any]) -> Deferred[dict[str, Any]]:
        answer = real_ask(worker, op, payload)
        later: Deferred[dict[str, Any]] = Deferred()
        held.append(later)
        return answer.addCallback(lambda reply: later.addCallback(lambda _: reply))

    peers.ask = slow_ask  # type: ignore[method-assign]
    transports = []
    for _ in range(2):
        address = IPv4Address("TCP", "192.0.2.7", 5000)
        channel = sites[1].buildProtocol(address)
        transport = StringTransport(peerAddress=address)
        channel.makeConnection(transport)
        channel.dataReceived(f"GET /live/cam/{first} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        transports.append(transport)
    assert len(peers.asked) == 1 and all(t.value() == b"" for t in transports)
    held[0].callback(None)
    mine = get(sites[0], f"/live/cam/{first}")[2]
    assert [parse(t)[2] for t in transports] == [mine, mine]
    peers.ask = real_ask  # type: ignore[method-assign]
    assert get(sites[1], f"/live/cam/{first}")[2] == mine
    assert len(peers.asked) == 1
    get(sites[1], "/live/cam/index.m3u8")
    get(sites[1], "/live/cam/index.m3u8")
    assert len(peers.asked) == 3


class _RelayLink:
    """What a relay link of fms.cluster.link shows: it claims no name, and where from."""

    claims_names = False

    def __init__(self, worker: int) -> None:
        self.relayed_from = worker


class _RelayedView:
    """The registry's publisher of a relayed stream: the link's client view."""

    def __init__(self, worker: int) -> None:
        self._link = _RelayLink(worker)


def test_a_relayed_stream_is_not_muxed_here_and_its_requests_go_to_its_origin() -> None:
    """Worker 1 holds a relayed copy of live/cam (publisher: a relay link from worker 0): it
    makes no HLS of its own, and its requests go to worker 0 alone (not to worker 2 too)."""
    _clock, sites, servers, peers = two_workers()
    peers.workers[2] = {}  # a third worker, which knows nothing of live/cam
    publish(servers[0], 4.5)
    relayed = servers[1].registry.claim("live", "cam", _RelayedView(0))
    assert relayed is not None
    for i in range(100):
        relayed.publish_message(Media(MessageType.VIDEO, i * 40, 1, frame(i % 25 == 0)))
    assert ("live", "cam") not in sites[1].resource.hls.streams.streams
    peers.asked.clear()
    status, _, body = get(sites[1], "/live/cam/index.m3u8")
    assert status == 200 and body == get(sites[0], "/live/cam/index.m3u8")[2]
    assert peers.asked == [(0, 0)]
