"""Demand that holds no connection: HTTP viewers (HLS) who ask for a stream now and then.

An RTMP, HTTP-FLV or WebSocket-FLV player is a player of its stream in the registry for as
long as its connection lasts, and that is what keeps an on-demand pull going
(:mod:`fms.server.pull`). An HLS player holds nothing: it asks for the playlist every target
duration and for each new segment, often on a new connection. So here a stream is *wanted*
while a request for it is being answered (a playlist request waiting for the stream to start)
and for ``window`` seconds after the last one arrived or was answered. The
:class:`~fms.server.pull.PullService` counts a wanted stream as one more player.

One timer per wanted stream, not per request: a request only moves the stream's end time
forward, and the timer, when it fires early, is set again for what is left.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Key = tuple[str, str]
"""(app, name) of a local stream."""


@dataclass(slots=True)
class _Want:
    until: float
    """Clock seconds up to which the stream is wanted (while no request is held)."""
    window: float
    """Seconds the last request asked for, applied again when a held request ends."""
    held: int = 0
    """Requests being answered now (each keeps the stream wanted until it ends)."""
    due: Any = None
    """The timer that ends the want (an ``IDelayedCall``), None while requests are held."""


class RecentDemand:
    """The streams HTTP viewers that hold no connection asked for lately (see the module
    docstring). ``clock``: an ``IReactorTime``; ``ended(app, name)`` is called when a
    stream stops being wanted (the pull then counts its players without it)."""

    def __init__(self, clock: Any, ended: Callable[[str, str], None]) -> None:
        self.clock = clock
        self.ended = ended
        self._wants: dict[Key, _Want] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._wants

    def __iter__(self) -> Iterator[Key]:
        return iter(list(self._wants))

    def __len__(self) -> int:
        return len(self._wants)

    def wanted(self, app: str, name: str) -> bool:
        return (app, name) in self._wants

    def touch(self, app: str, name: str, window: float) -> bool:
        """A request for (app, name) arrived: wanted for ``window`` more seconds (at least;
        an earlier, longer window is kept). True when it was not wanted before."""
        now = self.clock.seconds()
        want = self._wants.get((app, name))
        if want is None:
            want = self._wants[(app, name)] = _Want(now + window, window)
            want.due = self.clock.callLater(window, self._expire, (app, name))
            return True
        want.window = window
        want.until = max(want.until, now + window)
        if want.held == 0 and want.due is None:
            want.due = self.clock.callLater(want.until - now, self._expire, (app, name))
        return False

    def hold(self, app: str, name: str, window: float) -> Callable[[], None]:
        """A request for (app, name) that will take a while (waiting for the stream to
        start): wanted until the returned function is called, then ``window`` seconds more.
        Calling it again does nothing."""
        self.touch(app, name, window)
        want = self._wants[(app, name)]
        want.held += 1
        if want.due is not None and want.due.active():
            want.due.cancel()
        want.due = None
        done: list[bool] = []

        def release() -> None:
            if done:
                return
            done.append(True)
            current = self._wants.get((app, name))
            if current is not want:
                return  # forgotten meanwhile (:meth:`forget`)
            want.held -= 1
            self.touch(app, name, want.window)

        return release

    def forget(self, app: str, name: str) -> None:
        """Stop wanting (app, name) now, held requests or not (``ended`` is not called)."""
        want = self._wants.pop((app, name), None)
        if want is not None and want.due is not None and want.due.active():
            want.due.cancel()

    def stop(self) -> None:
        """Forget every stream (the server stops): no timer left behind."""
        for key in list(self._wants):
            self.forget(*key)

    def _expire(self, key: Key) -> None:
        want = self._wants.get(key)
        if want is None:
            return
        want.due = None
        if want.held:
            return
        left = want.until - self.clock.seconds()
        if left > 0:
            want.due = self.clock.callLater(left, self._expire, key)
            return
        del self._wants[key]
        self.ended(*key)


__all__ = ["RecentDemand"]
