"""The supervisor of ``fms run --workers 2`` when a worker misbehaves, with real processes.

What must hold (see :mod:`fms.cluster.supervisor`): a worker that cannot start stops the whole
server with status 1, a log line that says which worker and why, and no process left behind; a
worker that keeps dying young is restarted after 1 s, then 2 s, then 4 s (never sooner); a worker
that ignores SIGTERM is killed with SIGKILL once its shutdown timeout and the supervisor's margin
have passed (not before), and the supervisor then exits.

Each supervisor runs in a session of its own, so its process group holds exactly the supervisor and
its workers: that group is what "nothing left behind" is checked against, and what the tests kill
if they fail half-way."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.fanout import free_ports
from fms.cluster.supervisor import KILL_MARGIN, RESTART_DELAY
from tests.e2e.harness import ServerProcess
from tests.hostile.support import Client

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
STARTED = re.compile(r"worker (\d) started \(pid (\d+)\)")

CLOCKS = 0.05
"""Seconds a lower bound allows for the test's monotonic clock against the supervisor's
``time.time`` timers; every measured interval already errs long (it ends when the test sees the
event, after it happened)."""

DEAF_PLUGIN = """
import signal

from twisted.logger import Logger

from fms.apps.api import Plugin

log = Logger(namespace="deaf")


class Deaf(Plugin):
    \"\"\"From its application's start on, the worker ignores SIGTERM.\"\"\"

    def app_start(self, app):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log.info("ignoring SIGTERM from now on")
"""


def _state(pid: int) -> tuple[str, int] | None:
    """The state letter and process group of ``pid``, or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[2])


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie has ended: only its status waits to be collected)."""
    state = _state(pid)
    return state is not None and state[0] != "Z"


def group_members(pgid: int) -> list[int]:
    """The live processes of process group ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            state = _state(int(entry.name))
            if state is not None and state[1] == pgid and state[0] != "Z":
                found.append(int(entry.name))
    return found


def kill_group(pgid: int) -> None:
    """Make sure a failed test leaves no supervisor or worker running."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def started_pids(log: str) -> list[tuple[int, int]]:
    """Every ``(worker index, pid)`` the supervisor started, in order."""
    return [(int(index), int(pid)) for index, pid in STARTED.findall(log)]


def test_a_worker_that_cannot_start_stops_the_server_with_status_1_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    """Worker 1's own port (``[server] worker_ports``) is held by the test, so worker 1 cannot
    listen and exits before it is ready: the supervisor must not restart it but stop worker 0
    and exit 1, saying which worker failed; the worker says why."""
    own = free_ports(1)[0]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        taken_port = taken.getsockname()[1]
        config = tmp_path / "fms.toml"
        config.write_text(f"[server]\nworker_ports = [{own}, {taken_port}]\n", encoding="utf-8")
        command = [sys.executable, "-m", "fms", "run", "--host", "127.0.0.1", "--port", "0"]
        command += ["--workers", "2", "--config", str(config)]
        supervisor = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            start_new_session=True,
        )
        try:
            # stderr ends once the supervisor and every worker (which share it) are gone.
            _, log = supervisor.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            kill_group(supervisor.pid)
            _, log = supervisor.communicate()
            pytest.fail("the supervisor did not exit within 60 s; log:\n" + log)
        finally:
            left = group_members(supervisor.pid)  # before the clean-up below
            kill_group(supervisor.pid)
    assert supervisor.returncode == 1, log
    assert re.search(
        r"critical \[fms\.cluster\.supervisor\] worker 1 could not start \(status 1\)", log
    ), log
    assert re.search(
        rf"critical w1 \[.*cannot listen: .*:{taken_port}: .*Address already in use", log
    ), log
    assert "listening on" not in log
    workers = started_pids(log)
    assert sorted(index for index, _ in workers) == [0, 1], log  # worker 1 was not restarted
    assert left == [], log


def test_a_worker_that_keeps_dying_young_is_restarted_after_1_then_2_then_4_seconds() -> None:
    """The test kills worker 1 (SIGKILL) as soon as each of its processes is started, so each
    dies young: the supervisor announces delays that double from ``RESTART_DELAY`` and waits at
    least that long each time, measured from the kill to the test seeing the next start."""
    server = ServerProcess("--workers", "2", "--log-level", "info", preexec_fn=os.setsid)
    try:
        waited: list[float] = []
        for restarts in range(3):
            pid = [p for index, p in started_pids(server.log()) if index == 1][-1]
            killed = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            server.wait_for_lines(r"worker 1 started", restarts + 2, timeout=60)
            waited.append(time.monotonic() - killed)
        status = server.stop(timeout=30)
    finally:
        kill_group(server.process.pid)
    assert status == 0, server.log()
    announced = [
        float(delay)
        for delay in re.findall(
            r"worker 1 \(pid \d+\) ended \(signal 9\); restarting it in (\S+)s", server.log()
        )
    ]
    expected = [RESTART_DELAY * 2**i for i in range(3)]
    assert announced == expected, server.log()
    for delay, measured in zip(expected, waited, strict=True):
        assert measured >= delay - CLOCKS, (waited, server.log())
        assert measured < delay + 15, (waited, server.log())
    assert [index for index, _ in started_pids(server.log())].count(0) == 1  # 0 never died


def test_a_worker_that_ignores_sigterm_is_killed_after_the_shutdown_timeout_and_margin(
    tmp_path: Path,
) -> None:
    """Worker 0 runs a plugin that ignores SIGTERM; worker 1 behaves. After SIGTERM to the
    supervisor, worker 1 stops by itself, worker 0 lives until ``shutdown_timeout`` plus
    ``reconnect_grace`` (the time clients that can reconnect are given) plus the supervisor's
    ``KILL_MARGIN`` and then dies of SIGKILL; the supervisor exits 0."""
    shutdown_timeout = 1.0
    reconnect_grace = 2.0
    (tmp_path / "deaf.py").write_text(DEAF_PLUGIN, encoding="utf-8")
    ports = free_ports(2)
    config = tmp_path / "fms.toml"
    config.write_text(
        f"[server]\nworker_ports = {ports}\nshutdown_timeout = {shutdown_timeout}\n"
        f"reconnect_grace = {reconnect_grace}\n"
        f"plugin_dirs = [{json.dumps(str(tmp_path))}]\n"
        '[[apps.live.plugins]]\nuse = "deaf:Deaf"\n',
        encoding="utf-8",
    )
    server = ServerProcess("--workers", "2", "--log-level", "info", config=config,
                           preexec_fn=os.setsid)  # fmt: skip
    try:
        server.wait_for_lines(r"worker \d alone on", 2)
        Client(ports[0]).connect("live").close()  # starts 'live', and its plugin, on worker 0
        server.wait_for_line(r" w0 \[deaf\] ignoring SIGTERM")
        deaf, good = (dict(started_pids(server.log()))[i] for i in (0, 1))
        grace = shutdown_timeout + reconnect_grace + KILL_MARGIN
        sent = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        while alive(deaf) and time.monotonic() - sent < grace + 30:
            time.sleep(0.02)  # polling the process table: the event observed is the death
        died = time.monotonic() - sent
        try:  # the supervisor exits on its own: a second SIGTERM could land in its exit
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("the supervisor did not exit after its workers; log:\n" + server.log())
        status = server.stop()
        left = group_members(server.process.pid)  # before the clean-up below
    finally:
        kill_group(server.process.pid)
    assert status == 0, server.log()
    assert left == [], server.log()
    assert died >= grace - CLOCKS, (died, server.log())
    assert died < grace + 15, (died, server.log())
    killing = re.findall(
        r"warn \[fms\.cluster\.supervisor\] worker (\d) \(pid (\d+)\) still running "
        rf"{grace:g}s after SIGTERM: killing it",
        server.log(),
    )
    assert killing == [("0", str(deaf))], server.log()
    assert re.search(r"worker 0 stopped \(signal 9\)", server.log()), server.log()
    assert re.search(r"worker 1 stopped \(status 0\)", server.log()), server.log()
    assert not alive(good)
