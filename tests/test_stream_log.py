"""The fan-out log of a live stream: what it counts, what it keeps, and where slow players resume.

The delivery bounds are only as good as the bookkeeping under them: the bytes and seconds a
cursor is behind, which entries a trim may drop, which keyframe a player may resume at, and when
a player's stall clock runs. These tests pin that bookkeeping (the bounds' own values are tested
in tests/test_stream.py and the stream-limit tests); they were written to kill the mutants of
``scripts/mutate.py`` that survived the older stream tests (see docs/testing.md).

In-memory sinks, time passed in: no sockets, no clock.
"""

from __future__ import annotations

from fms.live.log import SharedLog as _Log
from fms.live.stream import FanoutLimits, LiveStream, PlayerState
from fms.rtmp.chunks import ChunkDecoder, ChunkEncoder, RawMessage
from fms.rtmp.constants import MessageType
from fms.rtmp.messages import Media, SetChunkSize, encode_message


def key(ts: int, size: int = 100) -> Media:
    return Media(MessageType.VIDEO, ts, 1, b"\x17\x01\x00\x00\x00" + b"k" * size)


def inter(ts: int, size: int = 100) -> Media:
    return Media(MessageType.VIDEO, ts, 1, b"\x27\x01\x00\x00\x00" + b"i" * size)


def audio(ts: int) -> Media:
    return Media(MessageType.AUDIO, ts, 1, b"\xaf\x01" + b"a" * 20)


AVC_HEADER = b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f"
AAC_HEADER = b"\xaf\x00\x12\x10"


class Sink:
    """A player's connection: records writes; ``writable`` is its transport's back-pressure."""

    def __init__(self, writable: bool = True) -> None:
        self.writes: list[bytes] = []
        self.writable = writable
        self.closes: list[str] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def can_write(self) -> bool:
        return self.writable

    def pending(self) -> int:
        return 0  # what it is handed, its socket takes

    def close(self, reason: str) -> None:
        self.closes.append(reason)

    def publish_started(self) -> None:
        pass

    def publish_stopped(self) -> None:
        pass

    def media(self) -> list[RawMessage]:
        """The audio and video messages written so far, decoded as a player would."""
        decoder = ChunkDecoder()
        decoder.enable_media()
        decoder.receive_data(ChunkEncoder().encode(encode_message(SetChunkSize(4096))))
        out = decoder.receive_data(b"".join(self.writes))
        return [m for m in out if m.type_id in (MessageType.AUDIO, MessageType.VIDEO)]

    def stamps(self) -> list[int]:
        return [m.timestamp for m in self.media()]


def published(limits: FanoutLimits | None = None) -> LiveStream:
    stream = LiveStream("live", "cam", limits)
    stream.start_publish(object())
    return stream


def log_of(sizes: list[int], stamps: list[int]) -> _Log:
    """A log of entries of the given sizes (bytes) and timestamps (ms), the first a keyframe."""
    log = _Log(1, True, True)
    for i, (size, stamp) in enumerate(zip(sizes, stamps, strict=True)):
        log.append(bytes(size), stamp, i == 0)
    return log


# --- _Log: bytes and seconds behind --------------------------------------------------------


def test_bytes_and_seconds_behind_run_from_the_cursors_entry_to_the_head() -> None:
    log = log_of([10, 20, 30, 40], [0, 40, 80, 120])
    assert log.behind(0) == (100, 0.12)
    assert log.behind(1) == (90, 0.08)
    assert log.behind(3) == (40, 0.0)


def test_after_a_trim_bytes_behind_count_only_the_entries_kept() -> None:
    log = log_of([10, 20, 30, 40], [0, 40, 80, 120])
    log.trim(2)
    assert log.behind(2) == (70, 0.04)


def test_a_cursor_at_the_head_is_nothing_behind() -> None:
    log = log_of([10, 20], [0, 40])
    assert log.behind(log.head) == (0, 0.0)


def test_seconds_behind_are_counted_across_the_32_bit_timestamp_wrap() -> None:
    log = log_of([10, 10], [0xFFFFFFF0, 0x10])
    assert log.behind(0) == (20, 0.032)


# --- _Log: trimming ------------------------------------------------------------------------


def test_trim_forgets_exactly_the_entries_before_keep_from() -> None:
    log = log_of([10, 20, 30], [0, 40, 80])
    log.trim(1)
    assert (log.base, log.head) == (1, 3)
    assert log.since(1) == bytes(50)


def test_trim_to_a_point_before_the_base_forgets_nothing() -> None:
    log = log_of([10, 20, 30], [0, 40, 80])
    log.trim(2)
    log.trim(1)
    assert (log.base, log.head, log.since(0)) == (2, 3, bytes(30))


def test_a_keyframe_trimmed_away_is_forgotten() -> None:
    log = log_of([10, 20, 30], [0, 40, 80])
    log.trim(1)
    assert log.keyframe is None


def test_a_trim_up_to_the_keyframe_keeps_it() -> None:
    log = _Log(1, True, True)
    log.append(bytes(10), 0, False)
    log.append(bytes(10), 40, True)
    log.trim(1)
    assert log.keyframe == 1


# --- LiveStream: what the log keeps --------------------------------------------------------


def test_a_player_keeps_receiving_after_the_log_was_trimmed_at_a_new_keyframe() -> None:
    """Sequence numbers go on across trims: a cursor past a trim still meets new messages."""
    stream = published()
    sink = Sink()
    stream.publish_message(key(0))
    stream.add_player(sink, 1)
    for ts in (40, 80, 120, 160):
        stream.publish_message(key(ts) if ts == 80 else inter(ts))
        stream.flush(ts / 1000)
    assert sink.stamps() == [0, 40, 80, 120, 160]


def test_a_late_joiner_sharing_a_trimmed_log_gets_the_gop_from_its_keyframe() -> None:
    """The log keeps the newest GOP for joiners even when every player already has it."""
    stream = published()
    stream.add_player(Sink(), 1)
    for ts in (0, 40, 80, 120):
        stream.publish_message(key(ts) if ts in (0, 80) else inter(ts))
        stream.flush(ts / 1000)
    late = Sink()
    stream.add_player(late, 1)
    stream.flush(0.2)
    assert late.stamps() == [80, 120]


def test_without_a_gop_cache_the_log_keeps_nothing_every_player_has() -> None:
    stream = published(FanoutLimits(gop_cache=False))
    stream.add_player(Sink(), 1)
    for ts in (0, 40, 80):
        stream.publish_message(key(ts) if ts == 0 else inter(ts))
    stream.flush(0.1)
    assert stream.memory() == 0


def test_a_parked_player_holds_back_no_log_entries() -> None:
    """A player waiting for a keyframe will skip whatever comes before it: nothing is kept
    for it."""
    stream = published(FanoutLimits(gop_cache=False))
    stream.add_player(Sink(), 1)
    stream.publish_message(key(0))
    stream.flush(0.0)
    parked = stream.add_player(Sink(), 1)  # no keyframe to start at: it waits
    assert parked.state is PlayerState.PARKED
    for ts in (40, 80, 120):
        stream.publish_message(inter(ts))
    stream.flush(0.2)
    assert stream.memory() == 0


def test_without_a_gop_cache_a_late_joiner_waits_even_after_the_old_keyframe_was_trimmed() -> None:
    stream = published(FanoutLimits(gop_cache=False))
    stream.add_player(Sink(), 1)
    stream.publish_message(key(0))
    stream.publish_message(inter(40))
    stream.flush(0.0)  # everyone has the keyframe: the log drops it
    late = Sink()
    stream.add_player(late, 1)
    stream.publish_message(inter(80))
    stream.flush(0.1)
    assert late.stamps() == []
    stream.publish_message(key(120))
    stream.flush(0.2)
    assert late.stamps() == [120]


def test_after_the_last_player_of_a_log_left_a_late_joiner_still_gets_the_gop() -> None:
    stream = published()
    first = stream.add_player(Sink(), 1)
    stream.publish_message(key(0))
    stream.publish_message(inter(40))
    stream.flush(0.0)
    stream.remove_player(first)
    stream.flush(0.1)  # a log without players keeps the GOP for the next one
    late = Sink()
    stream.add_player(late, 1)
    stream.flush(0.2)
    assert late.stamps() == [0, 40]


# --- LiveStream: what the GOP cache holds ----------------------------------------------------


def test_frames_before_the_first_keyframe_are_not_cached_for_late_joiners() -> None:
    stream = published()
    stream.publish_message(inter(0))
    stream.publish_message(inter(40))
    late = Sink()
    stream.add_player(late, 1)
    stream.flush(0.0)
    assert late.stamps() == []
    stream.publish_message(key(80))
    stream.flush(0.1)
    assert late.stamps() == [80]


def test_the_first_player_of_an_audio_only_stream_gets_the_latest_audio_at_once() -> None:
    """Without video every audio frame is a sync point: the cache holds the newest one."""
    stream = published()
    for ts in (0, 23, 46):
        stream.publish_message(audio(ts))
    sink = Sink()
    stream.add_player(sink, 1)
    stream.flush(0.1)
    assert sink.stamps() == [46]


def test_an_audio_header_after_the_keyframe_reaches_a_late_joiner_once() -> None:
    """Sequence headers travel in the joiner's preamble, not again inside the cached GOP."""
    stream = published()
    stream.publish_message(Media(MessageType.VIDEO, 0, 1, AVC_HEADER))
    stream.publish_message(key(0))
    stream.publish_message(Media(MessageType.AUDIO, 0, 1, AAC_HEADER))
    stream.publish_message(audio(10))
    late = Sink()
    stream.add_player(late, 1)
    stream.flush(0.1)
    payloads = [m.payload for m in late.media()]
    assert payloads == [AVC_HEADER, AAC_HEADER, key(0).payload, audio(10).payload]


# --- LiveStream: flushing ------------------------------------------------------------------


def test_a_flush_writes_nothing_to_a_player_that_has_everything() -> None:
    stream = published()
    sink = Sink()
    stream.add_player(sink, 1)
    stream.publish_message(key(0))
    stream.flush(0.0)
    writes = len(sink.writes)
    stream.flush(0.1)
    stream.flush(0.2)
    assert len(sink.writes) == writes


def test_write_progress_restarts_the_stall_clock() -> None:
    """Blocked at 1 s, written at 2 s, blocked again at 8 s: at 12 s it has been stalled 4 s,
    not 11 s, and stays (stall timeout 10 s)."""
    stream = published(FanoutLimits(stall_timeout=10.0, soft_seconds=1000.0))
    sink = Sink()
    stream.add_player(sink, 1)
    stream.publish_message(key(0))
    stream.flush(0.0)
    sink.writable = False
    stream.publish_message(inter(40))
    stream.flush(1.0)
    sink.writable = True
    stream.flush(2.0)
    sink.writable = False
    stream.publish_message(inter(80))
    stream.flush(8.0)
    stream.flush(12.0)
    assert sink.closes == []
    stream.flush(18.5)
    assert len(sink.closes) == 1 and "no write progress" in sink.closes[0]


def test_a_stalled_player_that_also_fell_past_the_soft_bound_is_closed_once() -> None:
    """The stall verdict ends that player's turn: it is not also skipped or parked (it has no
    log any more), and the flush goes on for the others."""
    limits = FanoutLimits(stall_timeout=10.0, soft_bytes=2_000, soft_seconds=1000.0)
    stream = published(limits)
    slow, other = Sink(), Sink()
    stream.add_player(slow, 1)
    stream.add_player(other, 1)
    stream.publish_message(key(0))
    stream.flush(0.0)
    slow.writable = False
    stream.publish_message(inter(40))
    stream.flush(1.0)  # blocked from now, 1 message behind
    for ts in range(80, 600, 40):
        stream.publish_message(inter(ts, 500))  # far past the soft bound by the next flush
    stream.flush(11.5)
    assert len(slow.closes) == 1 and "no write progress" in slow.closes[0]
    assert other.stamps() == [0, 40, *range(80, 600, 40)]


def test_a_blocked_player_within_the_soft_bound_gets_every_message_it_missed() -> None:
    """The log keeps what an active player has not been sent, also without a GOP cache."""
    stream = published(FanoutLimits(gop_cache=False, soft_seconds=1000.0))
    slow, fast = Sink(), Sink()
    stream.add_player(slow, 1)
    stream.add_player(fast, 1)
    stream.publish_message(key(0))
    stream.flush(0.0)
    slow.writable = False
    for ts in (40, 80, 120):
        stream.publish_message(inter(ts))
        stream.flush(ts / 1000)
    slow.writable = True
    stream.flush(0.2)
    assert slow.stamps() == [0, 40, 80, 120]


# --- LiveStream: where a slow player resumes -------------------------------------------------


def test_a_slow_player_already_at_the_newest_keyframe_waits_for_the_next_one() -> None:
    """Past the soft bound with no newer keyframe to skip to, the player is parked at the head:
    it gets nothing of the backlog, and resumes at the next keyframe."""
    stream = published(FanoutLimits(soft_bytes=2_000, soft_seconds=1000.0, stall_grace=0.0))
    stream.publish_message(key(0))
    for ts in range(40, 440, 40):
        stream.publish_message(inter(ts, 500))
    slow = Sink(writable=False)
    player = stream.add_player(slow, 1)  # starts at the cached keyframe, 5 kB behind
    stream.flush(0.5)
    assert player.state is PlayerState.PARKED
    slow.writable = True
    stream.publish_message(inter(440))
    stream.flush(0.6)
    assert slow.stamps() == []
    stream.publish_message(key(480))
    stream.publish_message(inter(520))
    stream.flush(0.7)
    assert slow.stamps() == [480, 520]


def test_a_slow_player_with_no_keyframe_in_the_log_waits_for_the_next_one() -> None:
    """Without a GOP cache the log may hold no keyframe at all when a player falls past the
    soft bound: it is parked, and resumes at the next keyframe."""
    stream = published(
        FanoutLimits(gop_cache=False, soft_bytes=2_000, soft_seconds=1000.0, stall_grace=0.0)
    )
    slow = Sink()
    stream.add_player(slow, 1)
    stream.publish_message(key(0))
    stream.flush(0.0)  # sent, and trimmed from the log
    slow.writable = False
    for ts in range(40, 440, 40):
        stream.publish_message(inter(ts, 500))
    stream.flush(0.5)
    slow.writable = True
    stream.publish_message(key(480))
    stream.flush(0.6)
    assert slow.stamps() == [0, 480]


def test_a_slow_player_skips_at_once_to_a_newer_keyframe_already_in_the_log() -> None:
    """Past the soft bound, a player behind a keyframe that is already in the log jumps to it
    (and does not wait for the one after)."""
    stream = published(FanoutLimits(soft_bytes=2_000, soft_seconds=1000.0, stall_grace=0.0))
    slow = Sink()
    stream.add_player(slow, 1)
    stream.publish_message(key(0))
    stream.flush(0.0)
    slow.writable = False
    for ts in range(40, 240, 40):
        stream.publish_message(inter(ts, 500))
    stream.publish_message(key(240))
    stream.publish_message(inter(280))
    stream.flush(0.3)
    slow.writable = True
    stream.flush(0.4)
    assert slow.stamps() == [0, 240, 280]


def test_a_player_resumed_at_a_keyframe_keeps_receiving_in_later_flushes() -> None:
    stream = published(FanoutLimits(gop_cache=False))
    stream.publish_message(key(0))
    stream.publish_message(inter(40))
    sink = Sink()
    player = stream.add_player(sink, 1)  # no keyframe cached: parked until the next one
    stream.publish_message(key(80))
    stream.flush(0.1)
    assert player.state is PlayerState.ACTIVE
    stream.publish_message(inter(120))
    stream.flush(0.2)
    assert sink.stamps() == [80, 120]


def test_a_player_without_audio_still_gets_the_data_messages() -> None:
    """Data messages (onTextData, cue points) belong to every selection, video-only included."""
    from fms.rtmp.messages import Data

    stream = LiveStream("live", "cam", FanoutLimits())
    stream.start_publish(object())
    sink = Sink()
    player = stream.add_player(sink, 1, audio=False)
    assert player.log is not None
    stream.publish_message(Data(("onTextData", {"text": "hello"}), 1, 0))
    stream.flush(0.0)
    decoder = ChunkDecoder()
    decoder.enable_media()
    decoder.receive_data(ChunkEncoder().encode(encode_message(SetChunkSize(4096))))
    got = decoder.receive_data(b"".join(sink.writes))
    assert any(m.type_id == MessageType.DATA_AMF0 for m in got)


def test_bytes_behind_count_exactly_the_entries_after_the_cursor() -> None:
    log = _Log(1, True, True)
    for size in (100, 200, 300, 400):
        log.append(b"x" * size, 0, False)
    assert [log.behind(seq)[0] for seq in range(4)] == [1000, 900, 700, 400]
    assert log.behind(1, within=50)[0] == 850
