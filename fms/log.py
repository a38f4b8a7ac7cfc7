"""Log output for the ``fms`` command: one line per event on stderr, filtered by level.

Only the Twisted layer logs (``twisted.logger.Logger`` with named fields); the sans-IO layers
return events and raise errors instead.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from twisted.logger import (
    FilteringLogObserver,
    ILogFilterPredicate,
    ILogObserver,
    LogEvent,
    LogLevel,
    LogLevelFilterPredicate,
    PredicateResult,
    formatEvent,
    globalLogBeginner,
)
from zope.interface import implementer

LEVELS = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "error": LogLevel.error,
    "critical": LogLevel.critical,
}


@implementer(ILogObserver)
class LineObserver:
    """Writes ``2026-01-01T12:00:00Z info [fms.protocol] text`` lines, with tracebacks."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def __call__(self, event: LogEvent) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event.get("log_time", 0)))
        level = event.get("log_level", LogLevel.info).name
        namespace = event.get("log_namespace", "-")
        text = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            text = f"{text}\n{failure.getTraceback()}"
        try:
            self._stream.write(f"{stamp} {level} [{namespace}] {text}\n")
            self._stream.flush()
        except (OSError, ValueError):
            pass  # a closed stderr must never take the server down


@implementer(ILogFilterPredicate)
class AlwaysOrLevel:
    """Lets through events marked ``always=True`` (the listening line is a contract that scripts
    wait for) and otherwise whatever the level filter allows."""

    def __init__(self, level: LogLevel) -> None:
        self._by_level = LogLevelFilterPredicate(defaultLogLevel=level)

    def __call__(self, event: LogEvent) -> Any:  # a PredicateResult constant
        if event.get("always"):
            return PredicateResult.yes
        if event.get("log_namespace") == "log_legacy" and not event.get("isError"):
            # Twisted's own chatter ("Factory starting on 1935", "Port closed") repeats what
            # we log ourselves: keep it for debug.
            event = dict(event, log_level=LogLevel.debug)
        return self._by_level(event)


def start_logging(level: str, stream: IO[str] | None = None) -> None:
    """Send every Twisted log event at ``level`` or above to ``stream`` (stderr by default)."""
    observer = FilteringLogObserver(
        LineObserver(stream or sys.stderr), [AlwaysOrLevel(LEVELS[level])]
    )
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
