"""Plugins written for earlier versions import ``fms.plugin`` and ``fms.interfaces``: those
names keep working, as the very objects of ``fms.apps.api``, so ``isinstance`` checks and
``@implementer`` declarations agree whichever name a plugin used."""

from __future__ import annotations

import fms.apps.api as api
import fms.interfaces as old_interfaces
import fms.plugin as old_plugin


def test_fms_plugin_reexports_the_plugin_api() -> None:
    for name in old_plugin.__all__:
        assert getattr(old_plugin, name) is getattr(api, name)
    assert {"Plugin", "Accept", "Reject", "Redirect", "Rename", "CallError", "NotHandled"} <= set(
        old_plugin.__all__
    )


def test_fms_interfaces_reexports_the_contract() -> None:
    for name in old_interfaces.__all__:
        assert getattr(old_interfaces, name) is getattr(api, name)


def test_a_plugin_written_before_the_notification_hooks_still_loads_and_runs() -> None:
    """A class implementing only IApplication (no Plugin base, none of published,
    unpublished, play_started, play_stopped) passes the loader's check and is simply not told."""
    from typing import Any

    from twisted.internet.task import Clock
    from zope.interface import implementer
    from zope.interface.verify import verifyObject

    from fms.apps.application import Application
    from fms.apps.interfaces import IApplication
    from fms.config import AppConfig
    from fms.live.registry import StreamRegistry

    @implementer(IApplication)
    class Old:
        def app_start(self, app: Any) -> None: ...
        def app_stop(self, app: Any) -> None: ...
        def connect(self, client: Any) -> None: ...
        def disconnect(self, client: Any) -> None: ...
        def publish(self, client: Any, name: str, query: Any, kind: str) -> None: ...
        def unpublish(self, client: Any, stream: Any) -> None: ...
        def play(self, client: Any, name: str, query: Any) -> None: ...
        def stop(self, client: Any, name: str) -> None: ...
        def media(self, stream: Any, message: Any) -> None: ...
        def call(self, client: Any, method: str, args: Any) -> None: ...

    assert verifyObject(IApplication, Old())
    registry = StreamRegistry()
    stream, _ = registry.play("live", "cam", _NullSink(), 1)
    app = Application("live", AppConfig(), [Old()], registry, Clock())
    app.published(stream)  # nobody listens: nothing raised, nothing logged as a failure
    assert not app._notifying


class _NullSink:
    def write(self, data: bytes) -> None: ...
    def can_write(self) -> bool:
        return True

    def pending(self) -> int:
        return 0

    def close(self, reason: str) -> None: ...
    def publish_started(self) -> None: ...
    def publish_stopped(self) -> None: ...
