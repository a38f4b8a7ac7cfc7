"""Cluster pulls (:mod:`fms.cluster.pulls`, :mod:`fms.cluster.private`,
:mod:`fms.cluster.token`) on a fake reactor: the real server factory wired to a directory
over an in-memory Redis, in-memory players (``tests.support.server_peer``); upstream links are
only recorded by ``MemoryReactorClock``. No sockets, no wall clock. The real nodes are in
``tests/e2e/test_cluster_pull.py``."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from twisted.internet.testing import MemoryReactorClock

from fms.apps.api import Plugin, Reject
from fms.cluster.directory import StreamDirectory
from fms.cluster.node import wire
from fms.cluster.token import MARKER, VIA, TokenCheck, TokenRefused, make_query
from fms.config import parse_config
from fms.config.cluster import ClusterConfig
from fms.errors import ConfigError
from fms.http.documents import local_streams
from fms.rtmp.constants import MessageType
from fms.rtmp.messages import Media
from fms.server.factory import RTMPServerFactory
from fms.server.pull import Pull
from tests.support.server_peer import Peer
from tests.test_cluster_directory import MemoryRedis

A = "rtmp://10.0.0.1:1935"  # this node
B = "rtmp://10.0.0.2:1935"
C = "rtmp://10.0.0.3:1935"
SECRET = "s3cret"
CLUSTER = ClusterConfig(redis="redis://127.0.0.1:6379", node_url=A, ttl=6.0, secret=SECRET)
KEY = "fms:stream:live/cam"
KEYFRAME = Media(MessageType.VIDEO, 0, 1, bytes([0x17, 1, 0, 0, 0]) + b"k" * 20)
NOW = 1_800_000_000.0
"""The fake reactor's time: a Unix time, as the tokens compare clocks across nodes."""
NO_PLAY = """
[[apps.live.plugins]]
use = "tests.test_cluster_pull:NoPlay"
"""


class Cluster:
    """A node: a factory on a fake reactor, its directory over ``redis``, wired as ``fms run``
    wires it."""

    def __init__(self, text: str = "", cluster: ClusterConfig = CLUSTER) -> None:
        self.reactor = MemoryReactorClock()
        self.reactor.advance(NOW)
        self.factory = RTMPServerFactory(parse_config(text), clock=self.reactor)
        self.redis = MemoryRedis(self.reactor)  # type: ignore[arg-type]
        self.directory = StreamDirectory(cluster, self.reactor, "1")
        self.directory.store = self.redis
        wire(self.factory, self.directory)

    def dialled(self) -> list[tuple[str, int]]:
        return [(host, port) for host, port, *_ in self.reactor.tcpClients]

    def pull(self, name: str = "cam") -> Pull:
        pull = self.factory.pulls.of("live", name)
        assert pull is not None
        return pull

    def hold(self, node: str, name: str = "cam") -> None:
        self.redis.put(f"fms:stream:live/{name}", f"{node}#7", 60_000)


def _link_url(pull: Pull) -> str:
    """The URL (token included) the pull's try under way dialled."""
    factory = pull.service.host.clock.tcpClients[-1][2]
    link = factory.buildProtocol(None)
    return str(link.target.tc_url)


# ------------------------------------------------------------------------------- tokens


def _query(text: str) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(text))


def test_a_token_made_with_the_secret_is_accepted_and_names_the_nodes_it_came_through() -> None:
    check = TokenCheck(SECRET, 30.0, A)
    query = _query(make_query(SECRET, "live", (B, C), NOW))
    assert check.verify("live", query, NOW) == (B, C)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda q: {**q, MARKER: ""}, "no valid cluster token"),
        (lambda q: {VIA: q[VIA]}, "no valid cluster token"),
        (lambda q: {**q, VIA: C}, "wrong cluster token"),
        (lambda q: {**q, MARKER: q[MARKER][:-2] + "00"}, "wrong cluster token"),
    ],
)
def test_a_missing_or_altered_token_is_refused(change: Any, why: str) -> None:
    query = change(_query(make_query(SECRET, "live", (B,), NOW)))
    with pytest.raises(TokenRefused, match=why):
        TokenCheck(SECRET, 30.0, A).verify("live", query, NOW)


def test_a_token_of_another_secret_or_another_app_is_refused() -> None:
    check = TokenCheck(SECRET, 30.0, A)
    with pytest.raises(TokenRefused, match="wrong"):
        check.verify("live", _query(make_query("other", "live", (B,), NOW)), NOW)
    with pytest.raises(TokenRefused, match="wrong"):
        check.verify("vod", _query(make_query(SECRET, "live", (B,), NOW)), NOW)


def test_a_token_is_valid_for_the_window_either_side_of_its_time_and_not_after() -> None:
    window = 30.0
    for skew in (-window, window):
        query = _query(make_query(SECRET, "live", (B,), NOW))
        assert TokenCheck(SECRET, window, A).verify("live", query, NOW + skew) == (B,)
    for skew in (-window - 1, window + 1):
        query = _query(make_query(SECRET, "live", (B,), NOW))
        with pytest.raises(TokenRefused, match="window"):
            TokenCheck(SECRET, window, A).verify("live", query, NOW + skew)


def test_a_token_played_back_to_the_same_process_is_refused() -> None:
    check = TokenCheck(SECRET, 30.0, A)
    query = _query(make_query(SECRET, "live", (B,), NOW))
    check.verify("live", query, NOW)
    with pytest.raises(TokenRefused, match="replayed"):
        check.verify("live", query, NOW + 1)
    fresh = _query(make_query(SECRET, "live", (B,), NOW + 1))
    assert check.verify("live", fresh, NOW + 1) == (B,), "a fresh token of the same node passes"


def test_a_request_that_came_through_this_node_is_refused_as_a_loop() -> None:
    query = _query(make_query(SECRET, "live", (B, A + "/"), NOW))
    with pytest.raises(TokenRefused, match="loop"):
        TokenCheck(SECRET, 30.0, A).verify("live", query, NOW)


# ----------------------------------------------------------------------------- locating


def test_a_player_of_a_stream_another_node_holds_starts_one_cluster_pull_from_it() -> None:
    node = Cluster()
    node.hold(B)
    for port in (1, 2, 3):
        Peer(node.factory, port).connect(create_stream=True).play("cam")
    assert node.dialled() == [("10.0.0.2", 1935)]
    pull = node.pull()
    assert (pull.request.origin, pull.request.mode, pull.url) == (
        "cluster",
        "on-demand",
        B + "/live",
    )
    url = _link_url(pull)
    assert url.startswith(B + "/live?") and f"{MARKER}=v1." in url


def test_the_source_is_looked_up_again_at_each_try_and_follows_the_stream() -> None:
    node = Cluster()
    node.hold(B)
    Peer(node.factory, 1).connect(create_stream=True).play("cam")
    pull = node.pull()
    pull.link_failed(None, "connection lost")  # B died
    node.hold(C)  # published again on C
    node.reactor.advance(node.directory.config.retry_initial)
    assert node.dialled() == [("10.0.0.2", 1935), ("10.0.0.3", 1935)]
    assert pull.url == C + "/live"


def test_no_holder_or_no_redis_fails_the_try_and_retries_with_a_short_doubling_backoff() -> None:
    node = Cluster()
    Peer(node.factory, 1).connect(create_stream=True).play("cam")
    pull = node.pull()
    assert (pull.state, pull.last_error) == ("retrying", "no source holds the stream")
    delays = [pull.retry_in]
    node.redis.connected = False
    for _ in range(4):
        node.reactor.advance(pull.retry_in)
        delays.append(pull.retry_in)
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0], "0.5 s doubling up to ttl / 2"
    assert "Redis cannot be reached" in pull.last_error
    node.redis.connected = True
    node.hold(B)
    node.reactor.advance(pull.retry_in)
    assert node.dialled() == [("10.0.0.2", 1935)] and pull.state == "connecting"


def test_a_stream_the_directory_says_this_node_holds_is_not_pulled_from_itself() -> None:
    node = Cluster()
    node.hold(A)
    Peer(node.factory, 1).connect(create_stream=True).play("cam")
    assert node.dialled() == [] and node.pull().state == "retrying"


def test_a_cluster_pull_with_no_player_left_stops_and_none_starts_with_pull_off() -> None:
    node = Cluster()
    player = Peer(node.factory, 1).connect(create_stream=True).play("cam")
    player.lose()
    node.reactor.advance(10)
    assert node.factory.pulls.of("live", "cam") is None
    off = Cluster(cluster=replace(CLUSTER, pull=False))
    off.hold(B)
    Peer(off.factory, 1).connect(create_stream=True).play("cam")
    assert off.factory.pulls.of("live", "cam") is None and off.dialled() == []


def test_a_configured_pull_is_preferred_to_the_cluster() -> None:
    node = Cluster('[[apps.live.pull]]\nurl = "rtmp://192.0.2.7/origin"\n')
    node.hold(B)
    Peer(node.factory, 1).connect(create_stream=True).play("cam")
    assert node.dialled() == [("192.0.2.7", 1935)] and node.pull().request.origin == "config"


def test_a_node_with_a_parent_pulls_from_it_without_asking_the_directory() -> None:
    node = Cluster(cluster=replace(CLUSTER, parent=C))
    node.hold(B)
    node.redis.connected = False  # not asked
    Peer(node.factory, 1).connect(create_stream=True).play("cam")
    assert node.dialled() == [("10.0.0.3", 1935)]


def test_a_stream_published_here_meanwhile_stops_the_cluster_pull_at_its_next_try() -> None:
    node = Cluster()
    Peer(node.factory, 1).connect(create_stream=True).play("cam")
    pull = node.pull()
    Peer(node.factory, 2).connect(create_stream=True).publish("cam")
    node.reactor.advance(pull.retry_in)
    assert pull.state == "stopped" and node.factory.pulls.of("live", "cam") is None
    assert node.dialled() == []


class OtherWorkerHolds:
    """Name claims (:class:`~fms.server.host.NameClaims`) where another worker holds every
    name: this worker's pull went live second."""

    def claim(self, app: str, name: str) -> bool:
        return False

    def release(self, app: str, name: str) -> None:
        raise AssertionError("nothing was claimed")


def test_a_cluster_pull_that_goes_live_second_among_the_workers_stops_and_closes_its_link() -> None:
    node = Cluster()
    node.factory.name_claims = OtherWorkerHolds()
    node.hold(B)
    Peer(node.factory, 1).connect(create_stream=True).play("cam")
    pull = node.pull()
    closed: list[bool] = []
    pull.source = type("Link", (), {"bytes_received": 0, "close": lambda _: closed.append(True)})()
    pull.received(KEYFRAME)
    assert pull.state == "stopped" and closed == [True]
    assert node.factory.pulls.of("live", "cam") is None


# ------------------------------------------------------------------------ the directory


def test_a_cluster_pull_is_not_recorded_as_held_here_but_a_configured_pull_is() -> None:
    node = Cluster()
    node.hold(B)
    Peer(node.factory, 1).connect(create_stream=True).play("cam")
    node.pull().received(KEYFRAME)
    assert node.pull().state == "live"
    assert node.redis.value(KEY) == f"{B}#7" and node.directory.figures()["entries"] == 0

    static = Cluster('[[apps.live.pull]]\nurl = "rtmp://192.0.2.7/origin"\n')
    Peer(static.factory, 1).connect(create_stream=True).play("cam")
    static.pull().received(KEYFRAME)
    assert static.redis.value(KEY) == f"{A}#1", "this node is the cluster's entry point"


def test_the_pull_figures_show_a_cluster_pull_and_its_current_source() -> None:
    node = Cluster()
    node.hold(B)
    Peer(node.factory, 1).connect(create_stream=True).play("cam")
    node.pull().received(KEYFRAME)
    (doc,) = local_streams(node.factory, 0, NOW)
    pull = doc["pull"]
    assert (pull["origin"], pull["state"], pull["url"]) == ("cluster", "live", B + "/live")
    assert doc["cluster_links"] == []


# ----------------------------------------------------------------------- private path


class NoPlay(Plugin):
    """A plugin that refuses every play (and counts the clients it saw connect)."""

    connects = 0

    def connect(self, client: Any) -> None:
        NoPlay.connects += 1

    def play(self, client: Any, name: str, query: dict[str, str]) -> Any:
        return Reject("no plays here")


def _link(node: Cluster, query: str, port: int = 9) -> Peer:
    return Peer(node.factory, port).connect(f"live?{query}", create_stream=True)


def test_a_link_with_the_marker_and_a_bad_token_is_rejected_and_closed() -> None:
    node = Cluster()
    for port, query in enumerate(
        ["fmscluster=", make_query("other", "live", (B,), NOW), f"fmscluster=v1.{NOW:.0f}.a.b"]
    ):
        peer = _link(node, query, port + 1)
        assert "NetConnection.Connect.Rejected" in peer.statuses() and peer.closed


def test_a_link_with_the_token_plays_past_the_plugins_that_refuse_clients() -> None:
    NoPlay.connects = 0
    node = Cluster(NO_PLAY)
    Peer(node.factory, 2).connect(create_stream=True).publish("cam")
    client = Peer(node.factory, 3).connect(create_stream=True).play("cam")
    assert client.statuses()[-1] == "NetStream.Play.Failed"
    assert NoPlay.connects == 2
    link = _link(node, make_query(SECRET, "live", (B,), NOW)).play("cam")
    assert "NetStream.Play.Start" in link.statuses()
    assert NoPlay.connects == 2, "the plugins never saw the link"
    application = node.factory.application_for("live")
    assert application is not None and len(application.clients) == 2
    (doc,) = local_streams(node.factory, 0, NOW)
    assert doc["cluster_links"] == [B]
    link.lose()
    (doc,) = local_streams(node.factory, 0, NOW)
    assert doc["cluster_links"] == []


def test_a_link_whose_request_came_through_this_node_is_refused_as_a_loop() -> None:
    node = Cluster()
    peer = _link(node, make_query(SECRET, "live", (B, A), NOW))
    assert "NetConnection.Connect.Rejected" in peer.statuses() and peer.closed


def test_a_link_may_not_publish() -> None:
    node = Cluster()
    link = _link(node, make_query(SECRET, "live", (B,), NOW)).publish("cam")
    assert link.statuses()[-1] == "NetStream.Publish.BadName"
    assert node.factory.registry.get("live", "cam") is None


def test_a_pull_made_for_a_link_names_the_nodes_the_link_came_through() -> None:
    node = Cluster(cluster=replace(CLUSTER, parent=C))
    _link(node, make_query(SECRET, "live", (B,), NOW)).play("cam")
    url = _link_url(node.pull())
    via = _query(url.split("?", 1)[1])[VIA]
    assert via == f"{A},{B}"


# ------------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ('parent = "http://x"', "cluster.parent"),
        ('parent = "rtmp://x/live"', "cluster.parent"),
        ('parent = "rtmp://a"', "its own parent"),
        ("token_window = 0.5", "token_window"),
    ],
)
def test_bad_cluster_pull_options_are_refused(extra: str, problem: str) -> None:
    text = f'[cluster]\nredis = "redis://h"\nnode_url = "rtmp://a"\nsecret = "s"\n{extra}\n'
    with pytest.raises(ConfigError) as raised:
        parse_config(text)
    assert any(problem in line for line in raised.value.problems), raised.value.problems


def test_an_hls_viewer_of_a_stream_another_node_holds_starts_one_cluster_pull_from_it() -> None:
    """HLS viewers hold no connection: their requests count as demand (``PullService.want``),
    and the demand finds the cluster's source as a player's does."""
    node = Cluster()
    node.hold(B)
    pulls = node.factory.pulls
    for _ in range(3):
        assert pulls.want("live", "cam", 10.0) is not None
    assert node.dialled() == [("10.0.0.2", 1935)]
    assert node.pull().request.origin == "cluster"
