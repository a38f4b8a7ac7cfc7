"""Cluster pulls with a real Redis and real nodes (issue 19, item 3): a node asked to play a
stream another node holds pulls it from that node over the private path.

Debian's ``redis-server`` started by the test on a free port; ``fms run`` nodes on 127.0.0.2,
127.0.0.3, 127.0.0.4 (and 127.0.0.5 for the tree), each with ``[cluster]`` naming that Redis;
FFmpeg publishes, ffprobe decodes and counts frames, and :class:`Watcher` (pyFMS's own client
state machine over a real socket, in a thread) records the statuses and media a player gets,
so a test can see ``Play.UnpublishNotify`` and ``Play.PublishNotify`` on one connection.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.fanout import free_ports
from fms.cluster.token import make_query
from fms.rtmp import client as rc
from tests.e2e.harness import (
    ServerProcess,
    ffmpeg_publish_command,
    finish,
    frames_by_codec,
    require_client,
    start,
)
from tests.e2e.redis_server import RedisServer, free_port, redis_server
from tests.e2e.test_http_api import HTTP_LISTENING, call, wait_until

pytestmark = pytest.mark.e2e

FPS = 25
KEY = "fms:stream:live/cam"
SECRET = "cluster-pull-test"
NO_PLAY_PLUGIN = """
from fms.apps.api import Plugin, Reject


class NoPlay(Plugin):
    def play(self, client, name, query):
        return Reject("no plays on this node")
"""


class Node:
    """``fms run`` on ``host`` and a free port, a node of the cluster of ``db``; ``extra``
    is appended to its ``[cluster]`` table, ``tail`` to its configuration."""

    def __init__(
        self,
        folder: Path,
        host: str,
        db: RedisServer,
        *,
        ttl: float = 3.0,
        extra: str = "",
        tail: str = "",
        workers: int = 0,
        port: int = 0,
    ) -> None:
        ports = free_ports(1 + workers) if workers else [port or free_port(host)]
        self.port = ports[0]
        self.worker_ports = ports[1:]
        self.url = f"rtmp://{host}:{self.port}"
        config = folder / f"node-{host}.toml"
        server = f"[server]\nworker_ports = {self.worker_ports}\n" if workers else ""
        config.write_text(
            f'{server}[http]\nenabled = true\nhost = "{host}"\nport = 0\n'
            f'[cluster]\nredis = "{db.url}"\nnode_url = "{self.url}"\n'
            f'ttl = {ttl}\nheartbeat = {ttl / 3}\nsecret = "{SECRET}"\n{extra}\n{tail}'
        )
        args = ["--config", str(config), "--host", host, "--port", str(self.port)]
        if workers:
            args += ["--workers", str(workers)]
        self.server = ServerProcess(*args)
        match = HTTP_LISTENING.search(self.server.wait_for_line(HTTP_LISTENING, timeout=30))
        assert match is not None
        self.api = match.group(1)
        self.server.wait_for_lines(r"cluster directory connected", max(workers, 1), timeout=30)

    def stream(self, name: str = "cam") -> dict[str, Any] | None:
        status, doc = call(self.api, "GET", f"/api/v1/streams/live/{name}")
        return doc if status == 200 else None

    def links(self, name: str = "cam") -> list[str]:
        doc = self.stream(name)
        return list(doc["cluster_links"]) if doc is not None else []


class Watcher:
    """A player of ``rtmp://host:port/live/NAME`` on its own socket, read by a thread that
    records every event with its ``time.monotonic()``; ``app`` may carry a query."""

    def __init__(self, host: str, port: int, name: str, app: str = "live") -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.conn = rc.ClientConnection(digest=False, chunk_size=4096)
        self.conn.initiate()
        self.conn.connect(app, f"rtmp://{host}:{port}/{app}")
        self.conn.create_stream()
        self.name = name
        self.events: list[tuple[float, rc.ClientEvent]] = []
        self.closed = False
        self._stop = False
        self._send()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _send(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def _run(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            if not data:
                self.closed = True
                return
            now = time.monotonic()
            for event in self.conn.receive_data(data, now):
                if isinstance(event, rc.StreamCreated):
                    self.conn.play(event.stream_id, self.name, -1000.0)
                self.events.append((now, event))
            try:
                self._send()
            except OSError:
                self.closed = True
                return

    def codes(self) -> list[str]:
        return [e.code for _, e in list(self.events) if isinstance(e, rc.StatusReceived)]

    def status(self, code: str, after: int = 0, timeout: float = 30.0) -> tuple[int, float]:
        """Wait for status ``code`` among the events from index ``after``: (its index, when)."""

        def find() -> tuple[int, float] | None:
            for index, (when, event) in enumerate(list(self.events)):
                if index >= after and isinstance(event, rc.StatusReceived) and event.code == code:
                    return index, when
            return None

        found = wait_until(f"{code} (events {self.codes()[-6:]})", find, timeout=timeout)
        assert isinstance(found, tuple)
        return found

    def video(self, after: int = 0) -> int:
        """Video messages received from event index ``after``."""
        return sum(
            1
            for _, event in list(self.events)[after:]
            if isinstance(event, rc.MediaArrived) and event.message.is_video
        )

    def rejected(self, timeout: float = 30.0) -> rc.ConnectRejected:
        found = wait_until(
            "the refusal",
            lambda: next((e for _, e in self.events if isinstance(e, rc.ConnectRejected)), None),
            timeout=timeout,
        )
        assert isinstance(found, rc.ConnectRejected)
        return found

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        self._thread.join(timeout=5)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    yield from redis_server(tmp_path)


@pytest.fixture
def nodes(tmp_path: Path, redis: RedisServer) -> Iterator[Callable[..., Node]]:
    """``make(host, **options)`` -> a node; every node still running is stopped cleanly."""
    made: list[Node] = []

    def make(host: str, **options: Any) -> Node:
        made.append(Node(tmp_path, host, redis, **options))
        return made[-1]

    try:
        yield make
    finally:
        for node in made:
            if node.server.process.poll() is None:
                assert node.server.stop() == 0, node.server.log()


@pytest.fixture
def clients() -> Iterator[list[Any]]:
    """Processes and watchers to kill or close at the end."""
    started: list[Any] = []
    yield started
    for client in started:
        if isinstance(client, Watcher):
            client.close()
        elif client.poll() is None:
            client.kill()
            finish(client)


def _probe(url: str, seconds: float) -> list[str]:
    return [require_client("ffprobe"), "-v", "error", "-rw_timeout", "60000000",
            "-read_intervals", f"%+{seconds:g}", "-count_frames",
            "-show_entries", "stream=codec_name,nb_read_frames", "-of", "json", url]  # fmt: skip


def _publish(url: str, clients: list[Any], seconds: float = 300) -> Any:
    publisher = start(ffmpeg_publish_command(url, seconds, fps=FPS))
    clients.append(publisher)
    return publisher


def _decoded(player: Any, seconds: float) -> int:
    status, out, err = finish(player, timeout=120)
    assert status == 0, err.decode(errors="replace")
    frames = frames_by_codec(out).get("h264", 0)
    assert frames >= FPS * (seconds - 1), (frames, err.decode(errors="replace"))
    return frames


# ------------------------------------------------------------------------------- tests


def test_edges_pull_a_stream_once_each_from_the_node_that_holds_it(
    nodes: Callable[..., Node], redis: RedisServer, clients: list[Any]
) -> None:
    """Publish on A; 3 ffprobe players on B (two RTMP, one HTTP-FLV) and 2 on C decode it; B
    and C each make one cluster pull (origin "cluster"), A serves one link per pulling node,
    and the directory still names A (a pulled stream is not recorded as held by its
    puller)."""
    a, b, c = nodes("127.0.0.2"), nodes("127.0.0.3"), nodes("127.0.0.4")
    _publish(f"{a.url}/live/cam", clients)
    a.server.wait_for_line(r"publish started live/cam from", timeout=30)
    wait_until("A's entry", lambda: redis.get(KEY))
    seconds = 6
    urls = [f"{b.url}/live/cam", f"{b.url}/live/cam", f"{b.api}/live/cam.flv"]
    urls += [f"{c.url}/live/cam", f"{c.url}/live/cam"]
    players = [start(_probe(url, seconds)) for url in urls]
    clients.extend(players)
    b.server.wait_for_line(r"pull live/cam <- .* is live", timeout=30)
    c.server.wait_for_line(r"pull live/cam <- .* is live", timeout=30)
    wait_until("B's players", lambda: (b.stream() or {}).get("players") == 3)
    doc = b.stream()
    assert doc is not None
    pull = doc["pull"]
    assert (pull["origin"], pull["state"], pull["url"]) == ("cluster", "live", f"{a.url}/live")
    assert pull["connects"] == 1
    assert doc["publisher"]["address"] == f"{a.url}/live"
    assert sorted(a.links()) == sorted([b.url, c.url])
    assert b.links() == [] and c.links() == []
    for player in players:
        _decoded(player, seconds)
    assert redis.get(KEY).split("#", 1)[0] == a.url
    assert len(re.findall(r"cluster link from", a.server.log())) == 2, "one link per node"
    assert len(re.findall(r"pull live/cam .* is live", b.server.log())) == 1


def test_a_stream_that_moves_plays_again_on_the_same_connections(
    nodes: Callable[..., Node], redis: RedisServer, clients: list[Any]
) -> None:
    """A killed with SIGKILL: the players on B and C get Play.UnpublishNotify within the TTL
    plus a second and stay connected; republished on C once A's entry expired: the same
    connections get Play.PublishNotify and video again, without reconnecting."""
    ttl = 3.0
    a, b, c = nodes("127.0.0.2", ttl=ttl), nodes("127.0.0.3", ttl=ttl), nodes("127.0.0.4", ttl=ttl)
    publisher = _publish(f"{a.url}/live/cam", clients)
    a.server.wait_for_line(r"publish started live/cam from", timeout=30)
    wait_until("A's entry", lambda: redis.get(KEY))
    on_b = Watcher("127.0.0.3", b.port, "cam")
    on_c = Watcher("127.0.0.4", c.port, "cam")
    clients.extend([on_b, on_c])
    for watcher in (on_b, on_c):
        start_index, _ = watcher.status("NetStream.Play.PublishNotify")
        wait_until("video", lambda w=watcher, i=start_index: w.video(i) >= FPS)

    os.kill(a.server.process.pid, signal.SIGKILL)
    a.server.process.wait(timeout=20)
    killed = time.monotonic()
    publisher.kill()
    gone = {}
    for watcher in (on_b, on_c):
        index, when = watcher.status("NetStream.Play.UnpublishNotify", timeout=ttl + 20)
        assert when - killed <= ttl + 1, f"UnpublishNotify {when - killed:.1f}s after the kill"
        gone[watcher] = index
    wait_until("A's entry expired", lambda: redis.get(KEY) is None, timeout=ttl + 20)

    _publish(f"{c.url}/live/cam", clients)
    c.server.wait_for_line(r"publish started live/cam from", timeout=30)
    wait_until("C's entry", lambda: (redis.get(KEY) or "").startswith(c.url + "#"))
    for watcher in (on_b, on_c):
        index, _ = watcher.status("NetStream.Play.PublishNotify", after=gone[watcher])
        wait_until("video again", lambda w=watcher, i=index: w.video(i) >= 2 * FPS, timeout=60)
        assert not watcher.closed, "the player never reconnected: the same connection plays"
    doc = b.stream()
    assert (
        doc is not None
        and doc["pull"]["url"] == f"{c.url}/live"
        and doc["pull"]["origin"] == "cluster"
    )
    assert c.stream() is not None and (c.stream() or {})["pull"] is None, "C serves its own"


def test_redis_lost_while_an_edge_pulls_leaves_its_players_playing(
    nodes: Callable[..., Node], redis: RedisServer, clients: list[Any]
) -> None:
    """Redis killed while B pulls from A: B's player decodes on to its end, and A's entry is
    back within a few heartbeats once Redis returns (empty)."""
    ttl = 3.0
    a, b = nodes("127.0.0.2", ttl=ttl), nodes("127.0.0.3", ttl=ttl)
    _publish(f"{a.url}/live/cam", clients)
    a.server.wait_for_line(r"publish started live/cam from", timeout=30)
    wait_until("A's entry", lambda: redis.get(KEY))
    seconds = 12
    player = start(_probe(f"{b.url}/live/cam", seconds))
    clients.append(player)
    b.server.wait_for_line(r"pull live/cam <- .* is live", timeout=30)

    redis.kill()
    b.server.wait_for_line(r"Redis unreachable", timeout=20)

    def messages() -> int:
        doc = b.stream()
        return int(doc["messages_in"]) if doc is not None else 0

    before = messages()
    wait_until("media during the outage", lambda: messages() >= before + 2 * FPS)
    redis.start()
    a.server.wait_for_line(r"Redis reachable again: recording the 1 stream", timeout=30)
    entry = wait_until("A's entry again", lambda: redis.get(KEY), timeout=4 * ttl)
    assert entry.split("#", 1)[0] == a.url
    _decoded(player, seconds)
    assert (b.stream() or {})["pull"]["connects"] == 1, "the pull never broke"


def test_the_private_path_needs_the_token_and_bypasses_the_plugins_of_the_node_pulled_from(
    tmp_path: Path, nodes: Callable[..., Node], redis: RedisServer, clients: list[Any]
) -> None:
    """A refuses every play with a plugin: a normal player on A is refused, a connect with the
    cluster marker and no or a wrong token is refused (Connect.Rejected, one log line each),
    while B's players (decided by B's plugins, which have none) decode what B pulls from A."""
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "noplay.py").write_text(NO_PLAY_PLUGIN)
    a = nodes("127.0.0.2", tail="[[apps.live.plugins]]\nuse = 'noplay'\n")
    b = nodes("127.0.0.3")
    _publish(f"{a.url}/live/cam", clients)
    a.server.wait_for_line(r"publish started live/cam from", timeout=30)
    wait_until("A's entry", lambda: redis.get(KEY))

    normal = Watcher("127.0.0.2", a.port, "cam")
    clients.append(normal)
    normal.status("NetStream.Play.Failed")

    for query in ("fmscluster=", "fmscluster=v1.1.00.ff&fmsvia=rtmp%3A%2F%2Fx"):
        intruder = Watcher("127.0.0.2", a.port, "cam", app=f"live?{query}")
        clients.append(intruder)
        assert intruder.rejected().code == "NetConnection.Connect.Rejected"
        wait_until("closed", lambda w=intruder: w.closed)
    forged = make_query("another secret", "live", ("rtmp://127.0.0.9:1935",), time.time())
    intruder = Watcher("127.0.0.2", a.port, "cam", app=f"live?{forged}")
    clients.append(intruder)
    assert intruder.rejected().code == "NetConnection.Connect.Rejected"
    assert len(re.findall(r"refusing cluster link from", a.server.log())) == 3

    seconds = 5
    player = start(_probe(f"{b.url}/live/cam", seconds))
    clients.append(player)
    b.server.wait_for_line(r"pull live/cam <- .* is live", timeout=30)
    assert a.links() == [b.url]
    _decoded(player, seconds)
    assert a.links() == [b.url], "the link outlives the player by B's idle timeout"
    assert len(re.findall(r"refusing cluster link from", a.server.log())) == 3


def test_an_edge_with_a_parent_pulls_through_it_and_the_origin_serves_the_parent_alone(
    nodes: Callable[..., Node], redis: RedisServer, clients: list[Any]
) -> None:
    """D's parent is B: a player on D decodes; B pulls from A for D's link, so A serves one
    link (B's) and B one (D's)."""
    a, b = nodes("127.0.0.2"), nodes("127.0.0.3")
    d = nodes("127.0.0.5", extra=f'parent = "rtmp://127.0.0.3:{b.port}"')
    _publish(f"{a.url}/live/cam", clients)
    a.server.wait_for_line(r"publish started live/cam from", timeout=30)
    wait_until("A's entry", lambda: redis.get(KEY))
    seconds = 6
    player = start(_probe(f"{d.url}/live/cam", seconds))
    clients.append(player)
    _decoded(player, seconds)
    assert a.links() == [b.url]
    assert b.links() == [d.url]
    pull = (d.stream() or {})["pull"]
    assert (pull["origin"], pull["url"]) == ("cluster", f"{b.url}/live")


def test_a_loop_of_parents_is_refused_where_it_comes_back(
    nodes: Callable[..., Node], redis: RedisServer, clients: list[Any]
) -> None:
    """D's parent is E and E's is D: a player on D makes D ask E, E ask D on D's behalf, and
    D refuses that link (its token's via names D) with a log line; the player waits."""
    d_port, e_port = free_port("127.0.0.5"), free_port("127.0.0.6")
    d = nodes("127.0.0.5", port=d_port, extra=f'parent = "rtmp://127.0.0.6:{e_port}"')
    e = nodes("127.0.0.6", port=e_port, extra=f'parent = "rtmp://127.0.0.5:{d_port}"')
    player = Watcher("127.0.0.5", d.port, "cam")
    clients.append(player)
    e.server.wait_for_line(r"cluster link from rtmp://127\.0\.0\.5", timeout=30)
    d.server.wait_for_line(r"refusing cluster link from .*cluster loop", timeout=30)
    assert "NetStream.Play.PublishNotify" not in player.codes() and not player.closed
    wait_until("D's link on E", lambda: e.links() == [d.url])
    assert d.links() == [], "D serves no link: E's was refused"


def test_two_workers_of_an_edge_keep_one_live_pull(
    nodes: Callable[..., Node], redis: RedisServer, clients: list[Any]
) -> None:
    """B runs two workers with players on both waiting for a stream nobody publishes yet, so
    each worker has a cluster pull retrying; published on A, one worker's pull goes live and
    the other's stops (the stream reaches it through the worker relay, or its own try loses
    the node's name claim): A ends with one link from B, and every player decodes."""
    a = nodes("127.0.0.2")
    b = nodes("127.0.0.3", workers=2)
    seconds = 6
    players = [start(_probe(f"rtmp://127.0.0.3:{port}/live/cam", seconds)) for port in
               (*b.worker_ports, *b.worker_ports)]  # fmt: skip
    clients.extend(players)
    for worker in ("w0", "w1"):
        b.server.wait_for_line(rf" {worker} .*pull live/cam <- .* started", timeout=30)
    _publish(f"{a.url}/live/cam", clients)
    a.server.wait_for_line(r"publish started live/cam from", timeout=30)
    b.server.wait_for_line(r"pull live/cam <- .* is live", timeout=30)
    b.server.wait_for_line(r"pull live/cam .*(published here meanwhile|stopped)", timeout=30)
    wait_until("one link from B", lambda: a.links() == [b.url], timeout=20)
    for player in players:
        _decoded(player, seconds)
    assert a.links() == [b.url], "one link from the node, its players still decoding"
    log = b.server.log()
    live = set(re.findall(r" (w\d) .*pull live/cam <- .* is live", log))
    stopped = set(re.findall(r" (w\d) .*pull live/cam .*published here meanwhile", log))
    assert len(live - stopped) == 1 and live | stopped == {"w0", "w1"}, (live, stopped)
