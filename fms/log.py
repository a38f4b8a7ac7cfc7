"""Log output for the ``fms`` command: one line per event on stderr, filtered by level.

Only the Twisted layer logs (``twisted.logger.Logger`` with named fields); the sans-IO layers
return events and raise errors instead.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
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
    """Writes ``2026-01-01T12:00:00Z info [fms.protocol] text`` lines, with tracebacks.

    A worker of ``fms run --workers`` puts its name before the namespace (``info w1
    [fms.protocol]``), so the lines of all workers, which share stderr, can be told apart."""

    def __init__(self, stream: IO[str], tag: str = "") -> None:
        self._stream = stream
        self._tag = f"{tag} " if tag else ""

    def __call__(self, event: LogEvent) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event.get("log_time", 0)))
        level = event.get("log_level", LogLevel.info).name
        namespace = event.get("log_namespace", "-")
        text = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            text = f"{text}\n{failure.getTraceback()}"
        try:
            self._stream.write(f"{stamp} {level} {self._tag}[{namespace}] {text}\n")
            self._stream.flush()
        except (OSError, ValueError):
            pass  # a closed stderr must never take the server down


@implementer(ILogFilterPredicate)
class AlwaysOrLevel:
    """Lets through events marked ``always=True`` (the listening line is a contract that scripts
    wait for) and otherwise whatever the level filter allows."""

    def __init__(self, level: LogLevel) -> None:
        self._by_level = LogLevelFilterPredicate(defaultLogLevel=level)

    def set_level(self, level: LogLevel) -> None:
        self._by_level = LogLevelFilterPredicate(defaultLogLevel=level)

    def __call__(self, event: LogEvent) -> Any:  # a PredicateResult constant
        if event.get("always"):
            return PredicateResult.yes
        if event.get("log_namespace") == "log_legacy" and not event.get("isError"):
            # Twisted's own chatter ("Factory starting on 1935", "Port closed") repeats what
            # we log ourselves: keep it for debug.
            event = dict(event, log_level=LogLevel.debug)
        return self._by_level(event)


class LogThrottle:
    """At most one log line per ``interval`` seconds for each key, counting what it held back,
    so that a flood (of refused connections, say) costs the log one line per interval."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def allow(self, key: str, now: float) -> int | None:
        """None when this event should not be logged (it is counted); otherwise the number of
        events held back since the last line for ``key``."""
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)


_EMFILE_CLOSED = "EMFILE recovery: Closed socket"
_EMFILE_CHATTER = ("EMFILE encountered", "Re-reserving EMFILE recovery")


@implementer(ILogObserver)
class EMFILESummary:
    """Twisted's listener survives running out of file descriptors (EMFILE) by accepting and
    closing pending connections with a reserved descriptor, and logs three lines per closed
    connection. This observer turns them into one warning per ``interval`` seconds with a
    count; every other event passes through to ``observer`` unchanged."""

    def __init__(
        self,
        observer: ILogObserver,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._observer = observer
        self._throttle = LogThrottle(interval)
        self._clock = clock

    def __call__(self, event: LogEvent) -> None:
        text = event.get("log_format") or ""
        if not isinstance(text, str) or "EMFILE" not in text:
            self._observer(event)
            return
        if text.startswith(_EMFILE_CHATTER):
            return
        if not text.startswith(_EMFILE_CLOSED):
            self._observer(event)
            return
        held = self._throttle.allow("emfile", self._clock())
        if held is None:
            return
        self._observer(
            {
                "log_format": "out of file descriptors (EMFILE): closing new connections at once "
                "until some are free ({held} more since the last report)",
                "held": held,
                "log_level": LogLevel.warn,
                "log_namespace": "fms.service",
                "log_time": event.get("log_time", time.time()),
            }
        )


_level_filter: AlwaysOrLevel | None = None


def start_logging(level: str, stream: IO[str] | None = None, tag: str = "") -> None:
    """Send every Twisted log event at ``level`` or above to ``stream`` (stderr by default),
    each line marked with ``tag`` when given (a worker's name)."""
    global _level_filter
    _level_filter = AlwaysOrLevel(LEVELS[level])
    observer = FilteringLogObserver(LineObserver(stream or sys.stderr, tag), [_level_filter])
    globalLogBeginner.beginLoggingTo([EMFILESummary(observer)], redirectStandardIO=False)


def set_log_level(level: str) -> None:
    """Change the lowest level logged (a configuration reload)."""
    if _level_filter is not None:
        _level_filter.set_level(LEVELS[level])
