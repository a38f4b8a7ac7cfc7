"""The clock of one recorded-stream playback: which tags are due now, and when to look again.

A recording is sent in real time, a client buffer ahead: the media position advances with
wall time from where playback started (or was seeked to, or unpaused), and every tag whose
timestamp is at most ``position + buffer`` may be sent. A player that asked for a 3 s buffer
(``Set Buffer Length``) gets its first 3 s at once, then the file at the speed it was
recorded, so the server never reads a file faster than its viewers watch it. Sans-IO: time
(``now``, seconds of any monotonic clock) is an argument; media times are milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_BUFFER_MS = 3_000
"""What a player that never sent ``Set Buffer Length`` gets ahead of the clock (ms)."""
MAX_BUFFER_MS = 60_000
"""The most ahead a player may ask for (ms): bounds the bytes one viewer pulls at once."""


@dataclass(slots=True)
class Pacer:
    """The media clock of one playback.

    ``origin_ms`` is the media time that was current at wall time ``origin_now``; while
    paused the clock stands still at ``origin_ms``.
    """

    origin_ms: int
    origin_now: float
    buffer_ms: int = DEFAULT_BUFFER_MS
    paused: bool = False

    @classmethod
    def starting(cls, start_ms: int, now: float, buffer_ms: int | None = None) -> Pacer:
        """A clock at ``start_ms`` running from ``now``."""
        pacer = cls(start_ms, now)
        if buffer_ms is not None:
            pacer.set_buffer(buffer_ms)
        return pacer

    def position(self, now: float) -> int:
        """The media time (ms) the viewer is watching at ``now``."""
        if self.paused:
            return self.origin_ms
        return self.origin_ms + max(0, round((now - self.origin_now) * 1000))

    def horizon(self, now: float) -> int:
        """Tags with timestamps up to this media time (ms) may be sent at ``now``."""
        return self.position(now) + self.buffer_ms

    def wait(self, timestamp: int, now: float) -> float | None:
        """Seconds until a tag at media time ``timestamp`` is due (0 if it is already);
        None while paused (nothing becomes due)."""
        if self.paused:
            return None
        return max(0.0, (timestamp - self.horizon(now)) / 1000)

    def set_buffer(self, buffer_ms: int) -> None:
        """The player's buffer length (ms), kept within 0..:data:`MAX_BUFFER_MS`."""
        self.buffer_ms = max(0, min(MAX_BUFFER_MS, buffer_ms))

    def pause(self, now: float) -> None:
        """Stop the clock where it is."""
        if not self.paused:
            self.origin_ms = self.position(now)
            self.origin_now = now
            self.paused = True

    def resume(self, now: float, at_ms: int | None = None) -> None:
        """Run the clock again from where it stopped (or from ``at_ms``, the time a client
        gives with ``pause(false, ms)``)."""
        if at_ms is not None:
            self.origin_ms = at_ms
        elif not self.paused:
            self.origin_ms = self.position(now)
        self.origin_now = now
        self.paused = False

    def seek(self, to_ms: int, now: float) -> None:
        """Jump to ``to_ms``; a paused clock stays paused there."""
        self.origin_ms = max(0, to_ms)
        self.origin_now = now
