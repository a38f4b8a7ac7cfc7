"""This process as a node of a cluster (``[cluster]``): its part of the Redis stream directory
(:mod:`fms.cluster.directory`) wired into the server and started and stopped with it.

Two hooks, neither in the protocol module: the directory's plugin, last in every chain, decides
publishes (asynchronously, as plugins do); the server's publish listener tells the directory,
synchronously, when a client's publish goes on air and when it ends. The listener rather than
the plugins' ``published`` notification, which waits for the plugins before it (a slow webhook
could hold it past the entry's time to live); the listener slot is shared with the worker relay
(:class:`PublishListeners`).

Cluster pulls (:mod:`fms.cluster.pulls`): the pull service's locator, and the private path's
protocols (:mod:`fms.cluster.private`) that tell other nodes' links from clients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred

from fms.cluster.directory import DirectoryPlugin, StreamDirectory
from fms.cluster.private import PrivatePath, link_protocols
from fms.cluster.pulls import ClusterLocator, pulled_from_cluster
from fms.cluster.redis import RedisStore
from fms.config import Config
from fms.live.stream import LiveStream
from fms.log import Logger
from fms.server.factory import RTMPServerFactory
from fms.server.host import PublishListener

log = Logger(namespace="fms.cluster.node")


class PublishListeners:
    """Several :class:`~fms.server.host.PublishListener` in the factory's one slot, each told
    in turn; one that fails is logged and keeps none of the others from hearing."""

    def __init__(self, *listeners: PublishListener) -> None:
        self.listeners = listeners

    def publish_started(self, stream: LiveStream, peer: str) -> None:
        for listener in self.listeners:
            try:
                listener.publish_started(stream, peer)
            except Exception:
                log.failure("{listener} failed on a publish start", listener=listener)

    def publish_stopped(self, stream: LiveStream) -> None:
        for listener in self.listeners:
            try:
                listener.publish_stopped(stream)
            except Exception:
                log.failure("{listener} failed on a publish end", listener=listener)


class DirectoryListener:
    """Tells the directory of the publishes of this process's clients and configured pulls
    (relay links from other workers are not told: their publish is held by its own worker;
    nor are the streams ``skip`` names: those a cluster pull publishes, held elsewhere)."""

    def __init__(
        self, directory: StreamDirectory, skip: Callable[[LiveStream], bool] | None = None
    ) -> None:
        self.directory = directory
        self.skip = skip

    def publish_started(self, stream: LiveStream, peer: str) -> None:
        if self.skip is not None and self.skip(stream):
            return
        self.directory.published(stream.app, stream.name)

    def publish_stopped(self, stream: LiveStream) -> None:
        self.directory.unpublished(stream.app, stream.name)


class DirectoryService(Service):
    """Connects to Redis when the server starts; deletes this process's entries and closes
    the connection when it stops."""

    def __init__(self, directory: StreamDirectory, store: RedisStore) -> None:
        self.directory = directory
        self.store = store

    def startService(self) -> None:
        super().startService()
        self.store.start()
        self.directory.start()

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        done = self.directory.stop()
        done.addBoth(lambda _: self.store.stop())
        return done


def attach_directory(
    reactor: Any, config: Config, factory: RTMPServerFactory, root: MultiService, token: str
) -> StreamDirectory | None:
    """Make ``factory``'s publishes go through the cluster directory when ``[cluster]`` is on
    (None when it is off). ``token`` tells this process from the node's other workers."""
    cluster = config.cluster
    if not cluster.enabled:
        return None
    directory = StreamDirectory(cluster, reactor, token)
    store = RedisStore(
        reactor,
        cluster.redis,
        up=directory.store_up,
        down=directory.store_down,
        timeout=min(2.0, cluster.ttl / 2),
        maximum=max(1.0, min(10.0, cluster.ttl)),
    )
    directory.store = store
    wire(factory, directory)
    DirectoryService(directory, store).setServiceParent(root)
    return directory


def wire(factory: RTMPServerFactory, directory: StreamDirectory) -> None:
    """Make ``directory`` decide ``factory``'s publishes, hear of them, and show in its API;
    let ``factory`` pull the streams it does not hold from the cluster and serve the other
    nodes' links."""
    factory.chain_tail.append(DirectoryPlugin(directory))
    path = PrivatePath(directory.config)
    factory.protocol_variants.update(link_protocols(path))
    factory.pulls.locator = ClusterLocator(directory.config, directory, path, factory.clock)
    mine = DirectoryListener(directory, lambda stream: pulled_from_cluster(factory.pulls, stream))
    relay = factory.publish_listener
    factory.publish_listener = mine if relay is None else PublishListeners(relay, mine)
    factory.directory = directory
