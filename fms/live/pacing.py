"""When to flush the fan-out next: the adaptive flush interval.

One flush hands every player what it lacks in one write, so a flush costs about the same per
player whether it carries one message or seven (``benchmarks/flush_cost.py`` and the writes of
``benchmarks/fanout.py``: the cost is per write, not per message). Flushing after every read
from a publisher gives the lowest latency and costs one write per player per message; flushing
every 100 ms costs a seventh of that for the 550 kbit/s stream, and adds up to 100 ms.

:class:`FlushPace` picks between the two from what flushes cost: the next flush may start
``interval`` after the last one started, where ``interval`` is the last flush's cost divided
by ``share`` (the part of the process's time the fan-out may take), kept between ``floor`` and
``ceiling``. Cheap flushes (few players) bring the interval down to the floor, so a message
reaches players at the next reactor turn; expensive ones (many players) push it up to the
ceiling, where it batches as a fixed flush of ``ceiling`` does. A flush that costs more than
the ceiling is followed by the next one ``cost / busy_share`` after it started (``busy_share``
0.9: a tenth of the time is left for reads, handshakes and commands), not at the next slot of
the ceiling's grid as Twisted's ``LoopingCall`` does for the fixed flush: at 10,000 players a
flush costs about the ceiling, and skipping to the next slot made every other interval 200 ms
(docs/performance.md, "Adaptive flush").

No Twisted, no clock: times (seconds) and costs (seconds) are arguments; the Twisted layer
(:mod:`fms.server.flushing`) measures and schedules.
"""

from __future__ import annotations

import math

FLOOR = 0.005
"""Shortest interval between the starts of two adaptive flushes (seconds): at most 200 flushes
a second, however cheap they are and however many publishers read."""
SHARE = 0.7
"""Default part of the process's time the adaptive fan-out may take (0-1)."""
BUSY_SHARE = 0.9
"""Default part of the process's time fan-out may take when one flush costs more than the
ceiling (0-1): the next flush then starts ``cost / BUSY_SHARE`` after the last one started."""


class FlushPace:
    """The adaptive interval, and when the next flush may start."""

    def __init__(
        self,
        ceiling: float,
        share: float = SHARE,
        floor: float = FLOOR,
        busy_share: float = BUSY_SHARE,
    ) -> None:
        if not 0 < floor <= ceiling or not 0 < share <= 1 or not 0 < busy_share <= 1:
            raise ValueError(
                "need 0 < floor <= ceiling and 0 < share, busy_share <= 1:"
                f" {floor, ceiling, share, busy_share}"
            )
        self.floor = floor
        self.ceiling = ceiling
        self.share = share
        self.busy_share = busy_share
        self.interval = floor
        """Current interval between flush starts (seconds), in [floor, ceiling]."""
        self.next_start = -math.inf
        """Earliest time the next flush may start (seconds, the caller's clock)."""

    def flushed(self, started: float, cost: float) -> float:
        """A flush started at ``started`` and took ``cost`` seconds: adapt the interval and
        return the earliest start of the next one (:meth:`period` after ``started``)."""
        self.interval = min(self.ceiling, max(self.floor, cost / self.share))
        self.next_start = started + self.period(cost, self.interval)
        return self.next_start

    def period(self, cost: float, interval: float) -> float:
        """Seconds from the start of a flush of ``cost`` seconds to the start of the next, at
        ``interval``: the interval, or ``cost / busy_share`` when the flush overran it."""
        return max(interval, cost / self.busy_share)

    def due(self, now: float) -> float:
        """When a message that arrived at ``now`` gets flushed: at once if the interval since
        the last flush has passed (an idle server), else when it has."""
        return max(now, self.next_start)
