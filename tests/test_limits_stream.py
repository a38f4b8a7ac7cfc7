"""Each ``[streams]`` delivery bound of a :class:`~fms.live.stream.LiveStream`, at its boundary.

Every test here sits on one side of one limit (``soft_bytes``, ``soft_seconds``,
``hard_bytes``, ``gop_max_bytes``, ``gop_max_frames``, ``stall_grace``) by an amount computed
from the messages it published, so removing the limit or loosening it by one byte, one
millisecond or one message changes the outcome. Outside its own section ``stall_grace`` is 0, so
a blocked player is judged at the first flush it takes nothing. Also: a player that skipped
frames gets the codec headers that changed in what it skipped. In-memory sinks, time passed
in: no sockets, no clock.
"""

from __future__ import annotations

from fms.live.stream import FanoutLimits, LiveStream, PlayerState
from fms.rtmp.chunks import encode_shared
from fms.rtmp.constants import MessageType
from fms.rtmp.messages import Media, encode_message
from tests.support.live_sink import AAC_HEADER, AVC_HEADER, Sink, audio, inter, key, published

AVC_HEADER_2 = b"\x17\x00\x00\x00\x00\x01\x4d\x00\x28"
"""A second AVC sequence header (another profile and level): the encoder restarted its codec."""

BIG = 1 << 40
"""A bound no test here reaches (bytes or seconds): it takes a limit out of the picture."""


def encoded(message: Media) -> int:
    """Bytes ``message`` takes in a stream's log: what "bytes behind" adds up (chunk size 4096,
    the default of :class:`FanoutLimits`)."""
    return len(encode_shared(encode_message(message), FanoutLimits().chunk_size))


def stamps(sink: Sink) -> list[int]:
    return [m.timestamp for m in sink.messages()]


def blocked_player(stream: LiveStream) -> Sink:
    """A player that received the keyframe at 0 and then stopped taking bytes."""
    sink = Sink()
    stream.add_player(sink, 1)
    stream.flush(0.0)
    assert stamps(sink) == [0]
    sink.writable = False
    return sink


# ------------------------------------------------------------------------------ soft_seconds


def fall_behind_by_time(limits: FanoutLimits, last_inter: int) -> tuple[LiveStream, Sink]:
    """A blocked player misses inter frames at 40, 80, ... ``last_inter`` ms (small ones: far
    below any byte bound), then the keyframe 40 ms later; one flush per message. Seconds
    behind run from the first message it misses (40) to the newest (the keyframe)."""
    stream = published(limits)
    stream.publish_message(key(0))
    sink = blocked_player(stream)
    for ts in range(40, last_inter + 1, 40):
        stream.publish_message(inter(ts))
        stream.flush(ts / 1000)
    stream.publish_message(key(last_inter + 40))
    stream.flush((last_inter + 40) / 1000)
    return stream, sink


def test_a_blocked_player_more_than_soft_seconds_behind_skips_to_the_next_keyframe() -> None:
    # Missed: 40 .. 3040 and the keyframe at 3080: 3.04 s behind, in 77 messages of 117 bytes
    # (9 KB, far below soft_bytes): only the seconds bound can make it skip.
    stream, sink = fall_behind_by_time(
        FanoutLimits(soft_seconds=3.0, soft_bytes=BIG, hard_bytes=BIG, stall_grace=0.0),
        last_inter=3040,
    )
    sink.writable = True
    stream.publish_message(inter(3120))
    stream.flush(3.12)
    assert sink.closed is None
    assert stamps(sink) == [0, 3080, 3120]  # 40 .. 3040 skipped, resumed at the keyframe


def test_a_blocked_player_exactly_soft_seconds_behind_skips_nothing() -> None:
    # Missed: 40 .. 3000 and the keyframe at 3040: exactly 3.0 s behind, not more.
    stream, sink = fall_behind_by_time(
        FanoutLimits(soft_seconds=3.0, soft_bytes=BIG, hard_bytes=BIG, stall_grace=0.0),
        last_inter=3000,
    )
    sink.writable = True
    stream.publish_message(inter(3080))
    stream.flush(3.08)
    assert stamps(sink) == list(range(0, 3081, 40))


# -------------------------------------------------------------------------------- soft_bytes


def fall_behind_by_bytes(limits: FanoutLimits) -> tuple[LiveStream, Sink, int]:
    """A blocked player misses ten 500-byte inter frames (40 .. 400 ms: far below any seconds
    bound) and then a keyframe at 440 ms; return how many bytes behind that leaves it."""
    stream = published(limits)
    stream.publish_message(key(0))
    sink = blocked_player(stream)
    missed = [inter(ts, 500) for ts in range(40, 401, 40)] + [key(440, 500)]
    for message in missed:
        stream.publish_message(message)
        stream.flush(message.timestamp / 1000)
    return stream, sink, sum(encoded(m) for m in missed)


def bytes_behind_with_ten_frames_and_a_keyframe() -> int:
    """What :func:`fall_behind_by_bytes` leaves a player behind (bytes)."""
    return fall_behind_by_bytes(FanoutLimits(soft_bytes=BIG, hard_bytes=BIG, stall_grace=0.0))[2]


def test_a_blocked_player_one_byte_past_soft_bytes_skips_to_the_next_keyframe() -> None:
    behind = bytes_behind_with_ten_frames_and_a_keyframe()
    stream, sink, _ = fall_behind_by_bytes(
        FanoutLimits(soft_bytes=behind - 1, soft_seconds=BIG, hard_bytes=BIG, stall_grace=0.0)
    )
    sink.writable = True
    stream.publish_message(inter(480))
    stream.flush(0.48)
    assert sink.closed is None
    assert stamps(sink) == [0, 440, 480]


def test_a_blocked_player_exactly_soft_bytes_behind_skips_nothing() -> None:
    behind = bytes_behind_with_ten_frames_and_a_keyframe()
    stream, sink, _ = fall_behind_by_bytes(
        FanoutLimits(soft_bytes=behind, soft_seconds=BIG, hard_bytes=BIG, stall_grace=0.0)
    )
    sink.writable = True
    stream.publish_message(inter(480))
    stream.flush(0.48)
    assert stamps(sink) == list(range(0, 481, 40))


# -------------------------------------------------------------------------------- hard_bytes


def test_a_blocked_player_one_byte_past_hard_bytes_is_closed_at_that_flush() -> None:
    behind = bytes_behind_with_ten_frames_and_a_keyframe()
    limits = FanoutLimits(hard_bytes=behind - 1, soft_bytes=BIG, soft_seconds=BIG, stall_grace=0.0)
    stream = published(limits)
    stream.publish_message(key(0))
    sink = blocked_player(stream)
    for ts in range(40, 401, 40):
        stream.publish_message(inter(ts, 500))
        stream.flush(ts / 1000)
    assert sink.closed is None  # one message short of the bound: still a player
    stream.publish_message(key(440, 500))
    stream.flush(0.44)
    assert sink.closed == f"{behind} bytes behind (limit {behind - 1})"
    assert stream.players == set()


def test_a_blocked_player_exactly_hard_bytes_behind_stays() -> None:
    behind = bytes_behind_with_ten_frames_and_a_keyframe()
    stream, sink, _ = fall_behind_by_bytes(
        FanoutLimits(hard_bytes=behind, soft_bytes=BIG, soft_seconds=BIG, stall_grace=0.0)
    )
    assert sink.closed is None
    sink.writable = True
    stream.flush(0.48)
    assert stamps(sink) == list(range(0, 441, 40))


# ------------------------------------------------------------------------------ gop_max_bytes

GOP = [key(0), inter(40), inter(80), inter(120)]
GOP_PAYLOAD_BYTES = sum(len(m.payload) for m in GOP)
"""What the GOP cache counts against ``gop_max_bytes``: media payload bytes."""


def late_joiner_after(
    limits: FanoutLimits, *, watched: bool, flushed: bool = True
) -> tuple[LiveStream, Sink, Sink]:
    """Publish :data:`GOP` (with a player watching from the start when ``watched``; with a
    flush after each message when ``flushed``), then a player joins; return the stream, the
    joiner and the watcher."""
    stream = published(limits)
    watcher = Sink()
    if watched:
        stream.add_player(watcher, 1)
    for message in GOP:
        stream.publish_message(message)
        if flushed:
            stream.flush(message.timestamp / 1000)
    joiner = Sink()
    stream.add_player(joiner, 1)
    stream.flush(0.13)
    return stream, joiner, watcher


def test_a_gop_of_exactly_gop_max_bytes_is_cached_for_a_late_joiner() -> None:
    _, joiner, _ = late_joiner_after(FanoutLimits(gop_max_bytes=GOP_PAYLOAD_BYTES), watched=False)
    assert stamps(joiner) == [0, 40, 80, 120]


def test_a_gop_one_byte_over_gop_max_bytes_is_not_cached_and_a_joiner_waits_for_a_keyframe() -> (
    None
):
    stream, joiner, _ = late_joiner_after(
        FanoutLimits(gop_max_bytes=GOP_PAYLOAD_BYTES - 1), watched=False
    )
    assert joiner.messages() == []
    assert stream.players_in([PlayerState.PARKED]) == 1
    stream.publish_message(key(160))
    stream.flush(0.16)
    assert stamps(joiner) == [160]


def test_a_gop_over_gop_max_bytes_is_not_served_from_a_watched_stream_either() -> None:
    """The log a watching player keeps is no back door around the cap: a joiner still waits
    for the next keyframe, while the watcher gets everything."""
    stream, joiner, watcher = late_joiner_after(
        FanoutLimits(gop_max_bytes=GOP_PAYLOAD_BYTES - 1), watched=True
    )
    assert joiner.messages() == []
    stream.publish_message(key(160))
    stream.flush(0.16)
    assert stamps(joiner) == [160]
    assert stamps(watcher) == [0, 40, 80, 120, 160]


def test_a_gop_over_gop_max_bytes_is_not_served_to_a_joiner_between_two_flushes() -> None:
    """The GOP outgrew the cap within one flush interval, so the watcher's log still holds it
    from its keyframe: the joiner still waits for the next one."""
    _, joiner, watcher = late_joiner_after(
        FanoutLimits(gop_max_bytes=GOP_PAYLOAD_BYTES - 1), watched=True, flushed=False
    )
    assert joiner.messages() == []
    assert stamps(watcher) == [0, 40, 80, 120]


def test_a_watched_stream_that_never_sends_another_keyframe_holds_at_most_gop_max_bytes() -> None:
    """One keyframe, then inter frames for ever (an encoder with intra refresh, or a hostile
    one): what the stream holds stays within the GOP cap, however long it runs."""
    cap = 20_000
    stream = published(FanoutLimits(gop_max_bytes=cap))
    watcher = Sink()
    stream.add_player(watcher, 1)
    first = key(0, 995)
    stream.publish_message(first)
    stream.flush(0.0)
    peak = 0
    for i in range(1, 1000):  # 1 MB of inter frames of 1,000 payload bytes
        stream.publish_message(inter(i * 40, 995))
        stream.flush(i * 0.04)
        peak = max(peak, stream.memory())
    # The cache (at most `cap` payload bytes) plus the same messages encoded once in the log,
    # plus the message that overflowed it: the GOP cap, about twice.
    frames = cap // len(first.payload) + 1
    assert peak <= cap + frames * encoded(first)
    assert len(watcher.messages()) == 1000


# ----------------------------------------------------------------------------- gop_max_frames


def test_a_gop_of_exactly_gop_max_frames_is_cached_for_a_late_joiner() -> None:
    _, joiner, _ = late_joiner_after(FanoutLimits(gop_max_frames=len(GOP)), watched=False)
    assert stamps(joiner) == [0, 40, 80, 120]


def test_a_gop_one_message_over_gop_max_frames_is_not_cached() -> None:
    stream, joiner, _ = late_joiner_after(FanoutLimits(gop_max_frames=len(GOP) - 1), watched=False)
    assert joiner.messages() == []
    stream.publish_message(key(160))
    stream.flush(0.16)
    assert stamps(joiner) == [160]


def test_a_gop_over_gop_max_frames_is_not_served_from_a_watched_stream_either() -> None:
    stream, joiner, _ = late_joiner_after(FanoutLimits(gop_max_frames=len(GOP) - 1), watched=True)
    assert joiner.messages() == []
    stream.publish_message(key(160))
    stream.flush(0.16)
    assert stamps(joiner) == [160]


# ------------------------------------------------- codec headers that changed while skipped


def payloads(sink: Sink) -> list[bytes]:
    return [m.payload for m in sink.messages()]


def with_headers(limits: FanoutLimits) -> tuple[LiveStream, Sink]:
    """A stream with AVC and AAC headers and a keyframe, and a player that received them."""
    stream = published(limits)
    for message in (Media(9, 0, 1, AVC_HEADER), Media(8, 0, 1, AAC_HEADER), key(0)):
        stream.publish_message(message)
    sink = Sink()
    stream.add_player(sink, 1)
    stream.flush(0.0)
    assert payloads(sink) == [AVC_HEADER, AAC_HEADER, key(0).payload]
    return stream, sink


def test_a_parked_player_gets_the_codec_header_that_changed_before_it_resumes() -> None:
    stream, sink = with_headers(
        FanoutLimits(soft_bytes=1000, soft_seconds=BIG, hard_bytes=BIG, stall_grace=0.0)
    )
    sink.writable = False
    for ts in (40, 80, 120):  # past soft_bytes with no keyframe ahead: parked
        stream.publish_message(inter(ts, 500))
        stream.flush(ts / 1000)
    assert stream.players_in([PlayerState.PARKED]) == 1
    sink.writable = True
    stream.publish_message(Media(9, 160, 1, AVC_HEADER_2))  # the encoder restarted its codec
    stream.publish_message(inter(160))  # parked: skipped, as is the new header before it
    stream.flush(0.16)
    stream.publish_message(key(200))
    stream.flush(0.2)
    got = sink.messages()[3:]
    assert [m.payload for m in got if m.type_id == MessageType.VIDEO] == [
        AVC_HEADER_2,
        key(200).payload,
    ]
    assert {m.timestamp for m in got if m.type_id == MessageType.VIDEO} == {200}


def test_a_player_that_skipped_ahead_gets_the_codec_header_it_skipped() -> None:
    stream, sink = with_headers(
        FanoutLimits(soft_bytes=1000, soft_seconds=BIG, hard_bytes=BIG, stall_grace=0.0)
    )
    sink.writable = False
    stream.publish_message(inter(40, 100))
    stream.flush(0.04)
    # In one flush interval: past soft_bytes with a keyframe ahead, after a new header.
    for message in (inter(80, 500), Media(9, 120, 1, AVC_HEADER_2), key(120, 500)):
        stream.publish_message(message)
    stream.flush(0.12)
    assert sink.closed is None
    sink.writable = True
    stream.publish_message(inter(160))
    stream.flush(0.16)
    got = [m for m in sink.messages()[3:] if m.type_id == MessageType.VIDEO]
    assert [m.payload for m in got] == [AVC_HEADER_2, key(120, 500).payload, inter(160).payload]


def test_a_player_resuming_from_pause_gets_the_codec_header_that_changed_meanwhile() -> None:
    stream, sink = with_headers(FanoutLimits())
    (player,) = stream.players
    stream.set_paused(player, True)
    stream.publish_message(Media(9, 40, 1, AVC_HEADER_2))
    stream.publish_message(key(40))
    stream.flush(0.04)
    stream.set_paused(player, False)
    stream.publish_message(inter(80))
    stream.publish_message(key(120))
    stream.flush(0.12)
    got = [m.payload for m in sink.messages()[3:] if m.type_id == MessageType.VIDEO]
    assert got == [AVC_HEADER_2, key(120).payload]


def test_a_player_that_turns_video_on_gets_the_video_header_first() -> None:
    """A player that joined audio only never received the video header; receiveVideo(true)
    resumes it at a keyframe, which it can decode only with that header."""
    stream = published()
    for message in (Media(9, 0, 1, AVC_HEADER), Media(8, 0, 1, AAC_HEADER), key(0)):
        stream.publish_message(message)
    sink = Sink()
    player = stream.add_player(sink, 1, video=False)
    stream.publish_message(audio(20))
    stream.flush(0.02)
    assert payloads(sink) == [AAC_HEADER, audio(20).payload]
    stream.select(player, video=True)
    stream.publish_message(key(40))
    stream.flush(0.04)
    got = [m.payload for m in sink.messages() if m.type_id == MessageType.VIDEO]
    assert got == [AVC_HEADER, key(40).payload]


# ------------------------------------------------------------------------------- stall_grace

STEP = 1 / 128
"""Seconds between flushes below (7.8 ms, exact in binary), as the adaptive flush runs them
when flushes are cheap."""
GRACE = 8 * STEP


def taking_nothing_during_a_burst(stall_grace: float, flushes: int) -> Sink:
    """A player catching up on a burst (ten 500-byte inter frames after its keyframe, then a
    keyframe: far past soft_bytes and hard_bytes below, which only a blocked player is judged
    on) whose socket takes nothing at ``flushes`` flushes :data:`STEP` apart, so for
    ``(flushes - 1) * STEP`` seconds counted from the first of them; then it reads again."""
    limits = FanoutLimits(stall_grace=stall_grace, soft_bytes=1000, hard_bytes=2000)
    stream = published(limits)
    stream.publish_message(key(0))
    sink = blocked_player(stream)
    for message in [inter(ts, 500) for ts in range(40, 401, 40)] + [key(440, 500)]:
        stream.publish_message(message)
    for n in range(1, flushes + 1):
        stream.flush(n * STEP)
    sink.writable = True
    stream.flush((flushes + 1) * STEP)
    return sink


def test_a_player_that_takes_nothing_for_a_flush_less_than_stall_grace_loses_nothing() -> None:
    sink = taking_nothing_during_a_burst(stall_grace=GRACE, flushes=8)
    assert sink.closed is None
    assert stamps(sink) == list(range(0, 441, 40))


def test_a_player_that_takes_nothing_for_stall_grace_is_judged_on_its_lag() -> None:
    # About 5,800 bytes behind: past hard_bytes, so it is closed.
    sink = taking_nothing_during_a_burst(stall_grace=GRACE, flushes=9)
    assert sink.closed is not None and "bytes behind (limit 2000)" in sink.closed


def test_a_grace_of_zero_judges_a_player_at_the_first_flush_it_takes_nothing() -> None:
    sink = taking_nothing_during_a_burst(stall_grace=0.0, flushes=1)
    assert sink.closed is not None and "bytes behind (limit 2000)" in sink.closed
