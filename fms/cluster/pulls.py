"""Cluster pulls: a node asked to play a stream it does not hold pulls it from the cluster.

The server's pull service (:mod:`fms.server.pull`) asks its :class:`~fms.server.pull.Locator`
for a stream that nobody publishes here and no ``[[apps.NAME.pull]]`` table takes; this is the
cluster's. Its request is an on-demand pull (one per stream per process, shared by every
player of it, RTMP and HTTP alike) with the cluster's short backoff (``retry_initial`` 0.5 s,
doubling up to ``[cluster] pull_retry_max``, ttl / 2 by default), so players waiting on a
stream that moved resume quickly. At *each* try the source is named anew:

- flat (no ``[cluster] parent``, the default): the node the directory names
  (:meth:`~fms.cluster.directory.StreamDirectory.where`); none, this node itself, or Redis out
  of reach (:class:`~fms.cluster.directory.DirectoryUnavailable`) makes the try fail, and it is
  retried while players remain;
- tree (``parent`` set): the parent, which pulls the stream itself when a link asks it for a
  stream it does not hold (from its own parent, or the holder).

Each try's URL carries a fresh token (:mod:`fms.cluster.token`) naming the nodes the request
went through. A stream a cluster pull publishes here is not recorded in the directory as held by
this node (:func:`pulled_from_cluster`): the holder stays the node its publisher reached.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from fms.apps.pulls import PullRequest
from fms.cluster.directory import StreamDirectory
from fms.cluster.private import PrivatePath
from fms.config.cluster import ClusterConfig
from fms.live.stream import LiveStream
from fms.log import Logger
from fms.server.pull import PullService

log = Logger(namespace="fms.cluster.pulls")

ORIGIN = "cluster"
"""The ``origin`` of a cluster pull in the stream API's pull figures."""


class ClusterLocator:
    """The cluster's :class:`~fms.server.pull.Locator` for one process."""

    def __init__(
        self, cluster: ClusterConfig, directory: StreamDirectory, path: PrivatePath, clock: Any
    ) -> None:
        self.cluster = cluster
        self.directory = directory
        self.path = path
        self.clock = clock

    def request_for(self, app: str, name: str) -> PullRequest | None:
        cluster = self.cluster
        if not cluster.pull:
            return None
        return PullRequest(
            app, name, cluster.parent.rstrip("/") or ORIGIN, name, mode="on-demand",
            idle_timeout=cluster.pull_idle_timeout, retry_initial=cluster.retry_initial,
            retry_max=cluster.retry_max, start_timeout=cluster.pull_start_timeout,
            origin=ORIGIN,
        )  # fmt: skip

    def locate(self, request: PullRequest) -> Deferred[str | None]:
        return Deferred.fromCoroutine(self._locate(request.app, request.name))

    async def _locate(self, app: str, name: str) -> str | None:
        base: str | None = self.cluster.parent
        if not base:
            base = await self.directory.where(app, name)
            if base is None:
                return None
            if base.rstrip("/").lower() == self.path.node_url.lower():
                log.debug("{app}/{stream}: the directory names this node", app=app, stream=name)
                return None  # published here soon (another worker), or a stale entry
        return self.path.url(base, app, name, self.clock.seconds())


def pulled_from_cluster(pulls: PullService, stream: LiveStream) -> bool:
    """Whether a cluster pull publishes ``stream`` (then the directory is not told)."""
    pull = pulls.publisher(stream)
    return pull is not None and pull.request.origin == ORIGIN
