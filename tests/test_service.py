"""The service layer: the open-file limit at start, and a graceful stop."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred, succeed

from fms.config import Config
from fms.server import service
from fms.server.service import RTMPListenerService, raise_open_file_limit


class FakeLimits:
    def __init__(self, soft: int, hard: int) -> None:
        self.limits = (soft, hard)

    def getrlimit(self, which: int) -> tuple[int, int]:
        return self.limits

    def setrlimit(self, which: int, limits: tuple[int, int]) -> None:
        self.limits = limits


def fake(monkeypatch: pytest.MonkeyPatch, soft: int, hard: int) -> FakeLimits:
    limits = FakeLimits(soft, hard)
    monkeypatch.setattr(service.resource, "getrlimit", limits.getrlimit)
    monkeypatch.setattr(service.resource, "setrlimit", limits.setrlimit)
    return limits


def test_the_soft_limit_is_raised_to_the_hard_one(
    monkeypatch: pytest.MonkeyPatch, logged: list[str]
) -> None:
    limits = fake(monkeypatch, 1024, 65536)
    assert raise_open_file_limit(10_064) == 65536
    assert limits.limits == (65536, 65536)
    assert not any("open-file limit" in line for line in logged)


def test_a_limit_below_max_connections_is_a_warning(
    monkeypatch: pytest.MonkeyPatch, logged: list[str]
) -> None:
    fake(monkeypatch, 1024, 4096)
    assert raise_open_file_limit(10_064) == 4096
    assert any(
        "open-file limit is 4096 but max_connections needs about 10064" in line for line in logged
    )


def test_an_unlimited_hard_limit_is_used_up_to_what_is_needed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limits = fake(monkeypatch, 1024, service.resource.RLIM_INFINITY)
    assert raise_open_file_limit(10_064) == 10_064
    assert limits.limits == (10_064, service.resource.RLIM_INFINITY)


def test_stopping_the_listener_stops_accepting_then_shuts_the_factory_down() -> None:
    calls: list[str] = []

    class Port:
        def stopListening(self) -> Deferred[None]:
            calls.append("stop listening")
            return succeed(None)

    class Factory:
        def shutdown(self) -> Deferred[None]:
            calls.append("shutdown")
            return succeed(None)

    listener = RTMPListenerService(reactor=Any, config=Config(), factory=Factory())  # type: ignore[arg-type]
    listener.port = Port()  # type: ignore[assignment]
    done = listener.stopService()
    assert done is not None and done.called
    assert calls == ["stop listening", "shutdown"]
