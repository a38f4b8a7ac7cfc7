"""Application plugin chains through the Twisted adapter: decisions, async hooks, failures,
renames, redirects and RPC both ways (in-memory transports, fake clock)."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater

from fms.apps.api import CallError, Plugin, Redirect, Reject, Rename
from fms.apps.interfaces import IClientView
from fms.config import parse_config
from fms.errors import ApplicationError, ConfigError
from fms.rtmp.constants import MessageType
from fms.rtmp.messages import Media
from fms.server.factory import RTMPServerFactory
from tests.support.server_peer import Peer

CLOCK = Clock()


class DelayPublish(Plugin):
    """Decides publish after ``seconds`` on the shared test clock."""

    def __init__(self, *, seconds: float = 1.0) -> None:
        self.seconds = seconds

    def publish(self, client: IClientView, name: str, query: dict[str, str], kind: str) -> Any:
        return deferLater(CLOCK, self.seconds, lambda: None)


class Gate(Plugin):
    """Refuses connect from clients whose tcUrl carries ?deny, redirects ?move, raises on
    ?boom; renames publish 'alias' to 'real' and play 'other' to 'real'."""

    async def _noop(self) -> None:
        return None

    async def connect(self, client: IClientView) -> Any:
        await self._noop()  # a coroutine hook
        if "deny" in client.query:
            return Reject("go away")
        if "move" in client.query:
            return Redirect("rtmp://elsewhere/live")
        if "boom" in client.query:
            raise RuntimeError("plugin bug")
        return None

    def publish(self, client: IClientView, name: str, query: dict[str, str], kind: str) -> Any:
        if name == "alias":
            return Rename("real")
        if name == "secret":
            return Reject("not you", code="NetStream.Publish.BadName")
        if name == "bogus":
            return Reject("odd code", code="No.Such.Code")
        return None

    def play(self, client: IClientView, name: str, query: dict[str, str]) -> Any:
        return Rename("real") if name == "other" else None


class Never(Plugin):
    def play(self, client: IClientView, name: str, query: dict[str, str]) -> Any:
        return Deferred()  # never decides


class Rpc(Plugin):
    """Answers 'add' and 'fail'; remembers clients so tests can call them."""

    clients: list[IClientView] = []

    def connect(self, client: IClientView) -> Any:
        Rpc.clients.append(client)
        return None

    def call(self, client: IClientView, method: str, args: tuple[Any, ...]) -> Any:
        if method == "add":
            return sum(args)
        if method == "fail":
            raise CallError("no such luck")
        return super().call(client, method, args)


def factory_with(toml: str) -> RTMPServerFactory:
    return RTMPServerFactory(parse_config(toml), clock=CLOCK)  # type: ignore[arg-type]


def connected(factory: RTMPServerFactory, port: int, tc_query: str = "") -> Peer:
    """A client from 192.0.2.5:``port``, connected to app live with ``tc_query`` after its
    tcUrl, and stream 1 created."""
    tc_url = f"rtmp://127.0.0.1/live{tc_query}"
    return Peer(factory, port, host="192.0.2.5").connect(create_stream=True, tcUrl=tc_url)


KEY = b"\x17\x01\x00\x00\x00keyframe"


def test_async_publish_decision_delays_publish_start_and_relays_nothing_before() -> None:
    factory = factory_with(
        "[streams]\nflush_interval = 0.0\n"
        "[[apps.live.plugins]]\nuse = 'tests.test_application:DelayPublish'\nseconds = 1.0\n"
    )
    watcher = connected(factory, 1)
    watcher.send(watcher.client.command("play", 3.0, None, "cam", stream_id=1))
    pub = connected(factory, 2)
    pub.send(pub.client.command("publish", 3.0, None, "cam", "live", stream_id=1))
    pub.send(pub.client.send(Media(MessageType.VIDEO, 0, 1, KEY)))  # sent before the decision
    CLOCK.advance(0.9)
    pub.pump()
    watcher.pump()
    assert "NetStream.Publish.Start" not in [i["code"] for i in pub.infos()]
    assert watcher.media() == []
    CLOCK.advance(0.2)
    pub.pump()
    assert pub.infos()[-1]["code"] == "NetStream.Publish.Start"
    pub.send(pub.client.send(Media(MessageType.VIDEO, 40, 1, KEY)))
    watcher.pump()
    assert [m.timestamp for m in watcher.media()] == [40]  # the early frame was never relayed


def test_rejected_connect_carries_the_reason() -> None:
    factory = factory_with("[[apps.live.plugins]]\nuse = 'tests.test_application:Gate'\n")
    peer = connected(factory, 1, "?deny=1")
    info = peer.infos()[-1]
    assert (info["code"], info["description"]) == ("NetConnection.Connect.Rejected", "go away")
    assert peer.transport.disconnecting


def test_redirected_connect_carries_302_and_the_url() -> None:
    factory = factory_with("[[apps.live.plugins]]\nuse = 'tests.test_application:Gate'\n")
    peer = connected(factory, 1, "?move=1")
    assert peer.infos()[-1]["ex"] == {"code": 302, "redirect": "rtmp://elsewhere/live"}


def test_a_raising_plugin_refuses_only_its_own_client() -> None:
    factory = factory_with("[[apps.live.plugins]]\nuse = 'tests.test_application:Gate'\n")
    bad = connected(factory, 1, "?boom=1")
    good = connected(factory, 2)
    assert bad.infos()[-1]["code"] == "NetConnection.Connect.Rejected"
    assert good.infos()[0]["code"] == "NetConnection.Connect.Success"
    assert not good.transport.disconnecting


def test_publish_can_be_renamed_or_refused_with_a_chosen_code() -> None:
    factory = factory_with("[[apps.live.plugins]]\nuse = 'tests.test_application:Gate'\n")
    pub = connected(factory, 1)
    pub.send(pub.client.command("publish", 3.0, None, "alias", "live", stream_id=1))
    assert factory.registry.get("live", "real") is not None
    other = connected(factory, 2)
    other.send(other.client.command("publish", 3.0, None, "secret", "live", stream_id=1))
    assert other.infos()[-1]["code"] == "NetStream.Publish.BadName"
    assert other.infos()[-1]["description"] == "not you"


def test_play_can_be_sent_to_another_stream() -> None:
    factory = factory_with(
        "[streams]\nflush_interval = 0.0\n"
        "[[apps.live.plugins]]\nuse = 'tests.test_application:Gate'\n"
    )
    pub = connected(factory, 1)
    pub.send(pub.client.command("publish", 3.0, None, "real", "live", stream_id=1))
    watcher = connected(factory, 2)
    watcher.send(watcher.client.command("play", 3.0, None, "other", stream_id=1))
    pub.send(pub.client.send(Media(MessageType.VIDEO, 0, 1, KEY)))
    watcher.pump()
    assert [m.payload for m in watcher.media()] == [KEY]


def test_a_hook_that_never_decides_is_refused_after_the_timeout() -> None:
    factory = factory_with(
        "[apps.live]\ndecision_timeout = 2.0\n"
        "[[apps.live.plugins]]\nuse = 'tests.test_application:Never'\n"
    )
    watcher = connected(factory, 1)
    watcher.send(watcher.client.command("play", 3.0, None, "cam", stream_id=1))
    assert "NetStream.Play.Start" not in [i["code"] for i in watcher.infos()]
    CLOCK.advance(2.1)
    watcher.pump()
    info = watcher.infos()[-1]
    assert (info["code"], info["level"]) == ("NetStream.Play.Failed", "error")
    assert "in time" in info["description"]


def test_client_calls_get_result_error_or_call_failed() -> None:
    factory = factory_with("[[apps.live.plugins]]\nuse = 'tests.test_application:Rpc'\n")
    peer = connected(factory, 1)
    peer.send(peer.client.command("add", 7.0, None, 1.0, 2.0))
    peer.send(peer.client.command("fail", 8.0, None))
    peer.send(peer.client.command("nothing", 9.0, None))
    answers = {
        c.transaction_id: c for c in peer.client.commands() if c.name in ("_result", "_error")
    }
    assert answers[7.0].name == "_result" and answers[7.0].arguments == (3.0,)
    assert answers[8.0].name == "_error"
    assert answers[8.0].arguments[0]["description"] == "no such luck"
    assert answers[9.0].arguments[0]["code"] == "NetConnection.Call.Failed"


def test_server_calls_the_client_and_gets_its_result() -> None:
    Rpc.clients.clear()
    factory = factory_with("[[apps.live.plugins]]\nuse = 'tests.test_application:Rpc'\n")
    peer = connected(factory, 1)
    (view,) = Rpc.clients
    results: list[Any] = []
    view.call("whoAreYou", "please").addBoth(results.append)
    peer.pump()
    request = peer.client.commands()[-1]
    assert (request.name, request.arguments) == ("whoAreYou", ("please",))
    peer.send(peer.client.command("_result", request.transaction_id, None, "a player"))
    assert results == [("a player",)]


def test_pending_server_calls_fail_when_the_client_leaves() -> None:
    Rpc.clients.clear()
    factory = factory_with("[[apps.live.plugins]]\nuse = 'tests.test_application:Rpc'\n")
    peer = connected(factory, 1)
    results: list[Any] = []
    Rpc.clients[0].call("slow").addErrback(lambda f: results.append(f.type))
    peer.proto.connectionLost(None)
    assert results == [ConnectionError]


def test_broadcast_reaches_every_client_of_the_app() -> None:
    factory = factory_with("")
    peers = [connected(factory, port) for port in (1, 2, 3)]
    application = factory.applications["live"]
    assert application.broadcast("onChat", "hello") == 3
    for peer in peers:
        peer.pump()
        assert peer.client.commands()[-1].name == "onChat"


def test_client_error_answer_fails_the_call_with_its_description() -> None:
    Rpc.clients.clear()
    factory = factory_with("[[apps.live.plugins]]\nuse = 'tests.test_application:Rpc'\n")
    peer = connected(factory, 1)
    failures: list[Any] = []
    Rpc.clients[0].call("x").addErrback(failures.append)
    peer.pump()
    tid = peer.client.commands()[-1].transaction_id
    peer.send(
        peer.client.command(
            "_error", tid, None, {"code": "NetConnection.Call.Failed", "description": "nope"}
        )
    )
    assert failures and failures[0].check(ApplicationError)
    assert failures[0].value.description == "nope"


def test_default_app_policy_refuse_refuses_unknown_apps() -> None:
    factory = factory_with("[default_app]\npolicy = 'refuse'\n[apps.known]\n")
    peer = connected(factory, 1)
    assert peer.infos()[-1]["code"] == "NetConnection.Connect.InvalidApp"


class Incomplete:
    """Not a Plugin subclass and missing most hooks."""

    def connect(self, client: Any) -> None:
        return None


def test_a_broken_plugin_is_a_startup_error_naming_it_and_the_missing_hook() -> None:
    with pytest.raises(ConfigError) as raised:
        factory_with("[[apps.live.plugins]]\nuse = 'tests.test_application:Incomplete'\n")
    (problem,) = raised.value.problems
    assert "apps.live.plugins[0]" in problem and "Incomplete" in problem
    assert "the class lacks the hooks app_start, app_stop, call," in problem
    assert "IApplication" not in problem  # the docs' words, not the interface's


def test_unknown_plugin_and_bad_options_are_startup_errors() -> None:
    with pytest.raises(ConfigError) as raised:
        factory_with(
            "[[apps.live.plugins]]\nuse = 'nosuchplugin'\n"
            "[[apps.live.plugins]]\nuse = 'tests.test_application:DelayPublish'\ncolour = 1\n"
        )
    first, second = raised.value.problems
    assert "no entry point 'nosuchplugin'" in first
    assert "plugins[1].colour: unknown option of plugin" in second
    assert "its options: seconds" in second


def test_an_unknown_status_code_from_a_plugin_falls_back_to_the_default() -> None:
    factory = factory_with("[[apps.live.plugins]]\nuse = 'tests.test_application:Gate'\n")
    pub = connected(factory, 1)
    pub.send(pub.client.command("publish", 3.0, None, "bogus", "live", stream_id=1))
    info = pub.infos()[-1]
    assert (info["code"], info["description"]) == ("NetStream.Publish.Denied", "odd code")
    assert not pub.transport.disconnecting
