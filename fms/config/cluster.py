"""The ``[cluster]`` table: the Redis stream directory shared by the nodes of a cluster
(:mod:`fms.cluster.directory`, ``docs/cluster.md``). Off while ``redis`` is empty."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from fms.config.fields import option as _opt

PULL_RETRY_FIRST = 0.5
"""Seconds before the second try of a cluster pull (doubled after each failure)."""


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Which node holds which published stream, in Redis: ``app/stream -> node_url`` set when a
    publish is accepted (refused if another node holds the name), refreshed every
    ``heartbeat`` seconds, expiring ``ttl`` seconds after the node stops refreshing it."""

    redis: str = _opt(
        "", doc="Redis URL (redis://[:password@]host[:port][/db]); empty: no cluster directory"
    )
    node_url: str = _opt(
        "", doc="this node's public RTMP URL (rtmp://10.0.0.5:1935), what the directory records"
    )
    ttl: float = _opt(
        5.0, minimum=1.0, maximum=3600.0, doc="seconds an entry outlives its node's last refresh"
    )
    heartbeat: float = _opt(
        0.0, minimum=0.0, doc="seconds between refreshes of this node's entries; 0: ttl / 3"
    )
    secret: str = _opt(
        "", doc="token shared by the nodes for their private links (required with redis)"
    )
    prefix: str = _opt("fms:stream:", doc="prefix of the directory's keys (PREFIX + app/stream)")
    pull: bool = _opt(True, doc="pull a stream played here and held by another node from that node")
    parent: str = _opt(
        "", doc="node to pull from instead of the holder (rtmp://host[:port]); empty: flat"
    )
    pull_idle_timeout: float = _opt(
        10.0, minimum=0.0, doc="seconds a cluster pull outlives its last player"
    )
    pull_retry_max: float = _opt(
        0.0, minimum=0.0, doc="largest delay between two tries of a cluster pull; 0: ttl / 2"
    )
    pull_start_timeout: float = _opt(
        10.0, minimum=1.0, doc="seconds a try of a cluster pull may take to deliver media"
    )
    token_window: float = _opt(
        30.0, minimum=1.0, maximum=3600.0,
        doc="seconds a link token is valid after it was made (clock skew between nodes included)",
    )  # fmt: skip

    @property
    def enabled(self) -> bool:
        return bool(self.redis)

    @property
    def retry_max(self) -> float:
        """The largest delay between two tries of a cluster pull (seconds)."""
        return self.pull_retry_max if self.pull_retry_max > 0 else self.ttl / 2

    @property
    def retry_initial(self) -> float:
        """The first delay after a failed try of a cluster pull (seconds): short, so that
        players resume quickly when the stream comes back on another node."""
        return min(PULL_RETRY_FIRST, self.retry_max)

    @property
    def interval(self) -> float:
        """Seconds between two refreshes of this node's entries."""
        return self.heartbeat if self.heartbeat > 0 else self.ttl / 3


def cluster_problems(cluster: ClusterConfig, where: str) -> list[str]:
    """What keeps ``cluster`` from being used (empty: nothing)."""
    if not cluster.enabled:
        return []
    problems = []
    parts = urlsplit(cluster.redis)
    if parts.scheme != "redis" or not parts.hostname:
        problems.append(f"{where}.redis: {cluster.redis!r} is not redis://host[:port][/db]")
    else:
        try:
            parts.port  # noqa: B018 - raises ValueError when out of range
            redis_db(cluster.redis)
        except ValueError as exc:
            problems.append(f"{where}.redis: {cluster.redis!r}: {exc}")
    if not _node_url(cluster.node_url):
        problems.append(
            f"{where}.node_url: {cluster.node_url!r} is not rtmp://host[:port] (without #)"
        )
    if cluster.parent and not _node_url(cluster.parent):
        problems.append(f"{where}.parent: {cluster.parent!r} is not rtmp://host[:port]")
    elif cluster.parent and cluster.parent.rstrip("/") == cluster.node_url.rstrip("/"):
        problems.append(f"{where}.parent: a node cannot be its own parent")
    if not cluster.secret:
        problems.append(f"{where}.secret: required with redis (the nodes' private links)")
    if cluster.interval >= cluster.ttl:
        problems.append(
            f"{where}.heartbeat: {cluster.interval} s is not below ttl ({cluster.ttl} s): "
            "entries would expire between refreshes"
        )
    return problems


def _node_url(url: str) -> bool:
    """Whether ``url`` is a node's base URL: ``rtmp[s]://host[:port]``, no path beyond ``/``,
    no query, and none of the characters the link token uses as separators (``#``, ``,``)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError when out of range
    except ValueError:
        return False
    return (
        parts.scheme in ("rtmp", "rtmps")
        and bool(parts.hostname)
        and parts.path in ("", "/")
        and not parts.query
        and not any(c in url for c in "#,")
    )


def redis_db(url: str) -> int:
    """The database number of a ``redis://`` URL (0 when the path names none)."""
    path = urlsplit(url).path.strip("/")
    if not path:
        return 0
    if not path.isdigit():
        raise ValueError(f"database {path!r} is not a number")
    return int(path)
