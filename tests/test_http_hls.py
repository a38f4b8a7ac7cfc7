"""HLS requests on the HTTP listener (fms.http.hls), with Twisted's in-memory transport and a
fake clock: what a viewer gets for the playlist, init and segments (status, types, caching),
the plugins' decision once per viewer session, the wait for a first segment, the end of the
playlist when the publisher leaves, and what is forgotten when."""

from __future__ import annotations

import json

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from fms.apps.api import Plugin, Reject
from fms.apps.interfaces import IClientView
from fms.config import Config, HLSConfig, HTTPConfig
from fms.http.api import API
from fms.http.hls import SESSION_IDLE, parse_path
from fms.http.web import APISite, LimitedHTTPChannel
from fms.rtmp.constants import MessageType
from fms.rtmp.messages import Media
from fms.server.factory import RTMPServerFactory
from tests.support.live_sink import AAC_HEADER, AVC_HEADER, audio, inter, key

START = 1_800_000_000.0


def setup(cors: tuple[str, ...] = (), **hls: object) -> tuple[APISite, RTMPServerFactory, Clock]:
    clock = Clock()
    clock.advance(START)
    http = HTTPConfig(enabled=True, cors_origins=cors)
    config = Config(http=http, hls=HLSConfig(**hls))  # type: ignore[arg-type]
    server = RTMPServerFactory(config, clock=clock)
    return APISite(API(server, http), http, clock), server, clock


def get(
    site: APISite, path: str, method: str = "GET", extra: str = ""
) -> tuple[int, dict[str, str], bytes]:
    address = IPv4Address("TCP", "192.0.2.7", 5000)
    channel = site.buildProtocol(address)
    assert isinstance(channel, LimitedHTTPChannel)
    transport = StringTransport(peerAddress=address)
    channel.makeConnection(transport)
    channel.dataReceived(f"{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
    return parse(transport)


def parse(transport: StringTransport) -> tuple[int, dict[str, str], bytes]:
    raw = transport.value()
    if not raw:
        return 0, {}, b""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ", 2)[1]), headers, body


def publish(server: RTMPServerFactory, seconds: float, start: int = 0) -> object:
    """Claim live/cam and publish ``seconds`` of 25 fps video (a keyframe a second) + AAC."""
    publisher = object()
    stream = server.registry.claim("live", "cam", publisher)
    assert stream is not None
    feed(server, seconds, start)
    return publisher


def feed(server: RTMPServerFactory, seconds: float, start: int = 0) -> None:
    stream = server.registry.get("live", "cam")
    assert stream is not None
    stream.publish_message(Media(MessageType.VIDEO, start, 1, AVC_HEADER))
    stream.publish_message(Media(MessageType.AUDIO, start, 1, AAC_HEADER))
    for i in range(int(seconds * 25)):
        ts = start + i * 40
        stream.publish_message(audio(ts))
        stream.publish_message(key(ts) if i % 25 == 0 else inter(ts))


def uris(playlist: bytes) -> list[str]:
    return [line for line in playlist.decode().splitlines() if line and line[0] != "#"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (b"/live/cam/index.m3u8", ("live", "cam", "index.m3u8")),
        (b"/live/room1/cam/seg12.m4s", ("live/room1", "cam", "seg12.m4s")),
        (b"/live/cam/init3.mp4", ("live", "cam", "init3.mp4")),
        (b"/live/cam/init.mp4", ("live", "cam", "init.mp4")),
        (b"/cam/index.m3u8", None),
        (b"/live/cam/other.txt", None),
        (b"/live/cam/seg.m4s", None),
        (b"/api/v1/streams", None),
    ],
)
def test_hls_paths_name_app_stream_and_file(
    path: bytes, expected: tuple[str, str, str] | None
) -> None:
    assert parse_path(path) == expected


def test_playlist_of_a_published_stream_lists_its_segments_uncached() -> None:
    site, server, _ = setup()
    publish(server, 7)
    status, headers, body = get(site, "/live/cam/index.m3u8")
    assert status == 200
    assert headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert headers["Cache-Control"] == "no-cache"
    first = int(START)
    assert uris(body) == [f"seg{n}.m4s" for n in range(first, first + 3)]
    assert f'#EXT-X-MAP:URI="init{first}.mp4"' in body.decode()


def test_segments_and_init_segments_are_served_with_long_caching() -> None:
    site, server, _ = setup()
    publish(server, 5)
    first = int(START)
    entry = site.resource.hls.streams.streams[("live", "cam")]  # type: ignore[attr-defined]
    status, headers, body = get(site, f"/live/cam/seg{first + 1}.m4s")
    assert (status, headers["Content-Type"]) == (200, "video/iso.segment")
    assert headers["Cache-Control"] == "public, max-age=86400, immutable"
    assert body == entry.segments.segment(first + 1).data
    status, headers, body = get(site, f"/live/cam/init{first}.mp4")
    assert (status, headers["Content-Type"], body[4:8]) == (200, "video/mp4", b"ftyp")
    assert headers["Cache-Control"] == "public, max-age=86400, immutable"
    status, headers, current = get(site, "/live/cam/init.mp4")
    assert (status, headers["Cache-Control"], current) == (200, "no-cache", body)
    status, headers, empty = get(site, f"/live/cam/seg{first + 1}.m4s", "HEAD")
    assert (
        status == 200
        and empty == b""
        and headers["Content-Length"] == str(len(entry.segments.segment(first + 1).data))
    )


def test_unknown_streams_and_segments_out_of_the_window_are_404() -> None:
    site, server, _ = setup(window=2)
    assert get(site, "/live/nobody/index.m3u8")[0] == 404
    publish(server, 9)  # segments closed at 2, 4, 6 and 8 s: the last two are kept
    first = int(START)
    assert get(site, f"/live/cam/seg{first + 1}.m4s")[0] == 404  # left the window
    assert get(site, f"/live/cam/seg{first + 3}.m4s")[0] == 200
    assert get(site, f"/live/cam/seg{first + 4}.m4s")[0] == 404  # not made yet
    assert get(site, "/live/other/seg1.m4s")[0] == 404


class Recorder(Plugin):
    def __init__(self, refuse: str | None = None) -> None:
        self.refuse = refuse
        self.seen: list[tuple[str, str, dict[str, str]]] = []

    def connect(self, client: IClientView) -> None:
        self.seen.append(("connect", client.protocol, dict(client.query)))

    def play(self, client: IClientView, name: str, query: dict[str, str]) -> Reject | None:
        self.seen.append(("play", name, dict(query)))
        return Reject(self.refuse) if self.refuse else None


def with_plugin(server: RTMPServerFactory, plugin: Plugin) -> None:
    application = server.application_for("live")
    assert application is not None
    application.plugins.append(plugin)


def test_play_is_asked_with_the_query_which_every_uri_then_carries() -> None:
    site, server, _ = setup()
    plugin = Recorder()
    with_plugin(server, plugin)
    publish(server, 3)
    status, _, body = get(site, "/live/cam/index.m3u8?token=abc")
    assert plugin.seen == [
        ("connect", "hls", {"token": "abc"}),
        ("play", "cam", {"token": "abc"}),
    ]
    assert status == 200
    assert all(uri.endswith(".m4s?token=abc") for uri in uris(body))
    assert f'URI="init{int(START)}.mp4?token=abc"' in body.decode()


def test_a_plugin_refusing_play_is_a_403_with_its_reason() -> None:
    site, server, _ = setup()
    with_plugin(server, Recorder(refuse="members only"))
    publish(server, 3)
    status, _, body = get(site, "/live/cam/index.m3u8")
    assert (status, json.loads(body)) == (403, {"error": "members only"})


def test_a_viewer_session_is_decided_once_until_it_stops_asking() -> None:
    """Playlist requests from one address with one query while they keep coming are one
    viewer: plugins are asked once; after SESSION_IDLE seconds of silence, again."""
    site, server, clock = setup()
    plugin = Recorder()
    with_plugin(server, plugin)
    publish(server, 3)
    for _ in range(5):
        assert get(site, "/live/cam/index.m3u8?t=1")[0] == 200
        clock.advance(SESSION_IDLE - 1)
    assert [hook for hook, _, _ in plugin.seen] == ["connect", "play"]
    assert len(server.application_for("live").clients) == 1  # type: ignore[union-attr]
    clock.advance(SESSION_IDLE)
    assert len(server.application_for("live").clients) == 0  # type: ignore[union-attr]
    get(site, "/live/cam/index.m3u8?t=1")
    assert [hook for hook, _, _ in plugin.seen] == ["connect", "play"] * 2


def test_a_playlist_request_before_the_first_segment_waits_for_it() -> None:
    site, server, clock = setup(wait=10.0)
    publish(server, 1)  # one second: no segment closed yet
    address = IPv4Address("TCP", "192.0.2.7", 5000)
    channel = site.buildProtocol(address)
    assert isinstance(channel, LimitedHTTPChannel)
    transport = StringTransport(peerAddress=address)
    channel.makeConnection(transport)
    channel.dataReceived(b"GET /live/cam/index.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert transport.value() == b""
    clock.advance(5)
    assert transport.value() == b""
    feed(server, 3, start=1000)
    status, _, body = parse(transport)
    assert status == 200 and len(uris(body)) == 1


def test_a_playlist_request_waits_no_longer_than_wait() -> None:
    site, server, clock = setup(wait=10.0)
    publish(server, 1)
    address = IPv4Address("TCP", "192.0.2.7", 5000)
    channel = site.buildProtocol(address)
    assert isinstance(channel, LimitedHTTPChannel)
    transport = StringTransport(peerAddress=address)
    channel.makeConnection(transport)
    channel.dataReceived(b"GET /live/cam/index.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n")
    clock.advance(9.9)
    assert transport.value() == b""
    clock.advance(0.2)
    assert parse(transport)[0] == 404


def test_the_playlist_ends_when_the_publisher_leaves_and_is_forgotten_after_linger() -> None:
    site, server, clock = setup(linger=60.0)
    publisher = publish(server, 5)
    stream = server.registry.get("live", "cam")
    assert stream is not None
    server.registry.release(stream, publisher)
    status, _, body = get(site, "/live/cam/index.m3u8")
    assert status == 200 and body.decode().endswith("#EXT-X-ENDLIST\n")
    assert len(uris(body)) == 3  # the open segment was closed too
    clock.advance(59)
    assert get(site, "/live/cam/index.m3u8")[0] == 200
    clock.advance(2)
    assert get(site, "/live/cam/index.m3u8")[0] == 404


def test_a_publisher_back_within_linger_continues_the_playlist_after_a_discontinuity() -> None:
    site, server, clock = setup(linger=60.0)
    publisher = publish(server, 5)
    stream = server.registry.get("live", "cam")
    assert stream is not None
    server.registry.release(stream, publisher)
    clock.advance(30)
    publish(server, 3)
    clock.advance(60)  # the first publish's linger would have ended here
    status, _, body = get(site, "/live/cam/index.m3u8")
    text = body.decode()
    assert status == 200 and "#EXT-X-ENDLIST" not in text
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1 and len(uris(body)) == 3 + 1


def test_no_muxing_where_hls_is_off() -> None:
    site, server, _ = setup(apps=("other",))
    publish(server, 5)
    assert get(site, "/live/cam/index.m3u8")[0] == 404
    stream = server.registry.get("live", "cam")
    assert stream is not None and stream.taps == []


def test_playlists_and_segments_carry_cors_headers_for_allowed_origins() -> None:
    """As every route of the listener: a page of an allowed origin may read the playlist and
    the segments (hls.js fetches them); another origin gets no CORS header."""
    site, server, _ = setup(cors=("https://player.example",))
    publish(server, 3)
    origin = "Origin: https://player.example\r\n"
    status, headers, _ = get(site, "/live/cam/index.m3u8", extra=origin)
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "https://player.example"
    status, headers, _ = get(site, f"/live/cam/seg{int(START)}.m4s", extra=origin)
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "https://player.example"
    other = "Origin: https://elsewhere.example\r\n"
    status, headers, _ = get(site, "/live/cam/index.m3u8", extra=other)
    assert status == 200 and "Access-Control-Allow-Origin" not in headers


def test_a_plugin_closing_the_viewer_ends_its_session() -> None:
    """A plugin that closes an HLS viewer's client (e.g. a kick) ends its session: its next
    playlist request is decided again."""
    site, server, _ = setup()
    plugin = Recorder()
    with_plugin(server, plugin)
    publish(server, 3)
    assert get(site, "/live/cam/index.m3u8")[0] == 200
    application = server.application_for("live")
    assert application is not None
    (view,) = application.clients
    view.disconnect("kicked")
    assert not application.clients
    plugin.refuse = "kicked out"
    status, _, body = get(site, "/live/cam/index.m3u8")
    assert (status, json.loads(body)) == (403, {"error": "kicked out"})
