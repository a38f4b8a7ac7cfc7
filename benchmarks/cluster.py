"""One origin and two edges on one machine: what a hop costs, and what an edge costs the origin.

The benchmark starts three ``fms run`` processes on loopback addresses: the *origin* on
127.0.0.1 and two *edges* on 127.0.0.2 and 127.0.0.3, all pinned to the server CPU as
``benchmarks.fanout`` pins its server (CPU 0; the publisher and the load generators on the
others). The publisher (:mod:`benchmarks.publisher`) publishes to the origin. How an edge gets
the stream is ``--link``:

- ``static`` (the default): each edge has ``[[apps.live.pull]] url = "rtmp://ORIGIN/live"``,
  on demand (``docs/pull.md``): its first player starts one pull, shared by all its players;
- ``cluster``: a ``redis-server`` on a free port and ``[cluster] redis, node_url, secret`` on
  every node: an edge asked for a stream it does not hold finds the holder in Redis and pulls
  it over the private path (``docs/cluster.md``); an edge that never goes live stops the
  benchmark with a message that says what the directory holds.

Phases, each measured by the origin's CPU time (``/proc/PID/stat``) over ``--phase`` seconds:
the publisher alone (0 edges pulling); the players of edge 1 set up and its pull live (1 edge);
the same for edge 2 (2 edges): an edge is one more player to the origin, whatever its audience.
Then ``--direct`` players connect to the origin itself, and one window of ``--duration``
seconds measures every player (``benchmarks/loadgen.c``: the latency from the publisher's
write to the player's read of each message). The direct players and the edges' players see
the same messages in the same window, so the difference of their latency percentiles is what
the hop adds (origin -> edge -> player against origin -> player). With ``--single`` the same
total number of players then plays from one process (``benchmarks.fanout``'s scenario), for
the comparison with one process.

Run:  .venv/bin/python -m benchmarks.cluster                        # 2 x 200 + 100 direct, 10 s
      .venv/bin/python -m benchmarks.cluster --edge-players 5000 --direct 500 --duration 20
      .venv/bin/python -m benchmarks.cluster --link cluster         # needs cluster pulls
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.fanout import (
    ROOT,
    BenchmarkError,
    Child,
    FMSServer,
    Result,
    Scenario,
    build_loadgen,
    cpu_seconds,
    cpu_sets,
    free_ports,
    options,
    pin,
    python_env,
    rss_bytes,
    run_scenario,
    start_publisher,
    summarise,
)
from benchmarks.publisher import PROFILES

LINKS = ("static", "cluster")
"""How the edges get the stream: a static pull table, or the Redis directory."""
ORIGIN_HOST = "127.0.0.1"
EDGE_HOSTS = ("127.0.0.2", "127.0.0.3")
PLAYERS_PER_GENERATOR = 5000
APP, STREAM = "live", "bench"


@dataclass(frozen=True, slots=True)
class NodeAddress:
    """Where one node listens: RTMP on ``host:port``, its HTTP API on 127.0.0.1:``http_port``."""

    name: str
    host: str
    port: int
    http_port: int

    @property
    def url(self) -> str:
        """The node's RTMP URL (``rtmp://host:port``), what other nodes connect to."""
        return f"rtmp://{self.host}:{self.port}"


def node_config(
    node: NodeAddress,
    origin: NodeAddress,
    link: str,
    players: int,
    log_level: str = "info",
    redis_url: str = "",
    secret: str = "",
) -> str:
    """The ``fms.toml`` of ``node`` (the origin when ``node == origin``, else an edge) for
    ``players`` players of its own: admission caps lifted to fit them (they all come from
    127.0.0.1), the HTTP API on ``node.http_port``; an edge with ``link == "static"`` pulls
    ``live/*`` on demand from the origin; with ``link == "cluster"`` every node joins the
    Redis directory at ``redis_url`` with ``secret``."""
    if link not in LINKS:
        raise ValueError(f"link {link!r}: one of {', '.join(LINKS)}")
    text = (
        f'[server]\nlog_level = "{log_level}"\n'
        f"[limits]\nmax_connections = {max(10_000, players + 1_000)}\n"
        f"max_connecting_per_ip = {max(50, players + 10)}\n"
        f"[http]\nenabled = true\nport = {node.http_port}\n"
    )
    if link == "cluster":
        text += f'[cluster]\nredis = "{redis_url}"\nnode_url = "{node.url}"\nsecret = "{secret}"\n'
    elif node != origin:
        text += f'[[apps.{APP}.pull]]\nurl = "{origin.url}/{APP}"\nmode = "on-demand"\n'
    return text


def generator_shares(players: int, per_generator: int = PLAYERS_PER_GENERATOR) -> list[int]:
    """``players`` split over as few load generators as hold ``per_generator`` each, evenly."""
    if players <= 0:
        return []
    count = math.ceil(players / per_generator)
    return [players // count + (i < players % count) for i in range(count)]


# ------------------------------------------------------------------------------ processes


class ClusterNode(FMSServer):
    """One ``fms run`` of the cluster on its own address and ports, with a given configuration."""

    def __init__(self, workdir: Path, address: NodeAddress, config_text: str) -> None:
        super().__init__(workdir, None, "info")
        self.address = address
        self.config_text = config_text
        self.name = f"pyFMS {address.name}"
        self.log = workdir / f"{address.name}.log"

    def start(self) -> None:
        config = self.workdir / f"{self.address.name}.toml"
        config.write_text(self.config_text)
        command = [sys.executable, "-m", "fms", "run", "--host", self.address.host]
        command += ["--port", str(self.address.port), "--config", str(config)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=ROOT,
                env=python_env(None),
            )
        self.pid = self.process.pid
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if " ready; " in self.log.read_text(errors="replace"):
                self.port, self.http_port = self.address.port, self.address.http_port
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise BenchmarkError(f"{self.name} did not start:\n" + self.log_tail())

    def stream(self) -> dict[str, Any] | None:
        """``/api/v1/streams/live/bench`` of this node, or None (no such stream, no answer)."""
        url = f"http://127.0.0.1:{self.address.http_port}/api/v1/streams/{APP}/{STREAM}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return dict(json.loads(response.read()))
        except (OSError, ValueError, urllib.error.HTTPError):
            return None

    def wait_live(self, timeout: float) -> bool:
        """Wait until this node has the stream published (its pull delivered), at most
        ``timeout`` seconds; whether it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            doc = self.stream()
            if doc is not None and doc.get("published"):
                return True
            time.sleep(0.2)
        return False


class RedisProcess:
    """Debian's ``redis-server`` on 127.0.0.1 and a free port, without persistence."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        self.cli = shutil.which("redis-cli")
        if binary is None or self.cli is None:
            raise BenchmarkError("--link cluster needs redis-server (apt-get install redis-server)")
        (self.port,) = free_ports(1)
        self.url = f"redis://127.0.0.1:{self.port}"
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(folder)]
        with (folder / "redis.log").open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while self.command("PING") != "PONG":
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise BenchmarkError("redis-server did not start")
            time.sleep(0.05)

    def command(self, *args: str) -> str:
        assert self.cli is not None
        done = subprocess.run(
            [self.cli, "-p", str(self.port), "--raw", *args],
            capture_output=True, timeout=20, check=False,
        )  # fmt: skip
        return done.stdout.decode().strip() if done.returncode == 0 else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(20)


# ------------------------------------------------------------------------------- results


@dataclass
class ClusterResult:
    """One run of the cluster scenario (times in ms, CPU in CPU-seconds per second = cores)."""

    link: str
    profile: str
    edge_players: int
    """Players per edge."""
    direct: int
    """Players on the origin itself."""
    duration: float
    messages_per_second: float
    load_before: float = 0.0
    origin_cpu_by_edges: list[float] = field(default_factory=list)
    """The origin's CPU-seconds per second with 0, 1 and 2 edges pulling (no direct players)."""
    origin_players: int | None = None
    """Players of the stream the origin's API counted in the window (direct + one per edge)."""
    origin_cpu: float = 0.0
    """The origin's CPU-seconds per second in the window (direct players and edges)."""
    edge_cpu: list[float] = field(default_factory=list)
    """Each edge's CPU-seconds per second in the window."""
    edge_cpu_per_million: list[float | None] = field(default_factory=list)
    """Each edge's CPU-seconds per million messages its players got in the window."""
    edge_rss_per_player: list[float] = field(default_factory=list)
    """Each edge's RSS growth from before its players to the window's end, per player (bytes)."""
    groups: dict[str, Result] = field(default_factory=dict)
    """``direct``, ``edge1``, ``edge2`` and ``edges`` (both edges' players together)."""
    edge_pull_rate: list[float] = field(default_factory=list)
    """Messages per second each edge's pull received from the origin in the window (the
    publisher sends ``messages_per_second``)."""
    wait: dict[str, float] = field(default_factory=dict)
    """Seconds per second each node was runnable but waiting for a CPU, in the window."""
    generator_cpu_percent: float = 0.0
    pinned: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def origin_cpu_per_edge(self) -> float | None:
        """What one edge pulling costs the origin (CPU-seconds per second): the rise from 0 to 2
        edges, halved."""
        by = self.origin_cpu_by_edges
        return (by[2] - by[0]) / 2 if len(by) == 3 else None

    @property
    def origin_cpu_per_player(self) -> float | None:
        """The origin's CPU-seconds per second in the window over the players of the stream it
        counted (its direct players and one per edge): a cross-check of the phases' figure."""
        if not self.origin_players:
            return None
        return self.origin_cpu / self.origin_players

    def hop_ms(self, quantile: str) -> float | None:
        """What the hop adds at ``quantile`` (``p50``/``p99``): edges' players minus direct."""
        edges, direct = self.groups.get("edges"), self.groups.get("direct")
        if edges is None or direct is None:
            return None
        a = getattr(edges, f"latency_{quantile}_ms")
        b = getattr(direct, f"latency_{quantile}_ms")
        return None if a is None or b is None else a - b


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _per_edge(values: list[float | None], digits: int = 1) -> str:
    return " / ".join(_num(v, digits) for v in values) or "-"


TABLE_HEADER = (
    "| link | profile | players (edges + direct) | delivery | direct p50 / p99 ms "
    "| via edge p50 / p99 ms | hop p50 / p99 ms | origin CPU at 0 / 1 / 2 edges "
    "| origin CPU per edge | origin CPU per player (window) | edge CPU-s per M msgs | edge CPU "
    "| load |"
)


def format_row(r: ClusterResult) -> str:
    """One row of :data:`TABLE_HEADER` (CPU as a share of one core, %)."""
    edges, direct = r.groups.get("edges"), r.groups.get("direct")
    delivered = sum(g.delivered for k, g in r.groups.items() if k in ("edges", "direct"))
    expected = sum(
        g.expected_per_player * g.players for k, g in r.groups.items() if k in ("edges", "direct")
    )
    per_edge, per_player = r.origin_cpu_per_edge, r.origin_cpu_per_player

    def lat(group: Result | None) -> str:
        if group is None:
            return "-"
        return f"{_num(group.latency_p50_ms)} / {_num(group.latency_p99_ms)}"

    return (
        f"| {r.link} | {r.profile} | {2 * r.edge_players:,} + {r.direct:,} "
        f"| {(delivered / expected if expected else 0.0):.4f} | {lat(direct)} | {lat(edges)} "
        f"| {_num(r.hop_ms('p50'))} / {_num(r.hop_ms('p99'))} "
        f"| {_per_edge([100 * c for c in r.origin_cpu_by_edges])} % "
        f"| {_num(None if per_edge is None else 100 * per_edge, 2)} % "
        f"| {_num(None if per_player is None else 100 * per_player, 3)} % "
        f"| {_per_edge(r.edge_cpu_per_million, 2)} "
        f"| {_per_edge([100 * c for c in r.edge_cpu], 0)} % | {r.load_before:.2f} |"
    )


def format_table(results: list[ClusterResult]) -> str:
    """:data:`TABLE_HEADER`, its Markdown rule and one :func:`format_row` per result."""
    rule = "|" + "---|" * (TABLE_HEADER.count("|") - 1)
    return "\n".join([TABLE_HEADER, rule, *(format_row(r) for r in results)])


def format_report(r: ClusterResult) -> str:
    per_edge = None if r.origin_cpu_per_edge is None else 100 * r.origin_cpu_per_edge
    phases = ", ".join(
        f"{100 * c:.1f}% with {i} edge(s)" for i, c in enumerate(r.origin_cpu_by_edges)
    )
    lines = [
        f"== {r.link} link, {r.profile}: 2 edges x {r.edge_players} players + {r.direct} on the "
        f"origin, {r.duration:g} s measured ({r.pinned})",
        f"origin CPU      {phases}; per edge {_num(per_edge, 2)}%; {100 * r.origin_cpu:.0f}% "
        f"in the window with {r.origin_players} players of the stream = "
        f"{_num(None if r.origin_cpu_per_player is None else 100 * r.origin_cpu_per_player, 3)}"
        "% per player",
    ]
    for i, cpu in enumerate(r.edge_cpu):
        lines.append(
            f"edge{i + 1} CPU       {100 * cpu:.0f}% in the window = "
            f"{_num(r.edge_cpu_per_million[i], 2)} CPU-s per million messages; RSS "
            f"{r.edge_rss_per_player[i] / 1024:.1f} KiB per player; its pull received "
            f"{r.edge_pull_rate[i]:.1f} messages/s (published {r.messages_per_second:g})"
        )
    if r.wait:
        lines.append(
            "run-queue wait  "
            + ", ".join(f"{name} {100 * value:.0f}%" for name, value in r.wait.items())
            + " of the window runnable but waiting for a CPU"
        )
    for name, g in r.groups.items():
        lines.append(
            f"{name:<15} {g.players} players: delivery {g.delivery_ratio:.4f} (worst "
            f"{g.min_player_ratio:.4f}), {g.failed_setup} failed setup, {g.disconnected} "
            f"disconnected; latency p50 {_num(g.latency_p50_ms)} p99 {_num(g.latency_p99_ms)} "
            f"max {_num(g.latency_max_ms)} ms; setup {g.setup_rate:.0f}/s"
        )
    lines.append(
        f"hop             p50 {_num(r.hop_ms('p50'))} ms, p99 {_num(r.hop_ms('p99'))} ms "
        f"(via an edge minus direct); generators {r.generator_cpu_percent:.0f}% of their CPUs"
    )
    lines += [f"note            {note}" for note in r.notes]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ scenario


@dataclass(frozen=True, slots=True)
class ClusterScenario:
    link: str
    profile: str
    edge_players: int
    direct: int
    duration: float
    phase: float
    settle: float
    drain: float
    setup_concurrency: int
    setup_budget: float
    live_timeout: float
    pin: bool
    log_level: str


class _Group:
    """The load generators of one group of players (one node's)."""

    def __init__(self, name: str, players: int) -> None:
        self.name = name
        self.players = players
        self.generators: list[tuple[Child, Path]] = []


def _start_group(
    group: _Group,
    node: ClusterNode,
    s: ClusterScenario,
    loadgen: Path,
    workdir: Path,
    cpus: set[int],
    bound: float,
) -> None:
    for i, share in enumerate(generator_shares(group.players)):
        out = workdir / f"loadgen-{group.name}-{i}.json"
        values = {
            "host": node.address.host, "port": node.address.port, "players": share,
            "app": APP, "stream": STREAM, "concurrency": max(1, s.setup_concurrency // 2),
            "setup-timeout": 30, "setup-budget": s.setup_budget, "max-seconds": bound,
            "out": out,
        }  # fmt: skip
        child = Child([str(loadgen), *options(values)], f"loadgen {group.name} {i}")
        pin(child.process.pid, cpus)
        group.generators.append((child, out))
    for child, _ in group.generators:
        child.expect("READY", s.setup_budget + 30)


def schedstat(pid: int, field_index: int = 0) -> float | None:
    """A ``/proc/PID/task/*/schedstat`` field summed over ``pid``'s threads (seconds, to the
    ns): field 0 is the time on a CPU, field 1 the time runnable but waiting for one. None
    where the kernel keeps no schedstat."""
    try:
        total = 0
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[field_index])
            except (OSError, ValueError, IndexError):
                continue  # the thread ended meanwhile
        return total / 1e9
    except OSError:
        return None


def run_seconds(pid: int) -> float:
    """CPU time of ``pid`` (seconds) from :func:`schedstat`, to the ns, where ``/proc/PID/stat``
    counts in ticks of 10 ms: one edge's cost to the origin is a fraction of a percent of a
    core, a tick or two in a 5 s phase."""
    value = schedstat(pid)
    return cpu_seconds(pid) if value is None else value


def wait_seconds(pid: int) -> float:
    """Seconds ``pid``'s threads spent runnable, waiting for a CPU (0 without schedstat)."""
    return schedstat(pid, 1) or 0.0


def _pull_messages(edge: ClusterNode) -> int:
    doc = edge.stream()
    pull = (doc or {}).get("pull") or {}
    return int(pull.get("messages_in") or 0)


def _origin_cpu(origin: ClusterNode, seconds: float) -> float:
    """The origin's CPU-seconds per second over the next ``seconds``."""
    start, cpu = time.monotonic(), run_seconds(origin.pid)
    time.sleep(seconds)
    return (run_seconds(origin.pid) - cpu) / (time.monotonic() - start)


def _sleep_until(ns: int) -> None:
    while (remaining := ns - time.monotonic_ns()) > 0:
        time.sleep(min(remaining / 1e9, 0.5))


def run_cluster(s: ClusterScenario, loadgen: Path, workdir: Path) -> ClusterResult:
    profile = PROFILES[s.profile]
    result = ClusterResult(
        link=s.link,
        profile=s.profile,
        edge_players=s.edge_players,
        direct=s.direct,
        duration=s.duration,
        messages_per_second=profile.messages_per_second,
    )
    server_cpus, load_cpus = cpu_sets(s.pin)
    result.pinned = (
        f"origin and edges on CPU {sorted(server_cpus)}, publisher and generators on "
        f"CPU {sorted(load_cpus)}"
        if s.pin
        else "not pinned"
    )
    bound = 3 * (s.setup_budget + s.live_timeout + s.settle + s.phase + 60) + s.duration + 120
    ports = free_ports(6)
    origin_at = NodeAddress("origin", ORIGIN_HOST, ports[0], ports[1])
    edges_at = [
        NodeAddress(f"edge{i + 1}", host, ports[2 + 2 * i], ports[3 + 2 * i])
        for i, host in enumerate(EDGE_HOSTS)
    ]
    redis: RedisProcess | None = None
    nodes: list[ClusterNode] = []
    children: list[Child] = []
    groups: list[_Group] = []
    try:
        secret = secrets.token_hex(16)
        if s.link == "cluster":
            redis = RedisProcess(workdir)
        for address, players in [(origin_at, s.direct + 2)] + [
            (edge, s.edge_players) for edge in edges_at
        ]:
            text = node_config(
                address,
                origin_at,
                s.link,
                players,
                s.log_level,
                redis.url if redis else "",
                secret,
            )
            node = ClusterNode(workdir, address, text)
            nodes.append(node)
            node.start()
            pin(node.pid, server_cpus)
        origin, edges = nodes[0], nodes[1:]
        pub_out = workdir / "publisher.json"
        pub_options = {
            "host": ORIGIN_HOST, "port": origin_at.port, "app": APP, "stream": STREAM,
            "profile": s.profile, "max-seconds": bound, "out": pub_out,
        }  # fmt: skip
        publisher = start_publisher(pub_options, python_env(None), load_cpus, children)
        time.sleep(s.settle)
        result.origin_cpu_by_edges.append(_origin_cpu(origin, s.phase))

        rss_before: list[int] = []
        for edge in edges:
            rss_before.append(rss_bytes(edge.pid))
            group = _Group(edge.address.name, s.edge_players)
            groups.append(group)
            _start_group(group, edge, s, loadgen, workdir, load_cpus, bound)
            children.extend(c for c, _ in group.generators)
            if not edge.wait_live(s.live_timeout):
                why = "see its log"
                if redis is not None:
                    entry = redis.command("GET", f"fms:stream:{APP}/{STREAM}") or "(none)"
                    why = f"the directory names {entry} as its holder; see the edge's log"
                raise BenchmarkError(
                    f"{edge.name} never went live with {APP}/{STREAM} within "
                    f"{s.live_timeout:g} s ({s.link} link): {why}"
                )
            time.sleep(s.settle)
            result.origin_cpu_by_edges.append(_origin_cpu(origin, s.phase))
        if s.direct:
            group = _Group("direct", s.direct)
            groups.append(group)
            _start_group(group, origin, s, loadgen, workdir, load_cpus, bound)
            children.extend(c for c, _ in group.generators)

        time.sleep(s.settle)
        generators = [c for g in groups for c, _ in g.generators]
        t0 = time.monotonic_ns() + 200_000_000
        t1 = t0 + int(s.duration * 1e9)
        for child in generators:
            child.send(f"W {t0} {t1}")
        _sleep_until(t0)
        before = {n.address.name: run_seconds(n.pid) for n in nodes}
        waits = {n.address.name: wait_seconds(n.pid) for n in nodes}
        pulled = [_pull_messages(edge) for edge in edges]
        gen_before = sum(cpu_seconds(c.process.pid) for c in generators)
        _sleep_until(t1)
        after = {n.address.name: run_seconds(n.pid) for n in nodes}
        result.wait = {
            n.address.name: (wait_seconds(n.pid) - waits[n.address.name]) / s.duration
            for n in nodes
        }
        result.edge_pull_rate = [
            (_pull_messages(edge) - count) / s.duration
            for edge, count in zip(edges, pulled, strict=True)
        ]
        gen_after = sum(cpu_seconds(c.process.pid) for c in generators)
        rss_after = [rss_bytes(edge.pid) for edge in edges]
        doc = origin.stream()
        result.origin_players = None if doc is None else doc.get("players")
        result.origin_cpu = (after["origin"] - before["origin"]) / s.duration
        result.edge_cpu = [
            (after[e.address.name] - before[e.address.name]) / s.duration for e in edges
        ]
        result.generator_cpu_percent = 100 * (gen_after - gen_before) / s.duration / len(load_cpus)

        time.sleep(s.drain)
        for child in generators:
            child.finish(30)
        publisher.finish(30)
        if not pub_out.exists():
            raise BenchmarkError("the publisher wrote no summary")
        published = json.loads(pub_out.read_text())
        all_summaries: dict[str, list[dict[str, Any]]] = {}
        for group in groups:
            summaries = []
            for child, out in group.generators:
                if not out.exists():
                    raise BenchmarkError(f"{child.name} wrote no summary")
                summaries.append(json.loads(out.read_text()))
            all_summaries[group.name] = summaries
        named = [(g.name, g.players, all_summaries[g.name]) for g in groups]
        edge_summaries = [
            x for g in groups if g.name.startswith("edge") for x in all_summaries[g.name]
        ]
        named.append(("edges", 2 * s.edge_players, edge_summaries))
        for name, players, summaries in named:
            group_result = Result(
                server=name,
                version="",
                players=players,
                duration=s.duration,
                messages_per_second=profile.messages_per_second,
            )
            summarise(group_result, summaries, published, (t0, t1))
            result.groups[name] = group_result
        for i, edge in enumerate(edges):
            delivered = result.groups[edge.address.name].delivered
            cpu = result.edge_cpu[i] * s.duration
            result.edge_cpu_per_million.append(cpu / delivered * 1e6 if delivered else None)
            result.edge_rss_per_player.append((rss_after[i] - rss_before[i]) / s.edge_players)
        if result.generator_cpu_percent > 85:
            result.notes.append(
                f"the load generators used {result.generator_cpu_percent:.0f}% of their CPUs: "
                "latency includes their own queueing"
            )
        if published.get("max_slip_ms", 0) > 50:
            result.notes.append(
                f"the publisher fell up to {published['max_slip_ms']:.0f} ms behind its schedule"
            )
    finally:
        for child in children:
            child.kill()
        for node in nodes:
            status = node.stop()
            if status not in (0, None):
                result.notes.append(f"{node.name} exited with status {status}")
        if redis is not None:
            redis.stop()
    return result


def run_single(s: ClusterScenario, loadgen: Path, workdir: Path) -> Result:
    """The same number of players on one process (``benchmarks.fanout``'s scenario, pinned the
    same way), for the comparison with one process."""
    players = 2 * s.edge_players + s.direct
    scenario = Scenario(
        players=players,
        duration=s.duration,
        profile=s.profile,
        procs=max(1, math.ceil(players / PLAYERS_PER_GENERATOR)),
        setup_concurrency=s.setup_concurrency,
        setup_timeout=30.0,
        setup_budget=s.setup_budget,
        settle=s.settle,
        drain=s.drain,
        baseline=1.0,
        pin=s.pin,
    )
    server = FMSServer(workdir, None, s.log_level, None, players)
    return run_scenario(server, scenario, loadgen, workdir)


# ---------------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cluster", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--link", choices=LINKS, default="static", help="how edges get it")
    parser.add_argument("--edge-players", type=int, default=200, help="players per edge")
    parser.add_argument("--direct", type=int, default=100, help="players on the origin")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="550k")
    parser.add_argument("--phase", type=float, default=10.0, help="seconds per origin-CPU phase")
    parser.add_argument("--settle", type=float, default=2.0)
    parser.add_argument("--drain", type=float, default=3.0)
    parser.add_argument("--setup-concurrency", type=int, default=100)
    parser.add_argument("--setup-budget", type=float, default=120.0)
    parser.add_argument(
        "--live-timeout", type=float, default=30.0, help="seconds an edge may take to go live"
    )
    parser.add_argument(
        "--single", action="store_true", help="then the same players on one process"
    )
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--fms-log-level", default="info")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.edge_players < 1 or args.direct < 0 or not 0 < args.duration <= 600:
        print("--edge-players >= 1, --direct >= 0, --duration in (0, 600]", file=sys.stderr)
        return 2
    scenario = ClusterScenario(
        link=args.link,
        profile=args.profile,
        edge_players=args.edge_players,
        direct=args.direct,
        duration=args.duration,
        phase=args.phase,
        settle=args.settle,
        drain=args.drain,
        setup_concurrency=args.setup_concurrency,
        setup_budget=args.setup_budget,
        live_timeout=args.live_timeout,
        pin=not args.no_pin,
        log_level=args.fms_log_level,
    )
    profile = PROFILES[args.profile]
    print(
        f"scenario: origin + 2 edges ({args.link} link), {args.edge_players} players per edge + "
        f"{args.direct} on the origin, one {profile.kbit_per_second:.0f} kbit/s stream "
        f"({profile.messages_per_second:g} messages/s), {args.duration:g} s measured; "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    temp = Path(tempfile.mkdtemp(prefix="pyfms-cluster-"))
    single: Result | None = None
    try:
        loadgen = build_loadgen()
        load = os.getloadavg()
        print("load average before: " + ", ".join(f"{x:.2f}" for x in load), flush=True)
        (temp / "cluster").mkdir()
        result = run_cluster(scenario, loadgen, temp / "cluster")
        result.load_before = load[0]
        print(format_report(result), flush=True)
        if args.single:
            (temp / "single").mkdir()
            load = os.getloadavg()
            print("load average before one process: " + ", ".join(f"{x:.2f}" for x in load))
            single = run_single(scenario, loadgen, temp / "single")
            single.load_before = load[0]
            print(
                f"== one process, {single.players} players: delivery {single.delivery_ratio:.4f}"
                f" (worst {single.min_player_ratio:.4f}), {single.failed_setup} failed setup, "
                f"{single.disconnected} disconnected; latency p50 {_num(single.latency_p50_ms)} "
                f"p99 {_num(single.latency_p99_ms)} ms; CPU {single.server_cpu_percent:.0f}% = "
                f"{_num(single.cpu_per_million, 2)} CPU-s per million messages",
                flush=True,
            )
    except BenchmarkError as exc:
        print(f"the benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {temp}")
        else:
            shutil.rmtree(temp, ignore_errors=True)
    print()
    print(format_table([result]))
    command = shlex.join([".venv/bin/python", "-m", "benchmarks.cluster", *(argv or sys.argv[1:])])
    print(f"reproduce: {command}")
    if args.json:
        payload = {
            "scenario": asdict(scenario),
            "command": command,
            "result": asdict(result),
            "hop_p50_ms": result.hop_ms("p50"),
            "hop_p99_ms": result.hop_ms("p99"),
            "origin_cpu_per_edge": result.origin_cpu_per_edge,
            "origin_cpu_per_player": result.origin_cpu_per_player,
            "single": asdict(single) if single else None,
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
