"""The JSON documents of the API, built from one process's state and merged across workers.

Each worker builds its *local* part (:func:`local_streams`, :func:`local_clients`,
:func:`local_server`); the answering worker merges its own with the others' (received over the
control channel, :class:`fms.http.peers.Peers`) with the ``merge_*`` functions, which are the
same with one worker. No Twisted here: the state is read, never changed.

A stream is known on every worker (the relay mirrors each publish everywhere), so its figures
come from the worker that holds the publisher (``origin``) and its ``players`` and
``bytes_out`` are the sum of every worker's own players: exact whatever worker answers.
"""

from __future__ import annotations

import os
import resource
from typing import TYPE_CHECKING, Any

from fms.server.actions import (
    client_figures,
    is_client,
    plays_or_publishes,
)

if TYPE_CHECKING:
    from fms.server.factory import RTMPServerFactory
    from fms.server.protocol import RTMPServerProtocol

API_VERSION = "v1"


def client_id(worker: int, proto_id: int) -> str:
    """A client's id in the API: ``WORKER-N`` (worker 0 on one process), unique across the
    workers of one server."""
    return f"{worker}-{proto_id}"


def parse_client_id(text: str) -> tuple[int, int] | None:
    """(worker, connection number) of an id made by :func:`client_id`; None if malformed."""
    worker, sep, number = text.partition("-")
    if not sep or not worker.isdigit() or not number.isdigit():
        return None
    return int(worker), int(number)


def _publisher(stream: Any, worker: int) -> dict[str, Any] | None:
    view = stream.publisher
    if view is None:
        return None
    link = getattr(view, "_link", None)
    return {
        "id": client_id(worker, link.id) if link is not None else None,
        "address": getattr(view, "peer", None),
        "agent": getattr(view, "agent", None),
    }


def _origin(stream: Any) -> bool:
    """Whether ``stream``'s publisher is a client of this process (not a relay link)."""
    link = getattr(stream.publisher, "_link", None)
    return link is not None and bool(getattr(link, "claims_names", False))


def local_streams(server: RTMPServerFactory, worker: int, now: float) -> list[dict[str, Any]]:
    """This process's streams: the figures of :meth:`LiveStream.figures
    <fms.live.stream.LiveStream.figures>` with ``app``, ``name``, ``publisher`` (the client
    publishing here, else None), ``origin`` (whether it publishes on this process),
    ``players`` and ``bytes_out`` of this process's players only (pushes are players of the
    stream, listed under ``pushes`` rather than counted in ``players``), and ``pull``: the
    figures of the pull of the stream (``docs/pull.md``), or None."""
    out = []
    for stream in server.registry:
        figures = stream.figures(now)
        origin = _origin(stream)
        publisher = _publisher(stream, worker) if origin else None
        puller = server.pulls.publisher(stream)
        if puller is not None:  # a pull publishes it: no client to name
            origin = True
            publisher = {"id": None, "address": puller.url, "agent": puller.view.agent}
        figures.update(
            app=stream.app,
            name=stream.name,
            publisher=publisher,
            origin=origin,
            players=len(stream.players) - server.pushes.players(stream),
            pushes=server.pushes.figures(stream),
            pull=server.pulls.figures(stream),
            cluster_links=_cluster_links(stream),
        )
        out.append(figures)
    return out


def _cluster_links(stream: Any) -> list[str]:
    """The nodes whose private-path links (:mod:`fms.cluster.private`) play ``stream`` here,
    one entry per link, sorted."""
    nodes = (getattr(getattr(p.sink, "proto", None), "cluster_node", None) for p in stream.players)
    return sorted(node for node in nodes if node)


def merge_streams(parts: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One document per (app, name) from every worker's :func:`local_streams`: the origin's
    figures (or any worker's when none publishes it), players and bytes out added up. Sorted
    by app, then name."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for part in parts:
        for doc in part:
            key = (doc["app"], doc["name"])
            have = merged.get(key)
            if have is None:
                merged[key] = dict(doc)
                continue
            players = have["players"] + doc["players"]
            links = sorted(have.get("cluster_links", []) + doc.get("cluster_links", []))
            bytes_out = have["bytes_out"] + doc["bytes_out"]
            if doc["origin"] and not have["origin"]:
                have = merged[key] = dict(doc)
            have["players"], have["bytes_out"] = players, bytes_out
            have["cluster_links"] = links
    for doc in merged.values():
        doc["published"] = bool(doc["published"] or doc["origin"])
        del doc["origin"]
    return [merged[key] for key in sorted(merged)]


def local_clients(
    server: RTMPServerFactory,
    worker: int,
    now: float,
    app: str | None = None,
    stream: str | None = None,
    limit: int | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """This process's clients (relay links left out), those of ``app`` and publishing or
    playing ``stream`` when given, oldest first, at most ``limit``; and how many matched. See
    :func:`fms.server.actions.client_figures`."""
    chosen = []
    matched = 0
    for proto in server.by_age():  # oldest first: the first ``limit`` are the ones shown
        if (
            not proto.claims_names
            or (app is not None and proto.app != app)
            or (stream is not None and not plays_or_publishes(proto, stream))
        ):
            continue
        matched += 1
        if limit is None or matched <= limit:
            chosen.append(proto)
    docs = [
        {"id": client_id(worker, proto.id), "protocol": "rtmp", **client_figures(proto, now)}
        for proto in chosen
    ]
    return docs, matched


def merge_clients(
    parts: list[list[dict[str, Any]]], limit: int | None = None
) -> list[dict[str, Any]]:
    """Every worker's clients, oldest connection first, at most ``limit``."""
    clients = [doc for part in parts for doc in part]
    clients.sort(key=lambda doc: (-doc["connected_seconds"], doc["id"]))
    return clients if limit is None else clients[:limit]


def find_client(server: RTMPServerFactory, proto_id: int) -> RTMPServerProtocol | None:
    for proto in server.connections:
        if proto.id == proto_id and is_client(proto):
            return proto
    return None


def memory_bytes() -> int:
    """This process's resident memory (bytes): /proc's count, else the peak from getrusage."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cpu_seconds() -> float:
    """CPU time this process used, user and system (seconds)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


CONNECTION_STATES = ("connecting", "idle", "publishing", "playing")


def connection_counts(server: RTMPServerFactory, http_playing: int = 0) -> dict[str, int]:
    """RTMP client connections by state (:data:`CONNECTION_STATES`) and ``playing_any``, from
    counts the server keeps rather than a walk over every connection (a scrape of 10,000
    players would otherwise cost milliseconds): ``connecting`` are those whose ``connect`` was
    not accepted yet (admission's count), ``publishing`` the publishes of clients here,
    ``playing`` the RTMP plays (a client playing two streams counts twice), ``idle`` the
    rest. ``http_playing``: the registry's players that are HTTP-FLV or WebSocket-FLV viewers
    (:meth:`fms.http.viewers.HTTPClients.playing`), left out of ``playing`` (they are no RTMP
    connection; counted as ``http_viewers`` by :func:`local_server`)."""
    total = len(server.connections) - server.relay_links
    connecting = server.admission.connecting_total()
    publishing = playing = 0
    for stream in server.registry:
        playing += len(stream.players)
        if _origin(stream):
            publishing += 1
    playing = max(playing - http_playing, 0)
    idle = max(total - connecting - publishing - playing, 0)
    return {
        "connecting": connecting,
        "idle": idle,
        "publishing": publishing,
        "playing": playing,
        "playing_any": playing,
    }


def local_server(
    server: RTMPServerFactory,
    started: float,
    now: float,
    http_viewers: int = 0,
    http_playing: int = 0,
) -> dict[str, Any]:
    """This process's part of ``/api/v1/server``: its uptime (seconds), RTMP client
    connections by state (:func:`connection_counts`), ``http_viewers`` (HTTP-FLV and
    WebSocket-FLV viewers connected, of which ``http_playing`` play), CPU seconds and
    resident memory bytes."""
    counts = connection_counts(server, http_playing)
    return {
        "uptime": round(max(now - started, 0.0), 3),
        "connections": {
            "total": len(server.connections) - server.relay_links,
            "connecting": counts["connecting"],
            "idle": counts["idle"],
            "publishing": counts["publishing"],
            "playing": counts["playing_any"],
            "http_viewers": http_viewers,
        },
        "cpu_seconds": round(cpu_seconds(), 3),
        "memory_bytes": memory_bytes(),
        "cluster": server.directory.figures() if server.directory is not None else None,
    }


def merge_server(
    parts: list[dict[str, Any]], version: str, workers: int, streams: int
) -> dict[str, Any]:
    """``/api/v1/server`` from every worker's :func:`local_server`: connections, CPU and
    memory added up, the uptime of the answering worker (the first part)."""
    connections: dict[str, int] = {}
    for part in parts:
        for key, value in part["connections"].items():
            connections[key] = connections.get(key, 0) + value
    return {
        "version": version,
        "uptime": parts[0]["uptime"] if parts else 0.0,
        "workers": workers,
        "workers_answering": len(parts),
        "connections": connections,
        "streams": streams,
        "cpu_seconds": round(sum(part["cpu_seconds"] for part in parts), 3),
        "memory_bytes": sum(part["memory_bytes"] for part in parts),
        "cluster": merge_cluster([p["cluster"] for p in parts if p.get("cluster")]),
    }


def merge_cluster(parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The cluster directory of the node (None: no ``[cluster]``): connected when every
    answering worker reaches Redis, the entries held by its workers added up."""
    if not parts:
        return None
    return {
        "node_url": parts[0]["node_url"],
        "connected": all(part["connected"] for part in parts),
        "entries": sum(part["entries"] for part in parts),
        "conflicts": sum(part["conflicts"] for part in parts),
        "outages": sum(part["outages"] for part in parts),
    }


def clients_per_app(server: RTMPServerFactory) -> dict[str, int]:
    """This process's clients per application name (those that named one)."""
    counts: dict[str, int] = {}
    for proto in server.connections:
        if proto.app is not None and is_client(proto):
            counts[proto.app] = counts.get(proto.app, 0) + 1
    return counts


def apps_document(streams: list[dict[str, Any]], clients: dict[str, int]) -> list[dict[str, Any]]:
    """``/api/v1/apps``: per application name, its published streams and its clients."""
    names = sorted({doc["app"] for doc in streams} | set(clients))
    return [
        {
            "name": name,
            "streams": sum(1 for doc in streams if doc["app"] == name and doc["published"]),
            "clients": clients.get(name, 0),
        }
        for name in names
    ]
