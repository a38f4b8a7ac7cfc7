"""Log helpers: the refusal throttle and the EMFILE summary."""

from __future__ import annotations

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
