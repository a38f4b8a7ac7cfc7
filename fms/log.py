"""Log output for the ``fms`` command: one line per event on stderr, filtered by level.

Only the Twisted layer logs (:class:`Logger`, Twisted's with named fields); the sans-IO layers
return events and raise errors instead. Plugins may also use stdlib ``logging`` (bridged by
:class:`StdlibBridge`) or Twisted's legacy ``log.msg``: their lines look like the server's.

Logging is on the connection-setup path (a line per connect and per play), so it is kept
cheap, as measured with py-spy while 12,000 players connected: Twisted's ``Logger.emit`` and the
line writes took 14 % of the server's time. :class:`Logger` drops an event below the level in
force before building it (Twisted builds every event, then filters it), and the lines written
in one reactor iteration leave in one write at its end (errors at once).
"""

from __future__ import annotations

import atexit
import logging
import os
import re
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
    globalLogPublisher,
)
from twisted.logger import Logger as TwistedLogger
from zope.interface import implementer

from fms.jsonlog import CONTEXT_FIELDS, JSONRenderer
from fms.jsonlog import PeerLabel as PeerLabel

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


def _traceback(event: LogEvent) -> str | None:
    """The event's traceback: a Twisted failure's (``log.failure``), or what a stdlib record
    carried (:class:`StdlibBridge`); None without one."""
    failure = event.get("log_failure")
    if failure is not None:
        return str(failure.getTraceback())
    trace = event.get("log_traceback")
    return trace if isinstance(trace, str) else None


@implementer(ILogObserver)
class LineObserver:
    """Writes ``2026-01-01T12:00:00Z info [fms.server.protocol] text`` lines, with tracebacks;
    with ``format="json"`` one JSON object per line instead (:class:`JSONRenderer`).

    A worker of ``fms run --workers`` puts its name before the namespace (``info w1
    [fms.server.protocol]``), so the lines of all workers, which share stderr, can be told apart."""

    def __init__(
        self,
        stream: IO[str] | None,
        tag: str = "",
        *,
        fd: int | None = None,
        hold: bool = False,
        format: str = "text",
    ) -> None:
        self._stream = stream
        self._json = JSONRenderer(tag) if format == "json" else None
        """With ``format="json"``: one JSON object per line (:mod:`fms.jsonlog`)."""
        self._fd = fd
        """With a descriptor (and no stream), lines are batched and written to it directly."""
        self._held: list[str] | None = [] if hold else None
        """Lines kept back until the listening line (see :meth:`release`); None: not holding."""
        self._pending: list[str] = []
        self._tag = f"{tag} " if tag else ""
        self._flush_due = False
        self._second = -1
        self._stamp = ""

    def __call__(self, event: LogEvent) -> None:
        level_constant = event.get("log_level", LogLevel.info)
        level = level_constant.name
        namespace = event.get("log_namespace", "-")
        text = _format(event)
        trace = _traceback(event)
        if self._json is not None:
            line = self._json(event, level, namespace, text, trace)
        else:
            second = int(event.get("log_time", 0))
            if second != self._second:
                self._second = second
                self._stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
            if trace is not None:
                text = f"{text}\n{trace}"
            line = f"{self._stamp} {level} {self._tag}[{namespace}] {text}\n"
        urgent = _PRIORITY.get(level_constant, 0) >= _PRIORITY[LogLevel.error]
        if self._held is not None:
            if event.get("announce"):  # the listening line goes first, then what waited
                self.release(first=line)
                return
            if not urgent:
                self._held.append(line)
                return
            self.release()  # an error is seen at once, after what led to it
        self._write([line], urgent)

    def release(self, first: str | None = None) -> None:
        """Stop holding lines back: write ``first`` (the listening line), then the held ones.

        A server that logs from several places while it starts (workers, Twisted, plugins)
        holds its lines until it announces where it listens, so that the ``listening on``
        line is the first line of the log, as the README promises."""
        held, self._held = self._held or [], None
        lines = ([first] if first is not None else []) + held
        if lines:
            self._write(lines, urgent=True)

    def _write(self, lines: list[str], urgent: bool) -> None:
        if self._fd is None:
            try:
                assert self._stream is not None
                self._stream.write("".join(lines))
                self._stream.flush()
            except (OSError, ValueError):
                pass  # a closed stderr must never take the server down
            return
        self._pending.extend(lines)
        if urgent:
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


_TWISTED_CHATTER = re.compile(
    r"\S+ starting on \S+$|\(\S+ Port \S+ Closed\)$|(Starting|Stopping) (factory|protocol) "
)
"""What Twisted itself logs through its legacy ``log.msg`` (listeners and factories)."""


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
        if (
            event.get("log_namespace") == "log_legacy"
            and not event.get("isError")
            and _TWISTED_CHATTER.match(" ".join(str(m) for m in event.get("message", ())))
        ):
            # Twisted's own chatter ("Factory starting on 1935", "Port closed") repeats what
            # we log ourselves: keep it for debug. A plugin's ``twisted.python.log.msg`` passes.
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


_STDLIB_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


_FROM_STDLIB: list[tuple[int, LogLevel]] = [
    (logging.CRITICAL, LogLevel.critical),
    (logging.ERROR, LogLevel.error),
    (logging.WARNING, LogLevel.warn),
    (logging.INFO, LogLevel.info),
    (logging.NOTSET, LogLevel.debug),
]


def level_of_record(levelno: int) -> LogLevel:
    """The Twisted level of a stdlib ``logging`` level number (custom numbers round down)."""
    for threshold, level in _FROM_STDLIB:
        if levelno >= threshold:
            return level
    return _FROM_STDLIB[-1][1]


_TRACEBACKS = logging.Formatter()


class StdlibBridge(logging.Handler):
    """Hands stdlib ``logging`` records (what plugins and libraries write with
    ``logging.getLogger(__name__)``) to the server's log: the logger's name becomes the line's
    namespace, the level is mapped, and the server's level filter applies as to any line.

    Installed on the root logger by :func:`start_logging`, whose level it keeps equal to the
    server's, so that a ``debug`` call below the level in force costs no record at all."""

    def __init__(self, observer: ILogObserver | None = None) -> None:
        super().__init__()
        self._observer = observer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            traces = []
            if record.exc_info:
                traces.append(_TRACEBACKS.formatException(record.exc_info))
            elif record.exc_text:
                traces.append(record.exc_text)
            if record.stack_info:
                traces.append(record.stack_info)
        except Exception:
            self.handleError(record)
            return
        event = {
            "log_format": "{log_text}",
            "log_text": text,
            "log_level": level_of_record(record.levelno),
            "log_namespace": record.name,
            "log_source": None,
            "log_time": record.created,
        }
        if traces:
            event["log_traceback"] = "\n".join(traces)
        for key in CONTEXT_FIELDS:  # given with ``extra={"app": ...}``: for the JSON form
            value = record.__dict__.get(key)
            if value is not None:
                event[key] = value
        (self._observer or globalLogPublisher)(event)


_bridge: StdlibBridge | None = None


def _bridge_stdlib_logging(level: str) -> None:
    """Route the root logger (and so every stdlib logger that propagates) to the server's log,
    replacing whatever handlers it had (Python's last-resort handler wrote warnings raw)."""
    global _bridge
    root = logging.getLogger()
    if _bridge is None:
        _bridge = StdlibBridge()
        for old in list(root.handlers):
            root.removeHandler(old)
        root.addHandler(_bridge)
    root.setLevel(_STDLIB_LEVELS[level])


_level_filter: AlwaysOrLevel | None = None


HOLD_LIMIT = 30.0
"""Seconds at most that lines are held back waiting for the listening line (a server that
takes longer to start shows what it is doing anyway)."""

_lines: LineObserver | None = None


def start_logging(
    level: str,
    stream: IO[str] | None = None,
    tag: str = "",
    *,
    hold: bool = False,
    format: str = "text",
) -> None:
    """Send every Twisted log event at ``level`` or above to ``stream`` (stderr by default),
    each line marked with ``tag`` when given (a worker's name), as text or, with
    ``format="json"``, as one JSON object per line (:mod:`fms.jsonlog`). With ``hold``, lines below
    ``error`` wait (at most :data:`HOLD_LIMIT` seconds) for the event logged with
    ``announce=True`` (the listening line), which is written first, or for
    :func:`release_held_lines` (a worker, told by its supervisor)."""
    global _level_filter, _lines
    _level_filter = AlwaysOrLevel(LEVELS[level])
    _set_lowest(level)
    if stream is None:
        lines = LineObserver(None, tag, fd=sys.stderr.fileno(), hold=hold, format=format)

        def at_exit() -> None:
            lines.release()
            lines.flush()

        atexit.register(at_exit)
    else:
        lines = LineObserver(stream, tag, hold=hold, format=format)
    _lines = lines
    if hold:
        from twisted.internet import reactor

        reactor.callLater(HOLD_LIMIT, lines.release)
    observer = FilteringLogObserver(lines, [_level_filter])
    globalLogBeginner.beginLoggingTo([EMFILESummary(observer)], redirectStandardIO=False)
    _bridge_stdlib_logging(level)


def release_held_lines() -> None:
    """Write the lines held back since :func:`start_logging` and stop holding (a worker does
    this when its supervisor has written the listening line)."""
    if _lines is not None:
        _lines.release()


def set_log_level(level: str) -> None:
    """Change the lowest level logged (a configuration reload)."""
    if _level_filter is not None:
        _level_filter.set_level(LEVELS[level])
        _set_lowest(level)
    if _bridge is not None:
        logging.getLogger().setLevel(_STDLIB_LEVELS[level])
