"""What the server logs during a test, as text, for tests that check a log line was written."""

from __future__ import annotations

from collections.abc import Iterator

from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from zope.interface import provider


def log_lines(*, tracebacks: bool = False) -> Iterator[list[str]]:
    """Yield a list that fills with every event logged until the generator is closed, each
    formatted as the log shows it; with ``tracebacks``, the traceback of a logged failure is
    appended to its line. Written for ``yield from`` in a pytest fixture."""
    lines: list[str] = []

    @provider(ILogObserver)
    def observer(event: LogEvent) -> None:
        text = formatEvent(event)
        failure = event.get("log_failure")
        if tracebacks and failure is not None:
            text += "\n" + failure.getTraceback()
        lines.append(text)

    globalLogPublisher.addObserver(observer)
    try:
        yield lines
    finally:
        globalLogPublisher.removeObserver(observer)
