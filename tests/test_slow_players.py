"""A slow player costs a constant: a flush hands it at most ``player_buffer`` bytes beyond what
its socket took, its backlog stays once in the stream's shared log, and the soft and hard
bounds judge its cursor there (issue 12, part 1).

The players here model a socket: ``taken`` is how many of the bytes written to it the kernel
has accepted (a test moves it), the rest is what the player holds in user space (``pending``).
"""

from __future__ import annotations

from fms.live.stream import FanoutLimits, LiveStream, PlayerState
from fms.rtmp.constants import MessageType
from fms.rtmp.messages import Media
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
