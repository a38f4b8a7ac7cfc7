"""HLS demand for pulls with ``--workers``, in memory: two workers whose control channel is a
dictionary (``tests.test_http_hls_ts.DictPeers``) and one fake clock. A playlist request that
no worker can answer starts the pull on the worker it reached, once for the node: the other
worker's requests meanwhile wait for that pull (past ``[hls] wait``, up to its
``start_timeout``) instead of starting their own; and requests forwarded to the pulling
worker keep its pull going."""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import MemoryReactorClock, StringTransport

from fms.config import parse_config
from fms.http.api import API
from fms.http.web import APISite
from fms.server.factory import RTMPServerFactory
from tests.test_http_hls import parse, uris
from tests.test_http_hls_ts import DictPeers
from tests.test_pull_hls import CONFIG, EPS, IDLE, START, START_TIMEOUT, WINDOW, _ask, _pass
from tests.test_pull_hls import _source as source

HLS_WAIT = 1.0
"""``[hls] wait``, shorter than the pull's start: a forwarded wait must last longer."""


def _workers() -> tuple[MemoryReactorClock, list[APISite], list[RTMPServerFactory]]:
    reactor = MemoryReactorClock()
    reactor.advance(START)
    config = parse_config(CONFIG.replace("[hls]\n", f"[hls]\nwait = {HLS_WAIT}\n"))
    workers: dict[int, dict[str, Any]] = {}
    sites, servers = [], []
    for index in (0, 1):
        server = RTMPServerFactory(config, clock=reactor)
        http = config.http
        sites.append(APISite(API(server, http, peers=DictPeers(index, workers)), http, reactor))
        servers.append(server)
    return reactor, sites, servers


def _muxer(headers: dict[str, str]) -> str | None:
    """The ``X-FMS-HLS-Muxer`` header (Twisted writes it capitalized its own way)."""
    return {key.lower(): value for key, value in headers.items()}.get("x-fms-hls-muxer")


def _status(transport: StringTransport) -> int:
    return parse(transport)[0]


def test_a_playlist_no_worker_has_starts_the_pull_on_the_worker_it_reached() -> None:
    reactor, sites, servers = _workers()
    asked = _ask(sites[1], "/live/cam1/index.m3u8")
    pull = servers[1].pulls.of("live", "cam1")
    assert pull is not None and servers[0].pulls.of("live", "cam1") is None
    assert len(reactor.tcpClients) == 1 and _status(asked) == 0  # held, not 404
    source(pull, 3.0)
    status, _, body = parse(asked)
    assert status == 200 and uris(body)


def test_the_other_workers_requests_wait_for_that_pull_instead_of_starting_one() -> None:
    reactor, sites, servers = _workers()
    first = _ask(sites[1], "/live/cam1/index.m3u8")
    pull = servers[1].pulls.of("live", "cam1")
    assert pull is not None
    second = _ask(sites[0], "/live/cam1/index.m3u8")
    _pass(reactor, START_TIMEOUT - 0.5)  # past [hls] wait, within the pull's start
    assert (_status(first), _status(second)) == (0, 0)
    assert servers[0].pulls.of("live", "cam1") is None and len(reactor.tcpClients) == 1
    source(pull, 3.0)
    _pass(reactor, 2.0)  # worker 0 asks again (it held its ask 1.5 s at most)
    here, there = parse(first), parse(second)
    assert here[0] == there[0] == 200 and uris(here[2]) == uris(there[2])
    assert _muxer(there[1]) == "1"
    assert len(reactor.tcpClients) == 1


def test_requests_forwarded_to_the_pulling_worker_keep_its_pull() -> None:
    reactor, sites, servers = _workers()
    assert _status(_ask(sites[1], "/live/cam1/index.m3u8")) == 0
    pull = servers[1].pulls.of("live", "cam1")
    assert pull is not None
    source(pull, 5.0)
    for step in range(6):  # worker 0's viewer for 54 s; the source goes on meanwhile
        _pass(reactor, WINDOW - 1)
        source(pull, WINDOW - 1, start=5000 + step * 9000)
        status, headers, _ = parse(_ask(sites[0], "/live/cam1/index.m3u8"))
        assert status == 200 and _muxer(headers) == "1" and pull.state == "live"
    _pass(reactor, WINDOW + IDLE - EPS)
    assert pull.state == "live"
    _pass(reactor, EPS)
    assert pull.state == "stopped" and len(reactor.tcpClients) == 1
