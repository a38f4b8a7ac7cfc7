"""The server's side of pushes, with an in-memory publisher (``tests.support.server_peer``) on
a fake reactor: a publish accepted by the server starts the pushes its app's tables match,
named from the publish's name and query; its end stops them; the API document lists them."""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock

from fms.config import parse_config
from fms.http.documents import local_streams
from fms.server.factory import RTMPServerFactory
from tests.support.server_peer import Peer

CONFIG = """
[[apps.live.push]]
url = "rtmp://192.0.2.7/live"
name = "{app}/{name}?{query}"
match = "cam*"
"""


def _factory() -> tuple[RTMPServerFactory, MemoryReactorClock]:
    reactor = MemoryReactorClock()
    return RTMPServerFactory(parse_config(CONFIG), clock=reactor), reactor


def test_an_accepted_publish_is_pushed_under_the_templated_name_with_its_query() -> None:
    factory, reactor = _factory()
    Peer(factory).connect(create_stream=True).publish("cam1?key=s3cret&x=1")
    stream = factory.registry.get("live", "cam1")
    assert stream is not None
    (push,) = factory.pushes.of(stream)
    assert push.request.name == "live/cam1?key=s3cret&x=1" and push.request.origin == "config"
    (attempt,) = reactor.tcpClients
    assert attempt[:2] == ("192.0.2.7", 1935)


def test_a_publish_the_glob_leaves_out_is_not_pushed() -> None:
    factory, reactor = _factory()
    Peer(factory).connect(create_stream=True).publish("talk")
    stream = factory.registry.get("live", "talk")
    assert stream is not None and factory.pushes.of(stream) == []
    assert reactor.tcpClients == []


def test_the_end_of_the_publish_stops_its_push_and_its_retries() -> None:
    factory, reactor = _factory()
    peer = Peer(factory).connect(create_stream=True).publish("cam1")
    stream = factory.registry.get("live", "cam1")
    assert stream is not None
    (push,) = factory.pushes.of(stream)
    peer.lose()
    assert push.state == "stopped" and factory.pushes.of(stream) == []
    reactor.advance(120)
    assert len(reactor.tcpClients) == 1


def test_the_stream_document_lists_the_push_and_leaves_it_out_of_players() -> None:
    factory, _ = _factory()
    Peer(factory).connect(create_stream=True).publish("cam1")
    (doc,) = local_streams(factory, 0, 0.0)
    assert doc["players"] == 0
    (push,) = doc["pushes"]
    assert push["state"] == "connecting" and push["url"] == "rtmp://192.0.2.7/live"
    assert push["name"] == "live/cam1" and push["connects"] == 1
