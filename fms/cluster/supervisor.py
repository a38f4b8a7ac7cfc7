"""``fms run --workers N``: N processes serving one port, watched by a supervisor.

Python serves from one core per process, so a machine with N cores needs N processes. The
supervisor (the process the operator started) reserves the port and starts the workers, each a
normal ``fms run`` with a :class:`WorkerSpec`; every worker opens its own listening socket on the
same address with ``SO_REUSEPORT``, so the kernel spreads new connections evenly over them
(unlike one inherited socket, where whichever process wakes first takes a burst). A stream
published on one worker is pushed to the others over Unix sockets by :mod:`fms.cluster.relay`.

The supervisor's contract is the single process's: its ``listening on rtmp://H:P`` line comes
once every worker accepts (so a client never meets a half-started server), SIGTERM/SIGINT stop
every worker gracefully and exit 0, SIGHUP reaches every worker (each reloads the file). A
worker that dies is restarted (after 1 s, backing off to 30 s while it keeps dying young); one
that cannot start at all stops the whole server with status 1. Workers notice a supervisor that
disappeared (their stdin reaches end of file) and stop too, so no orphan keeps the port.

Why a reserved socket: with ``--port 0`` the supervisor must learn the port before any worker
binds, and holding a bound (not listening) socket with ``SO_REUSEPORT`` keeps the port ours
while a worker restarts. A bound socket that does not listen is never handed connections.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import tempfile
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from fms.cluster.spec import READY_FD, RELEASE_LOG, WorkerSpec, worker_count
from fms.config import Config
from fms.log import Logger
from fms.server.endpoints import format_url, reuseport_socket
from fms.server.service import stop_on_signals

log = Logger(namespace="fms.cluster.supervisor")

RESTART_DELAY = 1.0
"""Seconds before a dead worker is started again; doubles while it keeps dying young."""

MAX_RESTART_DELAY = 30.0
KILL_MARGIN = 5.0
"""Seconds a stopping worker gets beyond its own ``[server] shutdown_timeout`` (to close and
exit) before the supervisor kills it (SIGKILL)."""

YOUNG = 10.0
"""A worker that dies within this many seconds of its start counts as dying young."""


# ---------------------------------------------------------------------------- supervisor


class _WorkerProcess(ProcessProtocol):
    """The supervisor's side of one worker process."""

    def __init__(self, supervisor: Supervisor, index: int, started: float) -> None:
        self.supervisor = supervisor
        self.index = index
        self.started = started
        self.ready = False
        self.pid: int | None = None

    def connectionMade(self) -> None:
        self.pid = self.transport.pid  # type: ignore[union-attr]

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD == READY_FD and b"ready" in data and not self.ready:
            self.ready = True
            self.supervisor.worker_ready(self)

    def processEnded(self, reason: Failure) -> None:
        code = getattr(reason.value, "exitCode", None)
        sig = getattr(reason.value, "signal", None)
        self.supervisor.worker_ended(self, code, sig)


class Supervisor:
    """Starts, restarts and stops the worker processes (see the module docstring)."""

    def __init__(
        self,
        reactor: Any,
        config: Config,
        argv: list[str],
        count: int,
    ) -> None:
        self.reactor = reactor
        self.config = config
        self.argv = argv
        """The command line every worker runs, before its ``--worker SPEC``."""
        self.count = count
        self.directory = tempfile.mkdtemp(prefix="fms-workers-")
        os.chmod(self.directory, 0o700)
        self.reserved: list[socket.socket] = []
        self.spec_base: dict[str, Any] = {}
        self.workers: dict[int, _WorkerProcess] = {}
        self.delays: dict[int, float] = {}
        self.restarts: dict[int, int] = {}
        """Restarts per worker index (a worker reports its own in the metrics)."""
        self.stopping = False
        self.announced = False
        self.exit_code = 0
        self._all_ended: Deferred[None] | None = None

    def reserve(self) -> None:
        """Bind (without listening) the RTMP and RTMPS ports; learn their numbers. OSError
        when the address is unusable."""
        server = self.config.server
        sock = reuseport_socket(server.host, server.port)
        self.reserved.append(sock)
        port = sock.getsockname()[1]
        tls_port = 0
        if self.config.tls.enabled:
            tls_host = self.config.tls.host or server.host
            tls_sock = reuseport_socket(tls_host, self.config.tls.port)
            self.reserved.append(tls_sock)
            tls_port = tls_sock.getsockname()[1]
        http_port = 0
        if self.config.http.enabled:
            http = self.config.http
            try:
                http_sock = reuseport_socket(http.host, http.port)
            except OSError as exc:  # say which port: the caller's message names RTMP's
                reason = f"{exc.strerror or exc} (the [http] port {http.host}:{http.port})"
                raise OSError(exc.errno, reason) from None
            self.reserved.append(http_sock)
            http_port = http_sock.getsockname()[1]
        self.spec_base = {"port": port, "tls_port": tls_port, "http_port": http_port}

    @property
    def port(self) -> int:
        return int(self.spec_base["port"])

    def spec(self, index: int) -> WorkerSpec:
        restarts = self.restarts.get(index, 0)
        return WorkerSpec(index, self.count, self.directory, **self.spec_base, restarts=restarts)

    def start(self) -> None:
        for index in range(self.count):
            self.spawn(index)

    def spawn(self, index: int) -> None:
        if self.stopping:
            return
        worker = _WorkerProcess(self, index, self.reactor.seconds())
        self.workers[index] = worker
        args = [*self.argv, "--worker", self.spec(index).to_json()]
        transport = self.reactor.spawnProcess(
            worker,
            sys.executable,
            [sys.executable, *args],
            env=os.environ.copy(),
            childFDs={0: "w", 1: 1, 2: 2, READY_FD: "r"},
        )
        worker.pid = transport.pid
        log.info("worker {index} started (pid {pid})", index=index, pid=worker.pid)
        if self.announced:  # a restarted worker: nothing to wait for
            self.release_log(worker)

    def worker_ready(self, worker: _WorkerProcess) -> None:
        # Every worker, not every one left: one that could not start was removed, and the
        # reactor's stop lets events already due (a sibling's "ready") through first.
        if self.announced or self.exit_code or len(self.workers) < self.count:
            return
        if not all(w.ready for w in self.workers.values()):
            return
        self.announced = True

        url = format_url(self.config.server.host, self.port)
        log.info(
            "listening on {url} ({count} workers)",
            url=url, count=self.count, always=True, announce=True,
        )  # fmt: skip
        for started in self.workers.values():
            self.release_log(started)
        if self.spec_base["tls_port"]:
            host = self.config.tls.host or self.config.server.host
            url = format_url(host, self.spec_base["tls_port"]).replace("rtmp:", "rtmps:", 1)
            log.info("listening on {url} ({count} workers)", url=url, count=self.count, always=True)
        if self.spec_base.get("http_port"):
            url = format_url(self.config.http.host, self.spec_base["http_port"], "http") + "/"
            log.info("listening on {url} ({count} workers)", url=url, count=self.count, always=True)

    def release_log(self, worker: _WorkerProcess) -> None:
        """Let ``worker`` write the lines it held back while starting: the listening line is
        out (a worker holds its lines until then, so that the listening line is the first of
        the log; see :func:`fms.log.start_logging`)."""
        try:
            worker.transport.writeToChild(0, RELEASE_LOG)  # type: ignore[union-attr]
        except Exception:  # already gone: processEnded follows
            pass

    def worker_ended(self, worker: _WorkerProcess, code: int | None, sig: int | None) -> None:
        if self.workers.get(worker.index) is worker:
            del self.workers[worker.index]
        how = f"signal {sig}" if sig is not None else f"status {code}"
        if self.stopping:
            log.info("worker {index} stopped ({how})", index=worker.index, how=how)
            if not self.workers and self._all_ended is not None:
                waiter, self._all_ended = self._all_ended, None
                waiter.callback(None)
            return
        if not worker.ready and not self.announced:
            log.critical(
                "worker {index} could not start ({how}): stopping", index=worker.index, how=how
            )
            self.exit_code = 1
            self.reactor.stop()
            return
        young = self.reactor.seconds() - worker.started < YOUNG
        delay = min(self.delays.get(worker.index, RESTART_DELAY / 2) * 2, MAX_RESTART_DELAY)
        if not young:
            delay = RESTART_DELAY
        self.delays[worker.index] = delay
        log.error(
            "worker {index} (pid {pid}) ended ({how}); restarting it in {delay:g}s",
            index=worker.index, pid=worker.pid, how=how, delay=delay,
        )  # fmt: skip
        self.restarts[worker.index] = self.restarts.get(worker.index, 0) + 1
        self.reactor.callLater(delay, self.spawn, worker.index)

    def signal_all(self, signum: int) -> None:
        for worker in list(self.workers.values()):
            try:
                worker.transport.signalProcess(signum)  # type: ignore[union-attr]
            except Exception:  # already gone: processEnded follows
                pass

    def kill_all(self, grace: float) -> None:
        """SIGKILL the workers still running ``grace`` seconds after SIGTERM, naming each (the
        operator would otherwise see only ``stopped (signal 9)``)."""
        for worker in self.workers.values():
            log.warn(
                "worker {index} (pid {pid}) still running {grace:g}s after SIGTERM: killing it",
                index=worker.index, pid=worker.pid, grace=grace,
            )  # fmt: skip
        self.signal_all(signal.SIGKILL)

    def reload(self) -> None:
        log.info("SIGHUP: telling {count} workers to reload", count=len(self.workers))
        self.signal_all(signal.SIGHUP)

    def stop(self) -> Deferred[None]:
        """Stop every worker gracefully (SIGTERM); kill what is left after their own shutdown
        timeout and a margin. Fires when every worker has ended."""
        self.stopping = True
        if not self.workers:
            self.cleanup()
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._all_ended = waiter
        self.signal_all(signal.SIGTERM)
        server = self.config.server  # a worker may first let reconnecting clients go
        grace = server.shutdown_timeout + server.reconnect_grace + KILL_MARGIN
        killer = self.reactor.callLater(grace, self.kill_all, grace)

        def done(result: None) -> None:
            if killer.active():
                killer.cancel()
            self.cleanup()

        waiter.addCallback(done)
        return waiter

    def cleanup(self) -> None:
        for sock in self.reserved:
            sock.close()
        self.reserved.clear()
        shutil.rmtree(self.directory, ignore_errors=True)


def run_supervisor(config: Config, argv: list[str]) -> int:
    """Run ``fms run --workers N`` (N > 1): the supervisor process. ``argv`` is what each
    worker runs (``-m fms run ...`` with the operator's options)."""
    from twisted.internet import reactor

    from fms.apps.loader import build_all
    from fms.errors import ConfigError
    from fms.log import start_logging

    try:
        build_all(config)  # a broken plugin is reported once, here, rather than by each worker
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    # the listening line comes first
    start_logging(config.server.log_level, hold=True, format=config.server.log_format)
    count = worker_count(config)
    supervisor = Supervisor(reactor, config, argv, count)
    try:
        supervisor.reserve()
    except OSError as exc:
        log.critical(
            "cannot listen on {host}:{port}: {reason}",
            host=config.server.host, port=config.server.port, reason=exc.strerror or exc,
        )  # fmt: skip
        supervisor.cleanup()
        return 1

    def on_sighup(signum: int, frame: object) -> None:
        reactor.callFromThread(supervisor.reload)  # type: ignore[attr-defined]

    signal.signal(signal.SIGHUP, on_sighup)
    reactor.callWhenRunning(stop_on_signals, reactor, (signal.SIGINT, signal.SIGTERM))
    reactor.callWhenRunning(supervisor.start)
    reactor.addSystemEventTrigger("before", "shutdown", supervisor.stop)
    reactor.run()
    if supervisor.exit_code == 0:
        log.info("stopped")
    return supervisor.exit_code


# -------------------------------------------------------------------------- worker side
