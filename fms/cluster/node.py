"""This process as a node of a cluster (``[cluster]``): its part of the Redis stream directory
(:mod:`fms.cluster.directory`) wired into the server and started and stopped with it."""

from __future__ import annotations

from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred

from fms.cluster.directory import DirectoryPlugin, StreamDirectory
from fms.cluster.redis import RedisStore
from fms.config import Config
from fms.server.factory import RTMPServerFactory


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
    factory.chain_tail.append(DirectoryPlugin(directory))
    factory.directory = directory
    DirectoryService(directory, store).setServiceParent(root)
    return directory
