"""``fms run --workers 2`` end to end: real clients on the shared port and on each worker's own
port (``[server] worker_ports``), so a test knows which worker it talks to.

What must hold: a stream published on one worker plays, decodable from its first keyframe, from
the other worker (FFmpeg, rtmpdump, GStreamer); the kernel spreads connections over both
workers; a name published on one worker is refused on the other; plugins decide the same on
either worker and see the same streams; a killed worker comes back and gets the streams of the
other; SIGHUP and SIGTERM reach every worker.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.fanout import free_ports
from fms.rtmp.client import ConnectRejected, ResultReceived
from tests.e2e.harness import (
    ServerProcess,
    ffmpeg_publish_command,
    finish,
    frames_by_codec,
    probe_command,
    require_client,
    start,
)
from tests.hostile.support import Client

pytestmark = pytest.mark.e2e

FPS = 25

PLUGIN = """
from fms.apps.api import Plugin, Reject


class Door(Plugin):
    \"\"\"Publishing needs ?key=open; a call 'streams' lists what this worker knows.\"\"\"

    def app_start(self, app):
        self.app = app

    def publish(self, client, name, query, kind):
        if query.get("key") != "open":
            return Reject("wrong key")
        return None

    def call(self, client, method, args):
        if method != "streams":
            return super().call(client, method, args)
        return sorted(
            f"{s.name}|{s.publisher.peer}|{s.subscriber_count}"
            for s in self.app.streams
            if s.publisher
        )
"""


class Workers:
    """A two-worker server and the URL of each worker's own port."""

    def __init__(self, tmp_path: Path, extra: str = "") -> None:
        self.ports = free_ports(2)
        config = tmp_path / "fms.toml"
        config.write_text(
            f"[server]\nworker_ports = {self.ports}\nplugin_dirs = [{json.dumps(str(tmp_path))}]\n"
            + extra,
            encoding="utf-8",
        )
        self.server = ServerProcess("--workers", "2", "--log-level", "info", config=config)
        self.server.wait_for_lines(r"worker \d alone on", 2)

    def url(self, worker: int) -> str:
        return f"rtmp://127.0.0.1:{self.ports[worker]}"

    def line(self, worker: int, pattern: str, timeout: float = 15.0) -> str:
        return self.server.wait_for_line(rf" w{worker} \[.*{pattern}", timeout)

    def pid(self, worker: int) -> int:
        found = re.findall(rf"worker {worker} started \(pid (\d+)\)", self.server.log())
        return int(found[-1])


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    w = Workers(tmp_path)
    try:
        yield w
    finally:
        status = w.server.stop()
    assert status == 0, w.server.log()
    assert len(re.findall(r"worker \d stopped \(status 0\)", w.server.log())) == 2


def test_a_stream_published_on_one_worker_is_decoded_from_the_other(
    workers: Workers, tmp_path: Path
) -> None:
    name = "live/cam"
    probe = start(probe_command(f"{workers.url(1)}/{name}"))
    workers.line(1, "play live/cam for .*waiting for publisher")
    dump_file = tmp_path / "dump.flv"
    dump = start([
        require_client("rtmpdump"), "-r", f"{workers.url(1)}/{name}", "--live",
        "-o", str(dump_file), "-q",
    ])  # fmt: skip
    pictures = tmp_path / "pictures.yuv"
    gst = start([
        require_client("gst-launch-1.0"), "-q", "rtmp2src", f"location={workers.url(1)}/{name}",
        "!", "flvdemux", "name=d", "d.video", "!", "queue", "!", "h264parse", "!",
        "avdec_h264", "!", "videoconvert", "!", "video/x-raw,format=I420", "!",
        "filesink", f"location={pictures}", "d.audio", "!", "queue", "!", "fakesink",
    ])  # fmt: skip
    workers.server.wait_for_lines(r" w1 \[.*play live/cam for .*waiting", 3)
    publisher = start(ffmpeg_publish_command(f"{workers.url(0)}/{name}", 4))
    workers.line(0, "publish started live/cam from 127")
    workers.line(1, "publish started live/cam from 127.0.0.1:\\d+ via worker 0")
    assert finish(publisher)[0] == 0

    status, out, err = finish(probe)
    assert status == 0, err.decode(errors="replace")
    frames = frames_by_codec(out)
    assert frames["h264"] == 4 * FPS  # every frame, relayed from worker 0
    assert frames["aac"] >= 4 * 44100 // 1024 - 2
    finish(dump)
    status, out, err = finish(start(probe_command(str(dump_file))))
    assert frames_by_codec(out).get("h264") == 4 * FPS, err.decode(errors="replace")
    status, _, err = finish(gst)
    assert status == 0, err.decode(errors="replace")
    assert pictures.stat().st_size == 4 * FPS * 320 * 240 * 3 // 2
    workers.line(1, "publish stopped live/cam from .* via worker 0")


def test_the_shared_port_spreads_connections_over_both_workers(workers: Workers) -> None:
    clients = [Client(workers.server.port).connect() for _ in range(24)]
    try:
        lines = workers.server.wait_for_lines(r"connect from 127.0.0.1:\d+: app 'live'", 24)
    finally:
        for client in clients:
            client.close()
    served = {re.search(r" (w\d) \[", line).group(1) for line in lines}  # type: ignore[union-attr]
    assert served == {"w0", "w1"}


def test_players_on_the_shared_port_are_served_by_both_workers_and_decode_every_frame(
    workers: Workers,
) -> None:
    """The kernel spreads players on the shared port over the workers: players are added
    until the log shows each worker serving one (16 all landing on one worker would happen
    once in 32,768 runs). The stream is published on worker 1's own port after they all wait,
    so the players on worker 0 get it relayed, and every player decodes every frame."""
    url = f"{workers.server.url}/live/shared"
    waiting = r" (w\d) \[.*play live/shared for .*waiting for publisher"
    probes: list[subprocess.Popen[bytes]] = []
    served: Counter[str] = Counter()
    try:
        while len(served) < 2:
            assert len(probes) < 16, f"16 players on the shared port all landed on {served}"
            probes.append(start(probe_command(url)))
            lines = workers.server.wait_for_lines(waiting, len(probes))
            served = Counter(re.search(waiting, line).group(1) for line in lines)  # type: ignore[union-attr]
        assert set(served) == {"w0", "w1"}
        publisher = start(ffmpeg_publish_command(f"{workers.url(1)}/live/shared", 4))
        workers.line(0, "publish started live/shared from .* via worker 1")
        assert finish(publisher)[0] == 0
        for probe in probes:
            status, out, err = finish(probe)
            assert status == 0, err.decode(errors="replace")
            frames = frames_by_codec(out)
            assert frames.get("h264") == 4 * FPS, (served, frames)
            assert frames.get("aac", 0) >= 4 * 44100 // 1024 - 2, (served, frames)
    finally:
        for probe in probes:
            if probe.poll() is None:
                probe.kill()
                probe.wait()


def test_a_name_published_on_one_worker_is_refused_on_the_other(workers: Workers) -> None:
    first = start(ffmpeg_publish_command(f"{workers.url(0)}/live/dup", 4))
    workers.line(1, "publish started live/dup from .* via worker 0")
    second = start(ffmpeg_publish_command(f"{workers.url(1)}/live/dup", 2))
    status = finish(second)[0]
    assert status != 0
    workers.line(1, "refusing publish live/dup .*already published")
    assert finish(first)[0] == 0


def test_a_killed_worker_is_restarted_and_gets_the_streams_of_the_other(
    workers: Workers,
) -> None:
    publisher = start(ffmpeg_publish_command(f"{workers.url(0)}/live/long", 14))
    workers.line(1, "publish started live/long from .* via worker 0")
    os.kill(workers.pid(1), signal.SIGKILL)
    workers.server.wait_for_line(r"worker 1 \(pid \d+\) ended \(signal 9\); restarting it")
    workers.server.wait_for_lines(r"worker 1 started", 2)
    workers.server.wait_for_lines(r"worker 1 alone on", 2)
    workers.server.wait_for_lines(r" w1 \[.*publish started live/long from .* via worker 0", 2)
    workers.server.wait_for_line(r"relay of live/long to worker 1 restored")
    status, out, err = finish(start([*probe_command(f"{workers.url(1)}/live/long")]))
    assert status == 0, err.decode(errors="replace")
    assert frames_by_codec(out).get("h264", 0) > 5 * FPS
    assert finish(publisher)[0] == 0


def test_plugins_decide_the_same_on_both_workers_and_see_every_stream(tmp_path: Path) -> None:
    (tmp_path / "door.py").write_text(PLUGIN, encoding="utf-8")
    extra = '[[apps.live.plugins]]\nuse = "door:Door"\n'
    w = Workers(tmp_path, extra)
    try:
        for worker in (0, 1):
            refused = start(ffmpeg_publish_command(f"{w.url(worker)}/live/x", 1))
            assert finish(refused)[0] != 0
            w.line(worker, "publish live/x from .* refused by the application: wrong key")
        publisher = start(ffmpeg_publish_command(f"{w.url(0)}/live/x?key=open", 8))
        w.line(1, "publish started live/x from .* via worker 0")
        players = [start(probe_command(f"{w.url(worker)}/live/x")) for worker in (0, 1, 1)]
        w.server.wait_for_lines(r"play live/x for", 3)

        def listing(worker: int) -> list[str]:
            client = Client(w.ports[worker]).connect()
            client.conn.call("streams")
            event = client.until(lambda e: isinstance(e, ResultReceived))
            client.close()
            assert isinstance(event, ResultReceived)
            return list(event.values[1])

        deadline = time.monotonic() + 5
        while True:  # player counts travel between workers at most every 0.5 s each way
            listings = [listing(0), listing(1)]
            if all(item[0].endswith("|3") for item in listings) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(listings[0]) == 1
        assert re.fullmatch(r"x\|127\.0\.0\.1:\d+\|3", listings[0][0]), listings
        origin = listings[0][0].rsplit("|", 1)[0]
        # Worker 1 knows the stream, who publishes it (on worker 0) and every player.
        assert listings[1] == [f"{origin} via worker 0|3"]
        finish(publisher)
        for player in players:
            finish(player)
    finally:
        assert w.server.stop() == 0, w.server.log()


def test_sighup_reloads_every_worker(workers: Workers, tmp_path: Path) -> None:
    for port in workers.ports:  # before: any application name is served
        Client(port).connect("live").close()
    config = tmp_path / "fms.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text + '[default_app]\npolicy = "refuse"\n[apps.other]\n', "utf-8")
    workers.server.process.send_signal(signal.SIGHUP)
    workers.line(0, "configuration reloaded")
    workers.line(1, "configuration reloaded")
    for port in workers.ports:  # after: each worker refuses 'live' and serves 'other'
        client = Client(port)
        client.conn.connect("live", "rtmp://127.0.0.1/live")
        refused = client.until(lambda e: isinstance(e, ConnectRejected))
        assert isinstance(refused, ConnectRejected)
        assert refused.code == "NetConnection.Connect.InvalidApp"
        client.close()
        Client(port).connect("other").close()


def test_the_server_refuses_to_start_when_the_port_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "fms",
                "run",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "2",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=Path(__file__).resolve().parents[2],
            check=False,
        )
    assert result.returncode == 1
    assert "cannot listen" in result.stderr


def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    w = Workers(tmp_path)
    pids = [w.pid(0), w.pid(1)]
    w.server.process.kill()
    w.server.process.wait(10)
    deadline = time.monotonic() + 10
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
        time.sleep(0.1)
    assert alive == [], w.server.log()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


def test_a_broken_plugin_stops_the_supervisor_before_any_worker_starts(tmp_path: Path) -> None:
    config = tmp_path / "fms.toml"
    config.write_text('[[apps.live.plugins]]\nuse = "no_such_plugin_here"\n', encoding="utf-8")
    command = [sys.executable, "-m", "fms", "run", "--host", "127.0.0.1", "--port", "0"]
    command += ["--workers", "2", "--config", str(config)]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "no_such_plugin_here" in errors[0], result.stderr
    assert "worker 0 started" not in result.stderr
