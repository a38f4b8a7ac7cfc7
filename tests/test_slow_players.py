"""A slow player costs a constant: a flush hands it at most ``player_buffer`` bytes beyond what
its socket took, its backlog stays once in the stream's shared log, and the soft and hard
bounds judge its cursor there (issue 12, part 1).

The players here model a socket: ``taken`` is how many of the bytes written to it the kernel
has accepted (a test moves it), the rest is what the player holds in user space (``pending``).
"""

from __future__ import annotations

from fms.live.stream import FanoutLimits, LiveStream, PlayerState
from fms.rtmp.chunks import encode_shared
from fms.rtmp.constants import MessageType
from fms.rtmp.messages import Media, encode_message
from tests.support.live_sink import AVC_HEADER, Sink, inter, key, published

BUFFER = 64 * 1024


class SocketSink(Sink):
    """A player behind a socket: the kernel takes what is written while it has room
    (``kernel_free`` bytes; unlimited when ``drains``), the rest waits in user space
    (``pending``); :meth:`drain` is the reader consuming bytes, which frees kernel room."""

    def __init__(self, drains: bool = False, kernel_free: int = 0) -> None:
        super().__init__()
        self.kernel_free = 1 << 62 if drains else kernel_free
        self.waiting = 0
        self.taken = 0

    def written(self) -> int:
        return sum(len(w) for w in self.writes)

    def write(self, data: bytes) -> None:
        super().write(data)
        self.waiting += len(data)
        self._to_kernel()

    def pending(self) -> int:
        return self.waiting

    def drain(self, size: int) -> None:
        self.kernel_free += size
        self._to_kernel()

    def _to_kernel(self) -> None:
        moved = min(self.waiting, self.kernel_free)
        self.waiting -= moved
        self.kernel_free -= moved
        self.taken += moved


def limits(**overrides: object) -> FanoutLimits:
    values: dict[str, object] = {
        "player_buffer": BUFFER,
        "soft_bytes": 8 * 1024 * 1024,
        "soft_seconds": 100.0,
        "hard_bytes": 32 * 1024 * 1024,
    }
    values.update(overrides)
    return FanoutLimits(**values)  # type: ignore[arg-type]


def burst(stream: LiveStream, frames: int, size: int, start: int = 0) -> int:
    """``frames`` video frames of ``size`` bytes, a keyframe every 50, 40 ms apart; returns
    the next timestamp."""
    ts = start
    for n in range(frames):
        stream.publish_message(key(ts, size) if n % 50 == 0 else inter(ts, size))
        ts += 40
    return ts


def test_a_player_that_takes_nothing_is_handed_at_most_player_buffer() -> None:
    stream = published(limits())
    stalled = SocketSink()
    stream.add_player(stalled, 1)
    burst(stream, 200, 40_000)  # 8 MB in one flush
    stream.flush(0.0)
    assert 0 < stalled.written() <= BUFFER
    stream.flush(0.1)
    assert stalled.written() <= BUFFER  # nothing more while it holds its whole buffer


def test_what_a_stalled_player_holds_stays_bounded_however_much_is_published() -> None:
    stream = published(limits(hard_bytes=1 << 40, soft_bytes=1 << 40))
    stalled = SocketSink()
    stream.add_player(stalled, 1)
    ts = 0
    for flush in range(20):
        ts = burst(stream, 25, 40_000, ts)  # 1 MB per flush, 20 MB in all
        stream.flush(flush * 0.1)
    assert stalled.written() <= BUFFER


def test_a_player_whose_socket_takes_everything_gets_a_burst_larger_than_its_buffer() -> None:
    stream = published(limits())
    fast = SocketSink(drains=True)
    stream.add_player(fast, 1)
    burst(stream, 100, 40_000)  # 4 MB, 64 times the player buffer
    stream.flush(0.0)
    got = [m for m in fast.messages() if m.type_id == MessageType.VIDEO]
    assert len(got) == 100
    assert [m.timestamp for m in got] == [40 * n for n in range(100)]


def test_a_slow_player_gets_whole_messages_in_order_as_its_socket_drains() -> None:
    stream = published(limits())
    slow = SocketSink()
    stream.add_player(slow, 1)
    burst(stream, 20, 10_000)  # 200 KB: more than three buffers
    for flush in range(40):
        stream.flush(flush * 0.1)
        slow.drain(16 * 1024)
        assert slow.pending() <= BUFFER
    got = [m for m in slow.messages() if m.type_id == MessageType.VIDEO]
    assert [m.timestamp for m in got] == [40 * n for n in range(20)]


def slow_player_of_a_steady_stream(soft_seconds: float) -> tuple[LiveStream, SocketSink, int]:
    """A 4 Mbit/s stream (20 KB frames, 25 per second, flushed every 0.1 s) whose player's
    socket takes 16 KB per flush: it makes progress at every flush and falls further behind;
    after 10 s the publisher sends a keyframe. Returns the stream, the player, that
    keyframe's timestamp."""
    stream = published(limits(soft_seconds=soft_seconds))
    slow = SocketSink()
    stream.add_player(slow, 1)
    ts = 0
    for flush in range(100):
        for _ in range(2 if flush % 2 else 3):
            stream.publish_message(key(ts, 20_000) if ts % 2000 == 0 else inter(ts, 20_000))
            ts += 40
        stream.flush(flush * 0.1)
        slow.drain(16 * 1024)
    stream.publish_message(key(ts, 100))
    for flush in range(100, 400):  # it reads everything from now on
        stream.flush(flush * 0.1)
        slow.drain(1 << 30)
    return stream, slow, ts


def test_a_player_making_slow_progress_skips_once_what_it_lacks_waited_soft_seconds() -> None:
    _, slow, last_key = slow_player_of_a_steady_stream(soft_seconds=3.0)
    stamps = [m.timestamp for m in slow.messages() if m.type_id == MessageType.VIDEO]
    assert last_key in stamps  # it reached the newest keyframe...
    assert len(stamps) < 200  # ...without all that it could not take in time


def test_a_burst_a_fast_socket_drains_in_a_few_flushes_skips_nothing() -> None:
    """10 s of stream sent at once (more than soft_bytes, soft_seconds of stream time) to a
    player whose socket takes 2 MB per flush: it waits 0.2 s at most, so it gets everything."""
    stream = published(limits(soft_bytes=1024 * 1024, soft_seconds=3.0))
    fast = SocketSink()
    stream.add_player(fast, 1)
    burst(stream, 250, 20_000)  # 5 MB
    for flush in range(10):
        stream.flush(flush * 0.1)
        fast.drain(2 * 1024 * 1024)
    got = [m for m in fast.messages() if m.type_id == MessageType.VIDEO]
    assert len(got) == 250


def test_a_player_taking_a_burst_is_not_closed_for_lagging_past_hard_bytes() -> None:
    """hard_bytes closes players that take nothing; one that is taking its backlog stays."""
    hard = 2 * 1024 * 1024
    stream = published(limits(soft_bytes=1 << 40, soft_seconds=1e9, hard_bytes=hard))
    taking = SocketSink(kernel_free=256 * 1024)
    stream.add_player(taking, 1)
    burst(stream, 100, 40_000)  # 4 MB: after this flush it still lacks more than hard_bytes
    stream.flush(0.0)
    assert taking.closed is None


def test_the_shared_log_keeps_at_most_log_max_bytes_whatever_the_cursors() -> None:
    cap = 1024 * 1024
    stream = published(limits(soft_bytes=1 << 40, soft_seconds=1e9, log_max_bytes=cap))
    taking = SocketSink(kernel_free=64 * 1024)
    player = stream.add_player(taking, 1)
    burst(stream, 60, 40_000)  # 2.4 MB, a keyframe at frames 0 and 50
    stream.flush(0.0)
    log = player.log
    assert log is not None
    assert log.ends[-1] - log.offset(log.base) <= cap
    assert player.cursor == log.keyframe == 50  # it skipped to the newest keyframe


def test_the_lag_that_triggers_the_bounds_counts_what_was_already_handed_over() -> None:
    """Exactly hard_bytes behind (counting the bytes of the entry already written) stays."""
    stream = published(limits(soft_bytes=1 << 40, soft_seconds=1e9, hard_bytes=1 << 40))
    slow = SocketSink()
    player = stream.add_player(slow, 1)
    burst(stream, 10, 40_000)
    stream.flush(0.0)
    log = player.log
    assert log is not None
    size, _ = log.behind(player.cursor, player.offset)
    assert size == log.ends[-1] - log.offset(0) - slow.written()


def test_pausing_a_player_in_the_middle_of_a_message_finishes_that_message() -> None:
    stream = published(limits())
    slow = SocketSink()
    player = stream.add_player(slow, 1)
    stream.publish_message(key(0, 100_000))  # larger than the buffer: cut in two
    stream.flush(0.0)
    assert player.offset > 0
    stream.set_paused(player, True)
    assert player.state is PlayerState.PAUSED
    got = [m for m in slow.messages() if m.type_id == MessageType.VIDEO]
    assert len(got) == 1 and len(got[0].payload) == 100_005


def test_a_skip_waits_for_the_message_under_way_to_be_finished() -> None:
    stream = published(limits(soft_bytes=100_000))
    slow = SocketSink()
    stream.add_player(slow, 1)
    stream.publish_message(Media(MessageType.VIDEO, 0, 1, AVC_HEADER))
    burst(stream, 30, 40_000)
    for flush in range(200):
        stream.flush(flush * 0.1)
        slow.drain(7_000)  # never a whole message per flush
    slow.drain(1 << 30)
    stream.flush(30.0)
    for message in slow.messages():  # decodes: no message was cut by the skip
        assert message.type_id in (MessageType.VIDEO, MessageType.DATA_AMF0)


def test_a_player_slightly_behind_a_steady_stream_is_never_skipped() -> None:
    """What a player lacks is judged by how long it has waited since the flush that could
    first have sent it, not since the first flush of all: a player whose socket takes exactly
    one frame per flush, five frames behind, keeps every frame for 20 s (six times
    soft_seconds)."""
    stream = published(limits(soft_seconds=3.0, player_buffer=4096))
    sink = SocketSink(kernel_free=0)
    stream.add_player(sink, 1)
    size = len(encode_shared(encode_message(inter(0, 2_000)), 4096))
    ts = 0
    for _ in range(5):  # a backlog of half a second
        stream.publish_message(key(ts, 2_000) if ts == 0 else inter(ts, 2_000))
        ts += 100
    for flush in range(200):
        stream.publish_message(key(ts, 2_000) if flush % 50 == 0 else inter(ts, 2_000))
        ts += 100
        stream.flush(flush * 0.1)
        sink.drain(size)
    stamps = [m.timestamp for m in sink.messages() if m.type_id == MessageType.VIDEO]
    assert stamps == list(range(0, len(stamps) * 100, 100))  # nothing skipped
    assert len(stamps) >= 195


def test_the_shared_log_forgets_the_flush_marks_of_what_it_trimmed() -> None:
    """Memory bound: one mark per flush that found new entries, forgotten with the entries."""
    stream = published(limits())
    fast = SocketSink(drains=True)
    player = stream.add_player(fast, 1)
    ts = 0
    for flush in range(1_000):
        stream.publish_message(key(ts, 100) if flush % 25 == 0 else inter(ts, 100))
        ts += 40
        stream.flush(flush * 0.04)
    log = player.log
    assert log is not None
    assert len(log.marks) <= len(log.entries) + 1


def test_a_player_blocked_before_a_pause_gets_a_fresh_stall_clock_when_it_resumes() -> None:
    stall = 10.0
    stream = published(limits(stall_timeout=stall))
    sink = SocketSink(drains=True)
    player = stream.add_player(sink, 1)
    sink.writable = False
    stream.publish_message(key(0))
    stream.flush(0.0)  # blocked since 0
    stream.set_paused(player, True)
    stream.set_paused(player, False)
    stream.publish_message(key(40))
    stream.flush(stall + 5.0)  # blocked again, but only since now
    assert sink.closed is None


def test_a_player_sharing_a_cursor_with_a_fast_one_still_gets_at_most_its_room() -> None:
    """Players at one cursor share one joined ``bytes``, but only a player with room for all of
    it is handed it: the slow one next to a fast one gets pieces of its own room."""
    stream = published(limits())
    fast = [SocketSink(drains=True) for _ in range(16)]
    slow = [SocketSink() for _ in range(16)]
    for pair in zip(fast, slow, strict=True):  # whatever order the flush takes them in
        for sink in pair:
            stream.add_player(sink, 1)
    burst(stream, 10, 40_000)
    stream.flush(0.0)
    assert all(sink.written() > BUFFER for sink in fast)
    assert all(0 < sink.written() <= BUFFER for sink in slow)


def test_when_the_log_is_over_its_bound_only_the_players_beyond_it_skip() -> None:
    cap = 1024 * 1024
    stream = published(limits(soft_bytes=1 << 40, soft_seconds=1e9, log_max_bytes=cap))
    fast = SocketSink(drains=True)
    slow = SocketSink(kernel_free=64 * 1024)
    stream.add_player(fast, 1)
    stream.add_player(slow, 1)
    burst(stream, 60, 40_000)  # 2.4 MB: the slow player ends up beyond the bound
    stream.flush(0.0)
    for n in range(60, 70):  # no keyframe: a player parked by mistake would get none of these
        stream.publish_message(inter(n * 40, 40_000))
    stream.flush(0.1)
    fast_frames = [m for m in fast.messages() if m.type_id == MessageType.VIDEO]
    assert len(fast_frames) == 70  # the fast player lost nothing


def test_a_player_with_little_room_left_is_not_handed_bytes_joined_for_a_roomier_one() -> None:
    """The joined ``bytes`` of a cursor fit the room of the player that joined them; a player at
    the same cursor that still holds part of its buffer gets only what fits its own room."""
    stream = published(limits())
    fast = [SocketSink(drains=True) for _ in range(16)]
    slow = [SocketSink() for _ in range(16)]
    for pair in zip(fast, slow, strict=True):
        for sink in pair:
            stream.add_player(sink, 1)
    stream.publish_message(key(0, 40_000))
    stream.flush(0.0)  # every player took it; the slow ones still hold it
    stream.publish_message(inter(40, 40_000))
    stream.flush(0.1)
    assert all(sink.pending() <= BUFFER for sink in slow)
