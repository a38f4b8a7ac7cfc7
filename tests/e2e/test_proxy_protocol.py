"""``[server] proxy_protocol`` through a real HAProxy (Debian's ``haproxy``, started here with a
generated configuration): ffmpeg publishes and ffprobe plays through it with ``send-proxy`` and
``send-proxy-v2``, and the server knows each client by the client's address.

HAProxy connects to the server from 127.0.0.3 (its ``source``), the only trusted proxy; the
clients reach HAProxy from 127.0.0.1. A log line that names 127.0.0.1 for a client could come
only from the header: the TCP peer of every such connection is 127.0.0.3.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import (
    ServerProcess,
    ffmpeg_publish_command,
    finish,
    frames_by_codec,
    probe_command,
    start,
)
from tests.support.ci import IN_CI

pytestmark = pytest.mark.e2e

FPS = 25
SECONDS = 4
PROXY_SOURCE = "127.0.0.3"
CONFIG = f"""
[server]
proxy_protocol = true
trusted_proxies = ["{PROXY_SOURCE}"]
"""


def haproxy_path() -> str:
    path = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")
    if path is None:
        message = "haproxy is not installed (./scripts/test installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def closed_unanswered(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` (a FIN or, from an abort, a reset) without sending
    a byte, waiting up to 30 s."""
    sock.settimeout(30)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HAProxy:
    """HAProxy in the foreground, TCP mode, in front of ``backend_port`` with ``send``
    (``send-proxy`` or ``send-proxy-v2``), connecting from ``PROXY_SOURCE``."""

    def __init__(self, tmp_path: Path, backend_port: int, send: str) -> None:
        self.port = free_port()
        config = tmp_path / "haproxy.cfg"
        config.write_text(
            "global\n    maxconn 256\n"
            "defaults\n    mode tcp\n    timeout connect 5s\n"
            "    timeout client 60s\n    timeout server 60s\n"
            f"frontend rtmp\n    bind 127.0.0.1:{self.port}\n    default_backend fms\n"
            f"backend fms\n    server s1 127.0.0.1:{backend_port} {send} source {PROXY_SOURCE}\n"
        )
        self.process = subprocess.Popen(
            [haproxy_path(), "-db", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 20
        while True:  # until its frontend accepts connections
            assert self.process.poll() is None, self.process.stderr.read()  # type: ignore[union-attr]
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "haproxy did not listen within 20 s"
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def proxied_server(tmp_path: Path) -> Iterator[ServerProcess]:
    config = tmp_path / "fms.toml"
    config.write_text(CONFIG)
    server = ServerProcess("--log-level", "debug", config=config)
    try:
        yield server
    finally:
        status = server.stop()
    assert status == 0, server.log()


@pytest.mark.parametrize("send", ["send-proxy", "send-proxy-v2"])
def test_ffmpeg_publishes_and_ffprobe_plays_through_haproxy_under_their_own_address(
    proxied_server: ServerProcess, tmp_path: Path, send: str
) -> None:
    server = proxied_server
    proxy = HAProxy(tmp_path, server.port, send)
    try:
        url = f"rtmp://127.0.0.1:{proxy.port}/live/cam"
        player = start(probe_command(url))
        server.wait_for_line(r"play live/cam for .*waiting for publisher", timeout=30)
        publisher = start(ffmpeg_publish_command(url, SECONDS))
        status, _, err = finish(publisher)
        assert status == 0, err.decode(errors="replace")
        status, out, err = finish(player, timeout=60)
        assert status == 0, err.decode(errors="replace")
        frames = frames_by_codec(out)
        assert frames["h264"] == SECONDS * FPS, frames  # every frame went through the proxy
        assert frames["aac"] >= SECONDS * 44100 // 1024 - 2
        server.wait_for_line(r"publish stopped live/cam")
    finally:
        proxy.stop()
    log = server.log()
    publish = re.findall(r"publish started live/cam from (\S+):(\d+)", log)
    play = re.findall(r"play live/cam for (\S+):(\d+)", log)
    connects = re.findall(r"connect from (\S+):\d+: app 'live'", log)
    assert [host for host, _ in publish] == ["127.0.0.1"], log
    assert [host for host, _ in play] == ["127.0.0.1"], log
    assert connects == ["127.0.0.1", "127.0.0.1"], log
    arrivals = re.findall(r"(\S+):(\d+) arrives through " + re.escape(PROXY_SOURCE), log)
    # Each client's port as HAProxy named it: two distinct clients, both behind the proxy.
    assert {publish[0], play[0]} <= set(arrivals), log


def test_a_trusted_proxy_without_a_header_is_closed_with_one_line(
    proxied_server: ServerProcess,
) -> None:
    server = proxied_server
    with socket.socket() as sock:
        sock.bind((PROXY_SOURCE, 0))
        sock.connect(("127.0.0.1", server.port))
        port = sock.getsockname()[1]
        sock.sendall(b"\x03" + b"\x00" * 1536)  # RTMP C0 C1 straight away
        assert closed_unanswered(sock)  # the handshake is not answered
    line = server.wait_for_line(rf"closing {re.escape(PROXY_SOURCE)}:{port}: ")
    assert "no PROXY header from a trusted proxy" in line
    assert len(re.findall(rf"{re.escape(PROXY_SOURCE)}:{port}\b", server.log())) == 1


def test_a_proxy_header_from_an_untrusted_address_is_closed_with_one_line(
    proxied_server: ServerProcess,
) -> None:
    server = proxied_server
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        port = sock.getsockname()[1]
        sock.sendall(b"PROXY TCP4 198.51.100.1 127.0.0.1 4000 1935\r\n")
        assert closed_unanswered(sock)
    line = server.wait_for_line(rf"closing 127\.0\.0\.1:{port}: ")
    assert "a PROXY header from an address not in [server] trusted_proxies" in line
    assert "198.51.100.1" not in server.log()


def test_the_start_line_says_max_connections_comes_from_the_open_file_limit(
    proxied_server: ServerProcess,
) -> None:
    line = proxied_server.wait_for_line(r"ready; open-file limit", timeout=20)
    match = re.search(r"open-file limit (\d+); max_connections (\d+) \(from the open-file", line)
    assert match is not None, line
    assert int(match.group(2)) == int(match.group(1)) - 64
