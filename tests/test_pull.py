"""Pulls (:mod:`fms.server.pull`) in the real server factory on a fake reactor, with in-memory
players (``tests.support.server_peer``): the first player of a stream nobody publishes starts
one pull, however many follow; what the source sends reaches them as a publisher's would; an
on-demand pull outlives its last player by ``idle_timeout``; failures retry with backoff while
players remain; the configuration and templates; the incremental FLV reader of HTTP sources.
No sockets, no wall clock: upstream connections are only recorded by ``MemoryReactorClock``
and the source's messages are handed to the pull as its link would."""

from __future__ import annotations

import pytest
from twisted.internet.testing import MemoryReactorClock

from fms.apps.pulls import PullError, always_requests, plugin_request, request_for
from fms.apps.views import StreamView
from fms.config import ConfigError, HTTPConfig, parse_config
from fms.http.api import API
from fms.http.documents import local_streams
from fms.live.flv import TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO, FLVFormatError, encode_tag, file_header
from fms.live.flvparse import FLVTagParser
from fms.rtmp.constants import MessageType
from fms.rtmp.messages import Data, Media
from fms.server.factory import RTMPServerFactory
from fms.server.pull import Pull
from tests.support.server_peer import Peer
from tests.test_http_api import TOKEN, answer, bearer

CONFIG = """
[[apps.live.pull]]
url = "rtmp://192.0.2.7/origin"
name = "{app}-{name}"
match = "cam*"
idle_timeout = 5
retry_initial = 1
retry_max = 4
start_timeout = 3
"""
KEY = Media(MessageType.VIDEO, 0, 1, bytes([0x17, 1, 0, 0, 0]) + b"k" * 50)
AVC_HEADER = Media(MessageType.VIDEO, 0, 1, bytes([0x17, 0, 0, 0, 0]) + b"\x01avc-config")


def _factory(text: str = CONFIG) -> tuple[RTMPServerFactory, MemoryReactorClock]:
    reactor = MemoryReactorClock()
    return RTMPServerFactory(parse_config(text), clock=reactor), reactor


def _pull(factory: RTMPServerFactory, name: str = "cam1") -> Pull:
    pull = factory.pulls.of("live", name)
    assert pull is not None
    return pull


def _deliver(factory: RTMPServerFactory, peers: list[Peer]) -> None:
    factory.flush()
    for peer in peers:
        peer.pump()


# ----------------------------------------------------------------------------- config


def test_a_pull_table_is_read_with_its_defaults() -> None:
    config = parse_config('[[apps.live.pull]]\nurl = "rtmp://o.example/live"\n')
    (pull,) = config.app("live").pull
    assert (pull.name, pull.match, pull.mode, pull.idle_timeout) == ("{name}", "*", "on-demand", 10)


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('url = "ftp://o/live"', "apps.live.pull[0].url: scheme 'ftp'"),
        ('url = "rtmp://o/"', "apps.live.pull[0].url: no application"),
        ('url = "rtmp://o/live"\nname = "{stream}"', "apps.live.pull[0].name: unknown field"),
        ('url = "http://o/{nom}.flv"', "apps.live.pull[0].url: unknown field {nom}"),
        ('url = "rtmp://o/live"\nmode = "sometimes"', "apps.live.pull[0].mode: 'sometimes'"),
        ('url = "rtmp://o/live"\nmode = "always"', "apps.live.pull[0].match: an 'always' pull"),
        ('url = "rtmp://o/live"\nretry_initial = 5\nretry_max = 1', "retry_max: below"),
        ("name = 'x'", "apps.live.pull[0].url: missing"),
    ],
)
def test_a_bad_pull_table_is_reported_by_key(table: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(f"[[apps.live.pull]]\n{table}\n", "c.toml")
    assert any(problem in line for line in raised.value.problems), raised.value.problems


def test_the_first_matching_table_names_the_upstream_stream_and_an_http_url() -> None:
    config = parse_config(
        '[[apps.live.pull]]\nurl = "http://o.example/{app}/{name}.flv"\nmatch = "web*"\n'
        '[[apps.live.pull]]\nurl = "rtmp://o.example/live"\nname = "src-{name}"\n'
    )
    pulls = config.app("live").pull
    web = request_for(pulls, "live", "web1")
    assert web is not None and web.url == "http://o.example/live/web1.flv" and web.http
    cam = request_for(pulls, "live", "cam")
    assert cam is not None and (cam.url, cam.upstream) == ("rtmp://o.example/live", "src-cam")


def test_only_always_tables_are_started_without_a_player() -> None:
    config = parse_config(
        '[[apps.live.pull]]\nurl = "rtmp://o/live"\nmatch = "tv"\nmode = "always"\n'
        '[[apps.live.pull]]\nurl = "rtmp://o/live"\n'
    )
    (request,) = always_requests(config.app("live").pull, "live")
    assert (request.name, request.upstream, request.mode) == ("tv", "tv", "always")


# ---------------------------------------------------------------------------- demand


def test_one_pull_serves_every_player_of_a_stream() -> None:
    factory, reactor = _factory()
    for port in range(1000, 1005):
        Peer(factory, port).connect(create_stream=True).play("cam1")
    assert len(reactor.tcpClients) == 1
    assert reactor.tcpClients[0][:2] == ("192.0.2.7", 1935)
    assert _pull(factory).request.upstream == "live-cam1"


def test_a_stream_the_glob_leaves_out_or_published_here_is_not_pulled() -> None:
    factory, reactor = _factory()
    Peer(factory, 1000).connect(create_stream=True).play("talk")
    Peer(factory, 1001).connect(create_stream=True).publish("cam2")
    Peer(factory, 1002).connect(create_stream=True).play("cam2")
    assert reactor.tcpClients == []


def test_what_the_source_sends_reaches_waiting_players_as_a_publish() -> None:
    factory, _ = _factory()
    player = Peer(factory).connect(create_stream=True).play("cam1")
    pull = _pull(factory)
    pull.received(Data(("onMetaData", {"width": 320.0}), 1, 0))
    pull.received(AVC_HEADER)
    pull.received(KEY)
    _deliver(factory, [player])
    assert "NetStream.Play.PublishNotify" in player.statuses()
    assert player.video() == [AVC_HEADER.payload, KEY.payload]
    (doc,) = local_streams(factory, 0, 0.0)
    assert doc["pull"]["state"] == "live" and doc["pull"]["messages_in"] == 3
    assert doc["publisher"]["address"] == "rtmp://192.0.2.7/origin" and doc["players"] == 1


def test_a_pulled_message_is_flushed_at_once_by_the_adaptive_flush_of_an_idle_server() -> None:
    """Under the default adaptive flush, a message the source sends brings the next flush
    forward as a publisher's read does: the players have it at the reactor's next turn, not
    at the ceiling's flush (``flush_interval``, 100 ms later: a hop's worth of latency)."""
    factory, reactor = _factory()
    assert factory.config.streams.flush == "adaptive"
    factory.startFactory()
    try:
        player = Peer(factory).connect(create_stream=True).play("cam1")
        pull = _pull(factory)
        pull.received(AVC_HEADER)
        reactor.advance(0)
        player.pump()
        reactor.advance(0.01)  # past the adaptive floor, well before the 0.1 s ceiling
        pull.received(KEY)
        reactor.advance(0)
        player.pump()
        assert player.video() == [AVC_HEADER.payload, KEY.payload]
    finally:
        factory.stopFactory()


def test_a_late_joiner_of_a_pulled_stream_starts_with_the_header_and_the_gop() -> None:
    factory, _ = _factory()
    first = Peer(factory, 1000).connect(create_stream=True).play("cam1")
    pull = _pull(factory)
    pull.received(AVC_HEADER)
    pull.received(KEY)
    late = Peer(factory, 1001).connect(create_stream=True).play("cam1")
    _deliver(factory, [first, late])
    assert late.video() == [AVC_HEADER.payload, KEY.payload]


def test_an_on_demand_pull_outlives_its_last_player_by_the_idle_timeout() -> None:
    factory, reactor = _factory()
    player = Peer(factory).connect(create_stream=True).play("cam1")
    pull = _pull(factory)
    pull.received(KEY)
    player.lose()
    reactor.advance(4.9)
    assert pull.state == "live" and factory.registry.get("live", "cam1") is not None
    reactor.advance(0.1)
    assert pull.state == "stopped" and factory.pulls.of("live", "cam1") is None
    assert factory.registry.get("live", "cam1") is None


def test_a_player_back_within_the_idle_timeout_keeps_the_pull() -> None:
    factory, reactor = _factory()
    Peer(factory, 1000).connect(create_stream=True).play("cam1").lose()
    pull = _pull(factory)
    reactor.advance(2)
    Peer(factory, 1001).connect(create_stream=True).play("cam1")
    reactor.advance(60)
    assert factory.pulls.of("live", "cam1") is pull and pull.state != "stopped"
    assert len(reactor.tcpClients) >= 1


def test_an_ended_source_tells_the_players_and_retries_after_the_backoff() -> None:
    factory, reactor = _factory()
    player = Peer(factory).connect(create_stream=True).play("cam1")
    pull = _pull(factory)
    pull.received(KEY)
    pull.failed(None, "upstream ended the stream (NetStream.Play.UnpublishNotify)")
    player.pump()
    assert "NetStream.Play.UnpublishNotify" in player.statuses()
    assert pull.state == "retrying" and pull.figures()["retry_in"] == 1
    reactor.advance(0.9)
    assert len(reactor.tcpClients) == 1
    reactor.advance(0.1)
    assert len(reactor.tcpClients) == 2 and pull.state == "connecting"


def test_a_try_that_receives_nothing_within_the_start_timeout_fails_and_delays_double() -> None:
    factory, reactor = _factory()
    Peer(factory).connect(create_stream=True).play("cam1")
    pull = _pull(factory)
    reactor.advance(2.9)
    assert pull.state == "connecting"
    reactor.advance(0.1)
    assert pull.state == "retrying" and pull.last_error == "nothing received within 3s"
    reactor.advance(1)  # the retry
    reactor.advance(3)  # fails in turn
    assert pull.figures()["retry_in"] == 2 and pull.connects == 2


def test_a_failure_with_no_player_left_stops_an_on_demand_pull() -> None:
    factory, reactor = _factory()
    player = Peer(factory).connect(create_stream=True).play("cam1")
    pull = _pull(factory)
    player.lose()
    pull.failed(None, "connection lost")
    assert pull.state == "stopped"
    reactor.advance(60)
    assert len(reactor.tcpClients) == 1


def test_an_always_pull_starts_with_the_server_and_retries_without_players() -> None:
    factory, reactor = _factory(
        '[[apps.live.pull]]\nurl = "rtmp://192.0.2.7/live"\nmatch = "tv"\nmode = "always"\n'
    )
    factory.startFactory()
    try:
        pull = _pull(factory, "tv")
        pull.failed(None, "connection lost")
        assert pull.state == "retrying"
        reactor.advance(1)
        assert len(reactor.tcpClients) == 2
    finally:
        factory.stopFactory()
    assert pull.state == "stopped"


ALWAYS = '[[apps.live.pull]]\nurl = "rtmp://192.0.2.7/live"\nmatch = "{name}"\nmode = "always"\n'


def test_a_reload_starts_the_always_pulls_it_adds() -> None:
    factory, reactor = _factory(ALWAYS.format(name="tv"))
    factory.startFactory()
    try:
        factory.reload(parse_config(ALWAYS.format(name="tv") + ALWAYS.format(name="radio")))
        radio = _pull(factory, "radio")
        assert radio.request.mode == "always"
        assert len(reactor.tcpClients) == 2  # tv's try from the start, radio's now
    finally:
        factory.stopFactory()


def test_a_reload_stops_the_always_pulls_it_removes_and_keeps_the_others() -> None:
    factory, reactor = _factory(ALWAYS.format(name="tv") + ALWAYS.format(name="radio"))
    factory.startFactory()
    try:
        tv, radio = _pull(factory, "tv"), _pull(factory, "radio")
        factory.reload(parse_config(ALWAYS.format(name="tv")))
        assert radio.state == "stopped" and factory.pulls.of("live", "radio") is None
        assert factory.pulls.of("live", "tv") is tv and tv.state != "stopped"
        assert len(reactor.tcpClients) == 2  # nothing new was started
    finally:
        factory.stopFactory()


def test_a_reload_that_changes_an_always_table_restarts_its_pull_from_the_new_source() -> None:
    factory, reactor = _factory(ALWAYS.format(name="tv"))
    factory.startFactory()
    try:
        old = _pull(factory, "tv")
        factory.reload(parse_config(ALWAYS.format(name="tv").replace("192.0.2.7", "192.0.2.8")))
        assert old.state == "stopped"
        new = _pull(factory, "tv")
        assert new is not old and new.url == "rtmp://192.0.2.8/live"
        assert reactor.tcpClients[-1][0] == "192.0.2.8"
    finally:
        factory.stopFactory()


def test_a_reload_leaves_a_plugins_pull_of_a_removed_always_name_alone() -> None:
    """Only the pulls the removed tables started stop: a plugin's pull of the same name (it
    started first, so the table's request found it under way) is the plugin's to stop."""
    factory, _ = _factory("")
    factory.startFactory()
    try:
        plugin = factory.pulls.pull(plugin_request("live", "tv", "rtmp://192.0.2.9/live", None))
        factory.reload(parse_config(ALWAYS.format(name="tv")))
        factory.reload(parse_config(""))
        assert factory.pulls.of("live", "tv") is plugin and plugin.state != "stopped"
    finally:
        factory.stopFactory()


def test_a_publish_here_while_the_pull_connects_stops_the_pull() -> None:
    factory, _ = _factory()
    Peer(factory, 1000).connect(create_stream=True).play("cam1")
    pull = _pull(factory)
    Peer(factory, 1001).connect(create_stream=True).publish("cam1")
    pull.received(KEY)
    assert pull.state == "stopped"


# ------------------------------------------------------------------------ HTTP-FLV


def _flv() -> bytes:
    return (
        file_header(audio=True, video=True)
        + encode_tag(TAG_SCRIPT, 0, b"\x02\x00\x0aonMetaData\x05")
        + encode_tag(TAG_VIDEO, 0, AVC_HEADER.payload)
        + encode_tag(TAG_AUDIO, 23, b"\xaf\x01" + b"a" * 30)
        + encode_tag(TAG_VIDEO, 40, KEY.payload)
    )


@pytest.mark.parametrize("step", [1, 2, 7, 13, 50, 1000])
def test_the_flv_reader_gives_the_same_tags_at_any_split(step: int) -> None:
    data = _flv()
    parser = FLVTagParser({TAG_AUDIO: 100, TAG_VIDEO: 100, TAG_SCRIPT: 100})
    tags = []
    for at in range(0, len(data), step):
        tags += parser.feed(data[at : at + step])
    assert [(t.tag_type, t.timestamp) for t in tags] == [
        (TAG_SCRIPT, 0), (TAG_VIDEO, 0), (TAG_AUDIO, 23), (TAG_VIDEO, 40),
    ]  # fmt: skip
    assert tags[3].payload == KEY.payload and parser.buffered == 0


def test_the_flv_reader_refuses_a_tag_over_its_limit_before_holding_it() -> None:
    parser = FLVTagParser({TAG_AUDIO: 100, TAG_VIDEO: len(KEY.payload) - 1, TAG_SCRIPT: 100})
    data = file_header(audio=True, video=True) + encode_tag(TAG_VIDEO, 0, KEY.payload)
    with pytest.raises(FLVFormatError, match="announces 55 bytes"):
        parser.feed(data[:24])  # the tag's header only


def test_the_flv_reader_refuses_what_is_not_flv() -> None:
    with pytest.raises(FLVFormatError):
        FLVTagParser({TAG_VIDEO: 10}).feed(b"HTTP/1.1 200 OK\r\n")


# --------------------------------------------------------------------------- plugins


def test_a_plugin_pull_starts_at_once_and_keeps_going_without_players() -> None:
    factory, reactor = _factory("")
    application = factory.application_for("live")
    assert application is not None
    handle = application.pull("cam9", "rtmp://192.0.2.7/live", "source")
    assert reactor.tcpClients[0][:2] == ("192.0.2.7", 1935)
    pull = _pull(factory, "cam9")
    assert handle is pull and pull.request.origin == "plugin" and pull.request.upstream == "source"
    pull.failed(None, "connection lost")
    assert pull.state == "retrying"
    handle.stop()
    reactor.advance(60)
    assert pull.state == "stopped" and len(reactor.tcpClients) == 1


def test_a_plugin_pull_of_a_bad_url_raises_pull_error() -> None:
    factory, _ = _factory("")
    application = factory.application_for("live")
    assert application is not None
    with pytest.raises(PullError, match="scheme"):
        application.pull("cam9", "udp://192.0.2.7/live")


def test_plugins_see_the_pull_as_the_publisher_of_a_pulled_stream() -> None:
    factory, _ = _factory()
    Peer(factory).connect(create_stream=True).play("cam1")
    _pull(factory).received(KEY)
    stream = factory.registry.get("live", "cam1")
    assert stream is not None
    publisher = StreamView(stream).publisher
    assert publisher is not None and publisher.protocol == "pull"
    assert publisher.peer == "rtmp://192.0.2.7/origin" and publisher.publishing == ("cam1",)


def test_the_api_lists_a_pulled_stream_and_deleting_it_stops_the_pull() -> None:
    factory, _ = _factory()
    api = API(factory, HTTPConfig(enabled=True, token=TOKEN))
    player = Peer(factory).connect(create_stream=True).play("cam1")
    pull = _pull(factory)
    pull.received(KEY)
    _, doc = answer(api, "GET", b"/api/v1/streams/live/cam1")
    assert doc["published"] and doc["pull"]["state"] == "live" and doc["players"] == 1
    response, body = answer(api, "DELETE", b"/api/v1/streams/live/cam1", bearer())
    assert response.status == 200 and body == {"stopped": "live/cam1", "publisher": None}
    player.pump()
    assert pull.state == "stopped" and "NetStream.Play.UnpublishNotify" in player.statuses()
