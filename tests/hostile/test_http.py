"""Hostile HTTP: clients that attack the HTTP listener of a real server, each costing its own
connection only.

The server of this module listens for HTTP with small limits (below), and every test runs
beside good traffic in a process of its own: an RTMP publisher sending 25 frames a second and
an HTTP-FLV viewer of that stream (:mod:`tests.hostile.http_viewer`), whose frames must keep
coming during the attack and after it. Each test checks what the attacker got (the status,
the close and when), the server's one log line, and what the others received.
"""

from __future__ import annotations

import itertools
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import ServerProcess, finish, frames_by_codec, probe_command, run_client
from tests.e2e.test_http_flv import curl, make_source, metric, publish
from tests.hostile.support import (
    GoodTraffic,
    closed_within,
    count_log,
    local_port,
    measure,
    open_socket,
    rss_kib,
    still_open,
    wait_closed,
    wait_for_log,
)

pytestmark = pytest.mark.hostile

REQUEST_TIMEOUT = 2.0
MAX_HEADER_BYTES = 4096
"""Less than Twisted's own default (16 KiB): a request between the two shows ours at work."""
MAX_CONNECTIONS = 16
PLAYER_BUFFER = 65536
STALL_TIMEOUT = 4.0

CONFIG = f"""
[http]
enabled = true
port = 0
request_timeout = {REQUEST_TIMEOUT}
max_header_bytes = {MAX_HEADER_BYTES}
max_connections = {MAX_CONNECTIONS}
flv_wait = 5.0

[streams]
player_buffer = {PLAYER_BUFFER}
stall_timeout = {STALL_TIMEOUT}
"""

EARLY = 0.05
"""Seconds a close may come before its deadline (the server fires deadlines at most 1 ms
early; the test's clock starts before the server's)."""
LATE = 3.0
"""Seconds a close may come after its deadline: generous, for a loaded 2-core machine."""

HTTP_LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)/")
_serial = itertools.count()


class Web:
    def __init__(self, process: ServerProcess, http_port: int) -> None:
        self.process = process
        self.port = process.port
        self.http_port = http_port

    def mark(self) -> int:
        return len(self.process.lines)


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    config = tmp_path_factory.mktemp("hostile-http") / "fms.toml"
    config.write_text(CONFIG, encoding="utf-8")
    process = ServerProcess("--log-level", "info", config=config)
    try:
        match = HTTP_LISTENING.search(process.wait_for_line(HTTP_LISTENING, timeout=20))
        assert match is not None
        yield Web(process, int(match.group(1)))
    finally:
        status = process.stop()
    assert status == 0, process.log()


@pytest.fixture
def good(web: Web) -> Iterator[Web]:
    """An RTMP publisher and an HTTP-FLV viewer of its stream, in a process of their own,
    receive frames during the test and after it."""
    traffic = GoodTraffic(web.port, f"good{next(_serial)}", http_port=web.http_port)
    try:
        traffic.mark()
        yield web
        traffic.stop()
    finally:
        traffic.kill()


def request(port: int, data: bytes) -> tuple[int, bytes, bool]:
    """Send ``data`` at once; (the status of the answer, its head, whether the server closed
    the connection after it)."""
    sock = open_socket(port, timeout=30.0)  # generous: a loaded machine answers late
    try:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before all of it was sent: read the answer
        answer = b""
        while b"\r\n\r\n" not in answer:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            assert chunk, f"closed without an answer after {answer!r}"
            answer += chunk
        head = answer.split(b"\r\n\r\n", 1)[0]
        closed = not still_open(sock, REQUEST_TIMEOUT + LATE)
        return int(head.split(b" ", 2)[1]), head, closed
    finally:
        sock.close()


def test_a_client_sending_its_headers_a_byte_a_second_is_closed_at_request_timeout(
    good: Web,
) -> None:
    mark = good.mark()
    start = time.monotonic()
    sock = open_socket(good.http_port)
    port = local_port(sock)
    took = None
    for byte in b"GET /live/good.flv HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 60:
        try:
            sock.sendall(bytes((byte,)))
        except (ConnectionResetError, BrokenPipeError):
            took = time.monotonic() - start
            break
        if not still_open(sock, 1.0):  # one byte a second
            took = time.monotonic() - start
            break
    if took is None:
        took = closed_within(sock, REQUEST_TIMEOUT + LATE, since=start)
    sock.close()
    assert REQUEST_TIMEOUT - EARLY <= took <= REQUEST_TIMEOUT + LATE
    wait_for_log(
        good.process, rf"closing HTTP client 127\.0\.0\.1:{port}: request deadline of 2s", mark
    )
    measure(f"HTTP headers at a byte a second: closed after {took:.2f} s (request_timeout 2 s)")


def test_headers_over_max_header_bytes_get_431_and_a_close_with_bounded_memory(
    good: Web,
) -> None:
    """8 KiB of short headers (over our 4 KiB, under Twisted's own 16 KiB) get 431; then 12
    clients (within max_connections) each pour 4 MiB of headers: each is answered 431 and
    closed, and the server does not hold what they sent (it grows by far less than the 48 MiB
    poured)."""
    headers = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 90) for i in range(80))
    status, _, closed = request(good.http_port, b"GET /api/v1/server HTTP/1.1\r\n" + headers)
    assert status == 431 and closed
    before = rss_kib(good.process.process.pid)
    flood = b"X-Flood: " + b"a" * 100 + b"\r\n"
    socks = [open_socket(good.http_port) for _ in range(12)]
    answered = 0
    try:
        for sock in socks:
            sock.sendall(b"GET /live/x.flv HTTP/1.1\r\n")
        for _ in range(4 * 1024 * 1024 // (64 * 1024)):
            for sock in socks:
                try:
                    sock.sendall(flood * (64 * 1024 // len(flood)))
                except (BrokenPipeError, ConnectionResetError):
                    pass
        for sock in socks:
            try:
                answered += sock.recv(65536).startswith(b"HTTP/1.1 431 ")
            except ConnectionResetError:
                pass  # answered, then reset for the bytes that kept coming
        wait_closed(socks, len(socks), timeout=REQUEST_TIMEOUT + LATE)
    finally:
        for sock in socks:
            sock.close()
    growth = rss_kib(good.process.process.pid) - before
    measure(f"12 clients x 4 MiB of headers: {answered} saw 431; the server grew {growth} KiB")
    assert answered == len(socks)
    assert growth < 16 * 1024


def test_absurd_urls_get_a_4xx_and_one_log_line_at_most(good: Web) -> None:
    mark = good.mark()
    cases = {
        b"/" + b"a" * 10_000 + b".flv": 414,  # a 10 kB path: over max_header_bytes
        b"/live/%00.flv": 400,
        b"/live/a%00b/cam.flv": 400,
        b"/live/../cam.flv": 400,
        b"/live/..%2Fcam.flv": 400,
        b"/%2e%2e/%2e%2e/etc/passwd.flv": 400,
        b"/live/%FF%FE.flv": 400,  # invalid UTF-8, percent-encoded
        b"/live/\xff\xfe.flv": 400,  # and raw
        b"/api/v1/streams/%FF/x": 400,
        b"/api/v1/clients/../../etc": 404,  # no such route
        b"/live/cam.flv/../../x": 404,  # not a stream (no .flv at the end): no such route
    }
    for target, expected in cases.items():
        status, head, _ = request(
            good.http_port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert status == expected, (target[:60], head)
        assert b"application/json" in head
    status, _, _ = request(good.http_port, b"GET * HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert status == 405  # Twisted's answer: only OPTIONS may ask about the server itself
    lines = good.process.lines[mark:]
    assert not [line for line in lines if "Traceback" in line or "Unhandled" in line], lines
    assert len(lines) <= len(cases) + 1, "\n".join(lines)  # one line per request at most


def how_closed(sock: socket.socket, timeout: float) -> str:
    """``"fin"`` (an orderly close: what a refusal at accept is) or ``"reset"`` (an abort:
    what the request deadline does), waiting up to ``timeout`` seconds."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(65536)
    except ConnectionResetError:
        return "reset"
    except TimeoutError:
        return "open"
    return "fin" if not data else f"data {data[:40]!r}"


def test_connections_over_max_connections_are_closed_and_a_viewer_plays_on(good: Web) -> None:
    """The good viewer holds one connection; 30 idle ones are opened: all but
    ``MAX_CONNECTIONS - 1`` are refused at accept (closed in order, having sent nothing), the
    others aborted at the request deadline; the good viewer's frames keep coming, and the
    listener answers again afterwards. The two kinds of close are told apart by how the
    socket ends, not by the clock."""
    socks = [open_socket(good.http_port) for _ in range(30)]
    try:
        ends = [how_closed(sock, REQUEST_TIMEOUT + LATE) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    refused = 30 - (MAX_CONNECTIONS - 1)
    assert (ends.count("fin"), ends.count("reset")) == (refused, MAX_CONNECTIONS - 1), ends
    status, _, _ = request(good.http_port, b"GET /api/v1/server HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200


NEVER_READS = {
    "HTTP-FLV": b"GET /live/big.flv HTTP/1.1\r\nHost: x\r\n\r\n",
    "WebSocket-FLV": (
        b"GET /live/big.flv HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ),
}


@pytest.mark.parametrize("kind", sorted(NEVER_READS))
def test_a_viewer_that_never_reads_is_bounded_then_closed_while_another_gets_every_frame(
    good: Web, tmp_path: Path, kind: str
) -> None:
    """FFmpeg publishes 8 s of about 12 Mbit/s (noise); a client (HTTP-FLV, or WebSocket-FLV)
    sends its request with a 4 KiB receive buffer and never reads. The server hands it at most
    what the two kernels buffer (its send buffer is at most tcp_wmem's largest, the client's
    receive buffer) plus ``player_buffer``, and closes it ``stall_timeout`` after it stopped
    taking bytes; curl, reading the same stream, gets a file in which ffprobe decodes every
    published frame."""
    source = make_source(tmp_path / "src.flv", 8, audio=False, size="480x270", noise=True)
    http = f"http://127.0.0.1:{good.http_port}"
    mark = good.mark()
    delivered_before = metric(http, "fms_player_bytes_delivered")
    hostile = socket.socket()
    hostile.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    hostile.connect(("127.0.0.1", good.http_port))
    try:
        hostile.sendall(NEVER_READS[kind])
        waiting = r"play live/big for \S+ \(waiting for publisher\)"
        wait_for_log(good.process, kind + " " + waiting, mark)
        body = tmp_path / "good.flv"
        reader = curl(f"{http}/live/big.flv", body)
        good.process.wait_for_lines(waiting, 2, timeout=30)
        assert finish(publish(source, f"{good.process.url}/live/big"))[0] == 0
        code, _, err = finish(reader)
        assert code == 0, err.decode(errors="replace")
        published = frames_by_codec(run_client(probe_command(str(source))).stdout)
        assert frames_by_codec(run_client(probe_command(str(body))).stdout) == published
        closed = wait_for_log(
            good.process, rf"closing {kind} viewer 127\.0\.0\.1:{local_port(hostile)} ", mark
        )
        assert f"no write progress for {STALL_TIMEOUT:g}s" in closed
        handed = metric(http, "fms_player_bytes_delivered") - delivered_before
        handed -= body.stat().st_size - 13  # curl's share (the sink wrote the file header)
        kernel = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
        received = hostile.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        bound = kernel + received + PLAYER_BUFFER
        measure(
            f"{kind} viewer that never reads, of {source.stat().st_size} bytes: handed "
            f"{handed:.0f} bytes (bound {bound}: send buffer {kernel} + receive buffer "
            f"{received} + player_buffer {PLAYER_BUFFER})"
        )
        assert 0 < handed <= bound < source.stat().st_size
        assert count_log(good.process, r"closing \S+ viewer", mark) == 1
    finally:
        hostile.close()
