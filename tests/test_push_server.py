"""The server's side of pushes, with an in-memory publisher (``tests.support.server_peer``) on
a fake reactor: a publish accepted by the server starts the pushes its app's tables match,
named from the publish's name and query; its end stops them; the API document lists them."""

from __future__ import annotations

import pytest
from twisted.internet.testing import MemoryReactorClock

from fms.apps.pushes import HOPS_KEY, PushError, PushRequest
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


# ----------------------------------------------------------------------- push loops (hops)


def test_a_publish_records_the_hops_its_connect_announced() -> None:
    factory, _ = _factory()
    Peer(factory).connect(create_stream=True, **{HOPS_KEY: 2.0}).publish("cam1")
    stream = factory.registry.get("live", "cam1")
    assert stream is not None and stream.push_hops == 2


@pytest.mark.parametrize("value", ["3", True, -1.0, 1e12, None])
def test_a_hop_count_that_is_not_a_plain_number_reads_as_zero(value: object) -> None:
    factory, _ = _factory()
    Peer(factory).connect(create_stream=True, **{HOPS_KEY: value}).publish("cam1")
    stream = factory.registry.get("live", "cam1")
    assert stream is not None and stream.push_hops == 0


def test_a_publish_that_came_through_one_push_less_than_the_limit_is_pushed() -> None:
    factory, reactor = _factory()
    Peer(factory).connect(create_stream=True, **{HOPS_KEY: 3.0}).publish("cam1")  # limit 4
    stream = factory.registry.get("live", "cam1")
    assert stream is not None and len(factory.pushes.of(stream)) == 1
    assert len(reactor.tcpClients) == 1


def test_a_publish_that_came_through_max_push_hops_pushes_is_pushed_no_further() -> None:
    factory, reactor = _factory()
    Peer(factory).connect(create_stream=True, **{HOPS_KEY: 4.0}).publish("cam1")
    stream = factory.registry.get("live", "cam1")
    assert stream is not None and factory.pushes.of(stream) == []
    assert reactor.tcpClients == []


def test_a_plugins_push_of_a_publish_at_the_hop_limit_is_refused() -> None:
    factory, reactor = _factory()
    Peer(factory).connect(create_stream=True, **{HOPS_KEY: 4.0}).publish("talk")
    stream = factory.registry.get("live", "talk")
    application = factory.application_for("live")
    assert stream is not None and application is not None
    with pytest.raises(PushError, match="came through 4 pushes"):
        application.pushes.push(stream, PushRequest("rtmp://192.0.2.8/live", "talk"))
    assert reactor.tcpClients == []


def test_max_push_hops_is_read_from_the_streams_settings_of_the_app() -> None:
    reactor = MemoryReactorClock()
    config = parse_config(CONFIG + "[apps.live.streams]\nmax_push_hops = 1\n")
    factory = RTMPServerFactory(config, clock=reactor)
    Peer(factory).connect(create_stream=True, **{HOPS_KEY: 1.0}).publish("cam1")
    stream = factory.registry.get("live", "cam1")
    assert stream is not None and factory.pushes.of(stream) == []
