"""What one fan-out flush costs, against players and messages per flush (in memory, no sockets).

The adaptive flush (``[streams] flush = "adaptive"``) spaces flushes by what the last one cost,
so its design rests on how that cost grows: with players (one write each per flush) and with
the messages each write carries (one flush every 100 ms carries about 7 messages of the
550 kbit/s stream, one after every publisher read carries 1). A publisher's messages go through
:class:`fms.live.stream.LiveStream` to N in-memory sinks, as in ``benchmarks/inmemory_fanout``;
each flush is timed with ``time.perf_counter``. This is the Python side of a flush only: the
real-process benchmark (``benchmarks.fanout``) adds the kernel's cost of each ``send()``, and
so does ``--sockets``: each player is then a TCP connection on 127.0.0.1 whose write is one
``send()`` (what :func:`fms.server.delivery.write_through` does), its other end drained between
flushes, outside the timing (two descriptors a player: mind ``ulimit -n``).
``--profile`` runs cProfile over the flushes of one player count and prints where the time went.

Run:  .venv/bin/python -m benchmarks.flush_cost --players 1000,5000,10000 --batches 1,7
      .venv/bin/python -m benchmarks.flush_cost --players 1000,5000 --batches 1,7 --sockets
      .venv/bin/python -m benchmarks.flush_cost --players 5000 --batches 1 --profile
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import socket
import statistics
import sys
import time

from benchmarks.inmemory_fanout import CountingSink, media
from fms.live.stream import FanoutLimits, LiveStream


class SocketSink(CountingSink):
    """A player on a TCP connection: each write is one ``send()``."""

    __slots__ = ("sock",)

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.bytes += self.sock.send(data)


def connected_pairs(count: int) -> list[tuple[socket.socket, socket.socket]]:
    """``count`` (server side, player side) TCP connections on 127.0.0.1, non-blocking."""
    with socket.create_server(("127.0.0.1", 0), backlog=1024) as listener:
        pairs = []
        for _ in range(count):
            client = socket.create_connection(listener.getsockname())
            server, _ = listener.accept()
            server.setblocking(False)
            client.setblocking(False)
            pairs.append((server, client))
    return pairs


def drain(pairs: list[tuple[socket.socket, socket.socket]]) -> None:
    for _, client in pairs:
        try:
            while client.recv(1 << 20):
                pass
        except BlockingIOError:
            pass


def flush_costs(players: int, batch: int, flushes: int, sockets: bool = False) -> list[float]:
    """Seconds each of ``flushes`` flushes took, each after ``batch`` new messages, with
    ``players`` players that all take everything (in memory, or over TCP with ``sockets``)."""
    messages = media(seconds=(batch * flushes + 2) / 73 + 2)
    stream = LiveStream("live", "bench", FanoutLimits())
    stream.start_publish(object())
    for message in messages[:2]:
        stream.publish_message(message)
    pairs = connected_pairs(players) if sockets else []
    for n in range(players):
        stream.add_player(SocketSink(pairs[n][0]) if sockets else CountingSink(), 1)
    costs = []
    try:
        stream.flush(0.0)  # the preamble every joiner gets
        drain(pairs)
        position = 2
        for _ in range(flushes):
            for message in messages[position : position + batch]:
                stream.publish_message(message)
            position += batch
            start = time.perf_counter()
            stream.flush(messages[position - 1].timestamp / 1000)
            costs.append(time.perf_counter() - start)
            drain(pairs)
    finally:
        for pair in pairs:
            for sock in pair:
                sock.close()
    return costs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.flush_cost", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--players", default="1000,5000,10000,19000", help="comma-separated")
    parser.add_argument("--batches", default="1,3,7", help="messages per flush, comma-separated")
    parser.add_argument("--flushes", type=int, default=40, help="flushes timed per row")
    parser.add_argument("--profile", action="store_true", help="cProfile the flushes")
    parser.add_argument("--sockets", action="store_true", help="players on TCP connections")
    args = parser.parse_args(argv)
    counts = [int(p) for p in args.players.split(",") if p.strip()]
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    where = "TCP on 127.0.0.1" if args.sockets else "in memory"
    print(f"players {where}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| players | messages per flush | median ms per flush | µs per player per flush |")
    print("|---|---|---|---|")
    for players in counts:
        for batch in batches:
            profiler = cProfile.Profile() if args.profile else None
            if profiler:
                profiler.enable()
            costs = flush_costs(players, batch, args.flushes, args.sockets)
            if profiler:
                profiler.disable()
            median = statistics.median(costs)
            print(f"| {players} | {batch} | {median * 1e3:.2f} | {median / players * 1e6:.2f} |")
            if profiler:
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
                print(out.getvalue())
    print("reproduce: .venv/bin/python -m benchmarks.flush_cost " + " ".join(argv or sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
