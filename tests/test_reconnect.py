"""Enhanced RTMP reconnect requests through the real server protocol on in-memory transports
(:mod:`fms.server.reconnect`): who is sent ``NetConnection.Connect.ReconnectRequest``, with
what, and the grace a shutdown gives such clients on the factory's fake clock."""

from __future__ import annotations

import json
from typing import Any

from fms.rtmp.capabilities import CapsExMask
from fms.server import reconnect
from tests.support.server_peer import Peer, clock_of, factory_for

REQUEST = "NetConnection.Connect.ReconnectRequest"
GRACE = 4.0
TIMEOUT = 2.0
RECONNECTING = {"capsEx": float(CapsExMask.RECONNECT | CapsExMask.MULTITRACK)}
"""What OBS-like Enhanced RTMP v2 clients announce in connect."""


def config(**server: Any) -> str:
    """A configuration with ``server`` as its ``[server]`` table (values as TOML)."""
    lines = [f"{key} = {json.dumps(value)}" for key, value in server.items()]
    return "[server]\n" + "\n".join(lines) + "\n[streams]\nflush_interval = 0\n[apps.live]\n"


def requests(peer: Peer) -> list[tuple[int, dict[str, Any]]]:
    """The reconnect requests ``peer`` received: (message stream id, info object) each."""
    found = []
    for message in peer.client.commands():
        for value in message.arguments:
            if isinstance(value, dict) and value.get("code") == REQUEST:
                assert message.name == "onStatus" and message.transaction_id == 0
                found.append((message.stream_id, value))
    return found


def test_a_client_that_announced_reconnect_is_asked_with_status_level_and_no_tc_url() -> None:
    factory = factory_for(config())
    peer = Peer(factory).connect(create_stream=True, **RECONNECTING).publish()
    assert reconnect.request_reconnect(peer.proto, "", reconnect.ON_REQUEST)
    peer.pump()
    [(stream_id, info)] = requests(peer)
    assert stream_id == 0  # a NetConnection status, not a NetStream one
    assert info["level"] == "status" and "tcUrl" not in info
    assert info["description"] == reconnect.ON_REQUEST
    assert not peer.closed  # it leaves by itself


def test_the_request_names_the_configured_url_with_the_clients_app() -> None:
    factory = factory_for(config())
    peer = Peer(factory).connect("live", **RECONNECTING)
    assert reconnect.request_reconnect(peer.proto, "rtmp://node2.example/{app}")
    peer.pump()
    assert requests(peer)[0][1]["tcUrl"] == "rtmp://node2.example/live"


def test_a_client_without_the_capability_is_not_asked() -> None:
    factory = factory_for(config())
    legacy = Peer(factory, port=1).connect(create_stream=True)
    others = Peer(factory, port=2).connect(capsEx=float(CapsExMask.MULTITRACK))
    before = [legacy.client.statuses(), others.client.statuses()]
    asked, unable = reconnect.request_all(factory.connections, "rtmp://x/{app}")
    legacy.pump()
    others.pump()
    assert (asked, set(unable)) == ([], {legacy.proto, others.proto})
    assert [legacy.client.statuses(), others.client.statuses()] == before
    assert requests(legacy) == requests(others) == []


def test_a_client_still_connecting_is_not_asked() -> None:
    factory = factory_for(config())
    peer = Peer(factory).handshake()
    assert not reconnect.request_reconnect(peer.proto)
    assert peer.take() == b""


def test_shutdown_asks_reconnecting_clients_and_tells_the_others_as_before() -> None:
    factory = factory_for(config(reconnect_grace=GRACE, reconnect_url="rtmp://b/{app}"))
    mover = Peer(factory, port=1).connect(create_stream=True, **RECONNECTING).publish()
    legacy = Peer(factory, port=2).connect(create_stream=True).play()
    factory.shutdown(TIMEOUT)
    mover.pump()
    legacy.pump()
    [(_, info)] = requests(mover)
    assert info["tcUrl"] == "rtmp://b/live" and info["description"] == reconnect.ON_SHUTDOWN
    assert "NetStream.Unpublish.Success" not in mover.client.statuses()  # it still publishes
    assert not mover.closed
    assert requests(legacy) == []
    assert legacy.client.statuses()[-1] == "NetStream.Play.UnpublishNotify"  # today's
    assert legacy.closed


def test_a_client_asked_to_reconnect_is_closed_after_the_grace_not_before() -> None:
    factory = factory_for(config(reconnect_grace=GRACE))
    mover = Peer(factory).connect(create_stream=True, **RECONNECTING).publish()
    done = factory.shutdown(TIMEOUT)
    clock = clock_of(factory)
    clock.advance(GRACE - 0.01)
    mover.pump()
    assert not mover.closed and len(requests(mover)) == 1
    clock.advance(0.01)
    mover.pump()
    assert mover.closed  # then as today: its publish ended, then closed once written
    assert mover.client.statuses()[-1] == "NetStream.Unpublish.Success"
    assert not done.called
    clock.advance(TIMEOUT)  # the shutdown timeout counts from the end of the grace
    assert mover.transport.disconnected
    mover.lose()
    assert done.called


def test_a_client_that_leaves_by_itself_is_not_waited_for() -> None:
    factory = factory_for(config(reconnect_grace=GRACE))
    mover = Peer(factory).connect(create_stream=True, **RECONNECTING).publish()
    done = factory.shutdown(TIMEOUT)
    clock_of(factory).advance(1.0)
    mover.lose()  # it reconnected elsewhere
    assert done.called
    assert clock_of(factory).getDelayedCalls() == []


def test_the_server_goes_on_serving_a_client_asked_to_reconnect() -> None:
    """The specification asks the old server to keep processing the client's messages until
    it leaves: a player on this server still gets what the publisher sends."""
    factory = factory_for(config(reconnect_grace=GRACE))
    mover = Peer(factory, port=1).connect(create_stream=True, **RECONNECTING).publish()
    player = Peer(factory, port=2).connect(create_stream=True, **RECONNECTING).play()
    factory.shutdown(TIMEOUT)
    keyframe = bytes([0x17, 0x01, 0, 0, 0]) + b"frame"
    mover.send_video(40, keyframe)
    player.pump()
    assert player.video() == [keyframe]


def test_a_grace_of_zero_asks_nobody_and_closes_everyone_at_once() -> None:
    factory = factory_for(config(reconnect_grace=0.0))
    peer = Peer(factory).connect(create_stream=True, **RECONNECTING).publish()
    factory.shutdown(TIMEOUT)
    peer.pump()
    assert requests(peer) == [] and peer.closed


def reload_with(tmp_path: Any, switch: bool) -> tuple[Peer, Peer]:
    """A server reloaded (as SIGHUP does) from a file with ``reconnect_on_reload = switch``:
    its client that announced Reconnect and one that did not."""
    from fms.cli import reload_config
    from fms.config import load_config
    from fms.log import Logger

    path = tmp_path / "fms.toml"
    path.write_text(config(reconnect_on_reload=switch, reconnect_url="rtmp://c/{app}"))
    factory = factory_for(path.read_text())
    mover = Peer(factory, port=1).connect(create_stream=True, **RECONNECTING).publish()
    legacy = Peer(factory, port=2).connect(create_stream=True).play()
    assert reload_config(factory, str(path), {}, Logger()) is not None
    assert load_config(str(path)).server.reconnect_on_reload is switch
    mover.pump()
    legacy.pump()
    return mover, legacy


def test_a_reload_asks_reconnecting_clients_when_configured_and_closes_nobody(
    tmp_path: Any,
) -> None:
    mover, legacy = reload_with(tmp_path, True)
    [(_, info)] = requests(mover)
    assert info["tcUrl"] == "rtmp://c/live" and info["description"] == reconnect.ON_RELOAD
    assert requests(legacy) == []
    assert not mover.closed and not legacy.closed


def test_a_reload_asks_nobody_by_default(tmp_path: Any) -> None:
    mover, legacy = reload_with(tmp_path, False)
    assert requests(mover) == requests(legacy) == []
