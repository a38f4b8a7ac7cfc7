"""Publish and play through the Twisted adapter, on in-memory transports and a fake clock."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from fms.config import Config, StreamsConfig
from fms.rtmp.constants import MessageType, UserControlEvent
from fms.rtmp.messages import Data, Media, UserControl
from fms.server.factory import RTMPServerFactory
from tests.support.server_peer import Peer

AVC_HEADER = b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f"
HOST = "192.0.2.9"


def connected(factory: RTMPServerFactory, port: int) -> Peer:
    """A client from 192.0.2.9:``port``, connected to app live with stream 1 created."""
    return Peer(factory, port, host=HOST).connect(create_stream=True)


def make(**streams: object) -> RTMPServerFactory:
    config = Config(streams=StreamsConfig(**streams))  # type: ignore[arg-type]
    return RTMPServerFactory(config, clock=Clock())  # type: ignore[arg-type]


def publisher(factory: RTMPServerFactory, name: str = "cam", port: int = 1000) -> Peer:
    return connected(factory, port).publish(name)


def player(factory: RTMPServerFactory, name: str = "cam", port: int = 2000) -> Peer:
    return connected(factory, port).play(name)


def frame(ts: int, key: bool = False, size: int = 50) -> bytes:
    return (b"\x17" if key else b"\x27") + b"\x01\x00\x00\x00" + b"x" * size


def test_publish_is_acknowledged_with_publish_start() -> None:
    pub = publisher(make())
    assert pub.statuses()[-1] == "NetStream.Publish.Start"


def test_unpublish_sends_unpublish_success_to_the_publisher() -> None:
    pub = publisher(make())
    pub.send(pub.client.command("FCUnpublish", 4.0, None, "cam"))
    assert "NetStream.Unpublish.Success" in pub.statuses()
    assert any(c.name == "onFCUnpublish" for c in pub.client.commands())


def test_fcpublish_gets_a_null_result_and_on_fcpublish() -> None:
    peer = connected(make(), 1000)
    peer.send(peer.client.command("FCPublish", 5.0, None, "cam"))
    names = [c.name for c in peer.client.commands()]
    assert "onFCPublish" in names
    result = next(c for c in peer.client.commands() if c.transaction_id == 5.0)
    assert result.name == "_result" and result.arguments == (None,)


def test_second_publisher_gets_bad_name() -> None:
    factory = make()
    publisher(factory)
    second = publisher(factory, port=1001)
    assert second.statuses()[-1] == "NetStream.Publish.BadName"


def test_invalid_stream_name_is_refused_with_a_reason() -> None:
    pub = publisher(make(), name="../etc/passwd")
    info = [c.arguments[0] for c in pub.client.commands() if c.name == "onStatus"][-1]
    assert info["code"] == "NetStream.Publish.BadName"
    assert "'..'" in info["description"]


def test_player_gets_metadata_headers_and_media_in_order() -> None:
    factory = make(flush_interval=0.0)
    pub = publisher(factory)
    meta = ("@setDataFrame", "onMetaData", {"width": 320.0, "height": 240.0})
    pub.send(pub.client.send(Data(meta, 1)))
    pub.send(pub.client.send(Media(MessageType.VIDEO, 0, 1, AVC_HEADER)))
    pub.send(pub.client.send(Media(MessageType.VIDEO, 0, 1, frame(0, key=True))))
    watcher = player(factory)
    pub.send(pub.client.send(Media(MessageType.VIDEO, 40, 1, frame(40))))
    watcher.pump()
    assert watcher.statuses()[-2:] == ["NetStream.Play.Reset", "NetStream.Play.Start"]
    data = [m for m in watcher.client.received if isinstance(m, Data)]
    assert [d.values[0] for d in data] == ["|RtmpSampleAccess", "onMetaData"]
    assert data[1].values[1] == {"width": 320.0, "height": 240.0}
    assert [m.payload for m in watcher.media()] == [AVC_HEADER, frame(0, True), frame(40)]


def test_player_before_publish_waits_then_gets_publish_notify() -> None:
    factory = make(flush_interval=0.0)
    watcher = player(factory)
    assert watcher.statuses()[-1] == "NetStream.Play.Start"
    pub = publisher(factory)
    pub.send(pub.client.send(Media(MessageType.VIDEO, 0, 1, frame(0, key=True))))
    watcher.pump()
    assert watcher.statuses()[-1] == "NetStream.Play.PublishNotify"
    assert [m.payload for m in watcher.media()] == [frame(0, True)]


def test_publisher_leaving_sends_unpublish_notify_and_stream_eof() -> None:
    factory = make(flush_interval=0.0)
    pub = publisher(factory)
    watcher = player(factory)
    pub.proto.connectionLost(None)
    watcher.pump()
    assert watcher.statuses()[-1] == "NetStream.Play.UnpublishNotify"
    assert watcher.client.received[-1] == UserControl(UserControlEvent.STREAM_EOF, 1)


def test_pause_and_unpause_are_answered_and_resume_at_a_keyframe() -> None:
    factory = make(flush_interval=0.0)
    pub = publisher(factory)
    pub.send(pub.client.send(Media(MessageType.VIDEO, 0, 1, frame(0, key=True))))
    watcher = player(factory)
    pub.send(pub.client.send(Media(MessageType.VIDEO, 40, 1, frame(40))))
    watcher.send(watcher.client.command("pause", 4.0, None, True, 0.0, stream_id=1))
    pub.send(pub.client.send(Media(MessageType.VIDEO, 80, 1, frame(80))))
    watcher.send(watcher.client.command("pause", 5.0, None, False, 0.0, stream_id=1))
    pub.send(pub.client.send(Media(MessageType.VIDEO, 120, 1, frame(120))))
    pub.send(pub.client.send(Media(MessageType.VIDEO, 160, 1, frame(160, key=True))))
    watcher.pump()
    assert watcher.statuses()[-2:] == ["NetStream.Pause.Notify", "NetStream.Unpause.Notify"]
    assert [m.timestamp for m in watcher.media()] == [0, 40, 160]


def test_seek_on_live_is_answered_with_a_status_level_notify() -> None:
    factory = make(flush_interval=0.0)
    publisher(factory)
    watcher = player(factory)
    watcher.send(watcher.client.command("seek", 4.0, None, 5000.0, stream_id=1))
    info = [c.arguments[0] for c in watcher.client.commands() if c.name == "onStatus"][-1]
    assert (info["code"], info["level"]) == ("NetStream.Seek.Notify", "status")


def test_stalled_player_does_not_delay_others_and_is_closed_past_the_hard_bound() -> None:
    factory = make(flush_interval=0.0, soft_bytes=1 << 30, soft_seconds=1000.0,
                   hard_bytes=50_000, stall_grace=0.0)  # fmt: skip
    pub = publisher(factory)
    pub.send(pub.client.send(Media(MessageType.VIDEO, 0, 1, frame(0, key=True))))
    slow = player(factory, port=2001)
    fast = player(factory, port=2002)
    slow.proto.pauseProducing()  # its socket buffer is full
    before = len(slow.transport.value())
    for i in range(1, 40):
        pub.send(pub.client.send(Media(MessageType.VIDEO, i * 40, 1, frame(i * 40, size=2000))))
    fast.pump()
    assert len(fast.media()) == 40
    assert slow.transport.disconnecting
    assert len(slow.transport.value()) == before  # nothing more was queued for it


@pytest.mark.parametrize("flush_interval", [0.02, 0.1])
def test_timer_flush_delivers_within_one_interval(flush_interval: float) -> None:
    factory = make(flush="fixed", flush_interval=flush_interval)
    clock = factory.clock
    assert isinstance(clock, Clock)
    factory.doStart()
    try:
        pub = publisher(factory)
        watcher = player(factory)
        pub.send(pub.client.send(Media(MessageType.VIDEO, 0, 1, frame(0, key=True))))
        watcher.pump()
        assert watcher.media() == []
        clock.advance(flush_interval)
        watcher.pump()
        assert [m.timestamp for m in watcher.media()] == [0]
    finally:
        factory.doStop()


def test_per_app_settings_apply_to_that_apps_streams() -> None:
    from fms.config import parse_config

    config = parse_config(
        "[streams]\nflush_interval = 0.0\n[apps.nogop.streams]\ngop_cache = false\n"
    )
    factory = RTMPServerFactory(config, clock=Clock())  # type: ignore[arg-type]
    assert factory.registry.claim("nogop", "cam", object()) is not None
    assert factory.registry.claim("live", "cam", object()) is not None
    nogop = factory.registry.get("nogop", "cam")
    live = factory.registry.get("live", "cam")
    assert nogop is not None and live is not None
    assert nogop.limits.gop_cache is False and live.limits.gop_cache is True
