"""Tools of the hostile-client suite: raw sockets, our own RTMP client over a socket, the good
traffic that must keep flowing while a test attacks the server, and the server's memory.

The suite runs the real ``fms`` process with short deadlines (see ``conftest.py``), attacks it
from raw sockets and from :class:`~fms.rtmp.client.ClientConnection`, and checks three things
every time: the bad connection is closed (or refused) within its deadline, a good publisher and
player keep working during and after, and the server's memory stays bounded.
"""

from __future__ import annotations

import re
import select
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

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


def _status_field(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {name} for process {pid}")


def wait_for_log(server: ServerProcess, pattern: str, since: int = 0, timeout: float = 5.0) -> str:
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

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.answering:
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

    def until(self, done: Callable[[ClientEvent], bool], timeout: float = 5.0) -> ClientEvent:
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

    def status(self, code: str, timeout: float = 5.0) -> StatusReceived:
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
    """A publisher sending synthetic H.264-shaped frames at 25 per second and a player reading
    them, both in one background thread, for the length of an attack. :meth:`stop` checks
    that frames kept arriving with no gap over ``max_gap`` seconds."""

    MIN_RUN = 0.4
    """Seconds of traffic at the least, so that a quick test still shows a flow."""

    def __init__(self, port: int, name: str, *, max_gap: float = 1.0) -> None:
        self.max_gap = max_gap
        self.publisher = Client(port)
        self.publisher.connect()
        self.pub_sid = self.publisher.publish(name)
        self.publisher.send_video(self.pub_sid, 0, AVC_HEADER)
        self.publisher.send_video(self.pub_sid, 0, KEYFRAME)
        self.player = Client(port)
        self.player.connect()
        self.player.play(name)
        self.arrivals: list[float] = []
        self.started = time.monotonic()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            selector = selectors.DefaultSelector()
            for client in (self.publisher, self.player):
                client.sock.setblocking(False)
                selector.register(client.sock, selectors.EVENT_READ, client)
            frame = 1
            next_frame = time.monotonic()
            while not self._stop.is_set():
                timeout = max(next_frame - time.monotonic(), 0)
                for key, _ in selector.select(timeout):
                    client: Client = key.data
                    try:
                        data = client.sock.recv(1 << 20)
                    except BlockingIOError:
                        continue
                    if not data:
                        raise AssertionError(f"the server closed the good client {client.port}")
                    events = client.conn.receive_data(data, time.monotonic())
                    if client is self.player:
                        now = time.monotonic()
                        self.arrivals.extend(now for e in events if isinstance(e, MediaArrived))
                    self._send(client, client.conn.data_to_send())
                if time.monotonic() >= next_frame:
                    payload = KEYFRAME if frame % 25 == 0 else INTERFRAME
                    media = Media(MessageType.VIDEO, frame * 40, self.pub_sid, payload)
                    self.publisher.conn.send_media(self.pub_sid, media)
                    self._send(self.publisher, self.publisher.conn.data_to_send())
                    frame += 1
                    next_frame += 0.04
        except BaseException as exc:  # reported by stop()
            self.error = exc

    @staticmethod
    def _send(client: Client, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = client.sock.send(view)
            except BlockingIOError:
                time.sleep(0.001)
                continue
            view = view[sent:]

    def stop(self) -> float:
        """Stop (after at least ``MIN_RUN`` seconds of traffic); check the frames kept
        flowing; return the longest gap (seconds)."""
        left = self.started + self.MIN_RUN - time.monotonic()
        if left > 0:
            time.sleep(left)  # a fixed stretch of traffic, not a wait for an event
        self._stop.set()
        self._thread.join(5)
        self.publisher.close()
        self.player.close()
        if self.error is not None:
            raise AssertionError(f"the good traffic failed: {self.error!r}") from self.error
        assert len(self.arrivals) >= 2, "the good player received (almost) nothing"
        gaps = [b - a for a, b in zip(self.arrivals, self.arrivals[1:], strict=False)]
        gap = max(gaps)
        assert gap < self.max_gap, f"the good player waited {gap:.2f}s for a frame"
        return gap


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
