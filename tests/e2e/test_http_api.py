"""The HTTP API and metrics of a real server process while Debian's FFmpeg publishes H.264+AAC
and rtmpdump and FFmpeg play: the stream's figures and exact player count, a kick that ends
the kicked player's process, a stopped publish that the publisher and the players notice,
actions refused without the right token, the stream's metric families gone at the next scrape
after the publish ended, and a slow HTTP client closed at its deadline while others are
served."""

from __future__ import annotations

import json
import re
import select
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import ServerProcess, ffmpeg_publish_command, require_client, start

pytestmark = pytest.mark.e2e

TOKEN = "e2e-token-7f3a"
HTTP_LISTENING = re.compile(r"listening on (http://\S+)/")


def http_server(tmp_path: Path, extra: str = "") -> tuple[ServerProcess, str]:
    config = tmp_path / "fms.toml"
    config.write_text(f'[http]\nenabled = true\nport = 0\ntoken = "{TOKEN}"\n{extra}')
    server = ServerProcess("--config", str(config))
    line = server.wait_for_line(HTTP_LISTENING, timeout=20)
    match = HTTP_LISTENING.search(line)
    assert match is not None
    return server, match.group(1)


def call(base: str, method: str, path: str, token: str | None = None) -> tuple[int, Any]:
    """One request; (status, JSON body) also for error statuses."""
    request = urllib.request.Request(base + path, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def metrics(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, parsed by prometheus_client's own parser."""
    with urllib.request.urlopen(base + "/metrics", timeout=20) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def wait_until(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll ``check`` (every 0.2 s) until it returns a true value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def stream(base: str, name: str) -> dict[str, Any] | None:
    status, body = call(base, "GET", f"/api/v1/streams/live/{name}")
    return body if status == 200 else None


def ended(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{proc.args[0]} still runs after {timeout}s") from None


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_api_figures_kick_stop_tokens_and_metrics(
    tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    server, base = http_server(tmp_path)
    try:
        url = f"{server.url}/live/cam"
        publisher = start(ffmpeg_publish_command(url, 120))
        procs.append(publisher)
        server.wait_for_line(r"publish started live/cam")
        rtmpdump = require_client("rtmpdump")
        kicked = start([rtmpdump, "-r", url, "--live", "-o", "/dev/null"])
        procs.append(kicked)
        wait_until("the first player", lambda: (stream(base, "cam") or {}).get("players") == 1)
        _, body = call(base, "GET", "/api/v1/clients?stream=cam")
        (target,) = [c["id"] for c in body["clients"] if c["playing"] == "cam"]
        told = start([rtmpdump, "-V", "-r", url, "--live", "-o", "/dev/null"])
        procs.append(told)
        ffplayer = start([require_client("ffmpeg"), "-v", "error", "-i", url, "-f", "null", "-"])
        procs.append(ffplayer)
        server.wait_for_lines(r"play live/cam for ", 3)

        doc = wait_until(
            "3 players", lambda: (s := stream(base, "cam")) and s["players"] == 3 and s
        )
        assert doc["published"] and doc["publisher"]["agent"].startswith("FMLE/3.0")
        assert (doc["video"]["codec"], doc["video"]["width"], doc["video"]["height"]) == (
            "h264", 320, 240,
        )  # fmt: skip
        assert (doc["audio"]["codec"], doc["audio"]["sample_rate"]) == ("aac", 44100)
        _, listing = call(base, "GET", "/api/v1/streams")
        assert [(s["name"], s["players"]) for s in listing["streams"]] == [("cam", 3)]
        _, apps = call(base, "GET", "/api/v1/apps")
        assert apps["apps"] == [{"name": "live", "streams": 1, "clients": 4}]

        # Actions without the token or with a wrong one: refused, nothing changes.
        for token, status in ((None, 401), ("wrong", 403)):
            assert call(base, "DELETE", f"/api/v1/clients/{target}", token)[0] == status
            assert call(base, "DELETE", "/api/v1/streams/live/cam", token)[0] == status
        assert kicked.poll() is None and publisher.poll() is None
        assert stream(base, "cam")["players"] == 3  # type: ignore[index]

        # Kick the first player: its process ends; the count follows.
        assert call(base, "DELETE", f"/api/v1/clients/{target}", TOKEN) == (
            200, {"disconnected": target},
        )  # fmt: skip
        ended(kicked)
        wait_until("2 players", lambda: stream(base, "cam")["players"] == 2)  # type: ignore[index]
        samples = metrics(base)
        labels = (("app", "live"), ("stream", "cam"))
        assert samples[("fms_stream_players", labels)] == 2
        assert samples[("fms_stream_bytes_in_total", labels)] > 0
        assert samples[("fms_streams", ())] == 1
        assert told.poll() is None and ffplayer.poll() is None

        # Stop the publish: the publisher is cut off, players are told.
        status, body = call(base, "DELETE", "/api/v1/streams/live/cam", TOKEN)
        assert status == 200 and body["stopped"] == "live/cam"
        assert ended(publisher) != 0  # FFmpeg's publish was cut short
        ended(told)
        assert b"onStatus: NetStream.Play.UnpublishNotify" in told.communicate()[1]
        samples = metrics(base)
        assert not [key for key in samples if dict(key[1]).get("stream") == "cam"]
        assert samples[("fms_streams", ())] == 0
        assert (stream(base, "cam") or {"published": False})["published"] is False
    finally:
        assert server.stop() == 0, server.log()


def test_a_slow_http_client_is_closed_at_its_deadline_while_others_are_served(
    tmp_path: Path,
) -> None:
    timeout = 3.0
    server, base = http_server(tmp_path, f"request_timeout = {timeout}\n")
    try:
        port = int(base.rsplit(":", 1)[1])
        request = b"GET /api/v1/server HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 60 + b"\r\n\r\n"
        slow = socket.create_connection(("127.0.0.1", port), timeout=10)
        opened = time.monotonic()
        closed_after: float | None = None
        served = False
        for byte in request:  # one header byte a second
            try:
                slow.sendall(bytes([byte]))
            except OSError:
                closed_after = time.monotonic() - opened
                break
            if not served:
                assert call(base, "GET", "/api/v1/server")[0] == 200  # served meanwhile
                served = True
            readable, _, _ = select.select([slow], [], [], 1.0)
            if readable:
                try:
                    data = slow.recv(4096)
                except OSError:
                    data = b""
                assert data == b"", data  # no answer to a request that never finished
                closed_after = time.monotonic() - opened
                break
        slow.close()
        assert served
        assert closed_after is not None, "the slow client was never closed"
        assert timeout - 0.5 <= closed_after < timeout + 20
        server.wait_for_line(r"closing HTTP client 127\.0\.0\.1:\d+: request deadline of 3s")
    finally:
        assert server.stop() == 0, server.log()
