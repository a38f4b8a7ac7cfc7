"""Fan-out at scale: one publisher, N players, pyFMS and nginx-rtmp side by side.

For each server under test (``--servers fms,nginx``) the benchmark:

1. starts the server on 127.0.0.1 and a free port (pyFMS: ``fms run`` with a generated
   configuration; nginx-rtmp: Debian's ``libnginx-mod-rtmp``, installed with apt-get when missing
   and running as root, one worker, configured in a temporary prefix), and pins it to CPU 0;
2. starts the publisher (:mod:`benchmarks.publisher`): a synthetic stream whose frames carry a
   sequence number and their CLOCK_MONOTONIC send time;
3. samples the server's RSS with the publisher alone (the idle baseline), then starts ``--procs``
   load generators (``benchmarks/loadgen.c``, built with ``gcc -O2`` into a cache folder; pinned to
   the other CPUs) that set up ``--players`` players together (handshake, connect, createStream,
   play) with at most ``--setup-concurrency`` setups in flight;
4. once every player is playing, waits ``--settle`` seconds, then measures for ``--duration``
   seconds: every player counts the messages *sent* in that window and their latency, and the
   server's CPU time (``/proc/PID/stat``) and RSS (``/proc/PID/status``) are sampled;
5. waits ``--drain`` seconds for stragglers, stops everything and reports.

``--viewers`` says what the load is: ``rtmp`` players (the default), ``http-flv`` viewers (the
same generator in its HTTP mode: ``GET /live/bench.flv`` on pyFMS's HTTP listener, which the
generated configuration enables with ``max_connections`` lifted to fit), or a comma-separated
sequence of them run in turn, each on a fresh server process (``both`` is ``rtmp,http-flv``;
``rtmp,http-flv,rtmp,http-flv`` pairs runs on a noisy machine), so one run gives the two CPU
figures side by side with their ratio per pair (nginx-rtmp serves RTMP only).

The report: delivery ratio (overall and the worst player), players under 99 %, players the server
disconnected or that failed their setup, latency p50/p99/max (publisher write to player read),
setup rate, server CPU-seconds per million delivered messages, server RSS per player (RSS during
the window minus the baseline, over N), and the generator's own CPU use (a saturated generator
inflates latency: the report says so). Benchmarks are not pass/fail: numbers are printed with the
command line that reproduces them, and ``--json`` keeps everything.

Run:  .venv/bin/python -m benchmarks.fanout --players 1000 --duration 30
      .venv/bin/python -m benchmarks.fanout --servers fms --players 20 --duration 3  # quick look
      .venv/bin/python -m benchmarks.fanout --servers fms --viewers both --players 10000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from benchmarks.publisher import PROFILES, StreamProfile

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LOADGEN_SOURCE = HERE / "loadgen.c"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
NGINX_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
NGINX_PACKAGES = ["libnginx-mod-rtmp", "nginx-light"]
MAX_DURATION = 600.0
VIEWERS = ("rtmp", "http-flv")
"""What the load generator's players speak (its ``--mode``)."""
VIEWER_LABELS = {"rtmp": "RTMP", "http-flv": "HTTP-FLV"}
"""Seconds of measured load one server may get in one run (the window, not the setup)."""


class BenchmarkError(Exception):
    """The benchmark could not run (a tool is missing, a process did not start...)."""


# ------------------------------------------------------------------------------- /proc


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (seconds), from ``/proc/PID/stat``."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (bytes), from ``/proc/PID/status``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def listen_overflows() -> int:
    """The kernel's count of connections dropped because an accept queue was full (all
    listeners: on a benchmark machine, the server under test)."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return int(table.get("ListenOverflows", 0))
    return 0


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (``fms run --workers``: the supervisor and workers)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        try:
            todo.extend(children(current))
        except OSError:
            continue
    return out


def _tree_sum(pid: int, measure: Any) -> float:
    total = 0.0
    for member in process_tree(pid):
        try:
            total += measure(member)
        except (OSError, ValueError, IndexError):
            continue  # it ended meanwhile
    return total


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its live descendants."""
    return _tree_sum(pid, cpu_seconds)


def tree_rss_bytes(pid: int) -> int:
    """RSS of ``pid`` and its live descendants (shared pages counted in each)."""
    return int(_tree_sum(pid, rss_bytes))


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (all bound at once, then released)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def pin(pid: int, cpus: set[int]) -> None:
    """Pin ``pid`` and its threads to ``cpus`` (no effect where affinity is not allowed)."""
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            os.sched_setaffinity(int(task.name), cpus)
    except OSError:
        pass


def python_env(tree: Path | None) -> dict[str, str]:
    """The environment of a child that imports ``fms`` from ``tree`` (and ``benchmarks`` from
    this checkout), or from this checkout when ``tree`` is None."""
    paths = [str(tree.resolve())] if tree else []
    paths.append(str(ROOT))
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------ the tools


def build_loadgen(cache: Path | None = None) -> Path:
    """Compile ``loadgen.c`` once per source version; return the executable."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise BenchmarkError("gcc is needed to build the load generator (apt-get install gcc)")
    source = LOADGEN_SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    folder = cache or base / "pyfms-benchmarks"
    folder.mkdir(parents=True, exist_ok=True)
    binary = folder / f"loadgen-{digest}"
    if not binary.exists():
        partial = folder / f"loadgen-{digest}.{os.getpid()}"
        command = [gcc, "-O2", "-Wall", "-o", str(partial), str(LOADGEN_SOURCE)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BenchmarkError("building the load generator failed:\n" + result.stderr)
        partial.replace(binary)
    return binary


def ensure_nginx_rtmp() -> str:
    """The nginx binary, with the RTMP module installed (apt-get, as root, when missing)."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if nginx and NGINX_MODULE.exists():
        return nginx
    if os.geteuid() != 0:
        raise BenchmarkError(
            "nginx-rtmp is missing; as root: apt-get install -y " + " ".join(NGINX_PACKAGES)
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *NGINX_PACKAGES]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
        subprocess.run(install, env=env, capture_output=True, check=True)
    # Debian's package may start a system nginx; the benchmark runs its own.
    return shutil.which("nginx") or "/usr/sbin/nginx"


# ---------------------------------------------------------------------------- servers


class Server:
    """A server under test: a process to measure (``pid``) listening on ``port``."""

    name = "server"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.http_port = 0
        """The HTTP listener's port (HTTP-FLV viewers), 0 when the server has none."""
        self.pid = 0  # the process that does the work (nginx: the worker)

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> int | None:
        process = self.process
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def log_tail(self, lines: int = 20) -> str:
        return ""

    def describe(self) -> str:
        return self.name

    def flush_histograms(self) -> dict[str, FlushHistogram] | None:
        """The server's fan-out flush histograms now (pyFMS's ``/metrics``), None when it has
        none to read."""
        return None


FLUSH_FAMILIES = ("fms_flush_seconds", "fms_flush_interval_seconds")


@dataclass
class FlushHistogram:
    """One Prometheus histogram read from ``/metrics``: cumulative counts by upper bound."""

    buckets: list[tuple[float, float]]
    count: float
    total: float

    def minus(self, before: FlushHistogram) -> FlushHistogram:
        """What was counted since ``before`` (same bounds)."""
        old = dict(before.buckets)
        return FlushHistogram(
            [(bound, n - old.get(bound, 0.0)) for bound, n in self.buckets],
            self.count - before.count,
            self.total - before.total,
        )

    def quantile_bound(self, q: float) -> float | None:
        """The upper bound (seconds) of the bucket holding the ``q`` quantile (0..1)."""
        if self.count <= 0:
            return None
        for bound, cumulative in self.buckets:
            if cumulative >= q * self.count:
                return bound
        return math.inf


def read_flush_histograms(port: int) -> dict[str, FlushHistogram] | None:
    """``fms_flush_seconds`` and ``fms_flush_interval_seconds`` from pyFMS's ``/metrics`` on
    127.0.0.1:``port`` (None if unreadable)."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    found: dict[str, FlushHistogram] = {}
    for family in text_string_to_metric_families(text):
        name = family.name if family.name.endswith("_seconds") else family.name + "_seconds"
        if name not in FLUSH_FAMILIES:
            continue
        histogram = FlushHistogram([], 0.0, 0.0)
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                histogram.buckets.append((float(sample.labels["le"]), sample.value))
            elif sample.name.endswith("_count"):
                histogram.count = sample.value
            elif sample.name.endswith("_sum"):
                histogram.total = sample.value
        histogram.buckets.sort()
        found[name] = histogram
    return found if len(found) == len(FLUSH_FAMILIES) else None


class FMSServer(Server):
    """``fms run`` with a generated configuration (or ``--fms-config``), from this checkout or
    from another source tree (``--fms-tree``: e.g. ``git archive`` of a commit to compare)."""

    name = "pyFMS"

    def __init__(
        self,
        workdir: Path,
        config: Path | None,
        log_level: str,
        tree: Path | None = None,
        players: int = 0,
        workers: int = 1,
        http: bool = False,
    ) -> None:
        super().__init__(workdir)
        self.config = config
        self.players = players
        self.workers = workers
        self.http = http
        """Enable the HTTP listener (port 0) in the generated configuration, sized for
        ``players`` HTTP-FLV viewers."""
        if workers > 1:
            self.name = f"pyFMS {workers} workers"
        self.log_level = log_level
        self.tree = tree
        self.log = workdir / "fms.log"

    def start(self) -> None:
        config = self.config
        if config is None:
            config = self.workdir / "fms.toml"
            # Every player comes from 127.0.0.1 and the generator opens many at once: lift
            # the admission caps (per address before connect, and in all) to fit the scenario.
            text = (
                f'[server]\nlog_level = "{self.log_level}"\n'
                f"[limits]\nmax_connections = {max(10_000, self.players + 1_000)}\n"
                f"max_connecting_per_ip = {max(50, self.players + 10)}\n"
            )
            # The HTTP listener serves HTTP-FLV viewers and, in every run, /metrics: the
            # flush figures (flush_histograms) are read from it.
            text += http_section(self.players)
            config.write_text(text)
        command = [sys.executable, "-m", "fms", "run", "--host", "127.0.0.1", "--port", "0"]
        command += ["--config", str(config.resolve())]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.tree or ROOT,
                env=python_env(self.tree),
            )
        self.pid = self.process.pid
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            rtmp = re.search(r"(?:listening|accepting) on rtmp://[^\s:]+:(\d+)", text)
            http = re.search(r"(?:listening|accepting) on http://[^\s:]+:(\d+)", text)
            # A generated configuration always has the HTTP listener (/metrics).
            if rtmp and (http or not (self.http or self.config is None)):
                self.port = int(rtmp.group(1))
                self.http_port = int(http.group(1)) if http else 0
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise BenchmarkError("fms run did not start:\n" + self.log_tail())

    def log_tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def flush_histograms(self) -> dict[str, FlushHistogram] | None:
        return read_flush_histograms(self.http_port) if self.http_port else None

    def describe(self) -> str:
        code = "import fms; print(fms.__version__)"
        version = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=python_env(self.tree),
            check=False,
        ).stdout.strip()
        return f"pyFMS {version}" + (f" from {self.tree}" if self.tree else "")


def http_section(players: int) -> str:
    """The ``[http]`` section that lets ``players`` HTTP-FLV viewers in from one address: the
    listener on a free port, ``max_connections`` (64 by default) lifted to fit them."""
    return f"[http]\nenabled = true\nport = 0\nmax_connections = {max(64, players + 100)}\n"


NGINX_CONF = """\
load_module {module};
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections 20000;
}}
rtmp {{
    access_log {prefix}/access.log;
    server {{
        listen 127.0.0.1:{port};
        chunk_size 4096;
        application live {{
            live on;
        }}
    }}
}}
"""


class NginxServer(Server):
    """nginx with the RTMP module: one worker, ``live on``, defaults otherwise."""

    name = "nginx-rtmp"

    def start(self) -> None:
        nginx = ensure_nginx_rtmp()
        self.port = free_port()
        conf = self.workdir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(module=NGINX_MODULE, prefix=self.workdir, port=self.port))
        (self.workdir / "logs").mkdir(exist_ok=True)
        self.workdir.chmod(0o755)  # the worker runs as nobody
        log = (self.workdir / "nginx.out").open("wb")
        command = [nginx, "-p", str(self.workdir), "-c", str(conf)]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            workers = children(self.process.pid)
            if workers and _accepts(self.port):
                self.pid = workers[0]
                return
            time.sleep(0.05)
        raise BenchmarkError("nginx did not start:\n" + self.log_tail())

    def log_tail(self, lines: int = 20) -> str:
        text = ""
        for name in ("nginx.out", "error.log"):
            path = self.workdir / name
            if path.exists():
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def describe(self) -> str:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        result = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
        version = result.stderr.strip().removeprefix("nginx version: ")
        package = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "libnginx-mod-rtmp"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return f"{version}, libnginx-mod-rtmp {package}".strip(", ")


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# -------------------------------------------------------------------------- children


class Child:
    """A child process spoken to by lines: stdin commands, stdout announcements."""

    def __init__(self, command: list[str], name: str, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.last_line = ""
        self.stderr = b""
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        for line in stdout:
            self.lines.put(line.decode(errors="replace").strip())
        self.lines.put(None)

    def _read_err(self) -> None:
        stderr = self.process.stderr
        assert stderr is not None
        self.stderr = stderr.read()

    def expect(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                raise BenchmarkError(
                    f"{self.name} exited before {prefix!r}: "
                    + self.stderr.decode(errors="replace")[-2000:]
                )
            if line.startswith(prefix):
                return line
            self.last_line = line
        raise BenchmarkError(
            f"{self.name}: no {prefix!r} within {timeout:.0f}s (last said: {self.last_line!r})"
        )

    def send(self, line: str) -> None:
        stdin: IO[bytes] | None = self.process.stdin
        if stdin is None or self.process.poll() is not None:
            return
        try:
            stdin.write(line.encode() + b"\n")
            stdin.flush()
        except BrokenPipeError:
            pass

    def finish(self, timeout: float) -> None:
        self.send("Q")
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Sampler(threading.Thread):
    """Samples CPU seconds and RSS of some processes every ``interval`` seconds."""

    def __init__(self, pids: dict[str, int], interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.interval = interval
        self.samples: list[tuple[float, dict[str, tuple[float, int]]]] = []
        self._stop_event = threading.Event()

    def sample(self) -> dict[str, tuple[float, int]]:
        out = {}
        for name, pid in self.pids.items():
            try:
                if name == "server":  # with its workers, if any
                    out[name] = (tree_cpu_seconds(pid), tree_rss_bytes(pid))
                else:
                    out[name] = (cpu_seconds(pid), rss_bytes(pid))
            except (OSError, ValueError, IndexError):
                continue
        return out

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.samples.append((time.monotonic(), self.sample()))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


# ---------------------------------------------------------------------------- results


@dataclass
class Result:
    """What one server did in one scenario (times in ms, sizes in bytes)."""

    server: str
    version: str
    players: int
    duration: float
    messages_per_second: float
    viewers: str = "rtmp"
    """What the players spoke: ``rtmp`` or ``http-flv``."""
    load_before: float = 0.0
    """The machine's 1-minute load average as the run started (other work shows in latency)."""
    expected_per_player: int = 0
    delivered: int = 0
    delivery_ratio: float = 0.0
    min_player_ratio: float = 0.0
    players_under_99: int = 0
    playing_at_end: int = 0
    disconnected: int = 0
    failed_setup: int = 0
    duplicates: int = 0
    received_any: int = 0
    """Benchmark messages the players received at any time (before the window too)."""
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_max_ms: float | None = None
    latency_samples: int = 0
    setup_seconds: float = 0.0
    setup_rate: float = 0.0
    setup_p50_ms: float | None = None
    setup_p99_ms: float | None = None
    setup_max_ms: float | None = None
    setup_cpu_seconds: float = 0.0
    listen_overflows: int = 0
    """SYNs dropped because the server's accept queue was full (the client retries after 1 s,
    3 s...)."""
    server_cpu_seconds: float = 0.0
    server_cpu_percent: float = 0.0
    cpu_per_million: float | None = None
    rss_baseline: int = 0
    rss_at_n: int = 0
    rss_per_player: float = 0.0
    generator_cpu_percent: float = 0.0
    generator_cpus: int = 0
    publisher_max_slip_ms: float = 0.0
    publisher_late_messages: int = 0
    flushes_per_second: float | None = None
    """pyFMS's fan-out flushes per second in the window (from its /metrics), None otherwise."""
    flush_mean_ms: float | None = None
    flush_p99_ms: float | None = None
    """Upper bound of the histogram bucket holding the 99th percentile of flush durations."""
    interval_p50_ms: float | None = None
    interval_p99_ms: float | None = None
    """Bucket bounds of the p50 and p99 of the time from one flush's start to the next's."""
    notes: list[str] = field(default_factory=list)


def percentile_from_buckets(buckets: dict[int, int], q: float) -> float | None:
    """The ``q`` quantile (0..1) in ms of a histogram {bucket's upper edge (us): count}."""
    total = sum(buckets.values())
    if not total:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for upper in sorted(buckets):
        seen += buckets[upper]
        if seen >= rank:
            return upper / 1000
    return None


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summarise(
    result: Result,
    summaries: list[dict[str, Any]],
    publisher: dict[str, Any],
    window: tuple[int, int],
) -> None:
    """Fill ``result`` from the generators' and the publisher's JSON summaries."""
    t0, t1 = window
    expected = sum(1 for t in publisher["send_ns"] if t0 <= t < t1)
    received = [n for s in summaries for n in s["window_received"]]
    received += [0] * (result.players - len(received))
    result.expected_per_player = expected
    result.delivered = sum(received)
    if expected:
        result.delivery_ratio = result.delivered / (expected * result.players)
        result.min_player_ratio = min(received) / expected
        result.players_under_99 = sum(1 for n in received if n < 0.99 * expected)
    result.playing_at_end = sum(s["playing"] for s in summaries)
    result.disconnected = sum(s["disconnected"] for s in summaries)
    result.failed_setup = (
        sum(s["failed_setup"] for s in summaries)
        + result.players
        - sum(s["players"] for s in summaries)
    )
    result.duplicates = sum(s["duplicates"] for s in summaries)
    result.received_any = sum(s["media"] for s in summaries)
    causes = {
        "connection refused or failed": sum(s["connect_errors"] for s in summaries),
        "closed or refused by the server during setup": sum(s["refused_setups"] for s in summaries),
        "setup timed out": sum(s["timed_out_setups"] for s in summaries),
        "never started (setup budget spent)": sum(s["never_started"] for s in summaries),
    }
    failed = ", ".join(f"{count} {cause}" for cause, count in causes.items() if count)
    if failed:
        result.notes.append("failed setups: " + failed)
    buckets: dict[int, int] = {}
    for s in summaries:
        latency = s["latency"]
        for upper, count in latency["upper_us_counts"]:
            buckets[upper] = buckets.get(upper, 0) + count
        if latency["overflow"]:  # beyond the histogram (120 s): counted at the maximum
            upper = latency["max_ns"] // 1000 + 1
            buckets[upper] = buckets.get(upper, 0) + latency["overflow"]
    result.latency_samples = sum(buckets.values())
    result.latency_p50_ms = percentile_from_buckets(buckets, 0.50)
    result.latency_p99_ms = percentile_from_buckets(buckets, 0.99)
    maxima = [s["latency"]["max_ns"] for s in summaries if s["latency"]["count"]]
    result.latency_max_ms = max(maxima) / 1e6 if maxima else None
    firsts = [s["first_connect_ns"] for s in summaries if s["first_connect_ns"]]
    lasts = [s["last_playing_ns"] for s in summaries if s["last_playing_ns"]]
    if firsts and lasts:
        result.setup_seconds = max(0.0, (max(lasts) - min(firsts)) / 1e9)
        playing = result.players - result.failed_setup
        result.setup_rate = playing / result.setup_seconds if result.setup_seconds else 0.0
    setups = [ms for s in summaries for ms in s["setup_ms"] if ms >= 0]
    result.setup_p50_ms = percentile(setups, 0.50)
    result.setup_p99_ms = percentile(setups, 0.99)
    result.setup_max_ms = max(setups) if setups else None
    result.publisher_max_slip_ms = publisher["max_slip_ms"]
    result.publisher_late_messages = publisher["late_messages"]
    if publisher.get("error"):
        result.notes.append("publisher: " + publisher["error"])


# ---------------------------------------------------------------------------- scenario


@dataclass(frozen=True, slots=True)
class Scenario:
    players: int
    duration: float
    profile: str
    procs: int
    setup_concurrency: int
    setup_timeout: float
    setup_budget: float
    settle: float
    drain: float
    baseline: float
    pin: bool
    sources: tuple[str, ...] = ()
    """Local addresses the players connect from (generator i uses the (i mod n)-th); empty:
    the kernel's choice (127.0.0.1)."""
    arrival_rate: float = 0.0
    """New players per second, all generators together (0: as fast as the concurrency allows)."""
    app: str = "live"
    stream: str = "bench"
    viewers: str = "rtmp"
    """What the players speak (:data:`VIEWERS`): RTMP, or HTTP-FLV on the HTTP listener."""


def cpu_sets(pin_enabled: bool) -> tuple[set[int], set[int]]:
    """(server CPUs, generator CPUs): CPU 0 for the server, the others for the load."""
    available = sorted(os.sched_getaffinity(0))
    if not pin_enabled or len(available) < 2:
        return set(available), set(available)
    return {available[0]}, set(available[1:])


def run_scenario(
    server: Server, scenario: Scenario, loadgen: Path, workdir: Path, tree: Path | None = None
) -> Result:
    profile: StreamProfile = PROFILES[scenario.profile]
    result = Result(
        server=server.name + ("" if scenario.viewers == "rtmp" else f" {label(scenario.viewers)}"),
        version="",
        players=scenario.players,
        viewers=scenario.viewers,
        duration=scenario.duration,
        messages_per_second=profile.messages_per_second,
    )
    server_cpus, load_cpus = cpu_sets(scenario.pin)
    result.generator_cpus = len(load_cpus)
    children_: list[Child] = []
    sampler: Sampler | None = None
    bound = scenario.setup_budget + scenario.settle + scenario.duration + scenario.drain + 120
    try:
        server.start()
        result.version = server.describe()
        for member in process_tree(server.pid):
            pin(member, server_cpus)
        time.sleep(0.5)
        idle_rss = tree_rss_bytes(server.pid)
        pub_out = workdir / "publisher.json"
        pub_options = {
            "port": server.port, "app": scenario.app, "stream": scenario.stream,
            "profile": scenario.profile, "max-seconds": bound, "out": pub_out,
        }  # fmt: skip
        publisher = start_publisher(pub_options, python_env(tree), load_cpus, children_)
        time.sleep(scenario.baseline)
        result.rss_baseline = tree_rss_bytes(server.pid)

        shares = [
            scenario.players // scenario.procs + (i < scenario.players % scenario.procs)
            for i in range(scenario.procs)
        ]
        concurrency = max(1, scenario.setup_concurrency // scenario.procs)
        generators: list[tuple[Child, Path]] = []
        cpu_before_setup = tree_cpu_seconds(server.pid)
        overflows_before = listen_overflows()
        port = server.port
        if scenario.viewers == "http-flv":
            if not server.http_port:
                raise BenchmarkError(f"{server.name} has no HTTP listener for HTTP-FLV viewers")
            port = server.http_port
        for i, share in enumerate(s for s in shares if s):
            out = workdir / f"loadgen-{i}.json"
            gen_options = {
                "port": port, "players": share, "app": scenario.app, "mode": scenario.viewers,
                "stream": scenario.stream, "concurrency": concurrency,
                "setup-timeout": scenario.setup_timeout, "setup-budget": scenario.setup_budget,
                "max-seconds": bound, "out": out,
            }  # fmt: skip
            if scenario.sources:
                gen_options["source"] = scenario.sources[i % len(scenario.sources)]
            if scenario.arrival_rate > 0:
                gen_options["rate"] = scenario.arrival_rate * share / scenario.players
            generator = Child([str(loadgen), *options(gen_options)], f"loadgen {i}")
            children_.append(generator)
            pin(generator.process.pid, load_cpus)
            generators.append((generator, out))
        pids = {"server": server.pid}
        pids.update({f"gen{i}": g.process.pid for i, (g, _) in enumerate(generators)})
        sampler = Sampler(pids)
        sampler.start()
        setup_wait = scenario.setup_budget + 30
        for generator, _ in generators:
            generator.expect("READY", setup_wait)
        result.setup_cpu_seconds = tree_cpu_seconds(server.pid) - cpu_before_setup
        result.listen_overflows = listen_overflows() - overflows_before

        time.sleep(scenario.settle)
        t0 = time.monotonic_ns() + 200_000_000
        t1 = t0 + int(scenario.duration * 1e9)
        for generator, _ in generators:
            generator.send(f"W {t0} {t1}")
        _sleep_until(t0)
        before = sampler.sample()
        flushes_before = server.flush_histograms()
        _sleep_until(t1)
        after = sampler.sample()
        flushes_after = server.flush_histograms()
        if flushes_before and flushes_after:
            flush_figures(result, flushes_before, flushes_after, scenario.duration)
        in_window = [s for t, s in sampler.samples if t0 / 1e9 <= t <= t1 / 1e9]
        rss_values = [s["server"][1] for s in in_window if "server" in s] + [
            after.get("server", (0, 0))[1]
        ]
        result.rss_at_n = max(rss_values)
        result.server_cpu_seconds = after["server"][0] - before["server"][0]
        result.server_cpu_percent = 100 * result.server_cpu_seconds / scenario.duration
        generator_cpu = sum(
            after[name][0] - before[name][0] for name in after if name.startswith("gen")
        )
        result.generator_cpu_percent = 100 * generator_cpu / scenario.duration / len(load_cpus)

        time.sleep(scenario.drain)
        for generator, _ in generators:
            generator.finish(30)
        publisher.finish(30)
        summaries = []
        for generator, out in generators:
            if not out.exists():
                raise BenchmarkError(f"{generator.name} wrote no summary")
            summaries.append(json.loads(out.read_text()))
        if not pub_out.exists():
            raise BenchmarkError("the publisher wrote no summary")
        summarise(result, summaries, json.loads(pub_out.read_text()), (t0, t1))
        if result.delivered:
            result.cpu_per_million = result.server_cpu_seconds / result.delivered * 1e6
        result.rss_per_player = (result.rss_at_n - result.rss_baseline) / scenario.players
        result.notes.append(f"idle RSS before the publisher: {idle_rss / 2**20:.1f} MiB")
        if result.generator_cpu_percent > 85:
            result.notes.append(
                f"the load generator used {result.generator_cpu_percent:.0f}% of its CPUs: "
                "latency includes its own queueing"
            )
    finally:
        if sampler is not None:
            sampler.stop()
        for child in children_:
            child.kill()
        status = server.stop()
        if status not in (0, None):
            result.notes.append(f"server exited with status {status}")
    return result


def flush_figures(
    result: Result,
    before: dict[str, FlushHistogram],
    after: dict[str, FlushHistogram],
    seconds: float,
) -> None:
    """The window's fan-out flushes (the difference of two scrapes of /metrics) into
    ``result``: how many a second, their mean and p99 duration, the p50 and p99 interval."""
    costs = after["fms_flush_seconds"].minus(before["fms_flush_seconds"])
    gaps = after["fms_flush_interval_seconds"].minus(before["fms_flush_interval_seconds"])
    if costs.count <= 0:
        return
    result.flushes_per_second = costs.count / seconds
    result.flush_mean_ms = 1000 * costs.total / costs.count
    bound = costs.quantile_bound(0.99)
    result.flush_p99_ms = None if bound is None else 1000 * bound
    for q, name in ((0.5, "interval_p50_ms"), (0.99, "interval_p99_ms")):
        bound = gaps.quantile_bound(q)
        setattr(result, name, None if bound is None else 1000 * bound)


def start_publisher(
    values: dict[str, object], env: dict[str, str], cpus: set[int], children: list[Child]
) -> Child:
    """Start :mod:`benchmarks.publisher` with ``values`` as its options, pinned to ``cpus`` and
    added to ``children``; return it once it says it is publishing (20 s at most)."""
    publisher = Child(
        [sys.executable, "-m", "benchmarks.publisher", *options(values)], "publisher", env=env
    )
    children.append(publisher)
    pin(publisher.process.pid, cpus)
    publisher.expect("PUBLISHING", 20)
    return publisher


def options(values: dict[str, object]) -> list[str]:
    """``{"port": 1935}`` -> ``["--port", "1935"]``."""
    return [item for key, value in values.items() for item in (f"--{key}", str(value))]


def _sleep_until(ns: int) -> None:
    while (remaining := ns - time.monotonic_ns()) > 0:
        time.sleep(min(remaining / 1e9, 0.5))


# ----------------------------------------------------------------------------- report


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def label(viewers: str) -> str:
    """``http-flv`` -> ``HTTP-FLV``."""
    return VIEWER_LABELS.get(viewers, viewers)


def format_report(result: Result) -> str:
    r = result
    lines = [
        f"== {r.server} ({r.version}): {r.players} {label(r.viewers)} players, "
        f"{r.duration:g} s measured, "
        f"{r.messages_per_second:g} messages/s per player",
        f"delivery        {r.delivery_ratio:.4f} overall; worst player {r.min_player_ratio:.4f}; "
        f"{r.players_under_99} players under 99% "
        f"({r.delivered} of {r.expected_per_player} x {r.players} messages; "
        f"{r.received_any} received in the whole run)",
        f"players         {r.playing_at_end} playing at the end, {r.disconnected} disconnected "
        f"by the server, {r.failed_setup} failed setup, {r.duplicates} out-of-order",
        f"latency         p50 {_ms(r.latency_p50_ms)} ms, p99 {_ms(r.latency_p99_ms)} ms, "
        f"max {_ms(r.latency_max_ms)} ms ({r.latency_samples} messages)",
        f"setup           {r.setup_rate:.0f} players/s ({r.setup_seconds:.2f} s for all); "
        f"per player p50 {_ms(r.setup_p50_ms)} ms, p99 {_ms(r.setup_p99_ms)} ms, "
        f"max {_ms(r.setup_max_ms)} ms; server CPU {r.setup_cpu_seconds:.2f} s; "
        f"{r.listen_overflows} accept-queue overflows",
        f"server CPU      {r.server_cpu_seconds:.2f} s in the window ({r.server_cpu_percent:.0f}% "
        f"of a core) = {_ms(r.cpu_per_million)} CPU-s per million delivered messages",
        f"server RSS      {r.rss_baseline / 2**20:.1f} MiB with the publisher alone, "
        f"{r.rss_at_n / 2**20:.1f} MiB with the players = "
        f"{r.rss_per_player / 1024:.1f} KiB per player",
        f"generator       {r.generator_cpu_percent:.0f}% of {r.generator_cpus} CPU(s); publisher "
        f"max slip {r.publisher_max_slip_ms:.1f} ms, {r.publisher_late_messages} messages late",
    ]
    if r.flushes_per_second is not None:
        lines.append(
            f"flushes         {r.flushes_per_second:.1f}/s, {_ms(r.flush_mean_ms)} ms each on "
            f"average (p99 <= {_ms(r.flush_p99_ms)} ms); from one start to the next p50 <= "
            f"{_ms(r.interval_p50_ms)} ms, p99 <= {_ms(r.interval_p99_ms)} ms (/metrics buckets)"
        )
    lines += [f"note            {note}" for note in r.notes]
    return "\n".join(lines)


def http_rtmp_ratios(results: list[Result]) -> list[float]:
    """pyFMS's CPU per delivered message with HTTP-FLV viewers over that with RTMP players,
    for the i-th run of each kind (runs in turn on one machine: pairs share its load)."""
    fms = [r for r in results if r.server.startswith("pyFMS")]
    rtmp = [r.cpu_per_million for r in fms if r.viewers == "rtmp"]
    http = [r.cpu_per_million for r in fms if r.viewers == "http-flv"]
    return [h / r for r, h in zip(rtmp, http, strict=False) if r and h]


def format_table(results: list[Result]) -> str:
    header = (
        "| server | players | delivery | worst player | failed setup | disconnected | p50 ms "
        "| p99 ms | max ms | setup/s | CPU-s per M msgs | server CPU % | KiB/player | load |"
    )
    rows = [header, "|" + "---|" * 14]
    for r in results:
        rows.append(
            f"| {r.server} | {r.players} | {r.delivery_ratio:.4f} | {r.min_player_ratio:.4f} "
            f"| {r.failed_setup} | {r.disconnected} | {_ms(r.latency_p50_ms)} "
            f"| {_ms(r.latency_p99_ms)} | {_ms(r.latency_max_ms)} | {r.setup_rate:.0f} "
            f"| {_ms(r.cpu_per_million)} | {r.server_cpu_percent:.0f} "
            f"| {r.rss_per_player / 1024:.1f} | {r.load_before:.2f} |"
        )
    return "\n".join(rows)


# ------------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.fanout", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--players", type=int, default=1000, help="players (default 1000)")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds")
    parser.add_argument("--servers", default="fms,nginx", help="fms, nginx or both (fms,nginx)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="550k")
    parser.add_argument(
        "--viewers",
        default="rtmp",
        help="what the players speak: rtmp, http-flv (pyFMS's HTTP listener), or a "
        "comma-separated sequence run in turn, each on a fresh server (both = rtmp,http-flv)",
    )
    parser.add_argument("--procs", type=int, default=0, help="load generators (0: 1 per 5,000)")
    parser.add_argument(
        "--setup-concurrency",
        type=int,
        default=100,
        help="player setups in flight at once (all generators together)",
    )
    parser.add_argument(
        "--setup-timeout", type=float, default=30.0, help="seconds one player's setup may take"
    )
    parser.add_argument(
        "--setup-budget",
        type=float,
        default=120.0,
        help="seconds for all setups; then the players not playing count as failed",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=2.0,
        help="seconds between the last player's Play.Start and the window",
    )
    parser.add_argument(
        "--drain", type=float, default=3.0, help="seconds after the window for late messages"
    )
    parser.add_argument(
        "--baseline",
        type=float,
        default=2.0,
        help="seconds of publisher alone before the baseline RSS",
    )
    parser.add_argument(
        "--sources",
        default="",
        help="comma-separated local addresses the players connect from (127.0.0.N), one per "
        "generator in turn (a NAT or a restreaming service is one address)",
    )
    parser.add_argument(
        "--arrival-rate",
        type=float,
        default=0.0,
        help="new players per second, all generators together (0: as fast as "
        "--setup-concurrency allows)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and generator")
    parser.add_argument("--fms-config", type=Path, help="use this fms.toml instead of defaults")
    parser.add_argument("--fms-log-level", default="info")
    parser.add_argument(
        "--fms-workers",
        type=int,
        default=1,
        help="run pyFMS with --workers N (N > 1 is not pinned: the workers share the CPUs)",
    )
    parser.add_argument(
        "--fms-tree",
        type=Path,
        help="run the pyFMS server from this source tree (e.g. a git archive of a commit)",
    )
    parser.add_argument("--json", type=Path, help="write every result here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = set(servers) - {"fms", "nginx"}
    if unknown or not servers:
        print(f"unknown servers: {', '.join(sorted(unknown)) or '(none)'}", file=sys.stderr)
        return 2
    if not 0 < args.duration <= MAX_DURATION or args.players < 1:
        print(f"--duration must be in (0, {MAX_DURATION:g}], --players >= 1", file=sys.stderr)
        return 2
    sources = tuple(a.strip() for a in args.sources.split(",") if a.strip())
    procs = max(args.procs or max(1, math.ceil(args.players / 5000)), len(sources))
    scenario = Scenario(
        players=args.players,
        duration=args.duration,
        profile=args.profile,
        procs=min(procs, args.players),
        setup_concurrency=args.setup_concurrency,
        setup_timeout=args.setup_timeout,
        setup_budget=args.setup_budget,
        settle=args.settle,
        drain=args.drain,
        baseline=args.baseline,
        pin=not args.no_pin and args.fms_workers <= 1,
        sources=sources,
        arrival_rate=args.arrival_rate,
    )
    kinds = [k for v in args.viewers.split(",") for k in (VIEWERS if v == "both" else [v])]
    if not kinds or set(kinds) - set(VIEWERS):
        print(f"--viewers: a sequence of {', '.join(VIEWERS)} (or both)", file=sys.stderr)
        return 2
    profile = PROFILES[args.profile]
    print(
        f"scenario: {scenario.players} {' then '.join(label(k) for k in kinds)} players of one "
        f"{profile.kbit_per_second:.0f} kbit/s stream "
        f"({profile.messages_per_second:g} messages/s), {scenario.duration:g} s measured, "
        f"{scenario.procs} generator process(es), pinned: {scenario.pin}; "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    results: list[Result] = []
    temp = Path(tempfile.mkdtemp(prefix="pyfms-fanout-"))
    try:
        loadgen = build_loadgen()
        runs = [(name, kind) for name in servers for kind in kinds]
        for index, (name, kind) in enumerate(runs):
            if name == "nginx" and kind != "rtmp":
                print(f"== nginx-rtmp: no {label(kind)} viewers (RTMP only): skipped", flush=True)
                continue
            if name == "nginx" and kind in [k for _, k in runs[:index] if _ == "nginx"]:
                continue  # nginx once, however many RTMP runs pyFMS gets
            workdir = temp / f"{index}-{name}-{kind}"
            workdir.mkdir()
            server: Server = (
                FMSServer(
                    workdir,
                    args.fms_config,
                    args.fms_log_level,
                    args.fms_tree,
                    args.players,
                    args.fms_workers,
                    http="http-flv" in kinds,
                )
                if name == "fms"
                else NginxServer(workdir)
            )
            load = os.getloadavg()
            print(
                f"load average before {server.name} {label(kind)}: "
                + ", ".join(f"{x:.2f}" for x in load),
                flush=True,
            )
            try:
                run = replace(scenario, viewers=kind)
                result = run_scenario(server, run, loadgen, workdir, args.fms_tree)
                result.load_before = load[0]
            except BenchmarkError as exc:
                print(f"== {server.name}: the benchmark failed: {exc}", file=sys.stderr)
                tail = server.log_tail()
                if tail:
                    print(tail, file=sys.stderr)
                return 1
            results.append(result)
            print(format_report(result), flush=True)
    except BenchmarkError as exc:
        print(f"the benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {temp}")
        else:
            shutil.rmtree(temp, ignore_errors=True)
    print()
    print(format_table(results))
    by_name = {r.server: r for r in results}
    fms = next((r for r in results if r.server.startswith("pyFMS")), None)
    nginx = by_name.get("nginx-rtmp")
    if fms and nginx and fms.cpu_per_million and nginx.cpu_per_million:
        print(
            f"\npyFMS / nginx-rtmp CPU per million messages: "
            f"{fms.cpu_per_million / nginx.cpu_per_million:.2f}"
        )
    ratios = http_rtmp_ratios(results)
    if ratios:
        print(
            "\npyFMS HTTP-FLV / RTMP CPU per million messages (run pairs in order): "
            + ", ".join(f"{x:.2f}" for x in ratios)
        )
    command = shlex.join([".venv/bin/python", "-m", "benchmarks.fanout", *(argv or sys.argv[1:])])
    print(f"reproduce: {command}")
    if args.json:
        payload = {"scenario": asdict(scenario), "command": command,
                   "results": [asdict(r) for r in results]}  # fmt: skip
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
