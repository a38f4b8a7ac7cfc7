"""The shared log's flush marks: how long an entry has waited for its players, and what the
marks cost in memory.

A mark is (head, time) of a flush that found new entries; the soft bound judges a player that
is taking its backlog on how long what it lacks has waited since the first flush that could have
handed it over. Written to kill the mutants of ``fms/live/log.py`` that survived the stream
tests (issue 20; see docs/testing.md). No clock: times are arguments (seconds).
"""

from __future__ import annotations

from fms.live.log import SharedLog
from fms.live.stream import FanoutLimits
from tests.support.live_sink import Sink, inter, key, published


def log_of(entries: int) -> SharedLog:
    log = SharedLog(1, True, True)
    for n in range(entries):
        log.append(bytes(10), n * 40, n == 0)
    return log


def test_an_entry_waits_from_the_first_flush_after_it_came() -> None:
    log = log_of(1)
    log.mark(0.0)
    log.append(bytes(10), 40, False)  # entry 1 came after the flush at 0 s
    log.mark(5.0)
    assert log.waited(0, 6.0) == 6.0
    assert log.waited(1, 6.0) == 1.0


def test_an_entry_no_flush_has_seen_yet_has_waited_nothing() -> None:
    log = log_of(1)
    log.mark(0.0)
    log.append(bytes(10), 40, False)
    assert log.waited(1, 6.0) == 0.0


def test_a_flush_that_finds_no_new_entry_adds_no_mark() -> None:
    log = log_of(1)
    for n in range(10):
        log.mark(n / 10)
    assert log.marks == [(1, 0.0)]


def test_a_trim_forgets_the_marks_of_the_entries_it_dropped_up_to_the_new_base() -> None:
    log = SharedLog(1, True, True)
    for n in range(3):
        log.append(bytes(10), n * 40, n == 0)
        log.mark(float(n))
    log.trim(2)  # the mark with head 2 concerns entries 0 and 1 only
    assert log.marks == [(3, 2.0)]


def test_a_log_trimmed_one_entry_at_a_time_keeps_one_mark() -> None:
    """Memory bound: without a GOP cache, a steady stream to a fast player trims one entry per
    flush; the marks go with them."""
    stream = published(FanoutLimits(gop_cache=False))
    player = stream.add_player(Sink(), 1)
    for n in range(100):
        stream.publish_message(key(n * 40) if n == 0 else inter(n * 40))
        stream.flush(n * 0.04)
    assert player.log is not None
    assert len(player.log.marks) <= 1
