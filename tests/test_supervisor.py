"""The supervisor's decisions (:class:`fms.cluster.supervisor.Supervisor`) on a fake reactor: no
process is started and time is a :class:`~twisted.internet.task.Clock`, so the long delays (the
30 s cap, the reset after a worker lived ``YOUNG`` seconds) are checked exactly. The end-to-end
side, with real processes and signals, is ``tests/e2e/test_supervisor.py``."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest
from twisted.internet.error import ProcessTerminated
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from fms.cluster.supervisor import (
    KILL_MARGIN,
    MAX_RESTART_DELAY,
    READY_FD,
    RESTART_DELAY,
    YOUNG,
    Supervisor,
    _WorkerProcess,
)
from fms.config import Config, ServerConfig


class FakeProcess:
    """The transport of a worker that was never started: it records the signals sent."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.signals: list[int] = []

    def signalProcess(self, signum: int) -> None:
        self.signals.append(signum)


class FakeReactor(Clock):
    """A clock that "spawns" workers as :class:`FakeProcess` and records ``stop``."""

    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[_WorkerProcess] = []
        self.stopped = False

    def spawnProcess(self, protocol: _WorkerProcess, *args: Any, **kwargs: Any) -> FakeProcess:
        transport = FakeProcess(1000 + len(self.spawned))
        protocol.makeConnection(transport)  # type: ignore[arg-type]
        self.spawned.append(protocol)
        return transport

    def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def reactor() -> FakeReactor:
    return FakeReactor()


@pytest.fixture
def supervisor(reactor: FakeReactor) -> Iterator[Supervisor]:
    """Two workers, both started and ready (the server was announced)."""
    config = Config(server=ServerConfig(host="127.0.0.1", port=0, shutdown_timeout=2.0))
    sup = Supervisor(reactor, config, ["-m", "fms", "run"], 2)
    sup.spec_base = {"port": 1935, "tls_port": 0}  # what reserve() learns, without a socket
    sup.start()
    for worker in list(sup.workers.values()):
        worker.childDataReceived(READY_FD, b"ready\n")
    assert sup.announced
    yield sup
    sup.cleanup()


def end(worker: _WorkerProcess, sig: int | None = signal.SIGKILL, code: int | None = None) -> None:
    worker.processEnded(Failure(ProcessTerminated(exitCode=code, signal=sig)))


def restart_delay(reactor: FakeReactor) -> float:
    """Seconds until the one pending restart."""
    [call] = reactor.getDelayedCalls()
    return call.getTime() - reactor.seconds()


def test_the_restart_delay_doubles_while_a_worker_dies_young_up_to_the_cap(
    supervisor: Supervisor, reactor: FakeReactor
) -> None:
    delays = []
    for _ in range(8):
        end(supervisor.workers[1])
        delays.append(restart_delay(reactor))
        reactor.advance(delays[-1])
        assert supervisor.workers[1].pid == reactor.spawned[-1].pid  # restarted, only then
    expected = [min(RESTART_DELAY * 2**i, MAX_RESTART_DELAY) for i in range(8)]
    assert delays == expected
    assert delays[-1] == MAX_RESTART_DELAY  # the cap was reached, and held


def test_a_worker_that_lived_young_seconds_is_restarted_after_the_first_delay_again(
    supervisor: Supervisor, reactor: FakeReactor
) -> None:
    for _ in range(3):  # 1, 2, 4 s
        end(supervisor.workers[1])
        reactor.advance(restart_delay(reactor))
    reactor.advance(YOUNG)
    end(supervisor.workers[1])
    assert restart_delay(reactor) == RESTART_DELAY


def test_a_restart_is_not_made_before_its_delay(
    supervisor: Supervisor, reactor: FakeReactor
) -> None:
    end(supervisor.workers[1])
    reactor.advance(RESTART_DELAY - 0.001)
    assert 1 not in supervisor.workers
    reactor.advance(0.001)
    assert 1 in supervisor.workers


def test_a_worker_that_cannot_start_stops_the_server_with_status_1_without_a_restart(
    reactor: FakeReactor, logged: list[str]
) -> None:
    sup = Supervisor(reactor, Config(), ["-m", "fms", "run"], 2)
    sup.spec_base = {"port": 1935, "tls_port": 0}
    sup.start()
    end(sup.workers[1], sig=None, code=1)
    sup.cleanup()
    assert (sup.exit_code, reactor.stopped) == (1, True)
    assert reactor.getDelayedCalls() == []
    assert "worker 1 could not start (status 1): stopping" in logged


def test_a_worker_ready_after_its_sibling_could_not_start_announces_nothing(
    reactor: FakeReactor, logged: list[str]
) -> None:
    """Worker 1 fails before worker 0 says it is ready: the reactor's stop is asked but events
    already due still arrive, and worker 0 alone being ready is not the server listening."""
    sup = Supervisor(reactor, Config(), ["-m", "fms", "run"], 2)
    sup.spec_base = {"port": 1935, "tls_port": 0}
    sup.start()
    first = sup.workers[0]
    end(sup.workers[1], sig=None, code=1)
    first.childDataReceived(READY_FD, b"ready\n")
    sup.cleanup()
    assert (sup.exit_code, sup.announced) == (1, False)
    assert not any("listening on" in line for line in logged)


def test_stop_kills_the_workers_still_running_at_shutdown_timeout_plus_margin_not_before(
    supervisor: Supervisor, reactor: FakeReactor, logged: list[str]
) -> None:
    """The margin counts after the worker's reconnect grace and its shutdown timeout (a
    worker first lets clients asked to reconnect leave)."""
    deaf, good = supervisor.workers[0], supervisor.workers[1]
    stopped = supervisor.stop()
    assert deaf.transport.signals == good.transport.signals == [signal.SIGTERM]  # type: ignore[union-attr]
    end(good, sig=None, code=0)
    server = supervisor.config.server
    assert server.reconnect_grace > 0
    grace = server.shutdown_timeout + server.reconnect_grace + KILL_MARGIN
    reactor.advance(grace - 0.001)
    assert deaf.transport.signals == [signal.SIGTERM]  # type: ignore[union-attr]
    reactor.advance(0.001)
    assert deaf.transport.signals == [signal.SIGTERM, signal.SIGKILL]  # type: ignore[union-attr]
    assert good.transport.signals == [signal.SIGTERM]  # type: ignore[union-attr]
    assert f"worker 0 (pid {deaf.pid}) still running {grace:g}s after SIGTERM: killing it" in logged
    assert not stopped.called
    end(deaf)
    assert stopped.called


def test_stop_cancels_the_kill_once_every_worker_stopped_by_itself(
    supervisor: Supervisor, reactor: FakeReactor
) -> None:
    stopped = supervisor.stop()
    for worker in list(supervisor.workers.values()):
        end(worker, sig=None, code=0)
    assert stopped.called
    assert reactor.getDelayedCalls() == []
