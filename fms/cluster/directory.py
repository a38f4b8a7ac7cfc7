"""The cluster's stream directory: which node holds which published stream, kept in Redis.

One key per published stream, ``PREFIX + app/name``, whose value names the node that holds it:
``NODE_URL#TOKEN``, the node's public RTMP URL (what :meth:`StreamDirectory.where` answers and
the next node pulls from) and, after ``#``, the process of that node that publishes it (a
worker of ``fms run --workers``). Every key lives ``ttl`` seconds after its last refresh.

- A publish is decided (:class:`DirectoryPlugin`, the last plugin of every chain, so it sees the
  final name) with ``SET key value NX PX ttl``: atomically, so of two nodes asked at once one
  wins. A key held by another node refuses the publish with ``NetStream.Publish.BadName``, as a
  second publish of a name is refused on one node. A key held by this node (another worker of
  it, or this node before a restart) lets the publish go on to the node's own claims
  (:mod:`fms.cluster.claims`), which refuse a duplicate among the workers at once.
- Once the publish is on air the process holds the key: the :data:`~fms.cluster.redis.HOLD`
  script refreshes it every ``heartbeat`` seconds (and takes it over from another worker of
  this node). When the publisher leaves, the :data:`~fms.cluster.redis.DROP` script deletes it
  only while it still names this process.
- The workers of a node each talk to Redis for the streams they publish: one key per stream and
  node all the same (the node's claims let one worker publish a name), with no hop through a
  coordinator. Per-process values make the end of a publish on one worker unable to delete the
  entry a sibling worker took for the same name a moment later.
- A node that dies stops refreshing: its keys expire within ``ttl``.
- Redis unreachable: publishes are decided here alone (accepted; the outage is logged once),
  local streams go on, the connection is retried with backoff, and when it is back every stream
  this process holds is recorded again (a name another node took meanwhile is logged once as a
  conflict, and kept trying at each heartbeat).
"""

from __future__ import annotations

from typing import Any, Protocol

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from fms.apps.api import Plugin, Reject
from fms.apps.interfaces import IClientView
from fms.config.cluster import ClusterConfig
from fms.log import Logger
from fms.rtmp.status import StatusCode

log = Logger(namespace="fms.cluster.directory")

STOP_TIMEOUT = 1.0
"""Seconds a stopping process waits for Redis to delete its entries (then they expire)."""


class DirectoryUnavailable(Exception):
    """Redis cannot be reached: the directory cannot say who holds a stream."""


class Store(Protocol):
    """The requests the directory makes (:class:`~fms.cluster.redis.RedisStore`); each fails
    (errback) when Redis cannot be reached."""

    @property
    def connected(self) -> bool: ...

    def claim(self, key: str, value: str, ttl_ms: int) -> Deferred[bool]: ...
    def get(self, key: str) -> Deferred[str | None]: ...
    def hold(self, key: str, value: str, node: str, ttl_ms: int) -> Deferred[str | None]: ...
    def drop(self, key: str, value: str) -> Deferred[bool]: ...


def node_of(value: str) -> str:
    """The node URL of a directory value (``NODE_URL#TOKEN``)."""
    return value.split("#", 1)[0]


class StreamDirectory:
    """This process's part of the directory (see the module docstring). ``token`` tells this
    process from the node's other workers; ``store`` is set before :meth:`start`."""

    def __init__(self, config: ClusterConfig, clock: IReactorTime, token: str) -> None:
        self.config = config
        self.clock = clock
        self.node_url = config.node_url
        self.value = f"{config.node_url}#{token}"
        self.ttl_ms = round(config.ttl * 1000)
        self.store: Store | None = None
        self.held: dict[tuple[str, str], str] = {}
        """(app, name) -> key of every stream published by this process."""
        self._pending: dict[str, float] = {}
        """Keys set by a publish decision whose publish has not started (seconds set)."""
        self._conflicts: dict[str, str] = {}
        """key -> the other node that holds a stream this process publishes (logged once)."""
        self._outage = False
        self.outages = 0
        """Times Redis became unreachable (the first failed connection included)."""
        self._beat = LoopingCall(self.heartbeat)
        self._beat.clock = clock

    def key(self, app: str, name: str) -> str:
        return f"{self.config.prefix}{app}/{name}"

    def _ours(self, value: str) -> bool:
        return node_of(value) == self.node_url

    @property
    def connected(self) -> bool:
        return self.store is not None and self.store.connected

    # --------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        assert self.store is not None

        self._beat.start(self.config.interval, now=False)

    def stop(self) -> Deferred[Any]:
        """Stop the heartbeat and delete this process's entries (waiting at most
        :data:`STOP_TIMEOUT` seconds for Redis)."""
        if self._beat.running:
            self._beat.stop()
        drops = [self._drop(key) for key in self.held.values()] if self.connected else []
        self.held.clear()
        done: Deferred[Any] = DeferredList(drops, consumeErrors=True)
        done.addTimeout(STOP_TIMEOUT, self.clock, lambda *_: None)
        return done

    def store_up(self) -> None:
        """The connection to Redis is ready: record again everything held here."""
        if self._outage:
            log.info(
                "Redis reachable again: recording the {count} stream(s) this process publishes",
                count=len(self.held),
            )  # fmt: skip
        else:
            log.info("cluster directory connected; this node is {node}", node=self.node_url)
        self._outage = False
        self.heartbeat()

    def store_down(self, why: str) -> None:
        """An attempt failed or the connection was lost: logged once per outage."""
        if self._outage:
            return
        self._outage = True
        self.outages += 1
        log.warn(
            "Redis unreachable ({why}): publishes are decided by this node alone and local "
            "streams go on; retrying",
            why=why,
        )  # fmt: skip

    # ---------------------------------------------------------------------------- publishes

    def decide(self, app: str, name: str) -> Deferred[str | None]:
        """Before a publish of (app, name) is accepted here: None when it may go on (the key is
        this node's now, or Redis cannot say), else the URL of the node that holds it."""
        return Deferred.fromCoroutine(self._decide(app, name))

    async def _decide(self, app: str, name: str) -> str | None:
        store, key = self.store, self.key(app, name)
        if store is None or not store.connected:
            return None
        try:
            for _ in range(2):  # a second time when the holder's key expired in between
                if await store.claim(key, self.value, self.ttl_ms):
                    self._pending[key] = self.clock.seconds()
                    return None
                holder = await store.get(key)
                if holder is not None:
                    return None if self._ours(holder) else node_of(holder)
        except Exception as exc:  # the connection's loss is logged by store_down
            log.debug("directory: cannot decide {key}: {why}", key=key, why=exc)
        return None

    def published(self, app: str, name: str) -> None:
        """(app, name) went on air here: hold its key from now on."""
        key = self.key(app, name)
        self._pending.pop(key, None)
        self.held[(app, name)] = key
        if self.connected:
            self._hold(key)

    def unpublished(self, app: str, name: str) -> None:
        """The publish of (app, name) here ended: its key goes (while it names this process)."""
        key = self.held.pop((app, name), None)
        if key is None:
            return
        self._conflicts.pop(key, None)
        if self.connected:
            self._drop(key)

    def heartbeat(self) -> None:
        """Refresh every key held here; drop those of publish decisions that went nowhere."""
        if not self.connected:
            return
        for key in self.held.values():
            self._hold(key)
        stale = self.clock.seconds() - self.config.interval
        for key, when in list(self._pending.items()):
            if when < stale:
                del self._pending[key]
                self._drop(key)

    def _hold(self, key: str) -> None:
        assert self.store is not None
        self.store.hold(key, self.value, self.node_url + "#", self.ttl_ms).addCallbacks(
            lambda other: self._held(key, other), lambda f: self._failed(key, f)
        )

    def _held(self, key: str, other: str | None) -> None:
        if other is None:
            self._conflicts.pop(key, None)
            return
        holder = node_of(other)
        if key in self.held.values() and self._conflicts.get(key) != holder:
            self._conflicts[key] = holder
            log.warn(
                "directory conflict: {key} is published here and held by {holder} (taken "
                "while Redis was out of reach?); trying again at each heartbeat",
                key=key, holder=holder,
            )  # fmt: skip

    def _drop(self, key: str) -> Deferred[Any]:
        assert self.store is not None
        return self.store.drop(key, self.value).addErrback(lambda f: self._failed(key, f))

    def _failed(self, key: str, failure: Failure) -> None:
        log.debug("directory: request on {key} failed: {why}", key=key,
                  why=failure.getErrorMessage())  # fmt: skip

    # ------------------------------------------------------------------------------ lookups

    def where(self, app: str, name: str) -> Deferred[str | None]:
        """The URL of the node that holds (app, name), or None when no node does; fails with
        :class:`DirectoryUnavailable` while Redis cannot be reached."""
        if self.store is None or not self.store.connected:
            return Deferred.fromCoroutine(_unavailable())

        def url(value: str | None) -> str | None:
            return None if value is None else node_of(value)

        return self.store.get(self.key(app, name)).addCallback(url)

    def figures(self) -> dict[str, Any]:
        """This process's part of ``/api/v1/server`` and ``/metrics``."""
        return {
            "node_url": self.node_url,
            "connected": self.connected,
            "entries": len(self.held),
            "conflicts": len(self._conflicts),
            "outages": self.outages,
        }


async def _unavailable() -> str | None:
    raise DirectoryUnavailable("Redis cannot be reached")


class DirectoryPlugin(Plugin):
    """The last plugin of every application's chain when the cluster is on: it refuses the
    publish of a name another node holds (see the module docstring). The server's publish
    listener, not this plugin, tells the directory of publishes that start and end
    (:mod:`fms.cluster.node`)."""

    def __init__(self, directory: StreamDirectory) -> None:
        self.directory = directory

    def publish(self, client: IClientView, name: str, query: dict[str, str], kind: str) -> Any:
        def decided(holder: str | None) -> Reject | None:
            if holder is None:
                return None
            log.info(
                "refusing publish {app}/{stream} from {peer}: published on {node}",
                app=client.app, stream=name, peer=client.peer, node=holder,
            )  # fmt: skip
            return Reject(
                f"{name} is already being published.", code=StatusCode.PUBLISH_BAD_NAME.value
            )

        return self.directory.decide(client.app, name).addCallback(decided)
