"""The ``[cluster]`` table: the Redis stream directory shared by the nodes of a cluster
(:mod:`fms.cluster.directory`, ``docs/cluster.md``). Off while ``redis`` is empty."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from fms.config.fields import option as _opt


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

    @property
    def enabled(self) -> bool:
        return bool(self.redis)

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
    node = urlsplit(cluster.node_url)
    if node.scheme not in ("rtmp", "rtmps") or not node.hostname or "#" in cluster.node_url:
        problems.append(
            f"{where}.node_url: {cluster.node_url!r} is not rtmp://host[:port] (without #)"
        )
    if not cluster.secret:
        problems.append(f"{where}.secret: required with redis (the nodes' private links)")
    if cluster.interval >= cluster.ttl:
        problems.append(
            f"{where}.heartbeat: {cluster.interval} s is not below ttl ({cluster.ttl} s): "
            "entries would expire between refreshes"
        )
    return problems


def redis_db(url: str) -> int:
    """The database number of a ``redis://`` URL (0 when the path names none)."""
    path = urlsplit(url).path.strip("/")
    if not path:
        return 0
    if not path.isdigit():
        raise ValueError(f"database {path!r} is not a number")
    return int(path)
