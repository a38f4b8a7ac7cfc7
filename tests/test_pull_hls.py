"""HLS viewers as demand for on-demand pulls (fms.server.demand, PullService.want,
fms.http.hlsdemand) on a fake clock: the bookkeeping of streams wanted by requests that hold
no connection; an HLS playlist request starting the pull of a stream nobody publishes here
and waiting for it; HLS requests keeping the pull; the pull stopping ``idle_timeout`` after
the viewer window closed. No sockets, no wall clock: the pull's upstream connection is only
recorded by ``MemoryReactorClock`` and the source's messages are handed to the pull."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport

from fms.config import HLSConfig, parse_config
from fms.http.api import API
from fms.http.web import APISite, LimitedHTTPChannel
from fms.rtmp.constants import MessageType
from fms.rtmp.messages import Media
from fms.server.demand import RecentDemand
from fms.server.factory import RTMPServerFactory
from fms.server.pull import Pull
from tests.support.live_sink import AAC_HEADER, AVC_HEADER, audio, inter, key
from tests.support.server_peer import Peer
from tests.test_http_hls import parse, uris

START = 1_800_000_000.0
WINDOW = 10.0
IDLE = 5.0
START_TIMEOUT = 3.0
EPS = 0.125
"""A little, in seconds, exact in binary so that clock sums land on the timers' times."""
CONFIG = f"""
[http]
enabled = true
[limits]
publisher_timeout = 1000  # a source that goes quiet is another test's business
[hls]
viewer_timeout = {WINDOW}
[[apps.live.pull]]
url = "rtmp://192.0.2.7/origin"
match = "cam*"
idle_timeout = {IDLE}
retry_initial = 1
retry_max = 4
start_timeout = {START_TIMEOUT}
"""


# ------------------------------------------------------------------ the bookkeeping


def _recent() -> tuple[RecentDemand, Clock, list[tuple[str, str]]]:
    clock = Clock()
    ended: list[tuple[str, str]] = []
    return RecentDemand(clock, lambda app, name: ended.append((app, name))), clock, ended


def test_a_touched_stream_is_wanted_for_its_window_and_then_ends_once() -> None:
    recent, clock, ended = _recent()
    assert recent.touch("live", "cam", 4.0) is True
    clock.advance(4.0 - EPS)
    assert recent.wanted("live", "cam") and ended == []
    clock.advance(EPS)
    assert not recent.wanted("live", "cam") and ended == [("live", "cam")]
    clock.advance(100)
    assert ended == [("live", "cam")] and len(recent) == 0


def test_each_request_moves_the_end_of_the_window() -> None:
    recent, clock, ended = _recent()
    recent.touch("live", "cam", 4.0)
    for _ in range(5):
        clock.advance(3.0)
        assert recent.touch("live", "cam", 4.0) is False
    clock.advance(4.0 - EPS)  # 4 s after the last request, less a little
    assert recent.wanted("live", "cam") and ended == []
    clock.advance(EPS)
    assert ended == [("live", "cam")]


def test_a_held_request_keeps_the_stream_wanted_until_released_plus_a_window() -> None:
    recent, clock, ended = _recent()
    release = recent.hold("live", "cam", 4.0)
    clock.advance(60)
    assert recent.wanted("live", "cam") and ended == []
    release()
    release()  # a second call does nothing
    clock.advance(4.0 - EPS)
    assert recent.wanted("live", "cam")
    clock.advance(EPS)
    assert ended == [("live", "cam")]


def test_streams_are_wanted_independently_and_stop_forgets_every_one() -> None:
    recent, clock, ended = _recent()
    recent.touch("live", "a", 2.0)
    recent.touch("live", "b", 5.0)
    clock.advance(2.0)
    assert ended == [("live", "a")] and recent.wanted("live", "b")
    recent.stop()
    clock.advance(10)
    assert ended == [("live", "a")] and len(recent) == 0 and clock.getDelayedCalls() == []


# ---------------------------------------------------------------- the pull service


def _factory(text: str = CONFIG) -> tuple[RTMPServerFactory, MemoryReactorClock]:
    reactor = MemoryReactorClock()
    reactor.advance(START)
    return RTMPServerFactory(parse_config(text), clock=reactor), reactor


def _pull(factory: RTMPServerFactory, name: str = "cam1") -> Pull:
    pull = factory.pulls.of("live", name)
    assert pull is not None
    return pull


def test_wanting_a_stream_nobody_publishes_starts_one_pull_however_often() -> None:
    factory, reactor = _factory()
    first = factory.pulls.want("live", "cam1", WINDOW)
    for _ in range(5):
        assert factory.pulls.want("live", "cam1", WINDOW) is first
    assert first is not None and len(reactor.tcpClients) == 1
    assert reactor.tcpClients[0][:2] == ("192.0.2.7", 1935)
    assert factory.pulls.demand("live", "cam1") == 1


def test_wanting_without_start_or_outside_the_glob_or_published_here_pulls_nothing() -> None:
    factory, reactor = _factory()
    Peer(factory, 1001).connect(create_stream=True).publish("cam2")
    assert factory.pulls.want("live", "cam1", WINDOW, start=False) is None
    assert factory.pulls.want("live", "talk", WINDOW) is None
    assert factory.pulls.want("live", "cam2", WINDOW) is None
    assert reactor.tcpClients == [] and len(factory.pulls.recent) == 0


def test_a_pull_wanted_by_http_viewers_stops_idle_timeout_after_the_window() -> None:
    factory, reactor = _factory()
    pull = factory.pulls.want("live", "cam1", WINDOW)
    assert pull is not None
    pull.received(Media(MessageType.VIDEO, 0, 1, AVC_HEADER))
    reactor.advance(WINDOW)  # the window closes; the idle timeout starts (a Clock's
    reactor.advance(IDLE - EPS)  # advance runs timers at its end: one step per timer)
    assert pull.state == "live"
    reactor.advance(EPS)
    assert pull.state == "stopped" and factory.pulls.of("live", "cam1") is None
    assert factory.registry.get("live", "cam1") is None


def test_requests_within_the_window_keep_the_pull_however_long() -> None:
    factory, reactor = _factory()
    pull = factory.pulls.want("live", "cam1", WINDOW)
    assert pull is not None
    pull.received(Media(MessageType.VIDEO, 0, 1, AVC_HEADER))
    for _ in range(20):  # 180 s of requests 9 s apart
        reactor.advance(WINDOW - 1)
        assert factory.pulls.want("live", "cam1", WINDOW, start=False) is pull
    reactor.advance(WINDOW)  # the window closes; the idle timeout starts (a Clock's
    reactor.advance(IDLE - EPS)  # advance runs timers at its end: one step per timer)
    assert pull.state == "live"
    reactor.advance(EPS)
    assert pull.state == "stopped"


def test_http_viewers_and_players_share_the_pull_either_leaving_first() -> None:
    factory, reactor = _factory()
    player = Peer(factory, 1000).connect(create_stream=True).play("cam1")
    pull = _pull(factory)
    pull.received(Media(MessageType.VIDEO, 0, 1, AVC_HEADER))
    assert factory.pulls.want("live", "cam1", WINDOW) is pull
    assert factory.pulls.demand("live", "cam1") == 2
    player.lose()
    reactor.advance(WINDOW - EPS)  # the HLS window holds it past the player's idle timeout
    assert pull.state == "live"
    reactor.advance(EPS)
    reactor.advance(IDLE - EPS)
    assert pull.state == "live"
    Peer(factory, 1001).connect(create_stream=True).play("cam1")
    reactor.advance(120)  # the window closed long ago: the player holds it
    assert pull.state == "live" and len(reactor.tcpClients) == 1


def test_a_failure_while_http_viewers_want_the_stream_retries() -> None:
    factory, reactor = _factory()
    pull = factory.pulls.want("live", "cam1", WINDOW)
    assert pull is not None
    reactor.advance(START_TIMEOUT)
    assert pull.state == "retrying" and pull.last_error == "nothing received within 3s"
    reactor.advance(1)
    assert len(reactor.tcpClients) == 2 and pull.state == "connecting"


# ------------------------------------------------------------------- HLS requests


def _site() -> tuple[APISite, RTMPServerFactory, MemoryReactorClock]:
    factory, reactor = _factory()
    http = factory.config.http
    return APISite(API(factory, http), http, reactor), factory, reactor


def _ask(site: APISite, path: str) -> StringTransport:
    """Send ``GET path``; the answer is read from the returned transport (maybe later)."""
    address = IPv4Address("TCP", "192.0.2.9", 5000)
    channel = site.buildProtocol(address)
    assert isinstance(channel, LimitedHTTPChannel)
    transport = StringTransport(peerAddress=address)
    channel.makeConnection(transport)
    channel.dataReceived(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return transport


def _source(pull: Pull, seconds: float, start: int = 0) -> None:
    """What the upstream sends: ``seconds`` of 25 fps video (a keyframe a second) + AAC."""
    pull.received(Media(MessageType.VIDEO, start, 1, AVC_HEADER))
    pull.received(Media(MessageType.AUDIO, start, 1, AAC_HEADER))
    for i in range(int(seconds * 25)):
        ts = start + i * 40
        pull.received(audio(ts))
        pull.received(key(ts) if i % 25 == 0 else inter(ts))


def _pass(reactor: MemoryReactorClock, seconds: float) -> None:
    """Let ``seconds`` pass in steps of :data:`EPS`, so that a timer set by another timer
    fires at its own time (one ``advance`` runs the timers due only at its end)."""
    for _ in range(round(seconds / EPS)):
        reactor.advance(EPS)


def test_a_playlist_request_starts_the_pull_and_is_answered_once_it_made_a_segment() -> None:
    site, factory, reactor = _site()
    asked = _ask(site, "/live/cam1/index.m3u8")
    pull = _pull(factory)
    assert len(reactor.tcpClients) == 1 and parse(asked)[0] == 0  # held, not 404
    reactor.advance(START_TIMEOUT - 0.5)
    _source(pull, 1.0)  # live, but no closed segment yet
    assert parse(asked)[0] == 0
    _source(pull, 3.0, start=1000)
    status, headers, body = parse(asked)
    assert status == 200 and headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert uris(body) and all(uri.startswith("seg") for uri in uris(body))


def test_a_playlist_request_whose_pull_delivers_nothing_is_404_after_start_timeout() -> None:
    site, factory, reactor = _site()
    asked = _ask(site, "/live/cam1/index.m3u8")
    reactor.advance(START_TIMEOUT - EPS)
    assert parse(asked)[0] == 0
    reactor.advance(EPS)
    assert parse(asked)[0] == 404
    assert _pull(factory).state == "retrying"  # still wanted: the viewer asked lately


def test_hls_requests_of_a_stream_nobody_pulls_are_404_at_once_and_remembered_nowhere() -> None:
    site, factory, reactor = _site()
    assert parse(_ask(site, "/live/talk/index.m3u8"))[0] == 404
    assert parse(_ask(site, "/live/talk/seg1.m4s"))[0] == 404
    assert reactor.tcpClients == [] and len(factory.pulls.recent) == 0


def test_segment_requests_keep_the_pull_and_it_stops_idle_timeout_after_the_last() -> None:
    site, factory, reactor = _site()
    asked = _ask(site, "/live/cam1/index.m3u8")
    pull = _pull(factory)
    _source(pull, 5.0)
    assert parse(asked)[0] == 200
    window = max(WINDOW, 3 * HLSConfig().segment_duration)
    for step in range(10):  # a viewer's requests for 90 s, 9 s apart
        _pass(reactor, window - 1)
        _source(pull, window - 1, start=5000 + step * 9000)  # the source goes on meanwhile
        assert pull.state == "live"
        status, _, playlist = parse(_ask(site, "/live/cam1/index.m3u8"))
        assert status == 200
        segment = uris(playlist)[-1]
        assert parse(_ask(site, f"/live/cam1/{segment}"))[0] == 200
    _pass(reactor, window + IDLE - EPS)
    assert pull.state == "live"
    reactor.advance(EPS)
    assert pull.state == "stopped" and factory.pulls.of("live", "cam1") is None
