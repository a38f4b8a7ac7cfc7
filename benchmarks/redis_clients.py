"""Which Redis client for the cluster directory: three ways of talking to Redis from Twisted.

1. ``txredisapi`` (a Twisted client) on the server's default epoll reactor;
2. redis-py's asyncio client (``redis.asyncio``) through Twisted's asyncio reactor (the whole
   server would then run on asyncio's event loop);
3. redis-py's synchronous client in Twisted's thread pool (``deferToThread``), epoll reactor.

Each runs in its own process against a ``redis-server`` started here (127.0.0.1, free port, no
persistence) and makes the directory's own request, ``SET key value NX PX 5000``:

- ``serial``: one request at a time (what a publish waits for): latency p50/p99 in us;
- ``burst``: ``--burst`` requests at once (a heartbeat refreshing every stream of a node, a node
  re-registering after an outage): wall time and requests per second;
- CPU time of the process per request (us), both phases together.

``--fanout`` also runs the socket fan-out benchmark (:mod:`benchmarks.fanout`, pyFMS only) under
both reactors, since choosing option 2 moves every socket of the server to asyncio's loop.

(redis-py is not a dependency of pyFMS: ``.venv/bin/pip install redis`` first.)

Run:  .venv/bin/python -m benchmarks.redis_clients --requests 2000 --burst 1000
      .venv/bin/python -m benchmarks.redis_clients --fanout --players 300 --duration 10
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = ("txredisapi", "asyncio", "thread")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis() -> tuple[subprocess.Popen[bytes], int]:
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is missing: apt-get install redis-server")
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("redis-server did not start")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(kind: str, port: int, requests: int, burst: int) -> None:
    """Measure one client in this process; print one JSON line."""
    if kind == "asyncio":
        from twisted.internet import asyncioreactor

        asyncioreactor.install()
    from twisted.internet import defer, reactor
    from twisted.internet.threads import deferToThread
    from twisted.python.failure import Failure

    result: dict[str, Any] = {"client": kind}

    async def run() -> None:
        if kind == "txredisapi":
            import txredisapi

            conn = await txredisapi.Connection("127.0.0.1", port, reconnect=False)

            def call(key: str) -> defer.Deferred[Any]:
                return conn.set(key, "rtmp://10.0.0.5:1935", pexpire=5000, only_if_not_exists=True)

        elif kind == "asyncio":
            import redis.asyncio

            pool = redis.asyncio.BlockingConnectionPool(
                host="127.0.0.1", port=port, max_connections=64
            )
            aconn = redis.asyncio.Redis(connection_pool=pool)

            def call(key: str) -> defer.Deferred[Any]:
                return defer.Deferred.fromFuture(
                    __import__("asyncio").ensure_future(
                        aconn.set(key, "rtmp://10.0.0.5:1935", nx=True, px=5000)
                    )
                )

        else:
            import redis

            sconn = redis.Redis(host="127.0.0.1", port=port, max_connections=64)

            def call(key: str) -> defer.Deferred[Any]:
                return deferToThread(sconn.set, key, "rtmp://10.0.0.5:1935", nx=True, px=5000)

        await call("warm")
        start_cpu = cpu()
        latencies = []
        for i in range(requests):
            t = time.perf_counter()
            await call(f"serial-{i}")
            latencies.append((time.perf_counter() - t) * 1e6)
        t = time.perf_counter()
        await defer.gatherResults([call(f"burst-{i}") for i in range(burst)])
        wall = time.perf_counter() - t
        spent = cpu() - start_cpu
        result.update(
            serial_p50_us=round(percentile(latencies, 50)),
            serial_p99_us=round(percentile(latencies, 99)),
            burst_s=round(wall, 3),
            burst_per_s=round(burst / wall),
            cpu_us_per_request=round(spent / (requests + burst) * 1e6, 1),
        )

    def done(outcome: Any) -> None:
        if isinstance(outcome, Failure):
            result["error"] = outcome.getTraceback()[-1500:]
        reactor.stop()  # type: ignore[attr-defined]

    reactor.callWhenRunning(  # type: ignore[attr-defined]
        lambda: defer.Deferred.fromCoroutine(run()).addBoth(done)
    )
    reactor.run()  # type: ignore[attr-defined]
    print(json.dumps(result))


SITECUSTOMIZE = """
import os
if os.environ.get("BENCH_REACTOR") == "asyncio":
    from twisted.internet import asyncioreactor
    asyncioreactor.install()
"""


def fanout(reactor_name: str, players: int, duration: float) -> str:
    """benchmarks.fanout with pyFMS on ``reactor_name``; its report's key lines."""
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "sitecustomize.py").write_text(SITECUSTOMIZE)
        env = dict(os.environ, BENCH_REACTOR=reactor_name)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (folder, env.get("PYTHONPATH")) if p)
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.fanout", "--servers", "fms",
             "--players", str(players), "--duration", str(duration)],
            cwd=ROOT, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        return out.stdout + out.stderr[-2000:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="serial requests")
    parser.add_argument("--burst", type=int, default=1000, help="requests at once")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each client, interleaved")
    parser.add_argument("--fanout", action="store_true", help="also the fan-out per reactor")
    parser.add_argument("--players", type=int, default=300)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--child", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.port, args.requests, args.burst)
        return
    print("command:", " ".join([sys.executable, "-m", "benchmarks.redis_clients", *sys.argv[1:]]))
    proc, port = start_redis()
    try:
        for _ in range(args.rounds):
            for kind in CLIENTS:
                subprocess.run(["redis-cli", "-p", str(port), "flushall"], capture_output=True)
                out = subprocess.run(
                    [sys.executable, "-m", "benchmarks.redis_clients", "--child", kind,
                     "--port", str(port), "--requests", str(args.requests),
                     "--burst", str(args.burst)],
                    cwd=ROOT, capture_output=True, text=True, check=False,
                )  # fmt: skip
                print(out.stdout.strip() or out.stderr[-1500:])
    finally:
        proc.terminate()
        proc.wait()
    if args.fanout:
        for name in ("epoll", "asyncio"):
            print(f"--- fan-out, {name} reactor")
            print(fanout(name, args.players, args.duration))


if __name__ == "__main__":
    main()
