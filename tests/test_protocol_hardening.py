"""Hardening of the Twisted adapter, on in-memory transports and a fake clock: deadlines and
pings from one shared queue, admission caps, fault isolation, graceful shutdown and reload."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred

from fms.apps.api import Plugin
from fms.apps.interfaces import IClientView, IStreamView
from fms.config import parse_config
from fms.errors import ConfigError
from fms.rtmp.constants import UserControlEvent
from fms.rtmp.messages import Media, UserControl
from fms.server.admission import address_group
from fms.server.delivery import PlaySink
from fms.server.factory import RTMPServerFactory
from fms.server.protocol import RTMPServerProtocol
from tests.support.logs import log_lines
from tests.support.server_peer import Peer, arrive_v6, clock_of, factory_for

KEYFRAME = b"\x17\x01\x00\x00\x00" + b"k" * 40
INTERFRAME = b"\x27\x01\x00\x00\x00" + b"i" * 40


@pytest.fixture
def logged() -> Iterator[list[str]]:
    """The log lines, each with the traceback of a failure it logged (tests here look for the
    exception's text)."""
    yield from log_lines(tracebacks=True)


# ---------------------------------------------------------------------------------- deadlines


def test_a_connected_client_that_neither_publishes_nor_plays_is_closed(logged: list[str]) -> None:
    factory = factory_for("[limits]\npublish_or_play_timeout = 5.0\nidle_timeout = 60.0\n")
    peer = Peer(factory).connect(create_stream=True)
    clock_of(factory).advance(4.9)
    assert not peer.closed
    clock_of(factory).advance(0.2)
    assert peer.closed
    assert any("publish or play deadline of 5s passed" in line for line in logged), logged


def test_the_publish_or_play_deadline_is_off_for_an_app_that_sets_zero() -> None:
    factory = factory_for(
        "[limits]\npublish_or_play_timeout = 5.0\nidle_timeout = 600.0\n"
        "[apps.chat]\npublish_or_play_timeout = 0\n"
    )
    chat = Peer(factory, port=1).connect("chat", create_stream=True)
    live = Peer(factory, port=2).connect("live", create_stream=True)
    clock_of(factory).advance(100.0)
    assert live.closed
    assert not chat.closed


def test_the_publish_or_play_deadline_runs_again_after_the_last_stream_ends() -> None:
    factory = factory_for("[limits]\npublish_or_play_timeout = 5.0\nidle_timeout = 600.0\n")
    clock = clock_of(factory)
    peer = Peer(factory).connect(create_stream=True).play()
    clock.advance(60.0)
    assert not peer.closed
    peer.send(peer.client.command("closeStream", 0.0, stream_id=1))
    clock.advance(4.0)
    assert not peer.closed
    clock.advance(1.5)
    assert peer.closed


def test_a_publish_being_decided_counts_as_publishing() -> None:
    gate: Deferred[None] = Deferred()

    class Slow(Plugin):
        def publish(self, client: IClientView, name: str, query: dict[str, str], kind: str) -> Any:
            return gate

    factory = factory_for(
        "[limits]\npublish_or_play_timeout = 5.0\nidle_timeout = 600.0\n[apps.live]\n"
    )
    factory.chains["live"] = [Slow()]
    peer = Peer(factory).connect(create_stream=True).publish()
    clock_of(factory).advance(8.0)  # past publish_or_play_timeout; decision_timeout is 10 s
    assert not peer.closed
    gate.callback(None)
    peer.pump()
    assert peer.client.statuses()[-1] == "NetStream.Publish.Start"


def test_a_silent_publisher_is_closed_and_its_name_freed(logged: list[str]) -> None:
    factory = factory_for("[limits]\npublisher_timeout = 2.0\nidle_timeout = 600.0\n")
    clock = clock_of(factory)
    peer = Peer(factory).connect(create_stream=True).publish()
    for t in range(5):
        clock.advance(1.0)
        peer.send_video(t * 1000, KEYFRAME)
    assert not peer.closed
    clock.advance(1.9)
    assert not peer.closed
    clock.advance(0.2)
    assert peer.closed
    assert any("publisher deadline of 2s passed (no media received)" in line for line in logged)
    peer.lose()
    assert factory.registry.get("live", "cam") is None


def test_a_watching_player_is_pinged_and_stays_while_it_answers() -> None:
    factory = factory_for("[limits]\nidle_timeout = 2.0\nping_interval = 0.5\nping_timeout = 1.0\n")
    clock = clock_of(factory)
    player = Peer(factory).connect(create_stream=True).play()
    for _ in range(40):  # 20 s: ten times the idle timeout
        clock.advance(0.25)
        player.pump()
        player.answer_pings()
    assert not player.closed
    assert len(player.pings()) >= 20


def test_a_player_that_stops_answering_pings_is_closed_within_the_answer_deadline(
    logged: list[str],
) -> None:
    factory = factory_for(
        "[limits]\nidle_timeout = 30.0\nping_interval = 1.0\nping_timeout = 0.5\n"
    )
    clock = clock_of(factory)
    player = Peer(factory).connect(create_stream=True).play()
    clock.advance(1.0)
    player.pump()
    player.answer_pings()
    assert player.pings()
    clock.advance(1.0)  # the next ping goes out, unanswered
    assert not player.closed
    clock.advance(0.6)
    assert player.closed
    assert any("ping answer deadline of 0.5s passed" in line for line in logged)


def test_a_client_that_never_answers_pings_is_held_to_the_idle_timeout() -> None:
    factory = factory_for("[limits]\nidle_timeout = 3.0\nping_interval = 0.5\nping_timeout = 0.1\n")
    clock = clock_of(factory)
    player = Peer(factory).connect(create_stream=True).play()
    clock.advance(2.9)
    player.pump()
    assert player.pings() and not player.closed
    clock.advance(0.2)
    assert player.closed


def test_every_connection_shares_one_delayed_call() -> None:
    factory = factory_for()
    clock = clock_of(factory)
    peers = [Peer(factory, host=f"192.0.2.{p}") for p in range(100)]
    assert len(clock.getDelayedCalls()) == 1
    for peer in peers[:50]:
        peer.connect(create_stream=True)
    assert len(clock.getDelayedCalls()) == 1
    for peer in peers:
        peer.lose()
    assert clock.getDelayedCalls() == []


def test_bytes_received_do_not_touch_the_queue() -> None:
    factory = factory_for()
    peer = Peer(factory).connect(create_stream=True).publish()
    when = factory.deadlines.when(peer.proto.id)
    for t in range(50):
        clock_of(factory).advance(0.01)
        peer.send_video(t * 10, KEYFRAME)
    assert factory.deadlines.when(peer.proto.id) == when


# ---------------------------------------------------------------------------------- admission


def test_connections_past_max_connections_are_refused_at_once(logged: list[str]) -> None:
    factory = factory_for("[limits]\nmax_connections = 3\n")
    peers = [Peer(factory, host=f"192.0.2.{i}") for i in range(3)]
    assert factory.buildProtocol(IPv4Address("TCP", "192.0.2.9", 9)) is None
    assert sum("max_connections" in line for line in logged) == 1
    peers[0].lose()
    assert factory.buildProtocol(IPv4Address("TCP", "192.0.2.9", 9)) is not None


def test_the_per_address_cap_counts_only_connections_not_yet_connected() -> None:
    factory = factory_for("[limits]\nmax_connecting_per_ip = 2\nconnecting_grace = 0\n")
    first = Peer(factory, port=1)
    Peer(factory, port=2)
    assert factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", 3)) is None
    assert factory.buildProtocol(IPv4Address("TCP", "192.0.2.2", 3)) is not None
    first.connect(create_stream=True)  # accepted: it no longer counts
    assert factory.connecting_from("192.0.2.1") == 1
    assert Peer(factory, port=4).proto is not None
    assert factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", 5)) is None


@pytest.mark.parametrize(
    ("host", "prefix", "group"),
    [
        ("192.0.2.7", 64, "192.0.2.7"),
        ("::ffff:192.0.2.7", 64, "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2:aaaa::1", 48, "2001:db8:1::/48"),
        ("2001:db8:1:2:aaaa::1", 128, "2001:db8:1:2:aaaa::1/128"),
        ("fe80::1%eth0", 64, "fe80::/64"),
        ("?", 64, "?"),
    ],
)
def test_the_per_address_cap_counts_ipv6_by_prefix(host: str, prefix: int, group: str) -> None:
    assert address_group(host, prefix) == group


def test_ipv6_addresses_of_one_slash_64_share_the_per_address_cap() -> None:
    factory = factory_for("[limits]\nmax_connecting_per_ip = 2\nconnecting_grace = 0\n")

    assert arrive_v6(factory, "2001:db8:0:1::a") is not None
    assert arrive_v6(factory, "2001:db8:0:1::b") is not None
    assert arrive_v6(factory, "2001:db8:0:1:ffff::c") is None  # the same /64: refused
    assert arrive_v6(factory, "2001:db8:0:2::a") is not None  # another /64
    assert factory.connecting_from("2001:db8:0:1::1234") == 2


def test_refusals_are_logged_once_per_interval_with_a_count(logged: list[str]) -> None:
    factory = factory_for("[limits]\nmax_connecting_per_ip = 1\nconnecting_grace = 0\n")
    Peer(factory)
    for port in range(100):
        assert factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", port)) is None
    assert sum("refusing connection" in line for line in logged) == 1
    clock_of(factory).advance(11.0)
    assert factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", 7)) is None
    lines = [line for line in logged if "refusing connection" in line]
    assert len(lines) == 2 and "99 more refused since the last report" in lines[1]


# ---------------------------------------------------------------------------- fault isolation


def test_an_exception_while_handling_input_closes_only_that_connection(
    logged: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = factory_for()
    good = Peer(factory, port=1).connect(create_stream=True)
    bad = Peer(factory, port=2).connect(create_stream=True)

    def broken(self: RTMPServerProtocol, event: Any) -> None:
        if self is bad.proto:
            raise RuntimeError("a bug")

    monkeypatch.setattr(RTMPServerProtocol, "_on_create_stream", broken)
    bad.send(bad.client.command("createStream", 5.0))
    good.send(good.client.command("createStream", 5.0))
    assert bad.closed and not good.closed
    tracebacks = [line for line in logged if "RuntimeError: a bug" in line]
    assert len(tracebacks) == 1 and "192.0.2.1:2" in tracebacks[0]


def test_a_failed_decision_closes_only_that_connection(logged: list[str]) -> None:
    factory = factory_for()
    peer = Peer(factory)
    good = Peer(factory, port=2).connect(create_stream=True)
    application = factory.application_for("live")
    assert application is not None
    application.decide_connect = lambda client: Deferred.fromCoroutine(_raise())  # type: ignore[method-assign]
    peer.handshake()
    peer.send(peer.client.connect())
    assert peer.closed and not good.closed
    assert any("deciding connect failed" in line and "chain bug" in line for line in logged)


async def _raise() -> Any:
    raise RuntimeError("chain bug")


class RaisingSink:
    def __init__(self) -> None:
        self.closed: str | None = None

    def write(self, data: bytes) -> None:
        raise RuntimeError("sink bug")

    def can_write(self) -> bool:
        return True

    def pending(self) -> int:
        return 0

    def close(self, reason: str) -> None:
        self.closed = reason

    def publish_started(self) -> None:
        raise RuntimeError("sink bug")

    def publish_stopped(self) -> None:
        raise RuntimeError("sink bug")


def test_a_raising_player_sink_does_not_stop_the_flush_for_the_others() -> None:
    factory = factory_for("[streams]\nflush_interval = 0.02\n")
    clock = clock_of(factory)
    factory.doStart()
    try:
        publisher = Peer(factory, port=1).connect(create_stream=True).publish()
        watcher = Peer(factory, port=2).connect(create_stream=True).play()
        sink = RaisingSink()
        factory.registry.play("live", "cam", sink, 1)
        for t in range(5):
            publisher.send_video(t * 40, KEYFRAME if t == 0 else INTERFRAME)
            clock.advance(0.02)
        watcher.pump()
        received = [m for m in watcher.client.received if isinstance(m, Media)]
        assert len(received) == 5
        assert sink.closed is not None and "sink bug" in sink.closed
        assert factory._flusher is not None and factory._flusher.running
    finally:
        factory.doStop()


def test_a_play_sink_that_fails_to_write_closes_its_player_with_a_traceback(
    logged: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = factory_for("[streams]\nflush_interval = 0\n")
    publisher = Peer(factory, port=1).connect(create_stream=True).publish()
    bad = Peer(factory, port=2).connect(create_stream=True).play()
    good = Peer(factory, port=3).connect(create_stream=True).play()

    def failing(self: RTMPServerProtocol, data: bytes) -> None:
        if self is bad.proto and not self._closing:
            raise OSError("transport bug")
        original(self, data)

    def failing_offer(self: RTMPServerProtocol, data: bytes, budget: int) -> bool:
        if self is bad.proto and not self._closing:
            raise OSError("transport bug")
        return original_offer(self, data, budget)

    # fan-out writes through offer_shared (the whole-write) and write_shared (the rest)
    original = RTMPServerProtocol.write_shared
    original_offer = RTMPServerProtocol.offer_shared
    monkeypatch.setattr(RTMPServerProtocol, "write_shared", failing)
    monkeypatch.setattr(RTMPServerProtocol, "offer_shared", failing_offer)
    publisher.send_video(0, KEYFRAME)
    publisher.send_video(40, INTERFRAME)
    good.pump()
    assert bad.closed and not good.closed
    assert len([m for m in good.client.received if isinstance(m, Media)]) == 2
    assert sum("OSError: transport bug" in line for line in logged) == 1


def test_flush_failures_are_logged_and_the_loop_goes_on(
    logged: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fms.live.stream import LiveStream

    factory = factory_for()
    clock = clock_of(factory)
    factory.doStart()
    try:
        publisher = Peer(factory).connect(create_stream=True).publish()
        monkeypatch.setattr(LiveStream, "flush", lambda self, now: 1 / 0)

        def failing_round(self: LiveStream, now: float, slice_players: int = 0) -> Iterator[None]:
            yield 1 // 0  # type: ignore[misc]

        monkeypatch.setattr(LiveStream, "flush_round", failing_round)  # the adaptive loop's
        interval = factory.config.streams.flush_interval
        publisher.send_video(0, KEYFRAME)
        clock.advance(interval)
        publisher.send_video(40, INTERFRAME)
        clock.advance(interval)
        assert factory._flusher is not None and factory._flusher.running
        assert sum("ZeroDivisionError" in line for line in logged) == 2
    finally:
        factory.doStop()


def test_a_plugin_that_raises_in_a_decision_refuses_only_that_client(logged: list[str]) -> None:
    class Boom(Plugin):
        def play(self, client: IClientView, name: str, query: dict[str, str]) -> Any:
            if name == "boom":
                raise RuntimeError("plugin bug")
            return None

    factory = factory_for("[apps.live]\n")
    factory.chains["live"] = [Boom()]
    bad = Peer(factory, port=1).connect(create_stream=True).play("boom")
    good = Peer(factory, port=2).connect(create_stream=True).play("cam")
    assert bad.client.statuses()[-1] == "NetStream.Play.Failed"
    assert good.client.statuses()[-1] == "NetStream.Play.Start"
    assert sum("RuntimeError: plugin bug" in line for line in logged) == 1


# ---------------------------------------------------------------------------------- shutdown


class Recorder(Plugin):
    def __init__(self) -> None:
        self.events: list[str] = []

    def unpublish(self, client: IClientView, stream: IStreamView) -> None:
        self.events.append(f"unpublish {stream.name}")

    def app_stop(self, app: Any) -> None:
        self.events.append("app_stop")


def shutdown_factory(plugin: Plugin) -> RTMPServerFactory:
    factory = factory_for("[streams]\nflush_interval = 0\n[apps.live]\n")
    factory.chains["live"] = [plugin]
    return factory


def test_shutdown_tells_everyone_then_closes_and_runs_the_plugins_ends() -> None:
    recorder = Recorder()
    factory = shutdown_factory(recorder)
    publisher = Peer(factory, port=1).connect(create_stream=True).publish()
    publisher.send_video(0, KEYFRAME)
    player = Peer(factory, port=2).connect(create_stream=True).play()
    waiting = Peer(factory, port=3).connect(create_stream=True).play("nobody")
    idle = Peer(factory, port=4).connect(create_stream=True)
    done = factory.shutdown(5.0)
    for peer in (publisher, player, waiting, idle):
        peer.pump()
        assert peer.closed and not peer.transport.disconnected
    assert publisher.client.statuses()[-1] == "NetStream.Unpublish.Success"
    assert player.client.statuses()[-1] == "NetStream.Play.UnpublishNotify"
    assert player.client.received[-1] == UserControl(UserControlEvent.STREAM_EOF, 1)
    assert waiting.client.statuses()[-1] == "NetStream.Play.UnpublishNotify"
    assert idle.client.statuses()[-1] == "NetConnection.Connect.AppShutdown"
    assert recorder.events == ["unpublish cam"]
    assert factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", 9)) is None
    assert not done.called
    for peer in (publisher, player, waiting, idle):
        peer.lose()
    assert done.called
    assert recorder.events == ["unpublish cam", "app_stop"]


def test_shutdown_aborts_what_is_still_open_after_the_timeout(logged: list[str]) -> None:
    factory = shutdown_factory(Recorder())
    stuck = Peer(factory, port=1).connect(create_stream=True).play()
    done = factory.shutdown(2.0)
    clock_of(factory).advance(1.9)
    assert not done.called and not stuck.transport.disconnected
    clock_of(factory).advance(0.2)
    assert stuck.transport.disconnected
    stuck.lose()
    clock_of(factory).advance(0.2)
    assert done.called
    assert any("did not close within the shutdown timeout" in line for line in logged)
    assert clock_of(factory).getDelayedCalls() == []


def test_a_plugin_that_never_finishes_stopping_does_not_hold_up_the_shutdown() -> None:
    class Stuck(Plugin):
        def app_stop(self, app: Any) -> Deferred[None]:
            return Deferred()

    factory = shutdown_factory(Stuck())
    Peer(factory).connect(create_stream=True).lose()
    done = factory.shutdown(1.0)
    clock_of(factory).advance(1.1)
    assert done.called


# ------------------------------------------------------------------------------------ reload


def test_reload_serves_new_clients_with_the_new_config_and_keeps_existing_ones() -> None:
    factory = factory_for("[limits]\npublish_or_play_timeout = 100.0\nidle_timeout = 600.0\n")
    old = Peer(factory, port=1).connect(create_stream=True)
    publisher = Peer(factory, port=2).connect(create_stream=True).publish()
    factory.reload(parse_config("[limits]\npublish_or_play_timeout = 5.0\nidle_timeout = 600.0\n"))
    new = Peer(factory, port=3).connect(create_stream=True)
    clock_of(factory).advance(6.0)
    publisher.send_video(6000, KEYFRAME)
    assert new.closed
    assert not old.closed and not publisher.closed
    assert factory.registry.get("live", "cam") is not None


def test_reload_builds_new_plugins_and_retires_the_old_ones_when_their_clients_leave() -> None:
    first, second = Recorder(), Recorder()
    factory = shutdown_factory(first)
    old = Peer(factory, port=1).connect(create_stream=True).publish()
    config = parse_config("[streams]\nflush_interval = 0\n[apps.live]\n")
    factory.reload(config)
    factory.chains["live"] = [second]
    new = Peer(factory, port=2).connect(create_stream=True).publish("other")
    assert new.client.statuses()[-1] == "NetStream.Publish.Start"
    old.lose()
    assert first.events == ["unpublish cam", "app_stop"]
    assert second.events == []


def test_reload_closes_clients_of_applications_no_longer_served(logged: list[str]) -> None:
    factory = factory_for()
    doomed = Peer(factory, port=1).connect("gone", create_stream=True)
    kept = Peer(factory, port=2).connect("live", create_stream=True)
    factory.reload(parse_config('[default_app]\npolicy = "refuse"\n[apps.live]\n'))
    assert doomed.closed and not kept.closed
    assert any("'gone' is no longer served" in line for line in logged)


def test_a_reload_that_cannot_build_its_plugins_changes_nothing() -> None:
    factory = factory_for("[limits]\npublish_or_play_timeout = 100.0\n")
    before = factory.config
    with pytest.raises(ConfigError):
        factory.reload(parse_config('[[apps.live.plugins]]\nuse = "no_such_plugin"\n'))
    assert factory.config is before


def test_reload_keeps_the_shared_chunk_size(logged: list[str]) -> None:
    factory = factory_for()
    factory.reload(parse_config("[streams]\nchunk_size = 8192\n"))
    assert factory.config.streams.chunk_size == 4096
    assert factory.settings.chunk_size == 4096
    assert any("chunk_size stays 4096" in line for line in logged)


def test_reload_says_that_a_new_worker_count_needs_a_restart(logged: list[str]) -> None:
    factory = factory_for()
    factory.reload(parse_config("[server]\nworkers = 4\n"))
    assert any("server.workers and server.worker_ports take effect" in line for line in logged)


def test_play_sink_is_still_a_player_sink() -> None:
    factory = factory_for()
    peer = Peer(factory).connect(create_stream=True)
    sink = PlaySink(peer.proto, 1, "cam")
    assert sink.can_write()


# ------------------------------------------------------------------------------ connect names


def connect_with(factory: RTMPServerFactory, **fields: Any) -> Peer:
    return Peer(factory).connect(**fields)


def description_of_error(peer: Peer) -> dict[str, Any]:
    (error,) = [c for c in peer.client.commands() if c.name == "_error"]
    info = error.arguments[0]
    assert isinstance(info, dict)
    return info


def test_a_long_tc_url_is_refused_with_a_status_naming_the_limit() -> None:
    peer = connect_with(factory_for(), tcUrl="rtmp://host/live/" + "x" * 600)
    info = description_of_error(peer)
    assert info["code"] == "NetConnection.Connect.Rejected"
    assert "at most 512" in info["description"]
    assert peer.closed


@pytest.mark.parametrize(
    ("app", "reason"),
    [
        ("a" * 129, "at most 128"),
        ("live\x00x", "control character U+0000"),
        ("../etc", "'..' segment"),
        ("live\\x", "backslash"),
        ("live//x", "empty path segment"),
    ],
)
def test_a_bad_app_name_is_refused_with_invalid_app_and_a_reason(app: str, reason: str) -> None:
    peer = connect_with(factory_for(), app=app)
    info = description_of_error(peer)
    assert info["code"] == "NetConnection.Connect.InvalidApp"
    assert reason in info["description"]
    assert peer.closed
