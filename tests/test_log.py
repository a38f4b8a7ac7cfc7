"""Log helpers: the refusal throttle and the EMFILE summary."""

from __future__ import annotations

import pytest
from twisted.logger import LogEvent, formatEvent

from fms.log import EMFILESummary, LogThrottle


def test_throttle_allows_one_line_per_interval_and_counts_the_rest() -> None:
    throttle = LogThrottle(10.0)
    assert throttle.allow("k", 0.0) == 0
    assert [throttle.allow("k", t) for t in (1.0, 2.0, 9.9)] == [None, None, None]
    assert throttle.allow("other", 3.0) == 0
    assert throttle.allow("k", 10.0) == 3
    assert throttle.allow("k", 25.0) == 0


def test_twisted_emfile_chatter_becomes_one_counted_warning_per_interval() -> None:
    seen: list[LogEvent] = []
    now = [0.0]
    summary = EMFILESummary(seen.append, 10.0, clock=lambda: now[0])

    def twisted_says(text: str) -> None:
        summary({"log_format": text, "log_namespace": "twisted.internet.tcp.Port"})

    for _ in range(100):
        twisted_says("EMFILE encountered; releasing reserved file descriptor.")
        twisted_says("EMFILE recovery: Closed socket from {address}")
        twisted_says("Re-reserving EMFILE recovery file descriptor.")
    summary({"log_format": "something else"})
    now[0] = 11.0
    twisted_says("EMFILE recovery: Closed socket from {address}")
    texts = [formatEvent(e) for e in seen]
    assert len(texts) == 3
    assert texts[0].startswith("out of file descriptors (EMFILE)")
    assert texts[1] == "something else"
    assert "99 more since the last report" in texts[2]


def test_events_below_the_level_in_force_are_dropped_before_they_reach_observers() -> None:
    from fms import log as fms_log

    seen: list[LogEvent] = []
    logger = fms_log.Logger(namespace="test", observer=seen.append)
    old = fms_log._lowest
    try:
        fms_log._set_lowest("info")
        logger.debug("dropped {x}", x=1)
        logger.debug("kept anyway", always=True)
        logger.info("kept {x}", x=2)
    finally:
        fms_log._lowest = old
    assert [formatEvent(e) for e in seen] == ["kept anyway", "kept 2"]
    assert seen[1]["log_namespace"] == "test" and seen[1]["log_time"] > 0


def test_batched_lines_leave_whole_in_writes_of_at_most_pipe_buf(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fms import log as fms_log

    writes: list[bytes] = []
    monkeypatch.setattr(fms_log.os, "write", lambda fd, data: writes.append(data) or len(data))
    monkeypatch.setattr(fms_log, "_PIPE_BUF", 4096)
    lines = fms_log.LineObserver(None, "w1", fd=99)
    lines._flush_due = True  # as if the end-of-iteration flush were already scheduled
    for n in range(500):
        lines({"log_format": "line {n} {pad}", "n": n, "pad": "x" * 50, "log_time": 0.0})
    assert writes == []  # nothing leaves before the flush
    lines.flush()
    assert all(len(w) <= 4096 and w.endswith(b"\n") for w in writes)
    text = b"".join(writes).decode().splitlines()
    assert len(text) == 500 and text[7].endswith("info w1 [-] line 7 " + "x" * 50)


def test_an_error_line_is_written_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from twisted.logger import LogLevel

    from fms import log as fms_log

    writes: list[bytes] = []
    monkeypatch.setattr(fms_log.os, "write", lambda fd, data: writes.append(data) or len(data))
    lines = fms_log.LineObserver(None, fd=99)
    lines._flush_due = True
    lines({"log_format": "first", "log_time": 0.0})
    lines({"log_format": "broken", "log_level": LogLevel.error, "log_time": 0.0})
    assert b"".join(writes).decode().splitlines()[1].endswith("error [-] broken")
