"""Hostile Low-Latency HLS clients against the real server (its own process, its HTTP listener,
FFmpeg publishing H.264+AAC over RTMP): bogus ``_HLS_msn``/``_HLS_part`` values, a flood of
playlist requests from a few keep-alive connections, segments and parts asked after they left
the window, and more blocked reloads at once than ``[hls] max_blocked_requests`` allows.

Settings: 1 s segments (FFmpeg's keyframe a second), 0.25 s parts, a window of 2, at most
20 held requests; so the blocking deadline is 3 target durations = 3 s.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import ServerProcess, ffmpeg_publish_command, start
from tests.hostile.support import measure, rss_kib

pytestmark = pytest.mark.e2e

MAX_HELD = 20
DEADLINE = 3.0
"""The server's blocking deadline: three target durations of 1 s."""
PATIENCE = 30.0
"""Seconds a step may take on a loaded machine (never a timing under test)."""

CONFIG = f"""
[http]
enabled = true
host = "127.0.0.1"
port = 0
max_connections = 256

[hls]
segment_duration = 1.0
window = 2
part_duration = 0.25
max_blocked_requests = {MAX_HELD}
"""


class Server:
    def __init__(self, process: ServerProcess, http_port: int) -> None:
        self.process = process
        self.http_port = http_port

    def get(self, path: str, timeout: float = PATIENCE) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def playlist(self) -> str:
        status, body = self.get("/live/cam/ll.m3u8")
        assert status == 200, body
        return body.decode()


def media_sequence(text: str) -> int:
    match = re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text)
    assert match is not None, text
    return int(match.group(1))


def open_sequence(text: str) -> int:
    """The segment being made: the preload hint's."""
    match = re.search(r'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="seg(\d+)\.(\d+)\.m4s', text)
    assert match is not None, text
    return int(match.group(1))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("hls-ll")
    config = folder / "fms.toml"
    config.write_text(CONFIG)
    process = ServerProcess(config=config)
    publisher = None
    try:
        line = process.wait_for_line(re.compile(r"listening on http://\S+"))
        match = re.search(r"listening on http://[^\s/:]+:(\d+)", line)
        assert match is not None, line
        running = Server(process, int(match.group(1)))
        publisher = start(ffmpeg_publish_command(f"{process.url}/live/cam", 300))
        deadline = time.monotonic() + PATIENCE
        while True:  # until the playlist lists a closed segment
            status, body = running.get("/live/cam/ll.m3u8")
            if status == 200 and b"#EXTINF" in body:
                break
            assert time.monotonic() < deadline, (status, body)
            time.sleep(0.2)
        yield running
    finally:
        if publisher is not None and publisher.poll() is None:
            publisher.kill()
            publisher.wait()
        status = process.stop()
    assert status == 0, process.log()


@pytest.mark.parametrize(
    "query",
    [
        "_HLS_msn={far}",
        "_HLS_msn={far}&_HLS_part=0",
        "_HLS_msn={open}&_HLS_part=1000",
        "_HLS_msn=-1",
        "_HLS_msn=-99999999999",
        "_HLS_msn=abc",
        "_HLS_msn=0x10",
        "_HLS_msn=1.5",
        "_HLS_msn=%00",
        "_HLS_msn=" + "9" * 400,
        "_HLS_part=1",
        "_HLS_msn=1&_HLS_msn=2",
    ],
)
def test_bogus_blocking_values_get_400_without_waiting_for_the_deadline(
    server: Server, query: str
) -> None:
    """Far-future, negative, non-numeric and huge values: a 400 that comes before the
    blocking deadline would have passed (the request was never held)."""
    text = server.playlist()
    sequence = open_sequence(text)
    path = "/live/cam/ll.m3u8?" + query.format(far=sequence + 50, open=sequence)
    began = time.monotonic()
    status, body = server.get(path)
    waited = time.monotonic() - began
    assert status == 400, body
    assert "error" in json.loads(body)
    assert waited < DEADLINE, f"a refused request waited {waited:.2f} s"


def test_a_blocked_reload_never_outlives_its_deadline(server: Server) -> None:
    """The furthest msn a client may block for (two beyond the last closed segment): an
    answer (the playlist once it holds it, or 503 at the deadline) always comes; the socket's
    own timeout is the deadline plus the patience a loaded machine needs."""
    sequence = open_sequence(server.playlist())
    status, body = server.get(
        f"/live/cam/ll.m3u8?_HLS_msn={sequence + 1}&_HLS_part=3", timeout=DEADLINE + PATIENCE
    )
    assert status in (200, 503), body
    if status == 200:
        assert f"seg{sequence + 1}.3.m4s".encode() in body or b"seg%d.m4s" % (sequence + 1) in body


def test_segments_and_parts_that_left_the_window_are_404(server: Server) -> None:
    text = server.playlist()
    gone = media_sequence(text)
    part = re.search(r'URI="(seg\d+\.\d+\.m4s)"', text)
    assert part is not None
    status, _ = server.get(f"/live/cam/seg{gone}.m4s")
    assert status == 200
    deadline = time.monotonic() + PATIENCE
    while media_sequence(server.playlist()) <= gone + 2:
        assert time.monotonic() < deadline, "the window did not move"
        time.sleep(0.2)
    assert server.get(f"/live/cam/seg{gone}.m4s")[0] == 404
    assert server.get(f"/live/cam/seg{gone}.0.m4s")[0] == 404
    assert server.get(f"/live/cam/{part.group(1)}")[0] == 404


def test_blocked_reloads_beyond_the_cap_get_503_and_the_others_their_playlist(
    server: Server,
) -> None:
    """``MAX_HELD + 10`` reloads blocking on the next segment at once: exactly 10 are told
    503 "too many blocked requests"; the held ones get the playlist holding that segment."""
    sequence = open_sequence(server.playlist())
    path = f"/live/cam/ll.m3u8?_HLS_msn={sequence + 1}"
    sockets = []
    for _ in range(MAX_HELD + 10):
        sock = socket.create_connection(("127.0.0.1", server.http_port), timeout=PATIENCE)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        sockets.append(sock)
    answers = []
    for sock in sockets:
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        sock.close()
        answers.append(b"".join(chunks))
    busy = [a for a in answers if a.startswith(b"HTTP/1.1 503") and b"too many" in a]
    served = [a for a in answers if a.startswith(b"HTTP/1.1 200")]
    assert len(busy) == 10, [a[:60] for a in answers]
    assert len(served) == MAX_HELD, [a[:60] for a in answers]
    assert all(f"seg{sequence + 1}.m4s".encode() in a for a in served)


def test_a_playlist_flood_leaves_a_normal_viewer_served_and_memory_bounded(
    server: Server,
) -> None:
    """Four keep-alive connections (another process) pipelining ll.m3u8 requests, each with
    another ``_HLS_part`` of a long-gone msn (answered at once, and never a new viewer:
    ``_HLS_*`` directives are not part of the viewer's identity) for 8 s. Meanwhile a normal
    LL viewer's blocking reloads for each next segment are answered with it, and the server's
    resident memory grows by less than 256 bytes per flood request (keeping anything per
    request, such as a viewer session per query, cost 550 bytes per request when tried by hand)."""
    pid = server.process.process.pid
    server.playlist()
    before = rss_kib(pid)
    flood = subprocess.Popen(
        [sys.executable, "-m", "tests.hostile.hls_flood", str(server.http_port),
         "/live/cam/ll.m3u8?_HLS_msn=0&_HLS_part={n}", "4", "8"],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    try:
        served = 0
        while flood.poll() is None:
            sequence = open_sequence(server.playlist())
            status, body = server.get(
                f"/live/cam/ll.m3u8?_HLS_msn={sequence}", timeout=DEADLINE + PATIENCE
            )
            assert status == 200, body
            assert f"seg{sequence}.m4s".encode() in body
            served += 1
        out, _ = flood.communicate(timeout=PATIENCE)
    finally:
        if flood.poll() is None:
            flood.kill()
            flood.wait()
    result = json.loads(out)
    after = rss_kib(pid)
    requests = result["requests"]
    measure(
        f"LL-HLS flood: {requests} playlist requests in 8 s ({requests / 8:.0f}/s), "
        f"{served} blocking reloads of a normal viewer served meanwhile, RSS "
        f"{before / 1024:.1f} -> {after / 1024:.1f} MiB"
    )
    assert result["statuses"] == {"200": requests}
    assert requests >= 1000 and served >= 2
    assert (after - before) * 1024 < 256 * requests
