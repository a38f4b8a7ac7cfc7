"""Plugins' stdlib ``logging`` reaches the server's log: same line format, level and filter."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest
from twisted.logger import FilteringLogObserver, LogLevel, PredicateResult

from fms.log import AlwaysOrLevel, LineObserver, StdlibBridge, level_of_record

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (\w+) \[([\w.]+)\] (.*)$")


@pytest.fixture
def server_log() -> Iterator[tuple[logging.Logger, io.StringIO, AlwaysOrLevel]]:
    """A stdlib logger whose records go through the bridge into the server's line observer,
    filtered at ``info``; the logger itself lets everything through (level DEBUG), so the
    server's filter is what decides."""
    out = io.StringIO()
    level = AlwaysOrLevel(LogLevel.info)
    bridge = StdlibBridge(FilteringLogObserver(LineObserver(out), [level]))
    logger = logging.getLogger("fms_user_plugins.viewerlimit")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(bridge)
    try:
        yield logger, out, level
    finally:
        logger.removeHandler(bridge)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


def test_a_stdlib_record_becomes_a_server_line_with_time_level_and_logger_name(
    server_log: tuple[logging.Logger, io.StringIO, AlwaysOrLevel],
) -> None:
    logger, out, _ = server_log
    logger.info("%d players on %s", 3, "live/cam")
    logger.warning("close to the limit")
    lines = out.getvalue().splitlines()
    assert [LINE.match(line).groups() for line in lines] == [  # type: ignore[union-attr]
        ("info", "fms_user_plugins.viewerlimit", "3 players on live/cam"),
        ("warn", "fms_user_plugins.viewerlimit", "close to the limit"),
    ]


def test_stdlib_records_below_the_server_level_are_dropped(
    server_log: tuple[logging.Logger, io.StringIO, AlwaysOrLevel],
) -> None:
    logger, out, level = server_log
    logger.debug("not at info")
    assert out.getvalue() == ""
    level.set_level(LogLevel.debug)  # what a reload to log_level = "debug" does
    logger.debug("now it shows")
    assert out.getvalue().endswith(" debug [fms_user_plugins.viewerlimit] now it shows\n")


def test_an_exception_logged_with_stdlib_keeps_its_traceback(
    server_log: tuple[logging.Logger, io.StringIO, AlwaysOrLevel],
) -> None:
    logger, out, _ = server_log
    try:
        {}["missing"]
    except KeyError:
        logger.exception("lookup failed")
    text = out.getvalue()
    assert " error [fms_user_plugins.viewerlimit] lookup failed\nTraceback" in text
    assert "KeyError: 'missing'" in text


@pytest.mark.parametrize(
    ("levelno", "level"),
    [
        (logging.DEBUG, LogLevel.debug),
        (logging.INFO, LogLevel.info),
        (logging.WARNING, LogLevel.warn),
        (logging.ERROR, LogLevel.error),
        (logging.CRITICAL, LogLevel.critical),
        (logging.INFO + 5, LogLevel.info),  # a custom level rounds down
    ],
)
def test_stdlib_levels_map_to_the_server_levels(levelno: int, level: LogLevel) -> None:
    assert level_of_record(levelno) is level


def test_twisted_legacy_log_msg_of_a_plugin_passes_but_twisted_chatter_is_debug() -> None:
    level = AlwaysOrLevel(LogLevel.info)

    def legacy(text: str) -> dict[str, object]:
        return {"log_namespace": "log_legacy", "log_level": LogLevel.info, "message": (text,)}

    assert level(legacy("plugin says hello")) is PredicateResult.maybe
    assert level(legacy("RTMPServerFactory starting on 1935")) is PredicateResult.no
    assert level(legacy("(TCP Port 1935 Closed)")) is PredicateResult.no


def held_lines() -> tuple[LineObserver, io.StringIO]:
    out = io.StringIO()
    return LineObserver(out, hold=True), out


def event(text: str, level: LogLevel = LogLevel.info, **extra: object) -> dict[str, object]:
    return {"log_format": text, "log_level": level, "log_namespace": "t", "log_time": 0, **extra}


def test_held_lines_follow_the_announced_listening_line() -> None:
    lines, out = held_lines()
    lines(event("worker 0 started"))
    lines(event("Factory starting on 1935"))
    assert out.getvalue() == ""
    lines(event("listening on rtmp://127.0.0.1:1935", announce=True))
    lines(event("after"))
    assert [line.split("] ", 1)[1] for line in out.getvalue().splitlines()] == [
        "listening on rtmp://127.0.0.1:1935",
        "worker 0 started",
        "Factory starting on 1935",
        "after",
    ]


def test_an_error_is_not_held_back_and_comes_after_what_led_to_it() -> None:
    lines, out = held_lines()
    lines(event("worker 0 started"))
    lines(event("cannot listen", LogLevel.critical))
    assert [line.split("] ", 1)[1] for line in out.getvalue().splitlines()] == [
        "worker 0 started",
        "cannot listen",
    ]


def test_release_writes_the_held_lines_and_ends_the_hold() -> None:
    lines, out = held_lines()
    lines(event("accepting"))
    lines.release()  # a worker, told by its supervisor that the listening line is out
    lines(event("next"))
    assert [line.split("] ", 1)[1] for line in out.getvalue().splitlines()] == [
        "accepting",
        "next",
    ]
