"""LiveStream and StreamRegistry: caches, encode-once fan-out and slow-player bounds, with
in-memory sinks (no sockets, no clock)."""

from __future__ import annotations

import pytest

from fms.live import stream as stream_module
from fms.live.registry import StreamRegistry
from fms.live.stream import FanoutLimits, LiveStream, PlayerState
from fms.rtmp.chunks import RawMessage
from fms.rtmp.constants import MessageType
from fms.rtmp.messages import Media
from tests.support.live_sink import AAC_HEADER, AVC_HEADER, Sink, audio, inter, key, published


def test_ten_thousand_players_cost_one_encode_per_message_and_share_the_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []
    real = stream_module.encode_shared

    def counting(message: RawMessage, chunk_size: int) -> bytes:
        calls.append(message)
        return real(message, chunk_size)

    monkeypatch.setattr(stream_module, "encode_shared", counting)
    stream = published()
    stream.publish_message(key(0))
    sinks = [Sink() for _ in range(10_000)]
    for sink in sinks:
        stream.add_player(sink, 1)
    calls.clear()
    for ts in range(40, 400, 40):
        stream.publish_message(inter(ts))
    stream.flush(0.0)
    assert len(calls) == 9  # one per message, not one per message per player
    first = sinks[0].writes[-1]
    assert all(sink.writes[-1] is first for sink in sinks)  # one joined object for everyone
    assert [m.timestamp for m in sinks[-1].messages()][-9:] == list(range(40, 400, 40))


def test_late_joiner_gets_headers_then_the_gop_from_the_newest_keyframe() -> None:
    stream = published()
    for message in (
        Media(9, 0, 1, AVC_HEADER),
        Media(8, 0, 1, AAC_HEADER),
        key(0),
        inter(40),
        key(80),
        inter(120),
        audio(130),
    ):
        stream.publish_message(message)
    sink = Sink()
    stream.add_player(sink, 1)
    stream.flush(0.0)
    got = sink.messages()
    assert [m.payload for m in got[:2]] == [AVC_HEADER, AAC_HEADER]
    assert [m.timestamp for m in got[:2]] == [80, 80]  # stamped at the GOP's start
    assert [m.payload for m in got[2:]] == [key(80).payload, inter(120).payload, audio(130).payload]


def test_players_get_the_message_stream_id_they_play_on() -> None:
    stream = published()
    stream.publish_message(key(0))
    one, three = Sink(), Sink()
    stream.add_player(one, 1)
    stream.add_player(three, 3)
    stream.flush(0.0)
    assert {m.stream_id for m in one.messages()} == {1}
    assert {m.stream_id for m in three.messages()} == {3}


def test_player_waiting_before_publish_receives_everything_from_the_start() -> None:
    stream = LiveStream("live", "cam")
    sink = Sink()
    player = stream.add_player(sink, 1)
    assert player.state is PlayerState.WAITING
    stream.start_publish(object())
    assert sink.notices == ["started"]
    for message in (Media(9, 0, 1, AVC_HEADER), key(0), inter(40)):
        stream.publish_message(message)
    stream.flush(0.0)
    assert [m.payload for m in sink.messages()] == [AVC_HEADER, key(0).payload, inter(40).payload]


def test_unpublish_tells_players_and_drops_the_caches() -> None:
    stream = published()
    stream.publish_message(Media(9, 0, 1, AVC_HEADER))
    stream.publish_message(key(0))
    sink = Sink()
    player = stream.add_player(sink, 1)
    stream.stop_publish()
    assert sink.notices == ["stopped"]
    assert player.state is PlayerState.WAITING
    assert stream.video_header is None and stream.memory() == 0


def test_player_joining_without_a_cached_keyframe_waits_for_the_next_one() -> None:
    stream = published(FanoutLimits(gop_cache=False))
    stream.publish_message(key(0))
    stream.publish_message(inter(40))
    sink = Sink()
    player = stream.add_player(sink, 1)
    stream.publish_message(inter(80))
    stream.flush(0.0)
    assert player.state is PlayerState.PARKED and sink.messages() == []
    stream.publish_message(key(120))
    stream.publish_message(inter(160))
    stream.flush(0.0)
    assert [m.timestamp for m in sink.messages()] == [120, 160]


def test_stalled_player_skips_to_the_next_keyframe_and_others_get_everything() -> None:
    limits = FanoutLimits(soft_bytes=5_000, hard_bytes=1_000_000, soft_seconds=100.0)
    stream = published(limits)
    stream.publish_message(key(0))
    slow, fast = Sink(), Sink()
    stream.add_player(slow, 1)
    stream.add_player(fast, 1)
    stream.flush(0.0)
    slow.writable = False
    for ts in range(40, 2000, 40):
        stream.publish_message(inter(ts, 500))
        stream.flush(ts / 1000)
    assert slow.closed is None
    slow.writable = True
    stream.publish_message(key(2000))
    stream.publish_message(inter(2040))
    stream.flush(2.1)
    fast_stamps = [m.timestamp for m in fast.messages()]
    assert fast_stamps == [0, *range(40, 2000, 40), 2000, 2040]
    slow_stamps = [m.timestamp for m in slow.messages()]
    assert slow_stamps == [0, 2000, 2040]  # inter frames dropped, resumed at the keyframe


def test_player_past_the_hard_bound_is_closed() -> None:
    limits = FanoutLimits(soft_bytes=1_000_000, hard_bytes=20_000, soft_seconds=100.0)
    stream = published(limits)
    stream.publish_message(key(0))
    sink = Sink()
    stream.add_player(sink, 1)
    stream.flush(0.0)
    sink.writable = False
    for ts in range(40, 4000, 40):
        stream.publish_message(inter(ts, 1000))
        stream.flush(ts / 1000)
    assert sink.closed is not None and "behind" in sink.closed
    assert sink not in {p.sink for p in stream.players}


def test_player_without_write_progress_is_closed_after_the_stall_timeout() -> None:
    stream = published(FanoutLimits(stall_timeout=10.0, soft_seconds=1000.0))
    stream.publish_message(key(0))
    sink = Sink()
    stream.add_player(sink, 1)
    stream.flush(0.0)
    sink.writable = False
    stream.publish_message(inter(40))
    stream.flush(1.0)
    stream.publish_message(inter(80))
    stream.flush(10.5)
    assert sink.closed is None
    stream.publish_message(inter(120))
    stream.flush(11.5)
    assert sink.closed is not None and "no write progress" in sink.closed


def test_a_stalled_player_keeps_memory_bounded() -> None:
    limits = FanoutLimits(
        soft_bytes=50_000, hard_bytes=10_000_000, soft_seconds=1000.0, gop_max_bytes=200_000
    )
    stream = published(limits)
    sink = Sink()
    stream.publish_message(key(0))
    stream.add_player(sink, 1)
    sink.writable = False
    peak = 0
    for i in range(1, 3000):
        message = key(i * 40, 1000) if i % 50 == 0 else inter(i * 40, 1000)
        stream.publish_message(message)
        stream.flush(i * 0.04)
        peak = max(peak, stream.memory())
    # the soft bound plus one GOP (50 frames of ~1 KB, log and cache), not 3 MB of backlog
    assert peak < 50_000 + 2 * 60_000


def test_pause_stops_delivery_and_unpause_resumes_at_a_keyframe() -> None:
    stream = published()
    stream.publish_message(key(0))
    sink = Sink()
    player = stream.add_player(sink, 1)
    stream.flush(0.0)
    stream.set_paused(player, True)
    stream.publish_message(inter(40))
    stream.flush(0.1)
    stream.set_paused(player, False)
    stream.publish_message(inter(80))
    stream.flush(0.2)
    stream.publish_message(key(120))
    stream.flush(0.3)
    assert [m.timestamp for m in sink.messages()] == [0, 120]


def test_receive_video_false_leaves_audio_only() -> None:
    stream = published()
    stream.publish_message(key(0))
    sink = Sink()
    player = stream.add_player(sink, 1)
    stream.flush(0.0)
    stream.select(player, video=False)
    stream.publish_message(inter(40))
    stream.publish_message(audio(50))
    stream.flush(0.1)
    got = sink.messages()
    assert [m.type_id for m in got] == [MessageType.VIDEO, MessageType.AUDIO]


def test_registry_refuses_a_second_publisher_and_keeps_the_first() -> None:
    registry = StreamRegistry()
    first, second = object(), object()
    stream = registry.claim("live", "cam", first)
    assert stream is not None
    assert registry.claim("live", "cam", second) is None
    assert stream.publisher is first
    assert registry.release(stream, second) is False
    assert stream.publisher is first


def test_registry_forgets_a_stream_without_publisher_and_players() -> None:
    registry = StreamRegistry()
    publisher = object()
    stream = registry.claim("live", "cam", publisher)
    assert stream is not None
    _, player = registry.play("live", "cam", Sink(), 1)
    registry.release(stream, publisher)
    assert registry.get("live", "cam") is stream  # the player still waits on it
    registry.leave(stream, player)
    assert registry.get("live", "cam") is None
    assert registry.claim("live", "cam", object()) is not None


def test_streams_are_separate_per_app() -> None:
    registry = StreamRegistry()
    assert registry.claim("live", "cam", object()) is not None
    assert registry.claim("other", "cam", object()) is not None
