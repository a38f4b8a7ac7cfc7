"""fms.testing, the kit for plugin authors: stand-ins that are the interfaces, a hook runner
that answers for plain, Deferred and coroutine hooks without a reactor, and the configuration
``running_server`` writes."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock, deferLater
from zope.interface.verify import verifyObject

from fms.apps.api import Plugin, Reject
from fms.apps.interfaces import IAppView, IClientView, IStreamView
from fms.config import parse_config
from fms.testing import FakeApp, FakeClient, FakeStream, HookWaits, run_hook, server_config


def test_the_stand_ins_provide_the_view_interfaces() -> None:
    app = FakeApp()
    client = app.connect(host="192.0.2.7")
    assert verifyObject(IClientView, client)
    assert verifyObject(IStreamView, app.publish("cam", client))
    assert verifyObject(IAppView, app)
    assert verifyObject(IStreamView, FakeStream())


def test_a_fake_client_of_an_app_sees_that_app() -> None:
    app = FakeApp("studio")
    client = app.connect(host="192.0.2.7", port=4000, query={"k": "v"})
    assert (client.app, client.application, client.peer) == ("studio", app, "192.0.2.7:4000")
    assert client.query == {"k": "v"} and app.clients == (client,)


def test_an_app_stream_not_published_has_no_publisher_and_an_unknown_one_is_none() -> None:
    app = FakeApp()
    app.publish("waiting", subscriber_count=2)
    waiting = app.stream("waiting")
    assert waiting is not None and waiting.publisher is None and waiting.subscriber_count == 2
    assert app.stream("nobody") is None


def test_a_broadcast_reaches_every_client_of_the_app() -> None:
    app = FakeApp()
    one, two = app.connect(port=1), app.connect(port=2)
    assert app.broadcast("onChat", "hi") == 2
    assert one.sent == two.sent == [("onChat", ("hi",))] and app.broadcasts == one.sent


def test_a_fake_client_answers_calls_as_told_and_records_them() -> None:
    client = FakeClient(answers={"ping": ("pong",), "boom": ValueError("no")})
    assert run_hook(client.call, "ping", 1) == ("pong",)
    with pytest.raises(ValueError, match="no"):
        run_hook(client.call, "boom")
    client.disconnect("bye")
    assert client.calls == [("ping", (1,)), ("boom", ())] and client.disconnected == "bye"


class Hooks(Plugin):
    """Hooks answering in each of the three ways, and failing."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.pending: Deferred[Any] = Deferred()

    def connect(self, client: Any) -> Any:
        return Reject("plain")

    def publish(self, client: Any, name: str, query: dict[str, str], kind: str) -> Any:
        return succeed(Reject("deferred"))

    async def play(self, client: Any, name: str, query: dict[str, str]) -> Any:
        await succeed(None)
        return Reject("coroutine")

    def disconnect(self, client: Any) -> Any:
        raise RuntimeError("broken hook")

    def unpublish(self, client: Any, stream: Any) -> Any:
        return self.pending

    async def stop(self, client: Any, name: str) -> Any:
        return await deferLater(self.clock, 2.0, lambda: "after 2s")


def test_run_hook_answers_for_plain_deferred_and_coroutine_hooks() -> None:
    hooks, client = Hooks(), FakeClient()
    assert run_hook(hooks.connect, client) == Reject("plain")
    assert run_hook(hooks.publish, client, "cam", {}, "live") == Reject("deferred")
    assert run_hook(hooks.play, client, "cam", {}) == Reject("coroutine")


def test_run_hook_raises_what_the_hook_raised() -> None:
    with pytest.raises(RuntimeError, match="broken hook"):
        run_hook(Hooks().disconnect, FakeClient())


def test_run_hook_fails_clearly_for_a_hook_that_never_answers() -> None:
    hooks = Hooks()
    with pytest.raises(HookWaits, match=r"Hooks\.unpublish did not answer"):
        run_hook(hooks.unpublish, FakeClient(), FakeStream())
    assert hooks.pending.called  # cancelled, not left waiting


def test_run_hook_advances_the_given_clock_up_to_within_seconds() -> None:
    clock = Clock()
    assert run_hook(Hooks(clock).stop, FakeClient(), "cam", clock=clock, within=2.0) == "after 2s"
    assert clock.seconds() == 2.0


def test_run_hook_does_not_advance_the_clock_past_within() -> None:
    clock = Clock()
    with pytest.raises(HookWaits, match=r"after 1\.9s of the given clock"):
        run_hook(Hooks(clock).stop, FakeClient(), "cam", clock=clock, within=1.9)
    assert clock.seconds() == 0.0


def test_the_generated_configuration_names_the_plugins_and_their_options(tmp_path: Any) -> None:
    text = server_config(
        ["ipfilter", {"use": "mykey", "secret": 's"3', "keys": {"cam": "k"}, "n": 2}],
        app="studio",
        plugin_dirs=[tmp_path],
    )
    config = parse_config(text)
    specs = config.apps["studio"].plugins
    assert [s.use for s in specs] == ["ipfilter", "mykey"]
    assert specs[1].options == {"secret": 's"3', "keys": {"cam": "k"}, "n": 2}
    assert config.plugin_dirs == (tmp_path.resolve(),)
