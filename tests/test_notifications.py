"""The notification hooks (``published``, ``unpublished``, ``play_started``, ``play_stopped``):
told once each, only for what really happened, on the worker where it happened.

In-memory clients (:mod:`tests.support.server_peer`) drive the real protocol; a plugin records
what it was told. Relay links between workers are the in-memory pairs of
:mod:`tests.test_relay`.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from zope.interface.verify import verifyObject

from fms.apps.api import Plugin, Reject
from fms.apps.interfaces import IAppView, IClientView, IStreamView
from fms.rtmp.constants import MessageType
from tests.support.logs import log_lines
from tests.support.server_peer import Peer, factory_for
from tests.test_relay import Workers, connected

PLUGIN = "[[apps.live.plugins]]\nuse = 'tests.test_notifications:Told'\n"


class Broken(Plugin):
    """Fails in ``publish``."""

    def publish(self, client: IClientView, name: str, query: dict[str, str], kind: str) -> Any:
        raise RuntimeError("a bug in the plugin")


class Silent(Plugin):
    """Refuses every publish without saying why."""

    def publish(self, client: IClientView, name: str, query: dict[str, str], kind: str) -> Any:
        return Reject()


class Told(Plugin):
    """Records every notification (and the older ``unpublish``/``stop``) as a tuple, and
    refuses publishing the name 'forbidden'."""

    events: list[tuple[Any, ...]] = []

    def publish(self, client: IClientView, name: str, query: dict[str, str], kind: str) -> Any:
        return Reject("not this one") if name == "forbidden" else None

    def published(self, stream: IStreamView) -> None:
        publisher = stream.publisher
        Told.events.append(("published", stream.name, publisher.peer if publisher else None))

    def unpublished(self, stream: IStreamView) -> None:
        Told.events.append(("unpublished", stream.name))

    def unpublish(self, client: IClientView, stream: IStreamView) -> None:
        Told.events.append(("unpublish", client.peer, stream.name))

    def play_started(self, client: IClientView, stream: IStreamView) -> None:
        Told.events.append(("play_started", client.peer, stream.name))

    def play_stopped(self, client: IClientView, stream: IStreamView) -> None:
        Told.events.append(("play_stopped", client.peer, stream.name))

    def stop(self, client: IClientView, name: str) -> None:
        Told.events.append(("stop", client.peer, name))


def told(*hooks: str) -> list[tuple[Any, ...]]:
    return [e for e in Told.events if e[0] in hooks]


def setup_function() -> None:
    Told.events = []


def peer(factory: Any, port: int) -> Peer:
    return Peer(factory, port).connect(create_stream=True)


def close_stream(p: Peer) -> None:
    p.send(p.client.command("closeStream", 0.0, None, stream_id=1))


def test_an_accepted_publish_is_published_once_with_its_publisher() -> None:
    factory = factory_for(PLUGIN)
    publisher = peer(factory, 1000).publish("cam")
    assert publisher.statuses()[-1] == "NetStream.Publish.Start"
    assert told("published") == [("published", "cam", "192.0.2.1:1000")]


def test_a_duplicate_publish_the_chain_accepted_is_never_published() -> None:
    factory = factory_for(PLUGIN)
    peer(factory, 1000).publish("cam")
    second = peer(factory, 1001).publish("cam")
    assert second.statuses()[-1] == "NetStream.Publish.BadName"
    second.lose()
    assert told("published") == [("published", "cam", "192.0.2.1:1000")]
    assert told("unpublished", "unpublish") == []


def test_a_publish_the_chain_refuses_is_never_published() -> None:
    factory = factory_for(PLUGIN)
    refused = peer(factory, 1000).publish("forbidden")
    assert refused.statuses()[-1] == "NetStream.Publish.Denied"
    refused.lose()
    assert told("published", "unpublished", "unpublish") == []


def test_the_end_of_a_publish_is_unpublished_once_then_the_older_unpublish() -> None:
    factory = factory_for(PLUGIN)
    publisher = peer(factory, 1000).publish("cam")
    close_stream(publisher)
    publisher.lose()  # the stream's publish already ended: nothing more to tell
    assert told("unpublished", "unpublish") == [
        ("unpublished", "cam"),
        ("unpublish", "192.0.2.1:1000", "cam"),
    ]


def test_a_publisher_that_leaves_is_unpublished_once() -> None:
    factory = factory_for(PLUGIN)
    publisher = peer(factory, 1000).publish("cam")
    publisher.lose()
    assert told("unpublished") == [("unpublished", "cam")]


def test_a_play_is_started_and_stopped_once_each() -> None:
    factory = factory_for(PLUGIN)
    player = peer(factory, 2000).play("cam")
    assert player.statuses()[-1] == "NetStream.Play.Start"
    assert told("play_started") == [("play_started", "192.0.2.1:2000", "cam")]
    close_stream(player)
    player.lose()
    assert told("play_stopped", "stop") == [
        ("play_stopped", "192.0.2.1:2000", "cam"),
        ("stop", "192.0.2.1:2000", "cam"),
    ]


def test_playing_another_name_on_the_same_stream_id_stops_the_first_play() -> None:
    factory = factory_for(PLUGIN)
    player = peer(factory, 2000).play("one")
    player.play("two")
    assert told("play_started", "play_stopped") == [
        ("play_started", "192.0.2.1:2000", "one"),
        ("play_stopped", "192.0.2.1:2000", "one"),
        ("play_started", "192.0.2.1:2000", "two"),
    ]


def test_a_player_dropped_by_its_stream_is_play_stopped_once() -> None:
    factory = factory_for(PLUGIN)
    player = peer(factory, 2000).play("cam")
    _, entry = player.proto.playing[1]
    entry.sink.close("too slow")  # what a stream does to a player it drops
    player.lose()
    assert player.closed
    assert told("play_stopped") == [("play_stopped", "192.0.2.1:2000", "cam")]


def test_a_refused_play_is_never_started() -> None:
    factory = factory_for(PLUGIN)
    player = peer(factory, 2000).play("bad\x00name")
    assert player.statuses()[-1] == "NetStream.Play.Failed"
    player.lose()
    assert told("play_started", "play_stopped", "stop") == []


def test_a_real_client_view_is_an_iclientview_whose_application_is_an_iappview() -> None:
    view = peer(factory_for(PLUGIN), 2000).proto.client_view
    assert view is not None and verifyObject(IClientView, view)
    assert view.application is not None and verifyObject(IAppView, view.application)


def test_the_application_view_of_a_client_knows_a_stream_before_it_is_published() -> None:
    factory = factory_for(PLUGIN)
    player = peer(factory, 2000).play("cam")
    view = player.proto.client_view
    assert view is not None and view.app == "live"
    application = view.application
    assert application is not None and application.name == "live"
    waiting = application.stream("cam")
    assert waiting is not None and waiting.publisher is None and waiting.subscriber_count == 1
    assert application.stream("nobody") is None


def test_with_workers_a_publish_is_published_on_its_publishers_worker_only() -> None:
    w = Workers(PLUGIN)
    watcher = connected(w.w1, 2000).play()
    publisher = connected(w.w0, 1000).publish()
    w.reactor.pump()
    w.start_stream(publisher)
    publisher.send_media(MessageType.VIDEO, 40, b"\x27\x01\x00\x00\x00")
    w.reactor.pump()
    watcher.pump()
    assert "NetStream.Play.PublishNotify" in watcher.statuses()  # the relay link did publish
    close_stream(publisher)
    w.reactor.pump()
    assert w.w1.registry.get("live", "cam") is not None  # the watcher still waits there
    assert not w.w1.registry.get("live", "cam").published  # type: ignore[union-attr]
    # Worker 1's chain heard of its player only; the publish (on worker 0) was told once.
    assert told("published", "unpublished") == [
        ("published", "cam", "192.0.2.9:1000"),
        ("unpublished", "cam"),
    ]
    assert told("play_started") == [("play_started", "192.0.2.9:2000", "cam")]


@pytest.fixture
def logged() -> Iterator[list[str]]:
    yield from log_lines()


@pytest.mark.parametrize(
    ("plugin", "reason"), [("Broken", "an error in the application"), ("Silent", "no reason given")]
)
def test_a_refusal_without_a_reason_of_its_own_is_logged_without_repeating_itself(
    logged: list[str], plugin: str, reason: str
) -> None:
    factory = factory_for(f"[[apps.live.plugins]]\nuse = 'tests.test_notifications:{plugin}'\n")
    refused = peer(factory, 1000).publish("cam")
    assert refused.statuses()[-1] == "NetStream.Publish.Denied"
    assert refused.infos()[-1]["description"] == reason
    line = next(line for line in logged if "publish live/cam from" in line)
    assert line.endswith(f"refused by the application: {reason}")
    assert line.count("refused by the application") == 1


def documented_plugin(title: str) -> types.ModuleType:
    """The plugin of docs/plugins.md's block ``title``, as module ``tests.doc_<stem>``."""
    doc = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
    found = re.search(rf'```python title="{re.escape(title)}"\n(.*?)```', doc.read_text(), re.S)
    assert found is not None, title
    module = types.ModuleType(f"tests.doc_{Path(title).stem}")
    exec(compile(found.group(1), title, "exec"), module.__dict__)
    sys.modules[module.__name__] = module
    return module


def test_the_documented_on_air_plugin_announces_only_the_publisher_that_went_on_air() -> None:
    documented_plugin("plugins/onair.py")
    factory = factory_for("[[apps.live.plugins]]\nuse = 'tests.doc_onair:OnAir'\n")
    watcher = peer(factory, 2000)
    first = peer(factory, 1000).publish("cam")
    second = peer(factory, 1001).publish("cam")
    assert second.statuses()[-1] == "NetStream.Publish.BadName"
    first.lose()
    watcher.pump()
    announced = [(c.name, c.arguments) for c in watcher.client.commands() if "Air" in c.name]
    assert announced == [("onAir", ("cam", "192.0.2.1:1000")), ("offAir", ("cam",))]
