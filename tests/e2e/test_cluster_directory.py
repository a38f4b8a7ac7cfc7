"""The cluster's stream directory with a real Redis and real nodes (issue 19, item 3).

Debian's ``redis-server`` started by the test on a free port; three ``fms run`` processes on
127.0.0.1, 127.0.0.2 and 127.0.0.3, each with ``[cluster]`` naming that Redis and its own
``node_url``; FFmpeg publishes and plays, redis-cli reads the directory:

- a publish on A is recorded as ``app/stream -> A`` with a time to live; a publish of the same
  name on C is refused with ``NetStream.Publish.BadName``; when A's publisher leaves the entry
  is deleted (with a TTL far longer than the test: not by expiry), and C may publish the name;
- A killed with SIGKILL while publishing: its entry expires within the TTL (plus a second);
- Redis killed: A's player keeps decoding, A logs the outage once; Redis back on its port
  (empty): A records its stream again within a few heartbeats.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.fanout import free_ports
from tests.e2e.harness import (
    ServerProcess,
    ffmpeg_publish_command,
    finish,
    frames_by_codec,
    require_client,
    start,
)
from tests.e2e.redis_server import RedisServer, free_port, redis_server
from tests.e2e.test_http_api import HTTP_LISTENING, call, metrics, wait_until

pytestmark = pytest.mark.e2e

FPS = 25
KEY = "fms:stream:live/cam"


class Node:
    """``fms run`` on ``host`` and a free port, a node of the cluster of ``redis``."""

    def __init__(
        self, folder: Path, host: str, db: RedisServer, ttl: float, heartbeat: float = 0.0
    ) -> None:
        self.port = free_port(host)
        self.url = f"rtmp://{host}:{self.port}"
        config = folder / f"node-{host}.toml"
        config.write_text(
            f'[http]\nenabled = true\nhost = "{host}"\nport = 0\n'
            f'[cluster]\nredis = "{db.url}"\nnode_url = "{self.url}"\n'
            f'ttl = {ttl}\nheartbeat = {heartbeat}\nsecret = "cluster-test"\n'
        )
        self.server = ServerProcess(
            "--config", str(config), "--host", host, "--port", str(self.port)
        )
        match = HTTP_LISTENING.search(self.server.wait_for_line(HTTP_LISTENING, timeout=20))
        assert match is not None
        self.api = match.group(1)
        self.server.wait_for_line(r"cluster directory connected", timeout=20)

    def cluster(self) -> dict[str, Any]:
        status, doc = call(self.api, "GET", "/api/v1/server")
        assert status == 200, doc
        return dict(doc["cluster"])


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server for one test, killed afterwards."""
    yield from redis_server(tmp_path)


@pytest.fixture
def cluster(tmp_path: Path, redis: RedisServer) -> Iterator[Any]:
    """``make(ttl, heartbeat)`` -> nodes A, B, C; every node still running is stopped cleanly."""
    nodes: list[Node] = []

    def make(ttl: float, heartbeat: float = 0.0) -> list[Node]:
        for host in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
            nodes.append(Node(tmp_path, host, redis, ttl, heartbeat))
        return nodes

    try:
        yield make
    finally:
        for node in nodes:
            if node.server.process.poll() is None:
                status = node.server.stop()
                assert status == 0, node.server.log()


def test_a_publish_is_recorded_refused_on_another_node_and_deleted_when_it_ends(
    cluster: Any,
    redis: RedisServer,
) -> None:
    ttl = 120.0  # far beyond the test: an entry that goes was deleted, not expired
    a, b, c = cluster(ttl)
    publisher = start(ffmpeg_publish_command(f"{a.url}/live/cam", 120, fps=FPS))
    try:
        a.server.wait_for_line(r"publish started live/cam from", timeout=30)
        value = wait_until("A's entry", lambda: redis.get(KEY))
        assert value.split("#", 1)[0] == a.url
        assert 0 < int(redis.command("PTTL", KEY)) <= ttl * 1000
        assert a.cluster() == {
            "node_url": a.url, "connected": True, "entries": 1, "conflicts": 0, "outages": 0
        }  # fmt: skip
        assert metrics(a.api)[("fms_cluster_entries", ())] == 1

        status, _, err = finish(start(ffmpeg_publish_command(f"{c.url}/live/cam", 5)))
        assert status != 0
        assert b"BadName" in err or b"already" in err, err.decode(errors="replace")
        c.server.wait_for_line(
            rf"refusing publish live/cam from .*: published on {re.escape(a.url)}$"
        )
        assert redis.get(KEY) == value, "the refused node left A's entry alone"
        assert c.cluster()["entries"] == 0

        other = start(ffmpeg_publish_command(f"{b.url}/live/other", 120, fps=FPS))
        try:
            b.server.wait_for_line(r"publish started live/other from", timeout=30)
            entry = wait_until("B's entry", lambda: redis.get("fms:stream:live/other"))
            assert entry.split("#", 1)[0] == b.url
        finally:
            other.terminate()
            finish(other)
    finally:
        publisher.terminate()
        finish(publisher)
    a.server.wait_for_line(r"publish stopped live/cam from")
    wait_until("A's entry deleted", lambda: redis.get(KEY) is None, timeout=20)
    assert a.cluster()["entries"] == 0

    again = start(ffmpeg_publish_command(f"{c.url}/live/cam", 120, fps=FPS))
    try:
        c.server.wait_for_line(r"publish started live/cam from", timeout=30)
        entry = wait_until("C's entry", lambda: redis.get(KEY))
        assert entry.split("#", 1)[0] == c.url
    finally:
        again.terminate()
        finish(again)


def test_the_entries_of_a_node_killed_while_publishing_expire_within_the_ttl(
    cluster: Any,
    redis: RedisServer,
) -> None:
    ttl, heartbeat = 3.0, 1.0
    a, _, _ = cluster(ttl, heartbeat)
    publisher = start(ffmpeg_publish_command(f"{a.url}/live/cam", 120, fps=FPS))
    try:
        a.server.wait_for_line(r"publish started live/cam from", timeout=30)
        wait_until("A's entry", lambda: redis.get(KEY))
        os.kill(a.server.process.pid, signal.SIGKILL)
        a.server.process.wait(timeout=20)
        killed = time.monotonic()
        left = int(redis.command("PTTL", KEY))
        assert 0 < left <= ttl * 1000, "the entry outlives its dead node by at most the TTL"
        wait_until("A's entry expired", lambda: redis.get(KEY) is None, timeout=ttl + 1)
        assert time.monotonic() - killed <= ttl + 1
    finally:
        publisher.kill()
        finish(publisher)


def test_redis_lost_leaves_the_live_stream_playing_and_redis_back_gets_the_entry_again(
    cluster: Any,
    redis: RedisServer,
) -> None:
    ttl, heartbeat = 3.0, 1.0
    a, _, _ = cluster(ttl, heartbeat)
    seconds = 12
    publisher = start(ffmpeg_publish_command(f"{a.url}/live/cam", 120, fps=FPS))
    try:
        a.server.wait_for_line(r"publish started live/cam from", timeout=30)
        wait_until("A's entry", lambda: redis.get(KEY))
        probe = [require_client("ffprobe"), "-v", "error", "-read_intervals", f"%+{seconds}"]
        probe += ["-count_frames", "-show_entries", "stream=codec_name,nb_read_frames"]
        player = start([*probe, "-of", "json", f"{a.url}/live/cam"])
        a.server.wait_for_line(r"play live/cam for ", timeout=30)

        redis.kill()
        a.server.wait_for_line(r"Redis unreachable", timeout=20)

        def messages() -> int:
            status, doc = call(a.api, "GET", "/api/v1/streams/live/cam")
            return int(doc["messages_in"]) if status == 200 else 0

        before = messages()  # the stream goes on without Redis: 2 s of video more
        wait_until("media during the outage", lambda: messages() >= before + 2 * FPS)
        assert a.cluster()["connected"] is False

        redis.start()
        assert redis.get(KEY) is None, "a Redis restarted without its data"
        a.server.wait_for_line(r"Redis reachable again: recording the 1 stream", timeout=30)
        entry = wait_until("A's entry again", lambda: redis.get(KEY), timeout=4 * heartbeat)
        assert entry.split("#", 1)[0] == a.url

        status, out, err = finish(player, timeout=90)
        assert status == 0, err.decode(errors="replace")
        assert frames_by_codec(out).get("h264", 0) >= FPS * (seconds - 1)
        assert len(re.findall(r"Redis unreachable", a.server.log())) == 1
        assert a.cluster()["outages"] == 1
    finally:
        publisher.terminate()
        finish(publisher)


WORKERS_HTTP = re.compile(r"listening on http://127\.0\.0\.1:(\d+)/ \(2 workers\)")


def test_the_workers_of_a_node_share_one_entry_that_a_stop_deletes(
    tmp_path: Path, redis: RedisServer
) -> None:
    """With ``--workers 2`` the node records a stream once, with the node's URL; the same name
    on its other worker is refused by the node's own claims and leaves the entry alone; the
    API adds the workers' entries up; stopping the node (SIGTERM) deletes its entries."""
    shared, *own = free_ports(3)
    node_url = f"rtmp://127.0.0.1:{shared}"
    config = tmp_path / "node.toml"
    config.write_text(
        f"[server]\nworker_ports = {own}\n[http]\nenabled = true\nport = 0\n"
        f'[cluster]\nredis = "{redis.url}"\nnode_url = "{node_url}"\nttl = 120.0\n'
        'secret = "cluster-test"\n'
    )
    server = ServerProcess("--config", str(config), "--workers", "2", "--port", str(shared))
    publisher = None
    try:
        match = WORKERS_HTTP.search(server.wait_for_line(WORKERS_HTTP, timeout=30))
        assert match is not None
        api = f"http://127.0.0.1:{match.group(1)}"
        server.wait_for_lines(r"cluster directory connected", 2)
        publisher = start(ffmpeg_publish_command(f"rtmp://127.0.0.1:{own[0]}/live/cam", 120))
        server.wait_for_line(r" w0 .*publish started live/cam", timeout=30)
        value = wait_until("the node's entry", lambda: redis.get(KEY))
        assert value.split("#", 1)[0] == node_url

        status, _, err = finish(start(ffmpeg_publish_command(f"{own_url(own[1])}/live/cam", 5)))
        assert status != 0, err.decode(errors="replace")
        server.wait_for_line(r" w1 .*refusing publish live/cam from .*already published")
        assert redis.get(KEY) == value

        def both_workers() -> dict[str, Any] | None:
            status, doc = call(api, "GET", "/api/v1/server")
            if status == 200 and doc["workers_answering"] == 2:
                return dict(doc["cluster"])
            return None

        assert wait_until("both workers", both_workers) == {
            "node_url": node_url, "connected": True, "entries": 1, "conflicts": 0, "outages": 0
        }  # fmt: skip
        assert redis.command("KEYS", "fms:stream:*") == KEY, "one entry for the node"
    finally:
        assert server.stop() == 0, server.log()
        if publisher is not None:
            publisher.kill()
            finish(publisher)
    assert redis.get(KEY) is None, "the stopped node deleted its entry (the TTL is 120 s)"


def own_url(port: int) -> str:
    return f"rtmp://127.0.0.1:{port}"
