"""Memory of stalled players: how much a server grows per player that never reads.

The scenario (issue 12): while ``--stalled`` players with 4 KiB receive buffers are connected to
a stream and never read, and ``--good`` players read everything, one publisher sends
``--frames`` video frames of ``--frame-size`` bytes (25 per second of stream time, a keyframe
every ``--gop`` frames) as fast as the server takes them: by default 10 s of an 8 Mbit/s stream
(40 KB frames, a keyframe every 2 s) in about 2 s. The server's resident memory is sampled every
20 ms from before the burst until ``--hold`` seconds after it; the report gives the peak growth,
that growth per stalled player, and what the good players received (each must get every frame;
they run in processes of their own, so the benchmark's own work never slows them).

pyFMS and nginx-rtmp run the same scenario one after the other (``--servers fms,nginx``), with
the same ``FMSServer``/``NginxServer`` as ``benchmarks/fanout.py`` (nginx-rtmp from Debian's
packages, installed with apt-get when missing). Not pass/fail: it prints its figures and the
command that reproduces them. ``tests/hostile/test_slow_players.py`` runs the same scenario
against a real pyFMS process and asserts the bounds.

Run:  .venv/bin/python -m benchmarks.slow_players --stalled 200
"""

from __future__ import annotations

import argparse
import json
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.fanout import ROOT, FMSServer, NginxServer, Server, python_env, rss_bytes
from fms.rtmp.client import (
    ClientConnection,
    ClientEvent,
    Connected,
    MediaArrived,
    StatusReceived,
    StreamCreated,
)
from fms.rtmp.constants import MessageType
from fms.rtmp.messages import Media

AVC_HEADER = b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f\xff\xe1\x00\x04abcd\x01\x00\x02ef"


class Peer:
    """One RTMP client on a blocking socket: enough to play or publish a synthetic stream."""

    def __init__(self, port: int, receive_buffer: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:  # before connect, so the window is small from the start
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(20)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = ClientConnection(digest=False, now=time.monotonic())
        self.conn.initiate()
        self.conn.connect("live", f"rtmp://127.0.0.1:{port}/live")
        self.events: list[ClientEvent] = []
        self.stream_id = 0

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def read(self) -> bool:
        """Read once; False when the server closed."""
        try:
            data = self.sock.recv(1 << 20)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            return False
        self.events.extend(self.conn.receive_data(data, time.monotonic()))
        self.flush()
        return True

    def wait(self, done: type[ClientEvent], code: str = "", timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if isinstance(event, done) and (not code or getattr(event, "code", "") == code):
                    return
            seen = len(self.events)
            self.flush()
            if time.monotonic() > deadline or not self.read():
                raise RuntimeError(f"no {done.__name__} {code}; events: {self.events[-5:]}")

    def open_stream(self) -> int:
        self.wait(Connected)
        self.conn.create_stream()
        self.wait(StreamCreated)
        created = next(e for e in reversed(self.events) if isinstance(e, StreamCreated))
        self.stream_id = created.stream_id
        return self.stream_id

    def play(self, name: str) -> None:
        self.conn.play(self.open_stream(), name)
        self.wait(StatusReceived, "NetStream.Play.Start")

    def publish(self, name: str) -> None:
        self.conn.publish(self.open_stream(), name)
        self.wait(StatusReceived, "NetStream.Publish.Start")

    def send_video(self, timestamp: int, payload: bytes) -> None:
        self.conn.send_media(
            self.stream_id, Media(MessageType.VIDEO, timestamp, self.stream_id, payload)
        )
        self.flush()

    def close(self) -> None:
        self.sock.close()


def frame(n: int, size: int, gop: int) -> bytes:
    """Frame ``n`` of the synthetic stream: an AVC keyframe every ``gop`` frames, else an inter
    frame, ``size`` bytes in all, its number in its first bytes after the FLV header."""
    head = b"\x17\x01\x00\x00\x00" if n % gop == 0 else b"\x27\x01\x00\x00\x00"
    return head + n.to_bytes(4, "big") + b"\x00" * max(size - 9, 0)


def good_player(port: int, name: str, frames: int, timeout: float) -> dict[str, object]:
    """Play ``name`` and read until frame ``frames - 1`` arrived (or ``timeout``): what came."""
    peer = Peer(port)
    peer.play(name)
    print("ready", flush=True)
    deadline = time.monotonic() + timeout
    numbers: list[int] = []
    seen = 0
    closed = False
    while time.monotonic() < deadline and (not numbers or numbers[-1] < frames - 1):
        if not peer.read():
            closed = True
            break
        for event in peer.events[seen:]:
            if isinstance(event, MediaArrived) and event.message.type_id == MessageType.VIDEO:
                payload = event.message.payload
                if len(payload) >= 9 and payload[1] == 1:
                    numbers.append(int.from_bytes(payload[5:9], "big"))
        seen = len(peer.events)
    peer.close()
    in_order = numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    return {"received": len(numbers), "in_order": in_order, "closed": closed}


@dataclass
class Outcome:
    server: str
    stalled: int
    frames: int
    frame_size: int
    sent_seconds: float
    baseline_mib: float
    peak_growth_mib: float
    growth_per_stalled_kib: float
    good: list[dict[str, object]]


class _Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.running = True

    def run(self) -> None:
        while self.running:
            try:
                self.peak = max(self.peak, rss_bytes(self.pid))
            except OSError:
                return
            time.sleep(0.02)


def run_scenario(
    port: int,
    pid: int,
    *,
    stalled: int,
    good: int = 2,
    frames: int = 250,
    frame_size: int = 40_000,
    gop: int = 50,
    hold: float = 2.0,
    name: str = "burst",
    tree: Path | None = None,
    while_sending: Callable[[list[int]], None] | None = None,
) -> Outcome:
    """The scenario against a running server (``pid`` is the process to measure).
    ``while_sending``: called in a thread with the good players' process ids as the burst
    starts (to disturb them); the outcome waits for it to return."""
    stalled_peers = []
    for _ in range(stalled):
        peer = Peer(port, receive_buffer=4096)
        peer.play(name)
        stalled_peers.append(peer)  # from now on never read
    good_procs = []
    for _ in range(good):
        code = (
            "import json, sys; from benchmarks.slow_players import good_player; "
            f"print(json.dumps(good_player({port}, {name!r}, {frames}, 120.0)))"
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=python_env(tree),
        )
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("a good player could not start")
        good_procs.append(proc)
    publisher = Peer(port)
    publisher.publish(name)
    publisher.send_video(0, AVC_HEADER)
    time.sleep(0.5)  # settle: every connection set up, allocations done
    baseline = rss_bytes(pid)
    sampler = _Sampler(pid)
    sampler.start()
    disturber = None
    if while_sending is not None:
        pids = [proc.pid for proc in good_procs]
        disturber = threading.Thread(target=while_sending, args=(pids,), daemon=True)
        disturber.start()
    started = time.monotonic()
    for n in range(frames):
        publisher.send_video(n * 40, frame(n, frame_size, gop))
    sent = time.monotonic() - started
    results = []
    for proc in good_procs:
        out, _ = proc.communicate(timeout=180)
        results.append(json.loads(out.strip().splitlines()[-1]))
    if disturber is not None:
        disturber.join()
    time.sleep(hold)
    sampler.running = False
    sampler.join()
    for peer in [*stalled_peers, publisher]:
        peer.close()
    growth = max(sampler.peak - baseline, 0)
    return Outcome(
        server="",
        stalled=stalled,
        frames=frames,
        frame_size=frame_size,
        sent_seconds=round(sent, 2),
        baseline_mib=round(baseline / 2**20, 1),
        peak_growth_mib=round(growth / 2**20, 1),
        growth_per_stalled_kib=round(growth / 1024 / max(stalled, 1), 1),
        good=results,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--servers", default="fms,nginx")
    parser.add_argument("--stalled", type=int, default=200)
    parser.add_argument("--good", type=int, default=2)
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--frame-size", type=int, default=40_000)
    parser.add_argument("--gop", type=int, default=50)
    parser.add_argument("--hold", type=float, default=2.0)
    parser.add_argument("--fms-tree", type=Path, default=None, help="another pyFMS source tree")
    parser.add_argument("--json", type=Path, default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    outcomes = []
    for kind in args.servers.split(","):
        with tempfile.TemporaryDirectory(prefix="slow-players-") as tmp:
            server: Server
            if kind == "fms":
                server = FMSServer(
                    Path(tmp), None, "warn", tree=args.fms_tree, players=args.stalled + 10
                )
            else:
                server = NginxServer(Path(tmp))
            server.start()
            try:
                outcome = run_scenario(
                    server.port, server.pid, stalled=args.stalled, good=args.good,
                    frames=args.frames, frame_size=args.frame_size, gop=args.gop,
                    hold=args.hold, tree=args.fms_tree if kind == "fms" else None,
                )  # fmt: skip
            finally:
                server.stop()
            outcome.server = server.describe()
            outcomes.append(outcome)
            print(
                f"{outcome.server}: {outcome.stalled} stalled players, {outcome.frames} frames of "
                f"{outcome.frame_size} B sent in {outcome.sent_seconds} s; peak growth "
                f"{outcome.peak_growth_mib} MiB ({outcome.growth_per_stalled_kib} KiB per "
                f"stalled player); good players received "
                f"{[g['received'] for g in outcome.good]} of {outcome.frames}",
                flush=True,
            )
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=2))
    print(
        "reproduce: .venv/bin/python -m benchmarks.slow_players " + shlex.join(argv or sys.argv[1:])
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
