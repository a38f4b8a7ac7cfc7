"""The HTTP API across two workers in memory: each worker's API on its own server factory,
their control channels joined by in-memory control connections (no sockets, a fake clock).
Figures merge (players added up, the publisher from the worker that holds it), a kick and a
stop reach the worker holding the client or stream, and a worker that does not answer is
left out after the timeout, with the documents saying so."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from fms.cluster.control import ControlChannel, ControlProtocol
from fms.cluster.observe import TIMEOUT, ControlPeers
from fms.config import Config, HTTPConfig
from fms.http.api import API, Response
from fms.server.factory import RTMPServerFactory
from tests.support.server_peer import Peer

TOKEN = "t"


class Cluster:
    """Two workers: factories on one fake clock, APIs over joined control channels. Bytes
    between the workers move only in :meth:`move` (so a test can hold them back)."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.factories = [RTMPServerFactory(Config(), clock=self.clock) for _ in range(2)]
        self.links: list[tuple[StringTransport, ControlProtocol]] = []
        self.channels = [
            ControlChannel(self.clock, "/nonexistent", i, 2, connect=self._connector(i))
            for i in range(2)
        ]
        self.apis = [
            API(
                self.factories[i],
                HTTPConfig(enabled=True, token=TOKEN),
                peers=ControlPeers(self.channels[i], i, 2),
            )
            for i in range(2)
        ]

    def _connector(self, index: int) -> Any:
        def connect(worker: int) -> Deferred[ControlProtocol]:
            near = ControlProtocol(self.channels[index].handlers)
            far = ControlProtocol(self.channels[worker].handlers)
            near_t, far_t = StringTransport(), StringTransport()
            near.makeConnection(near_t)
            far.makeConnection(far_t)
            self.links += [(near_t, far), (far_t, near)]
            return succeed(near)

        return connect

    def move(self) -> None:
        moved = True
        while moved:
            moved = False
            for transport, target in self.links:
                data = transport.value()
                if data:
                    transport.clear()
                    target.dataReceived(data)
                    moved = True

    def ask(
        self, worker: int, method: str, path: bytes, query: dict[bytes, list[bytes]] | None = None
    ) -> tuple[int, Any]:
        got: list[Response] = []
        headers = {"authorization": f"Bearer {TOKEN}"}
        self.apis[worker].handle(method, path, query or {}, headers).addCallback(got.append)
        self.move()
        assert got, "no answer"
        return got[0].status, json.loads(got[0].body)


def test_streams_add_up_players_of_both_workers_and_name_the_publishing_worker() -> None:
    cluster = Cluster()
    w0, w1 = cluster.factories
    publisher = Peer(w0, 1).connect(create_stream=True).publish("cam")
    Peer(w0, 2).connect(create_stream=True).play("cam")
    for port in (3, 4):
        Peer(w1, port).connect(create_stream=True).play("cam")
    for worker in (0, 1):
        status, body = cluster.ask(worker, "GET", b"/api/v1/streams")
        assert status == 200 and body["workers"] == {"total": 2, "answered": 2}
        [cam] = body["streams"]
        assert (cam["players"], cam["published"]) == (3, True)
        assert cam["publisher"]["id"] == f"0-{publisher.proto.id}"


def test_clients_of_both_workers_are_listed_with_their_workers_ids() -> None:
    cluster = Cluster()
    a = Peer(cluster.factories[0], 1).connect(create_stream=True).play("cam")
    b = Peer(cluster.factories[1], 2).connect(create_stream=True).play("cam")
    status, body = cluster.ask(1, "GET", b"/api/v1/clients")
    assert status == 200 and body["total"] == 2
    assert sorted(doc["id"] for doc in body["clients"]) == sorted(
        [f"0-{a.proto.id}", f"1-{b.proto.id}"]
    )
    _, server = cluster.ask(0, "GET", b"/api/v1/server")
    assert server["connections"]["playing"] == 2 and server["workers_answering"] == 2


def test_a_kick_sent_to_one_worker_closes_a_client_of_the_other() -> None:
    cluster = Cluster()
    here = Peer(cluster.factories[0], 1).connect(create_stream=True).play("cam")
    there = Peer(cluster.factories[1], 2).connect(create_stream=True).play("cam")
    status, body = cluster.ask(0, "DELETE", f"/api/v1/clients/1-{there.proto.id}".encode())
    assert (status, body) == (200, {"disconnected": f"1-{there.proto.id}"})
    assert there.closed and not here.closed


def test_a_stop_sent_to_one_worker_ends_the_publish_held_by_the_other() -> None:
    cluster = Cluster()
    publisher = Peer(cluster.factories[0], 1).connect(create_stream=True).publish("cam")
    status, body = cluster.ask(1, "DELETE", b"/api/v1/streams/live/cam")
    assert status == 200 and body["publisher"] == f"0-{publisher.proto.id}"
    publisher.pump()
    assert "NetStream.Unpublish.Success" in publisher.statuses() and publisher.closed


def test_a_worker_that_does_not_answer_is_left_out_after_the_timeout() -> None:
    cluster = Cluster()
    Peer(cluster.factories[0], 1).connect(create_stream=True).play("cam")
    Peer(cluster.factories[1], 2).connect(create_stream=True).play("cam")
    got: list[Response] = []
    cluster.apis[0].handle("GET", b"/api/v1/streams", {}, {}).addCallback(got.append)
    cluster.clock.advance(TIMEOUT - 0.01)
    assert not got  # still waiting for worker 1
    cluster.clock.advance(0.01)
    body = json.loads(got[0].body)
    assert body["workers"] == {"total": 2, "answered": 1}
    assert [s["players"] for s in body["streams"]] == [1]


def test_a_kick_for_a_worker_that_does_not_answer_is_503() -> None:
    cluster = Cluster()
    got: list[Response] = []
    cluster.apis[0].handle(
        "DELETE", b"/api/v1/clients/1-5", {}, {"authorization": f"Bearer {TOKEN}"}
    ).addCallback(got.append)
    cluster.clock.advance(TIMEOUT)
    assert got[0].status == 503


def test_http_viewers_of_both_workers_add_up_in_the_server_document() -> None:
    """An HTTP-FLV viewer on each worker (and an RTMP player on worker 0): worker 1's
    ``/api/v1/server`` says 2 HTTP viewers and 1 RTMP play."""
    from fms.http.web import APISite
    from tests.test_http_clients_viewers import http_viewer

    cluster = Cluster()
    Peer(cluster.factories[0], 1).connect(create_stream=True).play("cam")
    for index, api in enumerate(cluster.apis):
        http_viewer(APISite(api, api.config, cluster.clock), 5000 + index)
    _, server = cluster.ask(1, "GET", b"/api/v1/server")
    assert server["workers_answering"] == 2
    assert (server["connections"]["http_viewers"], server["connections"]["playing"]) == (2, 1)
