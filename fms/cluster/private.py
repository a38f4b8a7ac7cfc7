"""The serving side of the cluster's private path: other nodes' pulls, told from clients.

With ``[cluster]`` on, every RTMP connection of the node is a :class:`ClusterLinkProtocol`
(the factory's :attr:`~fms.server.factory.RTMPServerFactory.protocol_variants`). A ``connect``
whose query carries the cluster marker (``fmscluster``, :mod:`fms.cluster.token`) is checked
*before any plugin*:

- a valid token: the connection is another node's link. Plugins never see it: not its
  ``connect``, not its plays, not among the application's clients (plugins decided on the node
  the player reached). It may only play; its plays are counted per stream and node
  (:attr:`PrivatePath.links`, the ``cluster_links`` of the stream API);
- a missing, wrong, expired or replayed token, or one whose ``via`` names this node (a loop
  of parents): refused with ``NetConnection.Connect.Rejected``, one log line, and closed.

A ``connect`` without the marker is a client's, decided by the plugins as always.
"""

from __future__ import annotations

from typing import Any

from fms.apps.application import Application
from fms.apps.verdict import accepted
from fms.cluster.token import MARKER, MAX_VIA, TokenCheck, TokenRefused, make_query
from fms.config.cluster import ClusterConfig
from fms.log import Logger
from fms.rtmp import events as ev
from fms.rtmp.status import StatusCode
from fms.server.protocol import RTMPServerProtocol
from fms.server.proxied import ProxiedRTMPServerProtocol, ProxyCheckingRTMPServerProtocol

log = Logger(namespace="fms.cluster.private")


class PrivatePath:
    """This process's end of the private path: the token check, the links of other nodes
    that play here (and through which nodes their requests came, for the requests this node
    makes in turn), and the URLs of this node's own links."""

    def __init__(self, cluster: ClusterConfig) -> None:
        self.cluster = cluster
        self.node_url = cluster.node_url.rstrip("/")
        self.check = TokenCheck(cluster.secret, cluster.token_window, self.node_url)
        self.links: dict[tuple[str, str], list[tuple[str, ...]]] = {}
        """(app, stream) -> the ``via`` of each link playing it here."""
        self.refused = 0
        """Private-path connects refused (bad token, loop)."""

    def played(self, app: str, name: str, via: tuple[str, ...]) -> None:
        self.links.setdefault((app, name), []).append(via)

    def stopped(self, app: str, name: str, via: tuple[str, ...]) -> None:
        vias = self.links.get((app, name))
        if vias is not None and via in vias:
            vias.remove(via)
            if not vias:
                del self.links[(app, name)]

    def via_for(self, app: str, name: str) -> tuple[str, ...]:
        """The ``via`` of a request this node makes for (app, name): itself first, then every
        node whose link asks it for the stream (so that a node further up refuses a loop)."""
        chain = [self.node_url]
        for via in self.links.get((app, name), ()):
            chain.extend(node for node in via if node not in chain)
        return tuple(chain[: MAX_VIA + 1])

    def url(self, base: str, app: str, name: str, now: float) -> str:
        """The URL of a link to the node at ``base`` for (app, name), with a token made at
        ``now`` (Unix seconds)."""
        query = make_query(self.cluster.secret, app, self.via_for(app, name), now)
        return f"{base.rstrip('/')}/{app}?{query}"


class ClusterLinkProtocol(RTMPServerProtocol):
    """A connection of a cluster node: a client's (plugins decide, as always), or another
    node's private-path link (see the module docstring). ``path`` is set on the subclasses
    :func:`link_protocols` makes."""

    path: PrivatePath
    cluster_node: str | None = None
    """The node at the other end of a private-path link (its ``node_url``), else None."""
    cluster_via: tuple[str, ...] = ()

    def _decide_connect(self, event: ev.ConnectRequested, application: Application) -> None:
        if MARKER not in event.query:
            super()._decide_connect(event, application)
            return
        conn = self.connection
        assert conn is not None
        try:
            via = self.path.check.verify(event.app, event.query, self.server.clock.seconds())
        except TokenRefused as exc:
            self.path.refused += 1
            log.warn("refusing cluster link from {peer}: {why}", peer=self.peer, why=exc)
            conn.reject_connect(event, "cluster link refused", code=StatusCode.CONNECT_REJECTED)
            return
        self.application = None  # plugins never hear of a link
        self.cluster_via, self.cluster_node = via, via[0]
        self._make_view(event)
        log.info("cluster link from {node} ({peer}): app {app!r}",
                 node=via[0], peer=self.peer, app=event.app)  # fmt: skip
        conn.accept_connect(event)
        self.server.connected(self)
        conn.set_publish_or_play_timeout(self.config.publish_or_play_timeout(event.app))
        self._reschedule()

    def _on_play(self, event: ev.PlayRequested) -> None:
        if self.cluster_node is None:
            super()._on_play(event)
            return
        assert self.app is not None
        self.path.played(self.app, event.name, self.cluster_via)
        self._play_decided(event, accepted(event.name))

    def _stop_playing(self, sid: int, *, lost: bool = False) -> None:
        entry = self.playing.get(sid)
        if self.cluster_node is not None and entry is not None and self.app is not None:
            self.path.stopped(self.app, entry[0].name, self.cluster_via)
        super()._stop_playing(sid, lost=lost)

    def _on_publish(self, event: ev.PublishRequested) -> None:
        if self.cluster_node is None:
            super()._on_publish(event)
            return
        assert self.connection is not None
        self.connection.reject_publish(
            event.stream_id, event.name, description="a cluster link only plays"
        )

    def _on_call(self, event: ev.CallRequested) -> None:
        if self.cluster_node is None:
            super()._on_call(event)  # a link's calls have no plugin to answer them


def link_protocols(path: PrivatePath) -> dict[type[RTMPServerProtocol], type[RTMPServerProtocol]]:
    """The factory's protocols, each with the private path of ``path`` (for
    :attr:`~fms.server.factory.RTMPServerFactory.protocol_variants`)."""
    variants: dict[type[RTMPServerProtocol], type[RTMPServerProtocol]] = {}
    for base in (RTMPServerProtocol, ProxiedRTMPServerProtocol, ProxyCheckingRTMPServerProtocol):
        bases: tuple[type, ...] = (ClusterLinkProtocol,) if base is RTMPServerProtocol else (
            ClusterLinkProtocol, base)  # fmt: skip
        attributes: dict[str, Any] = {"path": path}
        variants[base] = type(f"Cluster{base.__name__}", bases, attributes)
    return variants
