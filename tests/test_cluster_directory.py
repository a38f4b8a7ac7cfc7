"""The cluster directory's decisions (:mod:`fms.cluster.directory`) against an in-memory Redis
whose keys expire on a fake clock: no sockets, no wall clock. The real Redis and real nodes
are in ``tests/e2e/test_cluster_directory.py``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from fms.apps.api import Reject
from fms.cluster.directory import DirectoryPlugin, DirectoryUnavailable, StreamDirectory
from fms.config import parse_config
from fms.config.cluster import ClusterConfig
from fms.errors import ConfigError
from tests.support.logs import log_lines

A = "rtmp://10.0.0.1:1935"
B = "rtmp://10.0.0.2:1935"
CONFIG = ClusterConfig(redis="redis://127.0.0.1:6379", node_url=A, ttl=6.0, secret="s")
KEY = "fms:stream:live/cam"


class MemoryRedis:
    """The four requests of :class:`~fms.cluster.redis.RedisStore` with Redis's semantics
    (``SET NX PX``, the HOLD and DROP scripts), keys expiring on ``clock``; ``connected``
    False makes every request fail as an unreachable Redis does."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.keys: dict[str, tuple[str, float]] = {}
        self.connected = True

    def value(self, key: str) -> str | None:
        found = self.keys.get(key)
        if found is None or found[1] <= self.clock.seconds():
            self.keys.pop(key, None)
            return None
        return found[0]

    def put(self, key: str, value: str, ttl_ms: int) -> None:
        self.keys[key] = (value, self.clock.seconds() + ttl_ms / 1000)

    def _answer(self, value: Any) -> Deferred[Any]:
        return succeed(value) if self.connected else fail(ConnectionError("down"))

    def claim(self, key: str, value: str, ttl_ms: int) -> Deferred[bool]:
        if not self.connected:
            return self._answer(None)
        if self.value(key) is not None:
            return succeed(False)
        self.put(key, value, ttl_ms)
        return succeed(True)

    def get(self, key: str) -> Deferred[str | None]:
        return self._answer(self.value(key))

    def hold(self, key: str, value: str, node: str, ttl_ms: int) -> Deferred[str | None]:
        if not self.connected:
            return self._answer(None)
        now = self.value(key)
        if now is None or now == value or now.startswith(node):
            self.put(key, value, ttl_ms)
            return succeed(None)
        return succeed(now)

    def drop(self, key: str, value: str) -> Deferred[bool]:
        if not self.connected:
            return self._answer(None)
        if self.value(key) == value:
            del self.keys[key]
            return succeed(True)
        return succeed(False)


def result(d: Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "the deferred did not fire"
    return out[0]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def redis(clock: Clock) -> MemoryRedis:
    return MemoryRedis(clock)


def node(clock: Clock, redis: MemoryRedis, token: str = "1", url: str = A) -> StreamDirectory:
    directory = StreamDirectory(replace(CONFIG, node_url=url), clock, token)
    directory.store = redis
    directory.start()
    return directory


@pytest.fixture
def logged() -> Iterator[list[str]]:
    yield from log_lines()


def test_a_free_name_is_recorded_with_this_node_and_process_for_the_ttl(
    clock: Clock, redis: MemoryRedis
) -> None:
    directory = node(clock, redis)
    assert result(directory.decide("live", "cam")) is None
    assert redis.value(KEY) == f"{A}#1"
    assert redis.keys[KEY][1] == CONFIG.ttl


def test_a_name_held_by_another_node_is_refused_with_that_node(
    clock: Clock, redis: MemoryRedis
) -> None:
    redis.put(KEY, f"{B}#7", 6000)
    directory = node(clock, redis)
    assert result(directory.decide("live", "cam")) == B
    assert redis.value(KEY) == f"{B}#7", "the other node's entry is left alone"


def test_a_name_held_by_another_worker_of_this_node_goes_on_to_the_local_claims(
    clock: Clock, redis: MemoryRedis
) -> None:
    redis.put(KEY, f"{A}#2", 6000)
    assert result(node(clock, redis, "1").decide("live", "cam")) is None
    assert redis.value(KEY) == f"{A}#2", "the decision does not take the sibling's entry"


def test_the_heartbeat_keeps_a_published_stream_past_its_ttl(
    clock: Clock, redis: MemoryRedis
) -> None:
    directory = node(clock, redis)
    result(directory.decide("live", "cam"))
    directory.published("live", "cam")
    clock.pump([CONFIG.interval] * 10)  # 20 s, over three TTLs
    assert redis.value(KEY) == f"{A}#1"


def test_an_entry_whose_node_stops_refreshing_expires_after_the_ttl(
    clock: Clock, redis: MemoryRedis
) -> None:
    directory = node(clock, redis)
    result(directory.decide("live", "cam"))
    directory.published("live", "cam")
    clock.advance(CONFIG.interval)
    directory._beat.stop()  # the node dies: no drop, no refresh
    clock.advance(CONFIG.ttl - 0.01)
    assert redis.value(KEY) is not None, "not before the TTL"
    clock.advance(0.02)
    assert redis.value(KEY) is None


def test_the_end_of_a_publish_deletes_its_entry(clock: Clock, redis: MemoryRedis) -> None:
    directory = node(clock, redis)
    result(directory.decide("live", "cam"))
    directory.published("live", "cam")
    directory.unpublished("live", "cam")
    assert redis.value(KEY) is None
    assert directory.figures()["entries"] == 0


def test_the_end_of_a_publish_leaves_an_entry_another_process_took(
    clock: Clock, redis: MemoryRedis
) -> None:
    one, two = node(clock, redis, "1"), node(clock, redis, "2")
    result(one.decide("live", "cam"))
    one.published("live", "cam")
    two.published("live", "cam")  # the sibling worker publishes it once one released it
    one.unpublished("live", "cam")
    assert redis.value(KEY) == f"{A}#2"


def test_a_decision_whose_publish_never_started_is_dropped_at_a_later_heartbeat(
    clock: Clock, redis: MemoryRedis
) -> None:
    directory = node(clock, redis)
    result(directory.decide("live", "cam"))
    clock.advance(CONFIG.interval)
    assert redis.value(KEY) is not None, "still within one interval"
    clock.advance(CONFIG.interval)
    assert redis.value(KEY) is None


def test_without_redis_a_publish_is_accepted_and_the_outage_logged_once(
    clock: Clock, redis: MemoryRedis, logged: list[str]
) -> None:
    directory = node(clock, redis)
    redis.connected = False
    directory.store_down("connection lost")
    directory.store_down("connection refused")
    assert result(directory.decide("live", "cam")) is None
    assert sum("Redis unreachable" in line for line in logged) == 1
    assert directory.figures()["outages"] == 1


def test_a_connection_lost_during_a_decision_accepts_the_publish(
    clock: Clock, redis: MemoryRedis
) -> None:
    directory = node(clock, redis)

    def lost(*args: Any) -> Deferred[bool]:
        return fail(ConnectionError("lost"))

    redis.claim = lost  # type: ignore[method-assign]
    assert result(directory.decide("live", "cam")) is None


def test_redis_back_records_every_stream_held_here_again(clock: Clock, redis: MemoryRedis) -> None:
    directory = node(clock, redis)
    for name in ("cam", "cam2"):
        result(directory.decide("live", name))
        directory.published("live", name)
    redis.connected = False
    directory.store_down("connection lost")
    redis.keys.clear()  # Redis restarted empty
    redis.connected = True
    directory.store_up()
    assert redis.value(KEY) == f"{A}#1"
    assert redis.value(KEY + "2") == f"{A}#1"


def test_a_name_taken_by_another_node_during_an_outage_is_logged_once_as_a_conflict(
    clock: Clock, redis: MemoryRedis, logged: list[str]
) -> None:
    directory = node(clock, redis)
    result(directory.decide("live", "cam"))
    directory.published("live", "cam")
    redis.connected = False
    directory.store_down("connection lost")
    redis.keys.clear()
    redis.put(KEY, f"{B}#3", 60_000)
    redis.connected = True
    directory.store_up()
    clock.pump([CONFIG.interval] * 3)
    assert redis.value(KEY) == f"{B}#3", "the other node keeps it"
    assert sum("directory conflict" in line and B in line for line in logged) == 1
    assert directory.figures()["conflicts"] == 1


def test_where_names_the_node_that_holds_a_stream(clock: Clock, redis: MemoryRedis) -> None:
    redis.put(KEY, f"{B}#3", 6000)
    directory = node(clock, redis)
    assert result(directory.where("live", "cam")) == B
    assert result(directory.where("live", "other")) is None


def test_where_fails_while_redis_is_unreachable(clock: Clock, redis: MemoryRedis) -> None:
    directory = node(clock, redis)
    redis.connected = False
    failure = result(directory.where("live", "cam"))
    assert failure.check(DirectoryUnavailable)


class Client:
    app = "live"
    peer = "127.0.0.1:5000"


def test_the_plugin_refuses_a_name_held_elsewhere_with_bad_name(
    clock: Clock, redis: MemoryRedis
) -> None:
    redis.put(KEY, f"{B}#3", 6000)
    plugin = DirectoryPlugin(node(clock, redis))
    verdict = result(plugin.publish(Client(), "cam", {}, "live"))  # type: ignore[arg-type]
    assert isinstance(verdict, Reject)
    assert verdict.code == "NetStream.Publish.BadName"


def test_the_plugin_lets_a_free_name_go_on(clock: Clock, redis: MemoryRedis) -> None:
    plugin = DirectoryPlugin(node(clock, redis))
    assert result(plugin.publish(Client(), "cam", {}, "live")) is None  # type: ignore[arg-type]


def test_the_heartbeat_defaults_to_a_third_of_the_ttl() -> None:
    assert ClusterConfig(ttl=6.0).interval == 2.0
    assert ClusterConfig(ttl=6.0, heartbeat=1.5).interval == 1.5


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('redis = "redis://h"\nnode_url = "rtmp://a:1935"\n', "secret: required"),
        ('redis = "redis://h"\nsecret = "s"\n', "node_url"),
        ('redis = "http://h"\nnode_url = "rtmp://a"\nsecret = "s"\n', "cluster.redis"),
        ('redis = "redis://h"\nnode_url = "rtmp://a#x"\nsecret = "s"\n', "node_url"),
        ('redis = "redis://h"\nnode_url = "rtmp://a"\nsecret = "s"\nheartbeat = 5.0\n', "below"),
    ],
)
def test_a_cluster_configuration_that_cannot_work_stops_startup(table: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_config("[cluster]\n" + table)


def test_the_cluster_is_off_without_a_redis_url() -> None:
    assert not parse_config("").cluster.enabled


def test_the_redis_connection_is_retried_with_a_doubling_backoff_reset_by_a_success(
    clock: Clock,
) -> None:
    from twisted.python.failure import Failure

    from fms.cluster.redis import RedisStore

    downs: list[str] = []
    ups: list[bool] = []
    store = RedisStore(
        clock, "redis://127.0.0.1:1/0", up=lambda: ups.append(True), down=downs.append,
        initial=0.5, maximum=4.0,
    )  # fmt: skip
    attempts = 0

    def attempt() -> None:  # every connection attempt fails (Redis is down)
        nonlocal attempts
        attempts += 1
        store._retry = None
        store._failed(Failure(ConnectionRefusedError("refused")))

    store._connect = attempt  # type: ignore[method-assign]
    store.start()
    delays = []
    for _ in range(6):
        (call,) = clock.getDelayedCalls()
        delays.append(call.getTime() - clock.seconds())
        clock.advance(delays[-1])
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert attempts == 7 and len(downs) == 7

    class Connection:  # Redis answered: the connection is ready, then lost
        def __init__(self) -> None:
            self.gone: Deferred[None] = Deferred()

        def whenDisconnected(self) -> Deferred[None]:
            return self.gone

    (call,) = clock.getDelayedCalls()
    call.cancel()
    connection = Connection()
    store._ready(connection)
    assert store.connected and ups == [True]
    connection.gone.callback(None)
    assert not store.connected and downs[-1] == "connection lost"
    (call,) = clock.getDelayedCalls()
    assert call.getTime() - clock.seconds() == 0.5, "a success starts the backoff afresh"
    store.stop()
    assert not clock.getDelayedCalls(), "stop() cancels the next attempt"


def test_every_publish_listener_hears_even_when_one_before_it_fails(
    clock: Clock, redis: MemoryRedis, logged: list[str]
) -> None:
    from fms.cluster.node import DirectoryListener, PublishListeners

    class Broken:
        def publish_started(self, stream: Any, peer: str) -> None:
            raise RuntimeError("relay broke")

        def publish_stopped(self, stream: Any) -> None:
            raise RuntimeError("relay broke")

    class Stream:
        app, name = "live", "cam"

    directory = node(clock, redis)
    listeners = PublishListeners(Broken(), DirectoryListener(directory))
    listeners.publish_started(Stream(), "127.0.0.1:5000")  # type: ignore[arg-type]
    assert redis.value(KEY) == f"{A}#1" and directory.figures()["entries"] == 1
    listeners.publish_stopped(Stream())  # type: ignore[arg-type]
    assert redis.value(KEY) is None and directory.figures()["entries"] == 0
    assert sum("failed on a publish" in line for line in logged) == 2


def test_through_the_server_a_name_held_elsewhere_gets_bad_name_and_a_free_one_is_held() -> None:
    """The wiring (:func:`fms.cluster.node.wire`) on a real factory and in-memory clients: the
    plugin decides, the publish listener holds and drops."""
    from fms.cluster.node import wire
    from tests.support.server_peer import Peer, clock_of, factory_for

    factory = factory_for()
    clock = clock_of(factory)
    memory = MemoryRedis(clock)
    directory = node(clock, memory)
    wire(factory, directory)
    memory.put("fms:stream:live/taken", f"{B}#3", 6000)
    refused = Peer(factory, port=1).connect(create_stream=True).publish("taken")
    assert refused.statuses()[-1] == "NetStream.Publish.BadName"
    assert factory.registry.get("live", "taken") is None
    publisher = Peer(factory, port=2).connect(create_stream=True).publish("cam")
    assert publisher.statuses()[-1] == "NetStream.Publish.Start"
    assert memory.value(KEY) == f"{A}#1"
    assert factory.directory is directory and directory.figures()["entries"] == 1
    publisher.lose()
    assert memory.value(KEY) is None


def test_a_reload_that_changes_the_cluster_says_it_waits_for_a_restart(
    logged: list[str],
) -> None:
    from tests.support.server_peer import factory_for

    factory = factory_for()
    factory.reload(
        parse_config('[cluster]\nredis = "redis://h"\nnode_url = "rtmp://a"\nsecret = "s"\n')
    )
    assert any("[cluster] changes take effect at the next restart" in line for line in logged)
