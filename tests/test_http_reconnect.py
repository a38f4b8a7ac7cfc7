"""The HTTP API's reconnect actions (``POST /api/v1/clients/{id}/reconnect``, ``POST
/api/v1/reconnect``) against a server factory driven in memory: who is asked, what the answer
says, and that a request without the right token changes nothing. No sockets, no wall clock."""

from __future__ import annotations

import json
from typing import Any

from fms.config import HTTPConfig
from fms.http.api import API, Response
from fms.rtmp.capabilities import CapsExMask
from tests.support.server_peer import Peer, factory_for
from tests.test_reconnect import REQUEST, requests

TOKEN = "s3cret-token"
RECONNECTING = {"capsEx": float(CapsExMask.RECONNECT)}


def post(api: API, path: str, body: bytes = b"", token: str | None = TOKEN) -> tuple[Response, Any]:
    got: list[Response] = []
    headers = {} if token is None else {"authorization": f"Bearer {token}"}
    api.handle("POST", path.encode(), {}, headers, body).addCallback(got.append)
    assert len(got) == 1
    return got[0], json.loads(got[0].body)


def setup(config: str = "[apps.live]\n") -> tuple[API, Peer, Peer]:
    factory = factory_for(config)
    mover = Peer(factory, 1).connect(create_stream=True, **RECONNECTING).publish()
    legacy = Peer(factory, 2).connect(create_stream=True).play()
    return API(factory, HTTPConfig(enabled=True, token=TOKEN)), mover, legacy


def ident(peer: Peer) -> str:
    return f"0-{peer.proto.id}"


def test_one_client_is_asked_with_the_tc_url_of_the_body() -> None:
    api, mover, _ = setup()
    body = b'{"tcUrl": "rtmp://node2/{app}"}'
    response, doc = post(api, f"/api/v1/clients/{ident(mover)}/reconnect", body)
    assert (response.status, doc) == (200, {"asked": [ident(mover)], "unable": []})
    mover.pump()
    [(_, info)] = requests(mover)
    assert info["tcUrl"] == "rtmp://node2/live" and info["level"] == "status"
    assert not mover.closed


def test_without_a_body_the_configured_url_is_sent() -> None:
    api, mover, _ = setup('[server]\nreconnect_url = "rtmp://b/x"\n[apps.live]\n')
    assert post(api, f"/api/v1/clients/{ident(mover)}/reconnect")[0].status == 200
    mover.pump()
    assert requests(mover)[0][1]["tcUrl"] == "rtmp://b/x"


def test_a_client_without_the_capability_is_a_409_and_is_sent_nothing() -> None:
    api, _, legacy = setup()
    before = legacy.client.statuses()
    response, doc = post(api, f"/api/v1/clients/{ident(legacy)}/reconnect")
    assert response.status == 409
    assert (doc["asked"], doc["unable"]) == ([], [ident(legacy)])
    legacy.pump()
    assert legacy.client.statuses() == before and not legacy.closed


def test_all_clients_answer_says_who_was_asked_and_who_could_not_be() -> None:
    api, mover, legacy = setup()
    response, doc = post(api, "/api/v1/reconnect", b"{}")
    assert response.status == 200
    assert (doc["asked"], doc["unable"]) == ([ident(mover)], [ident(legacy)])
    assert doc["workers"] == {"total": 1, "answered": 1}
    mover.pump()
    legacy.pump()
    assert len(requests(mover)) == 1 and requests(legacy) == []
    assert "tcUrl" not in requests(mover)[0][1]  # none configured: the client's own URL


def test_no_token_or_a_wrong_one_asks_nobody() -> None:
    api, mover, _ = setup()
    for token, status in ((None, 401), ("wrong", 403), ("", 401)):
        assert post(api, "/api/v1/reconnect", token=token)[0].status == status
        path = f"/api/v1/clients/{ident(mover)}/reconnect"
        assert post(api, path, token=token)[0].status == status
    mover.pump()
    assert REQUEST not in mover.client.statuses()


def test_a_malformed_body_is_a_400_and_asks_nobody() -> None:
    api, mover, _ = setup()
    for body in (b"[1]", b"{", b'{"tcUrl": 5}', b'{"url": "x"}', b'{"tcUrl": "a\\u0000b"}'):
        response, doc = post(api, "/api/v1/reconnect", body)
        assert response.status == 400, body
        assert "error" in doc
    mover.pump()
    assert requests(mover) == []


def test_an_unknown_client_is_a_404_and_get_is_not_allowed() -> None:
    api, _, _ = setup()
    assert post(api, "/api/v1/clients/0-999/reconnect")[0].status == 404
    got: list[Response] = []
    api.handle("GET", b"/api/v1/reconnect", {}, {}).addCallback(got.append)
    assert got[0].status == 405


def test_across_workers_the_request_reaches_the_worker_holding_the_client() -> None:
    """Asked through worker 0, a client of worker 1 is asked by worker 1; all clients means
    those of both workers."""
    from tests.test_http_peers import Cluster

    cluster = Cluster()
    here = Peer(cluster.factories[0], 1).connect(**RECONNECTING)
    there = Peer(cluster.factories[1], 2).connect(**RECONNECTING)
    plain = Peer(cluster.factories[1], 3).connect()
    status, doc = cluster.ask(0, "POST", f"/api/v1/clients/1-{there.proto.id}/reconnect".encode())
    assert (status, doc) == (200, {"asked": [f"1-{there.proto.id}"], "unable": []})
    there.pump()
    here.pump()
    assert len(requests(there)) == 1 and requests(here) == []
    status, doc = cluster.ask(1, "POST", b"/api/v1/reconnect")
    assert status == 200 and doc["workers"] == {"total": 2, "answered": 2}
    assert sorted(doc["asked"]) == sorted([f"0-{here.proto.id}", f"1-{there.proto.id}"])
    assert doc["unable"] == [f"1-{plain.proto.id}"]
    here.pump()
    assert len(requests(here)) == 1
