"""Enhanced RTMP reconnect requests with a real server process and raw RTMP clients
(:class:`tests.hostile.support.Client`, pyFMS's client state machine over a socket) that
announce ``capsEx`` Reconnect as an Enhanced RTMP v2 encoder does, or nothing as a legacy one:

- SIGTERM: the announcing client receives ``NetConnection.Connect.ReconnectRequest`` (level
  status, the configured ``tcUrl``) and is closed no earlier than ``reconnect_grace`` later,
  the server exiting within grace + timeout + a margin; the legacy client gets today's
  statuses at once; a client that leaves by itself lets the server exit without the grace;
- SIGHUP with ``reconnect_on_reload``: the announcing client is asked, nobody is closed; with
  two workers each asks its own clients on SIGTERM and the supervisor waits for the grace;
- the HTTP API: without the token or with a wrong one (401/403) nobody is asked; with it, the
  announcing client is asked once and the legacy one is reported as unable (409).

FFmpeg (9, the imageio-ffmpeg wheel, and Debian's 5.1) announces no capsEx in connect and does
not act on the request, so no FFmpeg publisher can be moved (see docs/enhanced-rtmp.md).
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from fms.rtmp.capabilities import CapsExMask
from fms.rtmp.events import ErrorReceived, StatusReceived
from tests.e2e.harness import ServerProcess, finish, start
from tests.e2e.test_enhanced_rtmp import ffmpeg9 as ffmpeg9
from tests.hostile.support import Client

pytestmark = pytest.mark.e2e

REQUEST = "NetConnection.Connect.ReconnectRequest"
TOKEN = "e2e-reconnect-token"
GRACE = 3.0
TIMEOUT = 2.0
MARGIN = 15.0
"""Seconds beyond grace + shutdown timeout a loaded machine may take to exit (generous)."""
HTTP_LISTENING = re.compile(r"listening on (http://\S+)/")


def server_with(tmp_path: Path, grace: float, http: bool = False) -> ServerProcess:
    config = tmp_path / "fms.toml"
    text = (
        f"[server]\nreconnect_grace = {grace}\nshutdown_timeout = {TIMEOUT}\n"
        'reconnect_url = "rtmp://node2.example/{app}"\n'
    )
    if http:
        text += f'[http]\nenabled = true\nport = 0\ntoken = "{TOKEN}"\n'
    config.write_text(text)
    return ServerProcess("--config", str(config))


def reconnect_requests(client: Client) -> list[StatusReceived]:
    return [e for e in client.events if isinstance(e, StatusReceived) and e.code == REQUEST]


def read_until_closed(client: Client, timeout: float) -> float:
    """Read until the server closes ``client``; the time (monotonic) it was seen closed."""
    deadline = time.monotonic() + timeout
    while client.read(max(min(deadline - time.monotonic(), 0.5), 0.01)):
        assert time.monotonic() < deadline, f"not closed within {timeout}s: {client.events[-5:]}"
    return time.monotonic()


def test_sigterm_asks_a_reconnecting_client_then_closes_it_after_the_grace(
    tmp_path: Path,
) -> None:
    server = server_with(tmp_path, GRACE)
    mover = Client(server.port).connect("live", capsEx=float(CapsExMask.RECONNECT))
    mover.publish("cam")
    legacy = Client(server.port).connect("live")
    legacy.play("cam")
    try:
        signalled = time.monotonic()
        server.process.send_signal(15)
        asked = mover.status(REQUEST, timeout=20)
        assert asked.stream_id == 0 and asked.info["level"] == "status"
        assert asked.info["tcUrl"] == "rtmp://node2.example/live"
        legacy.status("NetStream.Play.UnpublishNotify", timeout=20)  # today's, at once
        read_until_closed(legacy, 20)
        assert reconnect_requests(legacy) == []
        assert not mover.closed  # still served while it may move
        closed = read_until_closed(mover, GRACE + MARGIN)
        assert closed - signalled >= GRACE  # not before the grace
        codes = [e.code for e in mover.events if isinstance(e, StatusReceived)]
        assert codes[-1] == "NetStream.Unpublish.Success"  # then closed as today
        assert server.process.wait(GRACE + TIMEOUT + MARGIN) == 0
    finally:
        mover.close()
        legacy.close()
        server.stop()


def test_a_client_that_leaves_when_asked_lets_the_server_exit_without_the_grace(
    tmp_path: Path,
) -> None:
    long_grace = 60.0
    server = server_with(tmp_path, long_grace)
    mover = Client(server.port).connect("live", capsEx=float(CapsExMask.RECONNECT))
    mover.publish("cam")
    try:
        server.process.send_signal(15)
        mover.status(REQUEST, timeout=20)
        mover.close()  # it moved to the other node
        assert server.process.wait(long_grace / 2) == 0
        server.wait_for_line("shutting down")
    finally:
        server.stop()


def post(base: str, path: str, body: dict[str, Any] | None, token: str | None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else b""
    request = urllib.request.Request(base + path, data=data, method="POST")
    request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def client_ids(base: str) -> dict[int, str]:
    """Client ids by the client's local port (the API's address is host:port)."""
    with urllib.request.urlopen(base + "/api/v1/clients", timeout=20) as response:
        doc = json.loads(response.read())
    return {int(c["address"].rsplit(":", 1)[1]): c["id"] for c in doc["clients"]}


def test_the_api_asks_only_with_the_token_and_only_clients_that_can(tmp_path: Path) -> None:
    server = server_with(tmp_path, GRACE, http=True)
    line = server.wait_for_line(HTTP_LISTENING, timeout=20)
    match = HTTP_LISTENING.search(line)
    assert match is not None
    base = match.group(1)
    mover = Client(server.port).connect("live", capsEx=float(CapsExMask.RECONNECT))
    mover.publish("cam")
    legacy = Client(server.port).connect("live")
    legacy.play("cam")
    try:
        ids = client_ids(base)
        mover_id, legacy_id = ids[mover.port], ids[legacy.port]
        path = f"/api/v1/clients/{mover_id}/reconnect"
        for token, status in ((None, 401), ("wrong", 403)):
            assert post(base, path, {"tcUrl": "rtmp://x/{app}"}, token)[0] == status
            assert post(base, "/api/v1/reconnect", None, token)[0] == status
        status, doc = post(base, f"/api/v1/clients/{legacy_id}/reconnect", None, TOKEN)
        assert (status, doc["asked"], doc["unable"]) == (409, [], [legacy_id])
        status, doc = post(base, path, {"tcUrl": "rtmp://node3.example/{app}"}, TOKEN)
        assert (status, doc) == (200, {"asked": [mover_id], "unable": []})
        asked = mover.status(REQUEST, timeout=20)
        assert asked.info["tcUrl"] == "rtmp://node3.example/live"
        assert len(reconnect_requests(mover)) == 1  # the refused requests sent nothing first
        status, doc = post(base, "/api/v1/reconnect", {}, TOKEN)
        assert (status, doc["asked"], doc["unable"]) == (200, [mover_id], [legacy_id])
        second = mover.until(
            lambda e: isinstance(e, StatusReceived) and e.code == REQUEST and e is not asked
        )
        assert isinstance(second, StatusReceived)
        assert second.info["tcUrl"] == "rtmp://node2.example/live"  # the configured one
        legacy.conn.call("noSuchMethod")  # a round trip: anything sent to it came before
        legacy.until(lambda e: isinstance(e, ErrorReceived))
        assert reconnect_requests(legacy) == [] and not legacy.closed and not mover.closed
    finally:
        mover.close()
        legacy.close()
        assert server.stop() == 0, server.log()


def test_an_ffmpeg9_publisher_announces_no_reconnect_and_goes_on_unasked(
    tmp_path: Path, ffmpeg9: str
) -> None:
    """FFmpeg 9's RTMP muxer sends no ``capsEx`` in connect (its connect carries app, type,
    flashVer and tcUrl only): it cannot be asked, the API says so, and its publish goes on
    to its end undisturbed."""
    server = server_with(tmp_path, GRACE, http=True)
    line = server.wait_for_line(HTTP_LISTENING, timeout=20)
    match = HTTP_LISTENING.search(line)
    assert match is not None
    base = match.group(1)
    source = "testsrc2=size=320x240:rate=25"
    publisher = start(
        [ffmpeg9, "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", source,
         "-t", "6", "-c:v", "libx265", "-g", "25", "-f", "flv", f"{server.url}/live/hevc"]
    )  # fmt: skip
    try:
        server.wait_for_line(r"publish started live/hevc", timeout=30)
        with urllib.request.urlopen(base + "/api/v1/clients", timeout=20) as response:
            [client] = json.loads(response.read())["clients"]
        assert "Lavf" in client["agent"]
        status, doc = post(base, "/api/v1/reconnect", None, TOKEN)
        assert (status, doc["asked"], doc["unable"]) == (200, [], [client["id"]])
        status, _, err = finish(publisher, timeout=60)
        assert status == 0, err.decode(errors="replace")  # published to its end
        assert re.search(r"\basked 127\.0\.0\.1:\S* to reconnect", server.log()) is None
    finally:
        if publisher.poll() is None:
            publisher.kill()
        assert server.stop() == 0, server.log()


def test_sighup_asks_reconnecting_clients_when_configured_and_closes_nobody(
    tmp_path: Path,
) -> None:
    config = tmp_path / "fms.toml"
    config.write_text("[server]\nreconnect_on_reload = true\n")
    server = ServerProcess("--config", str(config))
    mover = Client(server.port).connect("live", capsEx=float(CapsExMask.RECONNECT))
    legacy = Client(server.port).connect("live")
    try:
        server.process.send_signal(1)
        asked = mover.status(REQUEST, timeout=20)
        assert "configuration changed" in asked.info["description"]
        assert "tcUrl" not in asked.info  # none configured: the client's own URL
        server.wait_for_line(r"SIGHUP: asked 1 clients to reconnect \(1 cannot be asked\)")
        legacy.conn.call("noSuchMethod")  # a round trip: anything sent to it came before
        legacy.until(lambda e: isinstance(e, ErrorReceived))
        assert reconnect_requests(legacy) == [] and not legacy.closed
        mover.conn.call("noSuchMethod")
        mover.until(lambda e: isinstance(e, ErrorReceived))  # still served
    finally:
        mover.close()
        legacy.close()
        assert server.stop() == 0, server.log()


def test_with_workers_each_worker_asks_its_clients_and_the_supervisor_waits_the_grace(
    tmp_path: Path,
) -> None:
    """Two workers (clients land where the kernel puts them): SIGTERM to the supervisor
    reaches each worker, which asks its reconnecting clients and closes them after the grace;
    everything exits 0 (the supervisor's kill waits grace + shutdown timeout + its margin)."""
    config = tmp_path / "fms.toml"
    config.write_text(
        f"[server]\nworkers = 2\nreconnect_grace = {GRACE}\nshutdown_timeout = {TIMEOUT}\n"
    )
    server = ServerProcess("--config", str(config))
    movers = [Client(server.port).connect("live", capsEx=1.0) for _ in range(4)]
    try:
        signalled = time.monotonic()
        server.process.send_signal(15)
        for mover in movers:
            mover.status(REQUEST, timeout=20)
        for mover in movers:
            assert read_until_closed(mover, GRACE + MARGIN) - signalled >= GRACE
        assert server.process.wait(GRACE + TIMEOUT + MARGIN) == 0
        assert "killing it" not in server.log()
    finally:
        for mover in movers:
            mover.close()
        server.stop()
