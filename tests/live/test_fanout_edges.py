"""The fan-out's edges: where a joiner starts, when the stall clock runs, what a failing sink
costs, and the exact boundaries of the player buffer and of the shared log's bound.

Written to kill the mutants of ``fms/live/stream.py`` that survived the stream tests after the
shared-log rewrite (issue 20; see docs/testing.md). In-memory sinks, time passed in: no
sockets, no clock.
"""

from __future__ import annotations

from fms.live.registry import StreamRegistry
from fms.live.stream import FanoutLimits, LiveStream, PlayerState
from fms.rtmp.chunks import encode_shared
from fms.rtmp.constants import MessageType
from fms.rtmp.messages import Data, Media, encode_message
from tests.support.live_sink import AVC_HEADER, Sink, audio, inter, key, published

ENTRY = len(encode_shared(encode_message(inter(0)), 4096))
"""Bytes of one encoded ``key``/``inter`` frame of the default size in the shared log."""

BIG = 1_000
"""Payload padding (bytes) of the frames a small player buffer takes in several pieces."""


class Socket(Sink):
    """A player behind a socket: what is written waits in user space (``pending``) until the
    kernel takes it, which it does at once while it has room (``kernel_free`` bytes)."""

    def __init__(self, kernel_free: int = 0, waiting: int = 0) -> None:
        super().__init__()
        self.kernel_free = kernel_free
        self.waiting = waiting

    def write(self, data: bytes) -> None:
        super().write(data)
        self.waiting += len(data)
        self.drain(0)

    def pending(self) -> int:
        return self.waiting

    def drain(self, size: int) -> None:
        """The reader consumed ``size`` bytes: the kernel takes that much more."""
        self.kernel_free += size
        moved = min(self.waiting, self.kernel_free)
        self.waiting -= moved
        self.kernel_free -= moved


class FailingSink(Sink):
    """A player whose connection raises on write once ``failing`` is set; it counts the writes
    tried and every close."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = False
        self.tries = 0
        self.closes: list[str] = []

    def write(self, data: bytes) -> None:
        self.tries += 1
        if self.failing:
            raise ConnectionError("gone")
        super().write(data)

    def close(self, reason: str) -> None:
        super().close(reason)
        self.closes.append(reason)


def video_stamps(sink: Sink) -> list[int]:
    return [m.timestamp for m in sink.messages() if m.type_id == MessageType.VIDEO]


# --- the GOP cache ---------------------------------------------------------------------------


def test_a_gop_over_its_frame_limit_holds_no_memory_until_the_next_keyframe() -> None:
    stream = published(FanoutLimits(gop_max_frames=3))
    stream.publish_message(key(0))
    for ts in (40, 80, 120, 160):  # the fourth frame of the GOP puts it over the limit
        stream.publish_message(inter(ts))
    assert stream.memory() == 0


def test_a_player_joining_while_the_gop_is_uncached_gets_none_of_the_dropped_gop() -> None:
    """Its new log is not seeded with the frames of a GOP that went over the limit (it starts
    at the next keyframe anyway): nothing is encoded or held for it."""
    stream = published(FanoutLimits(gop_max_frames=3))
    stream.publish_message(key(0))
    for ts in (40, 80, 120, 160):
        stream.publish_message(inter(ts))
    stream.add_player(Sink(), 1)
    assert (stream.encodes, stream.memory()) == (0, 0)


# --- where a player starts --------------------------------------------------------------------


def test_a_player_that_stayed_through_a_republish_gets_the_new_publishers_first_frames() -> None:
    stream = published()
    sink = Sink()
    stream.add_player(sink, 1)
    stream.publish_message(key(0))
    stream.publish_message(inter(40))
    stream.flush(0.0)
    stream.stop_publish()
    stream.start_publish(object())
    stream.publish_message(key(0))
    stream.publish_message(inter(40))
    stream.flush(1.0)
    assert video_stamps(sink) == [0, 40, 0, 40]


def test_a_player_that_waited_for_the_publisher_can_pause_as_soon_as_it_starts() -> None:
    stream = LiveStream("live", "cam")
    sink = Sink()
    player = stream.add_player(sink, 1)
    stream.start_publish(object())
    stream.set_paused(player, True)
    stream.publish_message(key(0))
    stream.flush(0.0)
    assert video_stamps(sink) == []


def test_without_a_gop_cache_a_joiner_starts_at_a_keyframe_a_slower_player_still_holds() -> None:
    stream = published(FanoutLimits(gop_cache=False))
    slow = Sink()
    slow.writable = False
    stream.add_player(slow, 1)
    stream.publish_message(key(0))
    stream.publish_message(inter(40))
    stream.flush(0.0)  # the slow player holds both in the log
    late = Sink()
    stream.add_player(late, 1)
    stream.flush(0.1)
    assert video_stamps(late) == [0, 40]


def test_a_joiner_starts_at_the_newest_keyframe_not_at_what_a_slower_player_holds() -> None:
    stream = published()
    slow = Sink()
    slow.writable = False
    stream.add_player(slow, 1)
    for ts in (0, 40, 80, 120):
        stream.publish_message(key(ts) if ts in (0, 80) else inter(ts))
    stream.flush(0.0)  # the slow player holds all four in the log
    late = Sink()
    stream.add_player(late, 1)
    stream.flush(0.1)
    assert video_stamps(late) == [80, 120]


def test_an_audio_only_player_of_video_without_a_keyframe_yet_gets_data_at_once() -> None:
    """It does not wait for a video keyframe it will never receive: the next data message and
    audio frame reach it."""
    stream = published()
    stream.publish_message(inter(0))  # video, but no keyframe yet
    sink = Sink()
    stream.add_player(sink, 1, video=False)
    stream.publish_message(Data(("onTextData", {"text": "hello"}), 1, 20))
    stream.publish_message(audio(40))
    stream.flush(0.0)
    kinds = [m.type_id for m in sink.messages()]
    assert kinds == [MessageType.DATA_AMF0, MessageType.AUDIO]


def test_a_second_audio_only_player_starts_at_the_head_not_at_the_first_ones_backlog() -> None:
    stream = published()
    stream.publish_message(inter(0))  # video, but no keyframe: no GOP to start from
    first = Sink()
    first.writable = False
    stream.add_player(first, 1, video=False)
    stream.publish_message(audio(0))
    stream.publish_message(audio(23))
    stream.flush(0.0)  # the first player holds both in the log
    second = Sink()
    stream.add_player(second, 1, video=False)
    stream.publish_message(audio(46))
    stream.flush(0.1)
    assert [m.timestamp for m in second.messages()] == [46]


def test_a_player_added_between_flushes_gets_the_gop_at_the_next_flush_tick() -> None:
    """The registry flushes only streams with something to deliver: a new player is that."""
    registry = StreamRegistry()
    stream = registry.claim("live", "cam", object())
    assert stream is not None
    stream.publish_message(key(0))
    registry.flush(0.0)
    sink = Sink()
    registry.play("live", "cam", sink, 1)
    registry.flush(0.1)
    assert video_stamps(sink) == [0]


def test_a_video_only_player_of_an_audio_only_stream_gets_its_data_messages() -> None:
    """Its log has no keyframe while the GOP cache has one (audio): the flush copes."""
    stream = published()
    stream.publish_message(audio(0))
    sink = Sink()
    stream.add_player(sink, 1, audio=False)
    stream.publish_message(Data(("onTextData", {"text": "hello"}), 1, 20))
    stream.flush(0.0)
    assert [m.type_id for m in sink.messages()] == [MessageType.DATA_AMF0]


# --- the stall clock ---------------------------------------------------------------------------


def test_a_caught_up_player_is_not_closed_for_stalling_while_no_message_comes() -> None:
    stream = published(FanoutLimits(stall_timeout=10.0))
    sink = Sink()
    stream.add_player(sink, 1)
    stream.publish_message(key(0))
    stream.flush(0.0)
    stream.flush(5.0)  # nothing new (another log or a resumed transport asked for a flush)
    stream.flush(20.0)
    assert sink.closed is None


def test_the_stall_clock_starts_at_the_first_flush_that_finds_the_player_blocked() -> None:
    """Caught up at 1 s, blocked from 9 s: still there at 15 s, closed at 19.5 s (10 s)."""
    stream = published(FanoutLimits(stall_timeout=10.0, soft_seconds=1000.0))
    sink = Sink()
    stream.add_player(sink, 1)
    stream.publish_message(key(0))
    stream.flush(0.0)
    stream.flush(1.0)
    sink.writable = False
    stream.publish_message(inter(40))
    stream.flush(9.0)
    stream.flush(15.0)
    assert sink.closed is None
    stream.flush(19.5)
    assert sink.closed is not None and "no write progress" in sink.closed


def test_a_player_blocked_exactly_stall_timeout_is_not_yet_closed() -> None:
    stream = published(FanoutLimits(stall_timeout=10.0, soft_seconds=1000.0))
    sink = Sink()
    stream.add_player(sink, 1)
    sink.writable = False
    stream.publish_message(key(0))
    stream.flush(1.0)  # blocked from 1 s
    stream.flush(11.0)
    assert sink.closed is None
    stream.flush(11.5)
    assert sink.closed is not None


# --- a sink that fails -------------------------------------------------------------------------


def test_a_player_whose_sink_fails_on_its_resent_headers_is_closed_once() -> None:
    """Parked while blocked, it resumes at a keyframe after a header change; the header write
    fails: it is dropped there, not judged again for the stall it had before."""
    stream = published(
        FanoutLimits(stall_timeout=10.0, soft_bytes=2_000, soft_seconds=1000.0, stall_grace=0.0)
    )
    sink = FailingSink()
    player = stream.add_player(sink, 1)
    stream.publish_message(key(0))
    stream.flush(0.0)
    sink.writable = False
    for ts in range(40, 440, 40):
        stream.publish_message(inter(ts, 500))
    stream.flush(1.0)  # blocked from 1 s and past the soft bound: parked
    assert player.state is PlayerState.PARKED
    stream.publish_message(Media(MessageType.VIDEO, 440, 1, AVC_HEADER))
    stream.publish_message(key(440))
    sink.failing = True
    stream.flush(20.0)
    assert len(sink.closes) == 1


def sink_failing_in_its_backlog() -> tuple[LiveStream, FailingSink, Socket]:
    """A stream whose player buffer holds one frame: the failing player is handed its 2-frame
    backlog in pieces and fails on the first, 5 s after the frames came (soft_seconds 3 s);
    another player shares the log. Flushed once."""
    stream = published(FanoutLimits(player_buffer=ENTRY, soft_seconds=3.0))
    failing, other = FailingSink(), Socket(kernel_free=1 << 62)
    stream.add_player(failing, 1)
    stream.add_player(other, 1)
    failing.writable = False
    stream.publish_message(key(0))
    stream.publish_message(inter(40))
    stream.flush(0.0)
    failing.writable = True
    failing.failing = True
    stream.flush(5.0)
    return stream, failing, other


def test_a_player_whose_sink_fails_is_handed_nothing_more() -> None:
    _, failing, _ = sink_failing_in_its_backlog()
    assert (failing.tries, len(failing.closes)) == (1, 1)


def test_a_player_whose_sink_fails_in_the_middle_of_its_backlog_leaves_the_others_be() -> None:
    stream, _, other = sink_failing_in_its_backlog()
    stream.publish_message(inter(80))
    stream.flush(5.1)
    assert video_stamps(other) == [0, 40, 80]


# --- the player buffer -------------------------------------------------------------------------


def test_a_player_with_one_byte_of_room_left_is_handed_one_byte() -> None:
    buffer = 4096
    stream = published(FanoutLimits(player_buffer=buffer))
    sink = Socket(waiting=buffer - 1)
    stream.add_player(sink, 1)
    stream.publish_message(key(0))
    stream.flush(0.0)
    assert [len(w) for w in sink.writes] == [1]


def test_a_backlog_handed_over_in_pieces_comes_without_an_empty_write() -> None:
    stream = published(FanoutLimits(player_buffer=300))
    sink = Socket(kernel_free=1 << 62)
    stream.add_player(sink, 1)
    stream.publish_message(key(0, BIG))
    stream.flush(0.0)
    assert video_stamps(sink) == [0]
    assert all(sink.writes)


def test_a_socket_that_takes_everything_gets_the_backlog_even_in_whole_message_pieces() -> None:
    """With a buffer of exactly one message, each piece ends at a message boundary; the flush
    still asks again after each, and the socket takes them all."""
    stream = published(FanoutLimits(player_buffer=ENTRY))
    sink = Socket(kernel_free=1 << 62)
    stream.add_player(sink, 1)
    for ts in (0, 40, 80):
        stream.publish_message(key(ts) if ts == 0 else inter(ts))
    stream.flush(0.0)
    assert video_stamps(sink) == [0, 40, 80]


# --- skipping in the middle of a message --------------------------------------------------------


def player_with_a_skip_pending_mid_message() -> tuple[LiveStream, Socket]:
    """A player taking 300 bytes per flush of 1 kB frames (keyframes at 0 and 80 ms) has waited
    past soft_seconds at 2 s with 600 bytes of its first frame handed over: its skip waits for
    the end of that frame."""
    stream = published(FanoutLimits(player_buffer=300, soft_seconds=1.0))
    sink = Socket()
    player = stream.add_player(sink, 1)
    for ts in (0, 40, 80, 120):
        stream.publish_message(key(ts, BIG) if ts in (0, 80) else inter(ts, BIG))
    stream.flush(0.0)
    sink.drain(300)
    stream.flush(2.0)
    assert (player.skip_pending, player.offset) == (True, 600)
    return stream, sink


def test_a_skip_to_a_newer_keyframe_waits_for_the_message_under_way() -> None:
    stream, sink = player_with_a_skip_pending_mid_message()
    sink.drain(1 << 62)
    for n in range(4):
        stream.flush(2.1 + n / 10)
    got = [m for m in sink.messages() if m.type_id == MessageType.VIDEO]
    assert [(m.timestamp, len(m.payload)) for m in got] == [
        (0, BIG + 5),
        (80, BIG + 5),
        (120, BIG + 5),
    ]


def test_the_message_under_way_before_a_skip_is_finished_in_one_flush_if_the_socket_takes_it() -> (
    None
):
    stream, sink = player_with_a_skip_pending_mid_message()
    sink.drain(1 << 62)
    stream.flush(2.1)
    assert video_stamps(sink) == [0]


def test_a_player_moved_by_the_logs_bound_gets_the_message_under_way_whole_first() -> None:
    stream = published(
        FanoutLimits(player_buffer=300, log_max_bytes=2_000, soft_bytes=1 << 40, soft_seconds=1e9)
    )
    sink = Socket()
    stream.add_player(sink, 1)
    for ts in (0, 40, 80, 120):  # 4 kB: over the bound, with a newer keyframe at 80 ms
        stream.publish_message(key(ts, BIG) if ts in (0, 80) else inter(ts, BIG))
    stream.flush(0.0)
    sink.drain(1 << 62)
    for n in range(4):
        stream.flush(0.1 + n / 10)
    got = [m for m in sink.messages() if m.type_id == MessageType.VIDEO]
    assert [(m.timestamp, len(m.payload)) for m in got] == [
        (0, BIG + 5),
        (80, BIG + 5),
        (120, BIG + 5),
    ]


# --- the shared log's bound ------------------------------------------------------------------


def player_behind_by_two_frames(log_max_bytes: int) -> Sink:
    """A player that got the first two frames (kept in the log for the GOP cache), then blocked
    while two more came: the log holds four frames, the player lacks the last two. Flushed
    again once it takes bytes again; returns its sink."""
    limits = FanoutLimits(log_max_bytes=log_max_bytes, soft_bytes=1 << 40, soft_seconds=1e9)
    stream = published(limits)
    sink = Sink()
    stream.add_player(sink, 1)
    stream.publish_message(key(0))
    stream.publish_message(inter(40))
    stream.flush(0.0)
    sink.writable = False
    stream.publish_message(inter(80))
    stream.publish_message(inter(120))
    stream.flush(0.1)
    sink.writable = True
    stream.flush(0.2)
    return sink


def test_a_player_exactly_log_max_bytes_from_the_head_keeps_its_backlog() -> None:
    assert video_stamps(player_behind_by_two_frames(2 * ENTRY)) == [0, 40, 80, 120]


def test_a_player_one_byte_further_than_log_max_bytes_from_the_head_skips() -> None:
    assert video_stamps(player_behind_by_two_frames(2 * ENTRY - 1)) == [0, 40]


def test_a_skip_resends_no_preamble_to_a_player_attached_after_the_last_header_change() -> None:
    """A player that waited through a republish is attached with the headers in force: when it
    later skips, and no header changed since, it gets no second copy of the metadata."""
    stream = published(FanoutLimits(soft_bytes=2_000, soft_seconds=1000.0, stall_grace=0.0))
    stream.publish_message(Media(MessageType.VIDEO, 0, 1, AVC_HEADER))
    stream.stop_publish()  # the headers are gone, the header count stays
    sink = Sink()
    stream.add_player(sink, 1)  # waits for the next publisher
    stream.start_publish(object())
    stream.set_metadata(("onMetaData", {"width": 320}))
    stream.publish_message(key(0))
    stream.flush(0.0)
    sink.writable = False
    for ts in range(40, 440, 40):
        stream.publish_message(inter(ts, 500))
    stream.publish_message(key(440))
    stream.flush(1.0)  # past the soft bound: skips to the keyframe at 440 ms
    sink.writable = True
    stream.flush(1.1)
    assert video_stamps(sink) == [0, 440]
    assert [m.type_id for m in sink.messages()].count(MessageType.DATA_AMF0) == 1


def test_a_player_that_catches_up_while_finishing_the_message_under_way_is_not_skipped() -> None:
    """The skip waited for the end of the message; with it the player reached the head, so it
    has no lag left to skip: it keeps every later frame."""
    stream = published(FanoutLimits(player_buffer=300, soft_seconds=1.0))
    sink = Socket()
    player = stream.add_player(sink, 1)
    stream.publish_message(key(0, BIG))
    stream.flush(0.0)
    sink.drain(300)
    stream.flush(2.0)
    assert (player.skip_pending, player.offset) == (True, 600)
    sink.drain(1 << 62)
    stream.flush(2.1)  # the rest of the keyframe: at the head
    stream.publish_message(inter(40, BIG))
    stream.publish_message(inter(80, BIG))
    stream.flush(2.2)
    stream.publish_message(inter(120, BIG))
    stream.flush(2.3)
    assert video_stamps(sink) == [0, 40, 80, 120]
