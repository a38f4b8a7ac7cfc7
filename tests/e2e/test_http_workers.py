"""The HTTP API of ``fms run --workers 2`` answers for both workers, whichever one the kernel
hands the HTTP connection to: a stream published on worker 0 with players on both workers
shows the exact total from either, every client is listed with its worker's id, a kick sent
to one worker ends a player held by the other (checked on the player side), and a stop sent
to worker 1 ends the publish held by worker 0 (the publisher is cut off, a player on worker 1
ends)."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.fanout import free_ports
from tests.e2e.harness import ServerProcess, ffmpeg_publish_command, require_client, start

pytestmark = pytest.mark.e2e

TOKEN = "workers-token"
HTTP_LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)/ \(2 workers\)")


def request(port: int, method: str, path: str, token: str | None = None) -> tuple[int, Any, int]:
    """(status, JSON or text body, the worker that answered) of one request on a fresh
    connection (so the kernel picks a worker anew)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        return on(conn, method, path, token)
    finally:
        conn.close()


def on(
    conn: http.client.HTTPConnection, method: str, path: str, token: str | None = None
) -> tuple[int, Any, int]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conn.request(method, path, headers=headers)
    response = conn.getresponse()
    data = response.read()
    worker = int(response.getheader("X-FMS-Worker", "-1"))
    if response.getheader("Content-Type", "").startswith("application/json"):
        return response.status, json.loads(data), worker
    return response.status, data.decode(), worker


def wait_until(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_figures_cover_both_workers_and_a_kick_reaches_the_other_worker(
    tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    ports = free_ports(2)
    config = tmp_path / "fms.toml"
    config.write_text(
        f'[server]\nworker_ports = {ports}\n[http]\nenabled = true\nport = 0\ntoken = "{TOKEN}"\n'
    )
    server = ServerProcess("--config", str(config), "--workers", "2")
    try:
        match = HTTP_LISTENING.search(server.wait_for_line(HTTP_LISTENING, timeout=30))
        assert match is not None
        port = int(match.group(1))
        own = [f"rtmp://127.0.0.1:{p}/live/cam" for p in ports]
        publisher = start(ffmpeg_publish_command(own[0], 120))
        procs.append(publisher)
        server.wait_for_line(r"w0 .*publish started live/cam")
        rtmpdump, ffmpeg = require_client("rtmpdump"), require_client("ffmpeg")
        players = {
            "w0 rtmpdump": [rtmpdump, "-r", own[0], "--live", "-o", "/dev/null"],
            "w0 ffmpeg": [ffmpeg, "-v", "error", "-i", own[0], "-f", "null", "-"],
            "w1 rtmpdump": [rtmpdump, "-r", own[1], "--live", "-o", "/dev/null"],
            "w1 ffmpeg": [ffmpeg, "-v", "error", "-i", own[1], "-f", "null", "-"],
        }
        running = {name: start(command) for name, command in players.items()}
        procs.extend(running.values())
        server.wait_for_lines(r"w0 .*play live/cam for ", 2)
        server.wait_for_lines(r"w1 .*play live/cam for ", 2)

        def everyone_counted() -> bool:
            status, body, _ = request(port, "GET", "/api/v1/streams/live/cam")
            return status == 200 and body["players"] == 4

        wait_until("4 players", everyone_counted)
        answered_by = set()
        for _ in range(12):  # fresh connections: the kernel hands them to either worker
            status, body, worker = request(port, "GET", "/api/v1/streams")
            answered_by.add(worker)
            assert status == 200 and body["workers"] == {"total": 2, "answered": 2}
            assert [(s["name"], s["players"]) for s in body["streams"]] == [("cam", 4)]
            assert body["streams"][0]["publisher"]["id"].startswith("0-")
        assert answered_by <= {0, 1}
        _, body, _ = request(port, "GET", "/api/v1/clients?stream=cam")
        by_worker = sorted(c["id"].split("-")[0] for c in body["clients"] if c["playing"])
        assert by_worker == ["0", "0", "1", "1"]
        _, server_doc, _ = request(port, "GET", "/api/v1/server")
        assert server_doc["workers"] == 2
        # 1 publisher and 4 players; the relay link from worker 0 to worker 1 is no client.
        connections = server_doc["connections"]
        assert (connections["total"], connections["publishing"], connections["playing"]) == (
            5, 1, 4,
        )  # fmt: skip

        # A kick sent to one worker for a player of the other.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        try:
            _, clients, here = on(conn, "GET", "/api/v1/clients?stream=cam")
            other = 1 - here
            (target,) = [
                c["id"]
                for c in clients["clients"]
                if c["id"].startswith(f"{other}-") and c["agent"].startswith("LNX 10")
            ]
            status, body, answered = on(conn, "DELETE", f"/api/v1/clients/{target}", TOKEN)
        finally:
            conn.close()
        assert (status, body, answered) == (200, {"disconnected": target}, here)
        kicked = running[f"w{other} rtmpdump"]
        kicked.wait(30)
        assert all(p.poll() is None for n, p in running.items() if p is not kicked)

        def three_left() -> bool:
            _, text, _ = request(port, "GET", "/metrics")
            samples = {
                (s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
            }
            key = ("fms_stream_players", (("app", "live"), ("stream", "cam")))
            return samples.get(key) == 3 and samples[("fms_workers_answering", ())] == 2

        wait_until("3 players in the metrics", three_left)

        # Stop the publish (held by worker 0) through worker 1.
        for _ in range(50):  # each fresh connection lands on either worker
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            if on(conn, "GET", "/api/v1/server")[2] == 1:
                break
            conn.close()
        else:
            raise AssertionError("50 connections in a row went to worker 0")
        try:
            status, body, answered = on(conn, "DELETE", "/api/v1/streams/live/cam", TOKEN)
        finally:
            conn.close()
        assert (status, body["stopped"], answered) == (200, "live/cam", 1)
        assert body["publisher"].startswith("0-")
        assert publisher.wait(30) != 0  # cut off
        running["w1 ffmpeg"].wait(30)  # a player on the other worker saw the publish end
    finally:
        assert server.stop() == 0, server.log()
