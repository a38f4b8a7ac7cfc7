"""/metrics from a server factory driven in memory, read back with prometheus_client's own
parser: per-stream families exist while a stream is published and are gone at the next scrape
after it ended (even while its players wait), and events are counted where they happen."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fms.config import HTTPConfig
from fms.counters import COUNTERS
from fms.http.api import API
from fms.http.metrics import render
from fms.server.factory import RTMPServerFactory
from tests.support.server_peer import Peer, clock_of, factory_for

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
CAM = (("app", "live"), ("stream", "cam"))


@pytest.fixture(autouse=True)
def fresh_counters() -> Iterator[None]:
    COUNTERS.clear()
    yield
    COUNTERS.clear()


def scrape(factory: RTMPServerFactory) -> Samples:
    api = API(factory, HTTPConfig(enabled=True))
    text = render([api.local_metrics()], 1).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_published_stream_has_its_families_with_its_player_count() -> None:
    factory = factory_for()
    Peer(factory, 1001).connect(create_stream=True).publish("cam")
    Peer(factory, 1002).connect(create_stream=True).play("cam")
    Peer(factory, 1003).connect(create_stream=True).play("cam")
    samples = scrape(factory)
    assert samples[("fms_stream_players", CAM)] == 2
    assert samples[("fms_streams", ())] == 1
    assert samples[("fms_connections", (("state", "playing"),))] == 2
    assert samples[("fms_connections", (("state", "publishing"),))] == 1
    assert ("fms_stream_bytes_in_total", CAM) in samples


def test_the_families_of_an_ended_stream_are_gone_while_its_players_wait() -> None:
    factory = factory_for()
    publisher = Peer(factory, 1001).connect(create_stream=True).publish("cam")
    Peer(factory, 1002).connect(create_stream=True).play("cam")
    assert ("fms_stream_players", CAM) in scrape(factory)
    publisher.lose()
    assert factory.registry.get("live", "cam") is not None  # its player waits
    samples = scrape(factory)
    assert not [key for key in samples if dict(key[1]).get("stream") == "cam"]
    assert samples[("fms_streams", ())] == 0


def test_a_refused_connection_is_counted_by_the_limit_that_refused_it() -> None:
    factory = factory_for("[limits]\nmax_connections = 1\n")
    Peer(factory, 1001)
    assert factory.buildProtocol(None) is None
    samples = scrape(factory)
    assert samples[("fms_admission_refusals_total", (("reason", "max_connections"),))] == 1


def test_a_handshake_that_is_not_rtmp_and_one_that_times_out_are_counted() -> None:
    factory = factory_for("[limits]\nhandshake_timeout = 5.0\n")
    garbage = Peer(factory, 1001)
    garbage.proto.dataReceived(b"GET / HTTP/1.1\r\n\r\n")
    garbage.lose()
    silent = Peer(factory, 1002)  # says nothing
    clock_of(factory).advance(5.0)
    assert silent.transport.disconnected  # aborted by its deadline
    silent.lose()  # as Twisted then reports it
    samples = scrape(factory)
    failures = "fms_handshake_failures_total"
    assert samples[(failures, (("reason", "invalid"),))] == 1
    assert samples[(failures, (("reason", "timeout"),))] == 1


def test_a_peer_leaving_mid_handshake_is_counted_as_closed_and_a_finished_one_is_not() -> None:
    factory = factory_for()
    Peer(factory, 1001).lose()
    Peer(factory, 1002).connect().lose()
    samples = scrape(factory)
    assert samples[("fms_handshake_failures_total", (("reason", "closed"),))] == 1
    assert ("fms_handshake_failures_total", (("reason", "invalid"),)) not in samples


def test_plugin_decisions_are_timed_per_action() -> None:
    factory = factory_for()
    Peer(factory, 1001).connect(create_stream=True).publish("cam")
    Peer(factory, 1002).connect(create_stream=True).play("cam")
    samples = scrape(factory)
    count = "fms_plugin_decision_seconds_count"
    assert samples[(count, (("action", "connect"),))] == 2
    assert samples[(count, (("action", "publish"),))] == 1
    assert samples[(count, (("action", "play"),))] == 1


def test_messages_delivered_count_what_players_got_and_keep_what_leavers_got() -> None:
    factory = factory_for("[streams]\nflush_interval = 0\n")  # delivered as they come
    publisher = Peer(factory, 1001).connect(create_stream=True).publish("cam")
    players = [Peer(factory, 1002 + i).connect(create_stream=True).play("cam") for i in (0, 1)]
    publisher.send_video(0, b"\x17\x01\x00\x00\x00" + bytes(200))
    for ts in (40, 80, 120):
        publisher.send_video(ts, b"\x27\x01\x00\x00\x00" + bytes(100))
    for player in players:
        player.pump()
    got = [len(player.media()) for player in players]
    assert got == [4, 4]
    assert scrape(factory)[("fms_player_messages_delivered_total", ())] == 8
    players[0].lose()
    assert scrape(factory)[("fms_player_messages_delivered_total", ())] == 8


def test_every_fan_out_flush_is_timed_with_the_time_since_the_last_one_started() -> None:
    """A fixed 100 ms flush, 3 flushes: 3 durations and 2 intervals of 0.1 s (the 0.125 s
    bucket: the fake clock's 0.1 steps are not exact in binary), none under 75 ms."""
    factory = factory_for('[streams]\nflush = "fixed"\nflush_interval = 0.1\n')
    factory.startFactory()
    try:
        for _ in range(3):
            clock_of(factory).advance(0.1)
        samples = scrape(factory)
    finally:
        factory.stopFactory()
    assert samples[("fms_flush_seconds_count", ())] == 3
    assert samples[("fms_flush_interval_seconds_count", ())] == 2
    assert samples[("fms_flush_interval_seconds_bucket", (("le", "0.075"),))] == 0
    assert samples[("fms_flush_interval_seconds_bucket", (("le", "0.125"),))] == 2
