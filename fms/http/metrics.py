"""``/metrics``: the server's figures in the Prometheus text format.

Built at scrape time by a collector (:class:`FiguresCollector`) from what every worker reports
(:func:`local_figures`), so a stream that ended is absent from the next scrape rather than left
behind with its last values. ``prometheus_client`` writes the format. Families (names without
the ``_total``/``_bucket`` suffixes the format adds):

- ``fms_workers``, ``fms_workers_answering``; ``fms_connections{state}`` (connecting, idle,
  publishing, playing); ``fms_streams`` (published streams);
- per published stream, labels ``app`` and ``stream``: ``fms_stream_players``,
  ``fms_stream_bytes_in``, ``fms_stream_bytes_out``, ``fms_stream_messages_in``,
  ``fms_stream_bitrate_kbps``, ``fms_stream_uptime_seconds``;
- ``fms_player_bytes_delivered``, ``fms_player_messages_delivered`` and ``fms_slow_player_skips``,
  ``fms_slow_player_skipped_messages``, ``fms_slow_player_closes`` (players still here and
  those gone added up);
- per push of a published stream, labels ``app``, ``stream``, ``push`` (its number) and
  ``url``: ``fms_push_state{state}`` (1 for its state), ``fms_push_bytes_sent``,
  ``fms_push_messages_sent``, ``fms_push_skipped_messages``, ``fms_push_slow_closes``,
  ``fms_push_connects``;
- per pulled stream, labels ``app``, ``stream`` and ``url`` (the source): ``fms_pull_state
  {state}``, ``fms_pull_bytes_in``, ``fms_pull_messages_in``, ``fms_pull_connects``;
- ``fms_plugin_decision_seconds{action}`` (histogram) and ``fms_plugin_refusals{action}``;
- ``fms_flush_seconds`` and ``fms_flush_interval_seconds`` (histograms): what each fan-out
  flush took, and the time from one flush's start to the next's (``[streams] flush``);
- ``fms_admission_refusals{reason}``, ``fms_handshake_failures{reason}``;
- ``fms_worker_restarts`` (restarts of the workers serving now, each counted by itself);
- with ``[cluster]``: ``fms_cluster_connected`` (1 when every worker reaches Redis),
  ``fms_cluster_entries`` (directory entries this node holds), ``fms_cluster_conflicts``,
  ``fms_cluster_outages`` (times a worker lost Redis).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from fms.counters import COUNTERS, merge
from fms.http.documents import (
    CONNECTION_STATES,
    connection_counts,
    local_streams,
    merge_streams,
)

if TYPE_CHECKING:
    from fms.server.factory import RTMPServerFactory


def local_figures(
    server: RTMPServerFactory, now: float, extra: dict[str, Any], http_playing: int = 0
) -> dict[str, Any]:
    """This process's part of a scrape, as JSON (it may travel between workers);
    ``http_playing`` as for :func:`~fms.http.documents.connection_counts`."""
    counts = connection_counts(server, http_playing)
    del counts["playing_any"]
    players = {"bytes": 0, "messages": 0, "skips": 0, "skipped": 0}
    for stream in server.registry:
        here = stream.players
        if here:
            players["bytes"] += sum(p.bytes_sent for p in here)
            players["messages"] += sum(p.messages_sent for p in here)
            players["skips"] += sum(p.skips for p in here)
            players["skipped"] += sum(p.skipped_messages for p in here)
    return {
        "connections": counts,
        "streams": local_streams(server, 0, now),
        "players": players,
        "counters": COUNTERS.snapshot(),
        "worker_restarts": int(extra.get("worker_restarts", 0)),
        "cluster": server.directory.figures() if server.directory is not None else None,
    }


def _counter(
    counters: dict[str, Any], name: str, label: str | None = None
) -> Iterator[tuple[list[str], float]]:
    for labels, value in counters.get(name, []):
        yield ([labels.get(label, "")] if label else []), value


class FiguresCollector:
    """Turns the workers' :func:`local_figures` into metric families (see the module
    docstring); registered on a registry made for one scrape."""

    def __init__(self, parts: list[dict[str, Any]], workers: int) -> None:
        self.parts = parts
        self.workers = workers

    def collect(self) -> Iterator[Metric]:
        parts = self.parts
        counted = merge([part["counters"] for part in parts])
        counters, histograms = counted["counters"], counted["histograms"]
        yield GaugeMetricFamily(
            "fms_workers", "Worker processes of the server.", value=self.workers
        )
        yield GaugeMetricFamily(
            "fms_workers_answering", "Workers whose figures this scrape holds.", value=len(parts)
        )
        connections = GaugeMetricFamily(
            "fms_connections", "Client connections by state.", labels=["state"]
        )
        for state in CONNECTION_STATES:
            connections.add_metric([state], sum(part["connections"][state] for part in parts))
        yield connections
        streams = [doc for doc in merge_streams([p["streams"] for p in parts]) if doc["published"]]
        yield GaugeMetricFamily("fms_streams", "Streams being published.", value=len(streams))
        labels = ["app", "stream"]
        players = GaugeMetricFamily("fms_stream_players", "Players of a stream.", labels=labels)
        bytes_in = CounterMetricFamily(
            "fms_stream_bytes_in", "Media bytes received from a stream's publisher.", labels=labels
        )
        bytes_out = CounterMetricFamily(
            "fms_stream_bytes_out", "Bytes sent to a stream's players.", labels=labels
        )
        messages = CounterMetricFamily(
            "fms_stream_messages_in", "Messages received from a stream's publisher.", labels=labels
        )
        bitrate = GaugeMetricFamily(
            "fms_stream_bitrate_kbps", "Incoming bitrate over the last 5 seconds.", labels=labels
        )
        uptime = GaugeMetricFamily(
            "fms_stream_uptime_seconds", "Seconds since the publish started.", labels=labels
        )
        for doc in streams:
            key = [doc["app"], doc["name"]]
            players.add_metric(key, doc["players"])
            bytes_in.add_metric(key, doc["bytes_in"])
            bytes_out.add_metric(key, doc["bytes_out"])
            messages.add_metric(key, doc["messages_in"])
            bitrate.add_metric(key, doc["bitrate_kbps"]["total"])
            uptime.add_metric(key, doc["uptime"])
        yield from (players, bytes_in, bytes_out, messages, bitrate, uptime)
        yield from _push_families(streams)
        yield from _pull_families(streams)
        gone = {name: sum(v for _, v in _counter(counters, name)) for name in (
            "player_bytes_delivered", "player_messages_delivered", "slow_player_skips",
            "slow_player_skipped_messages", "slow_player_closes",
        )}  # fmt: skip
        here = {
            key: sum(part["players"][key] for part in parts)
            for key in ("bytes", "messages", "skips", "skipped")
        }
        for name, text, value in (
            ("fms_player_bytes_delivered", "Bytes sent to players.",
             gone["player_bytes_delivered"] + here["bytes"]),
            ("fms_player_messages_delivered", "Messages sent to players (whole messages).",
             gone["player_messages_delivered"] + here["messages"]),
            ("fms_slow_player_skips", "Times a slow player skipped ahead to a newer keyframe.",
             gone["slow_player_skips"] + here["skips"]),
            ("fms_slow_player_skipped_messages", "Messages slow players never received.",
             gone["slow_player_skipped_messages"] + here["skipped"]),
            ("fms_slow_player_closes", "Players closed for falling too far behind.",
             gone["slow_player_closes"]),
        ):  # fmt: skip
            yield CounterMetricFamily(name, text, value=value)
        yield _histogram(
            "fms_plugin_decision",
            "Seconds the plugin chain took to decide a connect, publish or play.",
            histograms.get("plugin_decision_seconds", []),
            "action",
        )
        yield _histogram(
            "fms_flush",
            "Seconds each fan-out flush took (every worker's flushes).",
            histograms.get("flush_seconds", []),
        )
        yield _histogram(
            "fms_flush_interval",
            "Seconds from the start of a fan-out flush to the start of the next.",
            histograms.get("flush_interval_seconds", []),
        )
        for name, label, text in (
            ("plugin_refusals", "action", "Connects, publishes and plays the plugins refused."),
            ("admission_refusals", "reason", "Connections refused at accept, by reason."),
            ("handshake_failures", "reason", "RTMP handshakes that failed, by reason."),
        ):
            family = CounterMetricFamily(f"fms_{name}", text, labels=[label])
            for key, value in _counter(counters, name, label):
                family.add_metric(key, value)
            yield family
        yield CounterMetricFamily(
            "fms_worker_restarts",
            "Restarts of the worker processes serving now.",
            value=sum(part.get("worker_restarts", 0) for part in parts),
        )
        yield from _cluster_families([p["cluster"] for p in parts if p.get("cluster")])


def _histogram(
    name: str, text: str, rows: list[list[Any]], label: str | None = None
) -> HistogramMetricFamily:
    """A histogram family from :meth:`~fms.counters.Counters.snapshot` rows (merged over the
    workers), labelled by ``label`` when given."""
    family = HistogramMetricFamily(name, text, labels=[label] if label else None, unit="seconds")
    for labels_, bounds, counts, total in rows:
        cumulative, buckets = 0, []
        for bound, count in zip([*bounds, float("inf")], counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
        family.add_metric([labels_.get(label, "")] if label else [], buckets, total)
    return family


def _cluster_families(parts: list[dict[str, Any]]) -> Iterator[Metric]:
    """The cluster directory of the workers that have one (none: no family)."""
    if not parts:
        return
    yield GaugeMetricFamily(
        "fms_cluster_connected",
        "1 when every answering worker is connected to the cluster's Redis.",
        value=int(all(part["connected"] for part in parts)),
    )
    for key, text in (
        ("entries", "Streams this node holds in the cluster directory."),
        ("conflicts", "Streams published here that the directory gives to another node."),
    ):
        yield GaugeMetricFamily(f"fms_cluster_{key}", text, value=sum(p[key] for p in parts))
    yield CounterMetricFamily(
        "fms_cluster_outages",
        "Times a worker lost its connection to Redis (or could not make it).",
        value=sum(part["outages"] for part in parts),
    )


PUSH_STATES = ("connecting", "live", "retrying", "stopped")


def _push_families(streams: list[dict[str, Any]]) -> Iterator[Metric]:
    """One sample per push of a published stream (labels ``app``, ``stream``, ``push``: its
    number on this server, ``url``: the target application; the target stream name is left
    out, as it is often a stream key)."""
    labels = ["app", "stream", "push", "url"]
    state = GaugeMetricFamily(
        "fms_push_state", "1 for the state a push is in.", labels=[*labels, "state"]
    )
    families = {
        key: CounterMetricFamily(f"fms_push_{key}", text, labels=labels)
        for key, text in (
            ("bytes_sent", "Stream bytes handed to a push's connection."),
            ("messages_sent", "Messages handed to a push's connection."),
            ("skipped_messages", "Messages a push never sent because its target was slow."),
            ("slow_closes", "Times a push was closed for falling too far behind."),
            ("connects", "Connection attempts of a push."),
        )
    }
    for doc in streams:
        for push in doc.get("pushes") or ():
            key = [doc["app"], doc["name"], str(push["id"]), push["url"]]
            for name in PUSH_STATES:
                state.add_metric([*key, name], 1.0 if push["state"] == name else 0.0)
            for name, family in families.items():
                family.add_metric(key, push[name])
    yield state
    yield from families.values()


PULL_STATES = ("connecting", "live", "retrying", "stopped")


def _pull_families(streams: list[dict[str, Any]]) -> Iterator[Metric]:
    """One sample per pulled stream (labels ``app``, ``stream``, ``url``: the source)."""
    labels = ["app", "stream", "url"]
    state = GaugeMetricFamily(
        "fms_pull_state", "1 for the state a pull is in.", labels=[*labels, "state"]
    )
    families = {
        key: CounterMetricFamily(f"fms_pull_{key}", text, labels=labels)
        for key, text in (
            ("bytes_in", "Bytes received from a pull's source, over all its connections."),
            ("messages_in", "Messages a pull published here."),
            ("connects", "Connection attempts of a pull."),
        )
    }
    for doc in streams:
        pull = doc.get("pull")
        if not pull:
            continue
        key = [doc["app"], doc["name"], pull["url"]]
        for name in PULL_STATES:
            state.add_metric([*key, name], 1.0 if pull["state"] == name else 0.0)
        for name, family in families.items():
            family.add_metric(key, pull[name])
    yield state
    yield from families.values()


def render(parts: list[dict[str, Any]], workers: int | None = None) -> bytes:
    """The exposition text of the workers' figures (``parts``, this worker's first)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FiguresCollector(parts, workers or len(parts)))
    return generate_latest(registry)
