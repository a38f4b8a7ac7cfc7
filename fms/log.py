"""Log output for the ``fms`` command: one line per event on stderr, filtered by level.

Only the Twisted layer logs (:class:`Logger`, Twisted's with named fields); the sans-IO layers
return events and raise errors instead.

Logging is on the connection-setup path (a line per connect and per play), so it is kept
cheap, as measured with py-spy while 12,000 players connected: Twisted's ``Logger.emit`` and the
line writes took 14 % of the server's time. :class:`Logger` drops an event below the level in
force before building it (Twisted builds every event, then filters it), and the lines written
in one reactor iteration leave in one write at its end (errors at once).
"""

from __future__ import annotations

import atexit
import os
import select
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
from twisted.logger import Logger as TwistedLogger
from zope.interface import implementer

LEVELS = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "error": LogLevel.error,
    "critical": LogLevel.critical,
}


_PIPE_BUF = select.PIPE_BUF
"""Largest write a pipe keeps whole when several processes write to it."""

_PRIORITY = {level: rank for rank, level in enumerate(LEVELS.values())}
_lowest = 0
"""Priority of the lowest level written (0: debug, everything; the level in force)."""


class Logger(TwistedLogger):
    """Twisted's Logger, minus the work for events that would be filtered out anyway.

    Events marked ``always=True`` pass whatever the level (see :class:`AlwaysOrLevel`)."""

    def emit(self, level: LogLevel, format: str | None = None, **kwargs: object) -> None:
        priority = _PRIORITY.get(level)
        if priority is None:  # not a LogLevel: Twisted reports it
            super().emit(level, format, **kwargs)
            return
        if priority < _lowest and not kwargs.get("always"):
            return
        event = kwargs
        event.update(
            log_logger=self,
            log_level=level,
            log_namespace=self.namespace,
            log_source=self.source,
            log_format=format,
            log_time=time.time(),
        )
        if "log_trace" in event:
            event["log_trace"].append((self, self.observer))  # type: ignore[attr-defined]
        self.observer(event)


def _set_lowest(level: str) -> None:
    global _lowest
    _lowest = _PRIORITY[LEVELS[level]]


def _format(event: LogEvent) -> str:
    """The event's text: ``str.format_map`` (in C) where the format allows it, else Twisted's
    formatter (which also understands ``{name()}`` calls and legacy events), ten times slower."""
    fmt = event.get("log_format")
    if isinstance(fmt, str):
        try:
            return fmt.format_map(event)
        except Exception:
            pass
    return formatEvent(event)


@implementer(ILogObserver)
class LineObserver:
    """Writes ``2026-01-01T12:00:00Z info [fms.server.protocol] text`` lines, with tracebacks.

    A worker of ``fms run --workers`` puts its name before the namespace (``info w1
    [fms.server.protocol]``), so the lines of all workers, which share stderr, can be told apart."""

    def __init__(self, stream: IO[str] | None, tag: str = "", *, fd: int | None = None) -> None:
        self._stream = stream
        self._fd = fd
        """With a descriptor (and no stream), lines are batched and written to it directly."""
        self._pending: list[str] = []
        self._tag = f"{tag} " if tag else ""
        self._flush_due = False
        self._second = -1
        self._stamp = ""

    def __call__(self, event: LogEvent) -> None:
        second = int(event.get("log_time", 0))
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        stamp = self._stamp
        level_constant = event.get("log_level", LogLevel.info)
        level = level_constant.name
        namespace = event.get("log_namespace", "-")
        text = _format(event)
        failure = event.get("log_failure")
        if failure is not None:
            text = f"{text}\n{failure.getTraceback()}"
        line = f"{stamp} {level} {self._tag}[{namespace}] {text}\n"
        if self._fd is None:
            try:
                assert self._stream is not None
                self._stream.write(line)
                self._stream.flush()
            except (OSError, ValueError):
                pass  # a closed stderr must never take the server down
            return
        self._pending.append(line)
        if _PRIORITY.get(level_constant, 0) >= _PRIORITY[LogLevel.error]:
            self.flush()
        elif not self._flush_due:
            self._flush_due = True
            from twisted.internet import reactor

            reactor.callLater(0, self.flush)

    def flush(self) -> None:
        """Write out the batched lines (at the end of a reactor iteration, on an error, at
        exit). Each write holds whole lines and at most PIPE_BUF bytes where possible, so
        the lines of workers sharing one stderr pipe never interleave mid-line."""
        self._flush_due = False
        if not self._pending or self._fd is None:
            return
        data = "".join(self._pending).encode("utf-8", "replace")
        self._pending.clear()
        while data:
            cut = len(data)
            if cut > _PIPE_BUF:
                cut = data.rfind(b"\n", 0, _PIPE_BUF) + 1 or cut
            try:
                written = os.write(self._fd, data[:cut])
            except BlockingIOError:
                continue
            except OSError:
                return  # a closed stderr must never take the server down
            data = data[written:]


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
                "log_namespace": "fms.server.service",
                "log_time": event.get("log_time", time.time()),
            }
        )


_level_filter: AlwaysOrLevel | None = None


def start_logging(level: str, stream: IO[str] | None = None, tag: str = "") -> None:
    """Send every Twisted log event at ``level`` or above to ``stream`` (stderr by default),
    each line marked with ``tag`` when given (a worker's name)."""
    global _level_filter
    _level_filter = AlwaysOrLevel(LEVELS[level])
    _set_lowest(level)
    if stream is None:
        lines = LineObserver(None, tag, fd=sys.stderr.fileno())
        atexit.register(lines.flush)
    else:
        lines = LineObserver(stream, tag)
    observer = FilteringLogObserver(lines, [_level_filter])
    globalLogBeginner.beginLoggingTo([EMFILESummary(observer)], redirectStandardIO=False)


def set_log_level(level: str) -> None:
    """Change the lowest level logged (a configuration reload)."""
    if _level_filter is not None:
        _level_filter.set_level(LEVELS[level])
        _set_lowest(level)
