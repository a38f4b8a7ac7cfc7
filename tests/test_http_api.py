"""The HTTP API's routes, token checks and error documents, against a server factory driven in
memory (scripted RTMP peers on StringTransports, a fake clock): no sockets, no wall clock."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fms.config import HTTPConfig
from fms.http.api import API, Response
from fms.server.factory import RTMPServerFactory
from tests.support.server_peer import Peer, clock_of, factory_for

TOKEN = "s3cret-token"


def answer(
    api: API,
    method: str,
    path: bytes,
    headers: dict[str, str] | None = None,
    query: dict[bytes, list[bytes]] | None = None,
) -> tuple[Response, Any]:
    """The API's response (it answers at once: one process, no peers) and its JSON body."""
    got: list[Response] = []
    api.handle(method, path, query or {}, headers or {}).addCallback(got.append)
    assert len(got) == 1
    response = got[0]
    body = (
        json.loads(response.body) if response.content_type.startswith("application/json") else None
    )
    return response, body


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def factory() -> RTMPServerFactory:
    return factory_for()


@pytest.fixture
def api(factory: RTMPServerFactory) -> API:
    return API(factory, HTTPConfig(enabled=True, token=TOKEN))


def test_streams_lists_a_publish_with_its_publisher_and_exact_player_count(
    factory: RTMPServerFactory, api: API
) -> None:
    publisher = Peer(factory, 1001).connect(create_stream=True, flashVer="FMLE/3.0").publish("cam")
    for port in (2001, 2002, 2003):
        Peer(factory, port).connect(create_stream=True).play("cam")
    Peer(factory, 2004).connect(create_stream=True).play("other")
    response, body = answer(api, "GET", b"/api/v1/streams")
    assert response.status == 200
    by_name = {doc["name"]: doc for doc in body["streams"]}
    cam = by_name["cam"]
    assert (cam["app"], cam["players"], cam["published"]) == ("live", 3, True)
    assert cam["publisher"] == {
        "id": f"0-{publisher.proto.id}",
        "address": f"{publisher.host}:1001",
        "agent": "FMLE/3.0",
    }
    assert by_name["other"]["publisher"] is None and by_name["other"]["players"] == 1
    assert {"uptime", "bytes_in", "bytes_out", "bitrate_kbps", "video", "audio"} <= set(cam)


def test_one_stream_by_app_and_name_and_404_json_for_an_unknown_one(
    factory: RTMPServerFactory, api: API
) -> None:
    Peer(factory, 1001).connect(create_stream=True).publish("cam")
    response, body = answer(api, "GET", b"/api/v1/streams/live/cam")
    assert (response.status, body["name"], body["players"]) == (200, "cam", 0)
    response, body = answer(api, "GET", b"/api/v1/streams/live/nope")
    assert response.status == 404 and body == {"error": "no stream live/nope"}


def test_clients_are_listed_with_what_they_do_and_filtered_by_app_and_stream(
    factory: RTMPServerFactory, api: API
) -> None:
    publisher = Peer(factory, 1001).connect(create_stream=True).publish("cam")
    player = Peer(factory, 1002).connect(create_stream=True, flashVer="LNX 9,0,124,2").play("cam")
    Peer(factory, 1003).connect("other", create_stream=True)
    response, body = answer(api, "GET", b"/api/v1/clients")
    assert response.status == 200 and len(body["clients"]) == 3
    _, body = answer(api, "GET", b"/api/v1/clients", query={b"stream": [b"cam"]})
    ids = {doc["id"]: doc for doc in body["clients"]}
    assert set(ids) == {f"0-{publisher.proto.id}", f"0-{player.proto.id}"}
    doc = ids[f"0-{player.proto.id}"]
    assert (doc["app"], doc["agent"], doc["playing"], doc["publishing"]) == (
        "live", "LNX 9,0,124,2", "cam", None,
    )  # fmt: skip
    assert ids[f"0-{publisher.proto.id}"]["publishing"] == "cam"
    _, body = answer(api, "GET", b"/api/v1/clients", query={b"app": [b"other"]})
    assert [doc["app"] for doc in body["clients"]] == ["other"]


def test_apps_count_published_streams_and_clients(factory: RTMPServerFactory, api: API) -> None:
    Peer(factory, 1001).connect(create_stream=True).publish("cam")
    Peer(factory, 1002).connect(create_stream=True).play("cam")
    Peer(factory, 1003).connect("other", create_stream=True)
    _, body = answer(api, "GET", b"/api/v1/apps")
    assert body["apps"] == [
        {"name": "live", "streams": 1, "clients": 2},
        {"name": "other", "streams": 0, "clients": 1},
    ]


def test_server_counts_connections_by_state(factory: RTMPServerFactory, api: API) -> None:
    Peer(factory, 1001).connect(create_stream=True).publish("cam")
    Peer(factory, 1002).connect(create_stream=True).play("cam")
    Peer(factory, 1003).connect(create_stream=True)
    Peer(factory, 1004)  # has not even sent its handshake
    _, body = answer(api, "GET", b"/api/v1/server")
    assert body["connections"] == {
        "total": 4, "connecting": 1, "idle": 1, "publishing": 1, "playing": 1,
        "http_viewers": 0,
    }  # fmt: skip
    assert body["workers"] == 1 and body["streams"] == 1
    assert body["memory_bytes"] > 0 and body["cpu_seconds"] > 0


def test_delete_client_with_the_token_disconnects_it(factory: RTMPServerFactory, api: API) -> None:
    player = Peer(factory, 1002).connect(create_stream=True).play("cam")
    response, body = answer(
        api, "DELETE", f"/api/v1/clients/0-{player.proto.id}".encode(), bearer()
    )
    assert response.status == 200 and body == {"disconnected": f"0-{player.proto.id}"}
    assert player.closed


def test_delete_stream_tells_players_and_publisher_then_closes_the_publisher(
    factory: RTMPServerFactory, api: API
) -> None:
    publisher = Peer(factory, 1001).connect(create_stream=True).publish("cam")
    player = Peer(factory, 1002).connect(create_stream=True).play("cam")
    response, body = answer(api, "DELETE", b"/api/v1/streams/live/cam", bearer())
    assert response.status == 200 and body["stopped"] == "live/cam"
    publisher.pump()
    player.pump()
    assert "NetStream.Unpublish.Success" in publisher.statuses() and publisher.closed
    assert "NetStream.Play.UnpublishNotify" in player.statuses() and not player.closed
    assert (
        factory.registry.get("live", "cam") is None
        or not factory.registry.get("live", "cam").published
    )


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({}, 401, "actions need an 'Authorization: Bearer TOKEN' header"),
        (
            {"authorization": f"Basic {TOKEN}"},
            401,
            "the Authorization header must be 'Bearer TOKEN'",
        ),
        ({"authorization": "Bearer"}, 401, "the Authorization header must be 'Bearer TOKEN'"),
        (bearer("wrong"), 403, "wrong token"),
        (bearer(TOKEN + "x"), 403, "wrong token"),
    ],
)
def test_an_action_without_the_right_token_is_refused_and_changes_nothing(
    factory: RTMPServerFactory, api: API, headers: dict[str, str], status: int, message: str
) -> None:
    publisher = Peer(factory, 1001).connect(create_stream=True).publish("cam")
    player = Peer(factory, 1002).connect(create_stream=True).play("cam")
    for path in (f"/api/v1/clients/0-{player.proto.id}", "/api/v1/streams/live/cam"):
        response, body = answer(api, "DELETE", path.encode(), headers)
        assert (response.status, body) == (status, {"error": message})
        if status == 401:
            assert ("WWW-Authenticate", 'Bearer realm="fms"') in response.headers
    publisher.pump()
    player.pump()
    assert not player.closed and not publisher.closed
    assert "NetStream.Play.UnpublishNotify" not in player.statuses()
    stream = factory.registry.get("live", "cam")
    assert stream is not None and stream.published and len(stream.players) == 1


def test_actions_are_refused_when_no_token_is_configured(factory: RTMPServerFactory) -> None:
    api = API(factory, HTTPConfig(enabled=True))
    player = Peer(factory, 1002).connect(create_stream=True).play("cam")
    response, body = answer(
        api, "DELETE", f"/api/v1/clients/0-{player.proto.id}".encode(), bearer("")
    )
    assert response.status == 403 and "no [http] token is configured" in body["error"]
    assert not player.closed


def test_reads_need_the_token_with_read_token_but_the_page_does_not(
    factory: RTMPServerFactory,
) -> None:
    api = API(factory, HTTPConfig(enabled=True, token=TOKEN, read_token=True))
    for path in (b"/api/v1/streams", b"/metrics"):
        assert answer(api, "GET", path)[0].status == 401
        assert answer(api, "GET", path, bearer("nope"))[0].status == 403
        assert answer(api, "GET", path, bearer())[0].status == 200
    assert answer(api, "GET", b"/")[0].status in (200, 404)  # 404: no page installed
    assert answer(api, "GET", b"/")[0].status != 401


def test_reads_need_no_token_by_default(api: API) -> None:
    assert answer(api, "GET", b"/api/v1/server")[0].status == 200


MALFORMED_ID = "malformed client id '7' (expected WORKER-NUMBER, e.g. 0-12)"


@pytest.mark.parametrize(
    ("method", "path", "query", "status", "message"),
    [
        ("GET", b"/api/v2/streams", {}, 404, "no such resource: /api/v2/streams"),
        ("GET", b"/api/v1/clients/7", {}, 400, MALFORMED_ID),
        ("GET", b"/api/v1/clients", {b"colour": [b"red"]}, 400,
         "unknown query parameter 'colour' (known: app, limit, stream)"),
        ("GET", b"/api/v1/clients", {b"app": [b"a", b"b"]}, 400,
         "query parameter 'app' given more than once"),
        ("GET", b"/api/v1/streams", {b"app": [b"a"]}, 400, "unknown query parameter 'app'"),
        ("GET", b"/api/v1/streams/live/%ff", {}, 400,
         "the path is not UTF-8 once percent-decoded"),
        ("GET", b"/api/v1/streams/live/a%00b", {}, 400, "the path holds control characters"),
        ("POST", b"/api/v1/streams", {}, 405, "method POST is not allowed here (allowed: GET)"),
        ("PUT", b"/api/v1/clients/0-1", {}, 405,
         "method PUT is not allowed here (allowed: DELETE, GET)"),
    ],
)  # fmt: skip
def test_malformed_or_unknown_requests_get_a_json_error_with_the_reason(
    api: API, method: str, path: bytes, query: dict[bytes, list[bytes]], status: int, message: str
) -> None:
    response, body = answer(api, method, path, bearer(), query)
    assert (response.status, body) == (status, {"error": message})
    if status == 405:
        assert dict(response.headers)["Allow"] == message.split("allowed: ")[1][:-1]


def test_a_stream_name_with_a_slash_is_one_percent_encoded_segment(
    factory: RTMPServerFactory, api: API
) -> None:
    Peer(factory, 1001).connect(create_stream=True).publish("a/b")
    response, body = answer(api, "GET", b"/api/v1/streams/live/a%2Fb")
    assert response.status == 200 and body["name"] == "a/b"


def test_delete_of_an_unknown_client_or_stream_is_404(api: API) -> None:
    assert answer(api, "DELETE", b"/api/v1/clients/0-999", bearer())[0].status == 404
    assert answer(api, "DELETE", b"/api/v1/streams/live/none", bearer())[0].status == 404


def test_clients_limit_gives_the_oldest_and_the_total_that_matched(
    factory: RTMPServerFactory, api: API
) -> None:
    peers = []
    for port in (3001, 3002, 3003, 3004):
        peers.append(Peer(factory, port).connect(create_stream=True).play("cam"))
        clock_of(factory).advance(1.0)
    _, body = answer(api, "GET", b"/api/v1/clients", query={b"limit": [b"2"]})
    assert body["total"] == 4
    assert [doc["id"] for doc in body["clients"]] == [f"0-{p.proto.id}" for p in peers[:2]]
    assert body["clients"][0]["connected_seconds"] == 4.0


@pytest.mark.parametrize("limit", [b"0", b"-1", b"many", b""])
def test_a_limit_that_is_not_a_positive_number_is_400(api: API, limit: bytes) -> None:
    response, body = answer(api, "GET", b"/api/v1/clients", query={b"limit": [limit]})
    assert response.status == 400 and body["error"].startswith("limit must be a whole number")
