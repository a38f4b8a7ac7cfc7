"""Worker restarts reach the metrics: the supervisor tells each worker how many times it was
restarted (its :class:`WorkerSpec`), and ``fms_worker_restarts_total`` adds up what the
workers serving now report."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from fms.cluster.supervisor import READY_FD, Supervisor
from fms.config import Config
from fms.http.metrics import render
from tests.test_supervisor import FakeReactor, end, restart_delay


def test_a_restarted_worker_is_told_how_many_times_it_was_restarted() -> None:
    reactor = FakeReactor()
    sup = Supervisor(reactor, Config(), ["-m", "fms", "run"], 2)
    sup.spec_base = {"port": 1935, "tls_port": 0, "http_port": 8080}
    sup.start()
    for worker in list(sup.workers.values()):
        worker.childDataReceived(READY_FD, b"ready\n")
    for _ in range(2):
        end(sup.workers[1])
        reactor.advance(restart_delay(reactor))
    sup.cleanup()
    assert (sup.spec(0).restarts, sup.spec(1).restarts) == (0, 2)
    assert sup.spec(1).http_port == 8080


def test_the_metrics_add_up_the_restarts_each_worker_reports() -> None:
    empty = {
        "players": {"bytes": 0, "messages": 0, "skips": 0, "skipped": 0},
        "streams": [],
        "counters": {},
    }
    states = {"connecting": 0, "idle": 0, "publishing": 0, "playing": 0}
    parts = [
        {**empty, "connections": states, "worker_restarts": 0},
        {**empty, "connections": states, "worker_restarts": 2},
    ]
    text = render(parts, 2).decode()
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples["fms_worker_restarts_total"] == 2
    assert samples["fms_workers"] == 2
