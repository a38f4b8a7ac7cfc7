"""Tools of the hostile-client suite: raw sockets, our own RTMP client over a socket, the good
traffic that must keep flowing while a test attacks the server, and the server's memory.

The suite runs the real ``fms`` process with short deadlines (see ``conftest.py``), attacks it
from raw sockets and from :class:`~fms.rtmp.client.ClientConnection`, and checks three things
every time: the bad connection is closed (or refused) within its deadline, a good publisher and
player keep working during and after, and the server's memory stays bounded.
"""

from __future__ import annotations

import json
import os
import re
import select
import selectors
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fms.rtmp.chunks import ChunkEncoder, RawMessage
from fms.rtmp.client import (
    ClientConnection,
    ClientEvent,
    Connected,
    MediaArrived,
    StatusReceived,
    StreamCreated,
)
from fms.rtmp.constants import MessageType
from fms.rtmp.handshake import ClientHandshake
from fms.rtmp.messages import Media
from tests.e2e.harness import ServerProcess

AVC_HEADER = b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f\xff\xe1\x00\x04\x67\x64\x00\x1f"
KEYFRAME = b"\x17\x01\x00\x00\x00" + b"K" * 2000
INTERFRAME = b"\x27\x01\x00\x00\x00" + b"i" * 500

MEASUREMENTS: list[str] = []
"""Close times and memory figures, printed in the terminal summary of the run."""


def measure(text: str) -> None:
    MEASUREMENTS.append(text)


# --------------------------------------------------------------------------------- the server


def rss_kib(pid: int) -> int:
    """Resident memory of a process (KiB), from /proc."""
    return _status_field(pid, "VmRSS")


def peak_rss_kib(pid: int) -> int:
    """Peak resident memory of a process (KiB), from /proc."""
    return _status_field(pid, "VmHWM")


def reset_peak_rss(pid: int) -> None:
    """Make the process's peak resident memory its current one (Linux: ``clear_refs`` 5), so
    that :func:`peak_rss_kib` then shows the peak of what follows."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def _status_field(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {name} for process {pid}")


def wait_for_log(server: ServerProcess, pattern: str, since: int = 0, timeout: float = 10.0) -> str:
    """The first log line after line ``since`` that matches ``pattern``."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        for line in server.lines[since:]:
            if regex.search(line):
                return line
        if time.monotonic() > deadline:
            tail = "\n".join(server.lines[since:][-40:])
            raise AssertionError(f"no log line matched {pattern!r} in {timeout}s; log:\n{tail}")
        if server.process.poll() is not None:
            raise AssertionError("the server exited; log:\n" + server.log())
        time.sleep(0.02)


def count_log(server: ServerProcess, pattern: str, since: int = 0) -> int:
    regex = re.compile(pattern)
    return sum(1 for line in server.lines[since:] if regex.search(line))


# ------------------------------------------------------------------------------ raw sockets


def open_socket(port: int, source: str = "127.0.0.1", timeout: float = 5.0) -> socket.socket:
    """A TCP connection to the server from ``source`` (any 127.x.y.z address is local)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # time the server, not Nagle
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def local_port(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


CLOSE_TIMEOUT = 10.0
"""Seconds to wait for a close the server should make at once (on a protocol error, a refusal):
generous, for a loaded machine. What shows it was at once, and not at a deadline, is the reason
in the server's log line, which the tests check."""


def closed_within(sock: socket.socket, timeout: float, since: float | None = None) -> float:
    """Read (and drop) whatever the server sends until it closes; return the seconds from
    ``since`` (default: now) to the close. Fails if it stays open ``timeout`` seconds."""
    start = time.monotonic() if since is None else since
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"the server kept the connection open for {timeout}s")
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return time.monotonic() - start
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start
        except TimeoutError:
            continue


def still_open(sock: socket.socket, seconds: float) -> bool:
    """Whether the server keeps ``sock`` open for ``seconds`` (what it sends is dropped)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return False
        except (ConnectionResetError, BrokenPipeError):
            return False
        except TimeoutError:
            return True
    return True


def is_open(sock: socket.socket) -> bool:
    """Whether the server has not closed ``sock`` (checked now, without waiting)."""
    poller = select.poll()  # not select(): descriptors here go past 1024
    poller.register(sock, select.POLLIN)
    if not poller.poll(0):
        return True
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except OSError:
        return False


def wait_closed(socks: list[socket.socket], count: int, timeout: float = 5.0) -> int:
    """Wait until at least ``count`` of ``socks`` were closed by the server; return how many
    are closed by then (fails on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        closed = sum(1 for sock in socks if not is_open(sock))
        if closed >= count:
            return closed
        assert time.monotonic() < deadline, f"only {closed} of {count} connections were closed"
        selector = selectors.DefaultSelector()
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        selector.select(0.05)
        selector.close()


def handshake(sock: socket.socket) -> None:
    """Complete the RTMP handshake on a raw socket (simple form)."""
    client = ClientHandshake(digest=False)
    client.initiate()
    sock.sendall(client.data_to_send())
    while not client.done:
        data = sock.recv(65536)
        assert data, "the server closed during the handshake"
        client.receive_data(data)
        reply = client.data_to_send()
        if reply:
            sock.sendall(reply)


def chunk(csid: int, fmt: int, header: bytes, payload: bytes = b"") -> bytes:
    """One raw chunk: a basic header (csid < 64) and a message header written by hand."""
    return bytes(((fmt << 6) | csid,)) + header + payload


def fmt0_header(length: int, type_id: int, stream_id: int = 0, timestamp: int = 0) -> bytes:
    return (
        struct.pack(">I", timestamp)[1:]
        + struct.pack(">I", length)[1:]
        + bytes((type_id,))
        + struct.pack("<I", stream_id)
    )


def encoded(message: RawMessage, chunk_size: int = 128) -> bytes:
    encoder = ChunkEncoder(chunk_size)
    return encoder.encode(message)


# ------------------------------------------------------------------- our client on a socket


class Client:
    """A :class:`ClientConnection` over a blocking socket. It answers pings only while
    ``answering`` is true (it sends nothing at all otherwise)."""

    def __init__(
        self, port: int, *, source: str = "127.0.0.1", chunk_size: int = 4096, digest: bool = False
    ) -> None:
        self.sock = open_socket(port, source)
        self.port = local_port(self.sock)
        self.conn = ClientConnection(digest=digest, chunk_size=chunk_size)
        self.conn.initiate()
        self.events: list[ClientEvent] = []
        self.answering = True
        self.closed = False
        self.last_sent = time.monotonic()
        """When (``time.monotonic()``) the client last began to send bytes: the server received
        them after that, so a deadline the server counts from its last received byte fires no
        earlier than this plus the deadline."""

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.answering:
            self.last_sent = time.monotonic()
            self.sock.settimeout(10.0)
            self.sock.sendall(data)

    def read(self, timeout: float) -> bool:
        """Read once (up to ``timeout``); False when the server closed."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 20)
        except (TimeoutError, BlockingIOError):
            return True
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.closed = True
            return False
        self.events.extend(self.conn.receive_data(data, time.monotonic()))
        try:
            self.flush()  # e.g. a ping answer, racing the server's close
        except (ConnectionResetError, BrokenPipeError):
            self.closed = True
            return False
        return True

    def until(self, done: Callable[[ClientEvent], bool], timeout: float = 10.0) -> ClientEvent:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if done(event):
                    return event
            seen = len(self.events)
            self.flush()
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; events: {self.events[-10:]}"
            assert self.read(min(left, 0.5)), f"the server closed; events: {self.events[-10:]}"

    def status(self, code: str, timeout: float = 10.0) -> StatusReceived:
        event = self.until(lambda e: isinstance(e, StatusReceived) and e.code == code, timeout)
        assert isinstance(event, StatusReceived)
        return event

    def connect(self, app: str = "live", **extra: object) -> Client:
        self.conn.connect(app, f"rtmp://127.0.0.1/{app}", extra=dict(extra))
        self.until(lambda e: isinstance(e, Connected))
        return self

    def create_stream(self) -> int:
        self.conn.create_stream()
        event = self.until(lambda e: isinstance(e, StreamCreated))
        assert isinstance(event, StreamCreated)
        return event.stream_id

    def publish(self, name: str) -> int:
        sid = self.create_stream()
        self.conn.publish(sid, name)
        self.status("NetStream.Publish.Start")
        return sid

    def play(self, name: str) -> int:
        sid = self.create_stream()
        self.conn.play(sid, name)
        self.status("NetStream.Play.Start")
        return sid

    def send_video(self, sid: int, timestamp: int, payload: bytes) -> None:
        self.conn.send_media(sid, Media(MessageType.VIDEO, timestamp, sid, payload))
        self.flush()

    def close(self) -> None:
        self.sock.close()


# ------------------------------------------------------------------------- the good traffic


class GoodTraffic:
    """Good traffic in a process of its own (:mod:`tests.hostile.good_traffic`): a publisher
    sending 25 frames a second and a player of them, on the server at ``port``.

    A test (or fixture) calls :meth:`mark` when an attack begins and :meth:`check` when it
    ends: the player must go on receiving after the attack, and it must never have waited
    ``max_gap`` seconds or more for a frame in between (so during a long attack frames kept
    coming). The process runs beside the test instead of in a thread of it, so that on a
    loaded machine the test and the traffic do not take turns at one GIL.
    """

    MAX_GAP = 5.0
    """Seconds the good player may wait for a frame. The publisher sends one every 40 ms; a
    loaded 2-core machine can hold a process back for a second, not for five, while a server
    stalled by an attack (or closing the good clients) fails it."""

    AFTER_FRAMES = 5
    """Frames the player must receive after the attack: 0.2 s of them, at least two of the
    server's fan-out flushes (every 0.1 s), so that the flow is seen to go on."""

    TIMEOUT = 30.0
    """Seconds to wait for the process to get going, or for ``AFTER_FRAMES`` frames."""

    def __init__(
        self, port: int, name: str, *, max_gap: float = MAX_GAP, http_port: int | None = None
    ) -> None:
        self.max_gap = max_gap
        self.name = name
        extra = [str(http_port)] if http_port is not None else []  # an HTTP-FLV player
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.hostile.good_traffic", str(port), name, *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=Path(__file__).resolve().parents[2],
        )
        self._buffer = b""
        try:
            ready = self._answer(self.TIMEOUT)
            assert ready.get("ready"), f"the good traffic did not start: {ready}"
            self.mark()
        except BaseException:
            self.kill()
            raise

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def mark(self) -> int:
        """An attack begins: start a new window; return the frames received so far."""
        frames: int = self._command("mark", self.TIMEOUT)["frames"]
        return frames

    def check(self) -> dict[str, float]:
        """The attack is over: wait for ``AFTER_FRAMES`` more frames (generous deadline), check
        that they came and that no wait for a frame since :meth:`mark` reached ``max_gap``;
        return the window's figures (``during``, ``after``, ``max_gap``, ``waited``)."""
        window = self._command(f"after {self.AFTER_FRAMES} {self.TIMEOUT}", self.TIMEOUT + 10)
        assert window["after"] >= self.AFTER_FRAMES, (
            f"the good player received {window['after']} frames in {window['waited']:.1f}s "
            f"after the attack (wanted {self.AFTER_FRAMES}): {window}"
        )
        assert window["max_gap"] < self.max_gap, (
            f"the good player waited {window['max_gap']:.2f}s for a frame: {window}"
        )
        return window

    def stop(self) -> float:
        """:meth:`check`, then stop the process; return the longest gap (seconds)."""
        try:
            gap = self.check()["max_gap"]
            self._command("stop", self.TIMEOUT)
            status = self.process.wait(self.TIMEOUT)
            assert status == 0, f"the good traffic exited with {status}: {self._stderr()}"
            return gap
        finally:
            self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def _command(self, line: str, timeout: float) -> dict[str, Any]:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(line.encode() + b"\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # it ended; the answer below says why
        return self._answer(timeout)

    def _answer(self, timeout: float) -> dict[str, Any]:
        """The next JSON line from the process (fails on its error, its end or a timeout)."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            assert left > 0, f"the good traffic did not answer in {timeout}s"
            poller = select.poll()  # not select(): descriptors here may go past 1024
            poller.register(fd, select.POLLIN)
            if poller.poll(left * 1000):
                data = os.read(fd, 65536)
                if not data:
                    self.process.wait(self.TIMEOUT)
                    raise AssertionError(
                        f"the good traffic ended ({self.process.returncode}): {self._stderr()}"
                    )
                self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise AssertionError(f"the good traffic failed: {answer['error']}")
        return answer

    def _stderr(self) -> str:
        if self.process.stderr is None or self.process.poll() is None:
            return ""
        return self.process.stderr.read().decode(errors="replace")[-4000:]


def roundtrip(port: int, name: str, *, source: str = "127.0.0.1", timeout: float = 5.0) -> float:
    """A fresh player waits for ``name``, a fresh publisher sends a sequence header and three
    frames; return the seconds from the first connect to the player's third frame."""
    start = time.monotonic()
    player = Client(port, source=source)
    publisher = Client(port, source=source)
    try:
        player.connect()
        player.play(name)
        publisher.connect()
        sid = publisher.publish(name)
        publisher.send_video(sid, 0, AVC_HEADER)
        for i, payload in enumerate((KEYFRAME, INTERFRAME, INTERFRAME)):
            publisher.send_video(sid, i * 40, payload)
        got: list[MediaArrived] = []

        def third_frame(event: ClientEvent) -> bool:
            if isinstance(event, MediaArrived):
                got.append(event)
            return len(got) >= 4

        player.until(third_frame, timeout)
        return time.monotonic() - start
    finally:
        player.close()
        publisher.close()
