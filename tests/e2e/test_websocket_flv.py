"""WebSocket-FLV end to end: a real server process, Debian's FFmpeg publishing H.264+AAC over
RTMP, Autobahn's WebSocket client (in its own process, ``tests/e2e/ws_client.py``) reading
``ws://127.0.0.1:PORT/live/cam.flv``, and curl reading the same stream over HTTP-FLV.

What is checked is what the clients got: the binary messages' concatenation is byte for byte
the HTTP-FLV body (the same encode-once bytes), a valid FLV file whose tags parse, in which
ffprobe decodes as many H.264 and AAC frames as the published file has; the WebSocket is
closed with 1000 when the publisher leaves; a plugin's refusal is an HTTP 403 with its reason
before any upgrade, and an unknown stream a 404; the API lists both kinds of HTTP viewers and
its DELETE closes one while the other plays on.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from fms.live import flv
from tests.e2e.harness import finish, frames_by_codec, probe_command, run_client, start
from tests.e2e.test_http_flv import curl, flv_server, make_source, publish

pytestmark = pytest.mark.e2e

WAITING = r"{kind} play live/cam for \S+ \(waiting for publisher\)"


def ws_viewer(url: str, out: Path) -> Any:
    """Autobahn's WebSocket client saving every message's payload to ``out``."""
    return start([sys.executable, "-m", "tests.e2e.ws_client", url, str(out)])


def report(proc: Any) -> dict[str, Any]:
    code, out, err = finish(proc, timeout=60)
    assert code == 0, err.decode(errors="replace")
    lines = out.decode().splitlines()
    assert lines, err.decode(errors="replace")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def upgrade(port: int, path: str) -> tuple[int, bytes]:
    """A WebSocket opening handshake by hand; the status and body of the HTTP answer."""
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            assert chunk, f"the connection closed after {answer!r}"
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        length = re.search(rb"\r\ncontent-length: *(\d+)", head, re.IGNORECASE)
        assert length is not None, head
        while len(body) < int(length.group(1)):
            chunk = sock.recv(65536)
            assert chunk, f"the connection closed after {answer!r}"
            body += chunk
    return int(head.split(b" ", 2)[1]), body


def test_websocket_viewers_get_the_http_flv_bytes_and_ffprobe_decodes_them(
    tmp_path: Path,
) -> None:
    """Two WebSocket viewers and one HTTP-FLV viewer wait before the publisher; each WebSocket
    viewer's messages are all binary and concatenate to exactly the HTTP-FLV body, whose
    header says audio and video and whose tags parse; ffprobe decodes from it every H.264 and
    AAC frame of the published file; the WebSockets close with 1000 at the end."""
    source = make_source(tmp_path / "src.flv", 4)
    server, http = flv_server(tmp_path)
    try:
        url = http.replace("http://", "ws://") + "/live/cam.flv"
        outs = [tmp_path / "ws1.flv", tmp_path / "ws2.flv"]
        viewers = [ws_viewer(url, out) for out in outs]
        body = tmp_path / "http.flv"
        reader = curl(f"{http}/live/cam.flv", body)
        server.wait_for_lines(WAITING.format(kind="WebSocket-FLV"), 2, timeout=30)
        server.wait_for_line(WAITING.format(kind="HTTP-FLV"), timeout=30)
        assert finish(publish(source, f"{server.url}/live/cam"))[0] == 0
        reports = [report(viewer) for viewer in viewers]
        assert finish(reader)[0] == 0
        expected = body.read_bytes()
        flags, tags = flv.read_file(expected)
        assert flags == flv.FLAG_AUDIO | flv.FLAG_VIDEO
        assert {flv.TAG_AUDIO, flv.TAG_VIDEO, flv.TAG_SCRIPT} <= {t.tag_type for t in tags}
        published = frames_by_codec(run_client(probe_command(str(source))).stdout)
        assert set(published) == {"h264", "aac"} and published["h264"] == 4 * 25
        for result, out in zip(reports, outs, strict=True):
            assert result["opened"] and result["binary"] and result["messages"] > 1, json.dumps(
                result
            )
            assert (result["code"], result["reason"]) == (1000, "the publisher left"), result
            got = out.read_bytes()
            assert got == expected  # the same encode-once bytes as HTTP-FLV
            assert frames_by_codec(run_client(probe_command(str(out))).stdout) == published
        server.wait_for_lines(r"WebSocket-FLV play live/cam for \S+ ended: the publisher", 2)
    finally:
        server.stop()


def test_a_refused_websocket_viewer_gets_a_403_with_the_reason_before_the_upgrade(
    tmp_path: Path,
) -> None:
    """streamkey protecting play: Autobahn's client is refused the upgrade with 403; by hand,
    the 403 carries the plugin's reason; the right key with nobody publishing (flv_wait 0) is
    a 404; a handshake of another WebSocket version is a 400."""
    extra = (
        '[apps.live]\n[[apps.live.plugins]]\nuse = "streamkey"\nprotect_play = true\n'
        'keys = { cam = "s3cret" }\n'
    )
    server, http = flv_server(tmp_path, extra, flv_wait=0)
    port = int(http.rsplit(":", 1)[1])
    try:
        ws = http.replace("http://", "ws://")
        result = report(ws_viewer(f"{ws}/live/cam.flv?key=wrong", tmp_path / "x.flv"))
        assert not result["opened"] and "[403]" in result["failure"], result
        assert (tmp_path / "x.flv").read_bytes() == b""
        assert upgrade(port, "/live/cam.flv?key=wrong") == (
            403, b'{"error": "invalid stream key"}'
        )  # fmt: skip
        assert upgrade(port, "/live/cam.flv") == (403, b'{"error": "stream key required"}')
        status, body = upgrade(port, "/live/cam.flv?key=s3cret")
        assert status == 404 and b"nobody publishes live/cam" in body
        server.wait_for_line(r"play live/cam for \S+ refused by the application: invalid")
    finally:
        server.stop()


def clients(http: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{http}/api/v1/clients", timeout=30) as answer:
        docs: list[dict[str, Any]] = json.loads(answer.read())["clients"]
    return docs


def test_http_viewers_are_listed_in_the_api_and_delete_closes_one(tmp_path: Path) -> None:
    """While FFmpeg publishes, ``GET /api/v1/clients`` lists the curl HTTP-FLV viewer and the
    Autobahn WebSocket viewer with their protocol, address, stream and growing ``bytes_out``
    (and ``/api/v1/server`` counts them as 2 ``http_viewers``, no RTMP play);
    ``DELETE`` of the HTTP-FLV viewer's id closes it (curl ends early, the list drops it)
    while the WebSocket viewer plays on to the end of the stream and decodes every frame."""
    source = make_source(tmp_path / "src.flv", 8)
    server, http = flv_server(tmp_path, 'token = "t0ken"\n')
    try:
        ws_out, body = tmp_path / "ws.flv", tmp_path / "http.flv"
        viewer = ws_viewer(http.replace("http://", "ws://") + "/live/cam.flv", ws_out)
        reader = curl(f"{http}/live/cam.flv", body)
        server.wait_for_line(WAITING.format(kind="WebSocket-FLV"), timeout=30)
        server.wait_for_line(WAITING.format(kind="HTTP-FLV"), timeout=30)
        publisher = publish(source, f"{server.url}/live/cam")
        deadline = time.monotonic() + 60
        while True:  # both viewers listed, each handed bytes
            docs = {doc["protocol"]: doc for doc in clients(http)}
            if {"http-flv", "websocket-flv"} <= set(docs) and all(
                docs[p]["bytes_out"] > 0 for p in ("http-flv", "websocket-flv")
            ):
                break
            assert time.monotonic() < deadline, docs
            time.sleep(0.2)
        assert docs["http-flv"]["playing"] == docs["websocket-flv"]["playing"] == "cam"
        assert docs["http-flv"]["address"].startswith("127.0.0.1:")
        assert docs["rtmp"]["publishing"] == "cam"
        with urllib.request.urlopen(f"{http}/api/v1/server", timeout=30) as answer:
            connections = json.loads(answer.read())["connections"]
        assert (connections["http_viewers"], connections["total"]) == (2, 1), connections
        assert (connections["publishing"], connections["playing"]) == (1, 0), connections
        ident = docs["http-flv"]["id"]
        request = urllib.request.Request(
            f"{http}/api/v1/clients/{ident}", method="DELETE",
            headers={"Authorization": "Bearer t0ken"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert json.loads(answer.read()) == {"disconnected": ident}
        code, _, _ = finish(reader)
        assert publisher.poll() is None, "the publish ended before the check"
        assert code != 0  # curl saw its response cut short, the publish still going on
        assert "http-flv" not in {doc["protocol"] for doc in clients(http)}
        server.wait_for_line(r"closing HTTP-FLV viewer \S+ of live/cam: disconnected through")
        assert finish(publisher)[0] == 0
        result = report(viewer)
        assert (result["code"], result["reason"]) == (1000, "the publisher left"), result
        published = frames_by_codec(run_client(probe_command(str(source))).stdout)
        assert frames_by_codec(run_client(probe_command(str(ws_out))).stdout) == published
    finally:
        server.stop()
