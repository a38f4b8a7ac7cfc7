"""HTTP-FLV and WebSocket-FLV viewers in the API's clients, in memory (an RTMP publisher and
player scripted on string transports, HTTP viewers on the HTTP listener's channel, a fake
clock): ``GET /api/v1/clients`` lists them beside the RTMP clients with their protocol,
address, app, stream and the bytes they were handed; ``DELETE /api/v1/clients/{id}`` closes
them."""

from __future__ import annotations

from twisted.internet.address import IPv4Address

from fms.config import HTTPConfig
from fms.http.api import API
from fms.http.web import APISite, LimitedHTTPChannel
from fms.live.stream import LiveStream
from fms.rtmp.constants import MessageType
from fms.rtmp.messages import Media
from fms.server.factory import RTMPServerFactory
from tests.support.live_sink import AVC_HEADER, inter, key
from tests.support.server_peer import Peer, clock_of, factory_for
from tests.test_http_api import TOKEN, answer, bearer
from tests.test_http_flv import dechunk, response
from tests.test_http_wsflv import Pipe, Transport


def setup() -> tuple[RTMPServerFactory, API, APISite]:
    factory = factory_for()
    config = HTTPConfig(enabled=True, token=TOKEN)
    api = API(factory, config)
    return factory, api, APISite(api, config, clock_of(factory))


def http_viewer(site: APISite, port: int, path: bytes = b"/live/cam.flv") -> Transport:
    """An HTTP-FLV viewer from 192.0.2.9:``port`` that sent its request."""
    address = IPv4Address("TCP", "192.0.2.9", port)
    channel = site.buildProtocol(address)
    assert isinstance(channel, LimitedHTTPChannel)
    transport = Transport(address)
    transport.protocol = channel
    channel.makeConnection(transport)
    channel.dataReceived(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8.0\r\n\r\n")
    return transport


def published(factory: RTMPServerFactory) -> tuple[Peer, LiveStream]:
    publisher = Peer(factory, 1001).connect(create_stream=True).publish("cam")
    stream = factory.registry.get("live", "cam")
    assert stream is not None
    for message in (Media(MessageType.VIDEO, 0, 1, AVC_HEADER), key(0), inter(40), inter(80)):
        stream.publish_message(message)
    return publisher, stream


def test_http_and_websocket_viewers_are_listed_with_protocol_address_stream_and_bytes() -> None:
    factory, api, site = setup()
    publisher, _stream = published(factory)
    http = http_viewer(site, 5001)
    ws = Pipe(site)
    factory.registry.flush(clock_of(factory).seconds())
    ws.pump()
    response_, body = answer(api, "GET", b"/api/v1/clients")
    assert response_.status == 200 and body["total"] == 3
    by_protocol = {doc["protocol"]: doc for doc in body["clients"]}
    assert set(by_protocol) == {"rtmp", "http-flv", "websocket-flv"}
    assert by_protocol["rtmp"]["id"] == f"0-{publisher.proto.id}"
    doc = by_protocol["http-flv"]
    assert (doc["address"], doc["app"], doc["playing"], doc["state"], doc["agent"]) == (
        "192.0.2.9:5001", "live", "cam", "playing", "curl/8.0",
    )  # fmt: skip
    flv_body = dechunk(response(http)[2])[0]
    assert doc["bytes_out"] == len(flv_body) - 13 > 0  # all but the header the sink wrote
    doc = by_protocol["websocket-flv"]
    assert (doc["address"], doc["playing"]) == ("192.0.2.7:5000", "cam")
    assert doc["bytes_out"] == len(ws.body()) - 13 > 0
    ids = {doc["id"] for doc in body["clients"]}
    assert len(ids) == 3  # one numbering for RTMP and HTTP clients
    _, one = answer(api, "GET", f"/api/v1/clients/{by_protocol['http-flv']['id']}".encode())
    assert one["protocol"] == "http-flv" and one["address"] == "192.0.2.9:5001"


def test_viewers_are_filtered_by_app_and_stream_and_counted_in_the_total() -> None:
    factory, api, site = setup()
    published(factory)
    http_viewer(site, 5001)
    http_viewer(site, 5002, b"/live/other.flv")
    _, body = answer(api, "GET", b"/api/v1/clients", query={b"stream": [b"other"]})
    assert [doc["address"] for doc in body["clients"]] == ["192.0.2.9:5002"]
    assert body["total"] == 1
    _, body = answer(api, "GET", b"/api/v1/clients", query={b"app": [b"nope"]})
    assert body == {**body, "clients": [], "total": 0}
    _, body = answer(api, "GET", b"/api/v1/clients", query={b"limit": [b"2"]})
    assert body["total"] == 3 and len(body["clients"]) == 2


def test_delete_closes_an_http_flv_viewer_which_leaves_its_stream_and_the_list() -> None:
    factory, api, site = setup()
    _, stream = published(factory)
    transport = http_viewer(site, 5001)
    _, body = answer(api, "GET", b"/api/v1/clients", query={b"stream": [b"cam"]})
    ident = next(doc["id"] for doc in body["clients"] if doc["protocol"] == "http-flv")
    response_, body = answer(api, "DELETE", f"/api/v1/clients/{ident}".encode(), bearer())
    assert response_.status == 200 and body == {"disconnected": ident}
    assert transport.disconnected and not stream.players
    _, body = answer(api, "GET", b"/api/v1/clients")
    assert [doc["protocol"] for doc in body["clients"]] == ["rtmp"]
    response_, _ = answer(api, "DELETE", f"/api/v1/clients/{ident}".encode(), bearer())
    assert response_.status == 404


def test_delete_closes_a_websocket_viewer() -> None:
    factory, api, site = setup()
    _, stream = published(factory)
    ws = Pipe(site)
    factory.registry.flush(clock_of(factory).seconds())
    ws.pump()
    _, body = answer(api, "GET", b"/api/v1/clients")
    ident = next(doc["id"] for doc in body["clients"] if doc["protocol"] == "websocket-flv")
    response_, _ = answer(api, "DELETE", f"/api/v1/clients/{ident}".encode(), bearer())
    assert response_.status == 200
    ws.pump()
    assert ws.server_transport.lost and ws.client.closed is not None
    assert not stream.players and not site.open


def test_the_server_document_counts_http_viewers_apart_from_rtmp_connections() -> None:
    """An RTMP publisher, an RTMP player, an idle RTMP client, an HTTP-FLV viewer and a
    WebSocket-FLV viewer: ``http_viewers`` is 2, and the RTMP states add up to the RTMP
    total (the HTTP viewers' plays are not RTMP plays, and do not hide the idle client)."""
    factory, api, site = setup()
    published(factory)
    Peer(factory, 1002).connect(create_stream=True).play("cam")
    Peer(factory, 1003).connect(create_stream=True)
    http_viewer(site, 5001)
    ws = Pipe(site)
    factory.registry.flush(clock_of(factory).seconds())
    ws.pump()
    _, body = answer(api, "GET", b"/api/v1/server")
    assert body["connections"] == {
        "total": 3, "connecting": 0, "idle": 1, "publishing": 1, "playing": 1,
        "http_viewers": 2,
    }  # fmt: skip
    _, clients = answer(api, "GET", b"/api/v1/clients")
    assert clients["total"] == 5  # the same five clients, listed
