"""HLS viewers as demand for pulls: a playlist request for a stream nobody publishes here
starts its on-demand pull (``[[apps.NAME.pull]]``, docs/pull.md) and waits for it, and HLS
requests keep it going.

An HLS player holds no connection, so it cannot be a player of the stream in the registry as
an RTMP or HTTP-FLV viewer is. Instead each HLS request (playlist, segment, init segment,
part) tells the server's :class:`~fms.server.pull.PullService` that the stream is wanted for
a *viewer window* (:meth:`HLSDemand.window`: ``[hls] viewer_timeout`` seconds, at least
:data:`VIEWER_TARGETS` target durations of the stream, since a player reloads its playlist
once per target duration); the pull counts a wanted stream as one more player, and stops
``idle_timeout`` seconds after the window closed with no other player left. The pull is
found by the same lookup a player's is (:meth:`~fms.server.pull.PullService.request_for`),
so whatever source that lookup knows is pulled for HLS viewers too.

**The first playlist waits** rather than answering 404: hls.js (1.7) never retries a 4xx
answer to a playlist (only timeouts and 5xx, once), so a 404 while the pull connects would
end playback for good. The request is held until the pull publishes the stream here (at most
the pull's ``start_timeout``), then, as for any stream just published, until its first segment
(at most ``[hls] wait``); the held request keeps the stream wanted. Under hls.js's 20 s limit
for a playlist load with the defaults (10 s + 10 s), and a timed-out hls.js asks again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.server import Request

if TYPE_CHECKING:
    from fms.server.pull import Pull, PullService

VIEWER_TARGETS = 3
"""Target durations an HLS viewer's window lasts at least: a player reloads the playlist
every target duration, so three missed reloads in a row mean it left."""


class HLSDemand:
    """One process's HLS requests as demand for its pulls (see the module docstring)."""

    def __init__(self, viewers: Any) -> None:
        """``viewers``: the process's :class:`~fms.http.hls.HLSViewers` (which imports this
        module, hence ``Any``)."""
        self.viewers = viewers
        self.starting: dict[tuple[str, str], list[Deferred[None]]] = {}
        """Playlist requests waiting for a pulled stream to be published here."""
        # After HLSStreams' own hook (registered first), so the stream's HLS state exists.
        viewers.server.registry.publish_hooks.append(
            lambda stream: self.published(stream.app, stream.name)
        )

    def window(self, app: str, name: str) -> float:
        """Seconds an HLS request for (app, name) keeps it wanted."""
        config = self.viewers.server.config.hls
        entry = self.viewers.streams.streams.get((app, name))
        target = config.segment_duration if entry is None else entry.segments.target_duration
        return max(float(config.viewer_timeout), VIEWER_TARGETS * float(target))

    def want(self, app: str, name: str, *, start: bool) -> Pull | None:
        """An HLS request for (app, name) arrived: the pull under way (now wanted for one
        more window) or, with ``start``, the one started for it; None when nothing pulls it
        (a stream published here, an application HLS does not mux)."""
        if not self.viewers.streams.config.muxes(app):
            return None
        pulls: PullService = self.viewers.server.pulls
        return pulls.want(app, name, self.window(app, name), start=start)

    def wait(
        self, request: Request, app: str, name: str, pull: Pull, then: Callable[[], None]
    ) -> None:
        """Hold ``request`` until (app, name) is published here or ``pull``'s
        ``start_timeout`` passed (the stream wanted meanwhile), then ``then()``; nothing if
        the client left."""
        release = self.viewers.server.pulls.recent.hold(app, name, self.window(app, name))
        waiter = self.published_within(app, name, pull.request.start_timeout)
        gone: list[bool] = []

        def left(_: Any) -> None:
            gone.append(True)
            waiter.cancel()

        request.notifyFinish().addErrback(left)

        def done(_: Any) -> None:
            release()
            if not gone:
                then()

        waiter.addCallback(done)

    def published_within(self, app: str, name: str, seconds: float) -> Deferred[None]:
        """Fires (with None, never an error) when (app, name) is published here, after
        ``seconds``, or when cancelled."""
        waiters = self.starting.setdefault((app, name), [])
        waiter: Deferred[None] = Deferred()
        waiters.append(waiter)
        waiter.addTimeout(seconds, self.viewers.clock)

        def done(_: Failure | None) -> None:
            waiting = self.starting.get((app, name))
            if waiting is not None and waiter in waiting:
                waiting.remove(waiter)
                if not waiting:
                    del self.starting[(app, name)]

        return waiter.addBoth(done)

    def start_here(self, request: Request, app: str, name: str, then: Callable[[], None]) -> bool:
        """With ``--workers``, no worker has (app, name) nor a pull of it: start its pull on
        this worker and hold ``request`` as :meth:`wait` does. False when nothing pulls it
        (the caller answers 404)."""
        pull = self.want(app, name, start=True)
        if pull is None:
            return False
        if pull.stream is None:
            self.wait(request, app, name, pull, then)
        else:
            then()
        return True

    def published(self, app: str, name: str) -> None:
        """(app, name) was published here (or relayed from another worker): the playlist
        requests waiting for it look again."""
        waiters = self.starting.pop((app, name), [])
        for waiter in waiters:
            if not waiter.called:
                waiter.callback(None)


__all__ = ["VIEWER_TARGETS", "HLSDemand"]
