"""HTTP-FLV requests on the HTTP listener, with Twisted's in-memory transport and a fake clock
(no sockets, no wall clock): the status, headers and FLV body a viewer gets, the wait for a
publisher and its deadline, the end of the response when the publisher leaves, and a viewer
that goes away leaving the stream."""

from __future__ import annotations

import json

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from fms.apps.api import Plugin, Reject
from fms.apps.interfaces import IClientView
from fms.config import Config, HTTPConfig
from fms.http.api import API
from fms.http.flv import parse_path
from fms.http.web import APISite, LimitedHTTPChannel
from fms.live import flv
from fms.rtmp.constants import MessageType
from fms.rtmp.messages import Data, Media
from fms.server.factory import RTMPServerFactory
from tests.support.live_sink import AVC_HEADER, inter, key

GET = b"GET /live/cam.flv HTTP/1.1\r\nHost: x\r\n\r\n"


def setup(**options: object) -> tuple[APISite, RTMPServerFactory, Clock]:
    clock = Clock()
    config = HTTPConfig(enabled=True, **options)  # type: ignore[arg-type]
    server = RTMPServerFactory(Config(), clock=clock)
    return APISite(API(server, config), config, clock), server, clock


def connect(site: APISite) -> tuple[LimitedHTTPChannel, StringTransport]:
    address = IPv4Address("TCP", "192.0.2.7", 5000)
    channel = site.buildProtocol(address)
    assert isinstance(channel, LimitedHTTPChannel)
    transport = StringTransport(peerAddress=address)
    channel.makeConnection(transport)
    return channel, transport


def dechunk(body: bytes) -> tuple[bytes, bool]:
    """A chunked body's bytes, and whether its terminating chunk arrived."""
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return out, True
        out += rest[:size]
        body = rest[size + 2 :]
    return out, False


def response(transport: StringTransport) -> tuple[int, bytes, bytes]:
    head, _, body = transport.value().partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, body


def publish(server: RTMPServerFactory) -> object:
    publisher = object()
    stream = server.registry.claim("live", "cam", publisher)
    assert stream is not None
    stream.set_metadata(("onMetaData", {"videocodecid": 7}))
    stream.publish_message(Media(MessageType.VIDEO, 0, 1, AVC_HEADER))
    stream.publish_message(key(0))
    stream.publish_message(inter(40))
    return publisher


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (b"/live/cam.flv", ("live", "cam")),
        (b"/live/room1/cam.flv", ("live/room1", "cam")),
        (b"/live/caf%C3%A9.flv", ("live", "caf\u00e9")),
        (b"/cam.flv", "expected /APP/STREAM.flv"),
        (b"/live/.flv", "expected /APP/STREAM.flv"),
        (b"/live/%FF.flv", "the path is not UTF-8"),
    ],
)
def test_a_path_names_the_app_and_the_stream_or_says_what_is_wrong(
    path: bytes, expected: tuple[str, str] | str
) -> None:
    assert parse_path(path) == expected


def test_a_viewer_of_a_published_stream_gets_an_flv_file_of_it_chunked() -> None:
    site, server, _ = setup()
    publish(server)
    channel, transport = connect(site)
    channel.dataReceived(GET)
    server.registry.flush(0.0)
    status, head, body = response(transport)
    assert status == 200
    assert b"Content-Type: video/x-flv" in head and b"Transfer-Encoding: chunked" in head
    data, ended = dechunk(body)
    flags, tags = flv.read_file(data)
    assert flags == flv.FLAG_VIDEO  # the metadata and the messages say: video only
    assert [t.tag_type for t in tags] == [18, 9, 9, 9]
    assert tags[1].payload == AVC_HEADER and not ended


def test_the_response_ends_with_the_terminating_chunk_when_the_publisher_leaves() -> None:
    site, server, _ = setup()
    publisher = publish(server)
    channel, transport = connect(site)
    channel.dataReceived(GET)
    server.registry.flush(0.0)
    stream = server.registry.get("live", "cam")
    assert stream is not None and len(stream.players) == 1
    assert server.registry.release(stream, publisher)
    assert dechunk(response(transport)[2])[1]
    assert not stream.players and server.registry.get("live", "cam") is None


def test_a_viewer_that_goes_away_leaves_the_stream() -> None:
    site, server, _ = setup()
    publish(server)
    channel, _transport = connect(site)
    channel.dataReceived(GET)
    stream = server.registry.get("live", "cam")
    assert stream is not None and len(stream.players) == 1
    channel.connectionLost(Failure(ConnectionLost()))
    assert not stream.players


def test_a_viewer_waits_flv_wait_seconds_for_the_publisher_then_gets_a_404() -> None:
    site, server, clock = setup(flv_wait=5.0)
    channel, transport = connect(site)
    channel.dataReceived(GET)
    clock.advance(4.9)
    assert transport.value() == b""  # still waiting
    clock.advance(0.2)
    status, _, body = response(transport)
    assert status == 404 and b"within 5s" in body
    assert server.registry.get("live", "cam") is None  # the waiting stream is forgotten


def test_a_viewer_waiting_before_the_publish_gets_the_stream_from_its_start() -> None:
    site, server, clock = setup(flv_wait=5.0)
    channel, transport = connect(site)
    channel.dataReceived(GET)
    clock.advance(4.0)
    publish(server)
    server.registry.flush(4.0)
    clock.advance(10.0)  # the wait's deadline was cancelled by the publish
    status, _, body = response(transport)
    assert status == 200
    _, tags = flv.read_file(dechunk(body)[0])
    assert [t.tag_type for t in tags] == [18, 9, 9, 9]  # metadata, header, key, inter


def test_with_flv_wait_0_a_stream_nobody_publishes_is_404_at_once() -> None:
    site, _server, _ = setup(flv_wait=0.0)
    channel, transport = connect(site)
    channel.dataReceived(GET)
    status, _, body = response(transport)
    assert status == 404 and json.loads(body) == {"error": "nobody publishes live/cam"}


def test_nothing_is_written_before_the_stream_says_which_tracks_it_carries() -> None:
    """No metadata and no media yet: the FLV header's flags cannot be decided, so the viewer
    is handed nothing; the first video message decides them."""
    site, server, _ = setup()
    stream = server.registry.claim("live", "cam", object())
    assert stream is not None
    channel, transport = connect(site)
    channel.dataReceived(GET)
    stream.publish_message(Data(("onTextData", {"text": "hello"}), 1, 0))  # says no track
    server.registry.flush(0.0)
    assert transport.value() == b""
    stream.publish_message(Media(MessageType.AUDIO, 0, 1, b"\xaf\x00\x12\x10"))
    server.registry.flush(0.0)
    flags, tags = flv.read_file(dechunk(response(transport)[2])[0])
    assert flags == flv.FLAG_AUDIO
    assert [t.tag_type for t in tags] == [18, 8]


def test_a_publish_that_ends_before_sending_anything_answers_the_waiting_viewer_404() -> None:
    site, server, _ = setup(flv_wait=5.0)
    channel, transport = connect(site)
    channel.dataReceived(GET)
    publisher = object()
    stream = server.registry.claim("live", "cam", publisher)
    assert stream is not None
    server.registry.release(stream, publisher)
    status, _, body = response(transport)
    assert status == 404 and b"ended before it sent anything" in body
    assert server.registry.get("live", "cam") is None


class Recorder(Plugin):
    """Sees every hook an HTTP viewer is asked; refuses play when ``refuse`` is set."""

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


def test_plugins_are_asked_connect_then_play_for_an_http_flv_viewer_with_the_url_query() -> None:
    site, server, _ = setup()
    plugin = Recorder()
    with_plugin(server, plugin)
    publish(server)
    channel, transport = connect(site)
    channel.dataReceived(b"GET /live/cam.flv?key=s3cret&x= HTTP/1.1\r\nHost: x\r\n\r\n")
    query = {"key": "s3cret", "x": ""}
    assert plugin.seen == [("connect", "http-flv", query), ("play", "http-flv", query)]
    server.registry.flush(0.0)
    assert response(transport)[0] == 200


def test_a_plugin_refusing_play_is_a_403_with_its_reason_and_no_player() -> None:
    site, server, _ = setup()
    with_plugin(server, Recorder(refuse="members only"))
    publish(server)
    channel, transport = connect(site)
    channel.dataReceived(GET)
    status, _, body = response(transport)
    assert (status, json.loads(body)) == (403, {"error": "members only"})
    stream = server.registry.get("live", "cam")
    assert stream is not None and not stream.players


def test_a_name_the_names_rules_refuse_is_a_400() -> None:
    site, server, _ = setup()
    plugin = Recorder()
    with_plugin(server, plugin)
    channel, transport = connect(site)
    channel.dataReceived(b"GET /live/bad%01name.flv HTTP/1.1\r\nHost: x\r\n\r\n")
    assert response(transport)[0] == 400
    assert [hook for hook, _, _ in plugin.seen] == ["connect"]  # play never asked


def test_head_answers_the_headers_of_a_published_stream_without_a_body_or_a_player() -> None:
    site, server, _ = setup()
    publish(server)
    channel, transport = connect(site)
    channel.dataReceived(b"HEAD /live/cam.flv HTTP/1.1\r\nHost: x\r\n\r\n")
    status, head, body = response(transport)
    assert status == 200 and b"Content-Type: video/x-flv" in head and body == b""
    stream = server.registry.get("live", "cam")
    assert stream is not None and not stream.players
