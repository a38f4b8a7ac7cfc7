"""The fan-out flush loop of one server: fixed or adaptive (``[streams] flush``).

Every kind of viewer is a player of a :class:`~fms.live.stream.LiveStream` in the server's one
registry (RTMP players, HTTP-FLV viewers of :mod:`fms.http.flv`, and the players of a stream
that a relay link from another worker publishes here), so one loop paces them all: the
factory's :meth:`~fms.server.factory.RTMPServerFactory.flush`. The loop is told after each read
from a publisher (:meth:`Flushes.published`, relay links included).

- ``fixed``: a flush every ``flush_interval`` seconds (a ``LoopingCall``), or after every read
  from a publisher when it is 0: the behaviour before the adaptive flush existed.
- ``adaptive``: :class:`~fms.live.pacing.FlushPace` decides from what the last flush cost
  (``time.perf_counter``, or the ``cost_clock`` given) when the next may start; a read from a
  publisher brings the next flush forward to then, at once on an idle server; a flush that
  overran the ceiling is followed by the next ``cost / flush_busy_share`` after it started. A
  flush every ``flush_interval`` (the ceiling) still runs when nothing is published, for what
  does not come from a publisher (a joining player's preamble, a player whose socket drained,
  stall deadlines).

Both loops time every flush for ``/metrics`` (:class:`FlushFigures`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall

from fms.config import StreamsConfig
from fms.counters import COUNTERS
from fms.live.pacing import BUSY_SHARE, FLOOR, FlushPace

FLUSH_SLICE_PLAYERS = 256
"""Players a round of the adaptive loop serves between two looks at the clock (a slice of 256
costs about 2.5 ms at 10 µs per player)."""
SLICE_SECONDS = 0.01
"""How long (cost clock, seconds) the adaptive loop hands over a round before it lets the
reactor read: what arrives meanwhile reaches the players of the round not served yet."""


class Flushes(Protocol):
    """What the factory needs of its flush loop."""

    @property
    def running(self) -> bool:
        """Started and not stopped."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def published(self) -> None:
        """A publisher's read added messages (call after handling it)."""
        ...


class FlushFigures:
    """Counts every flush in the process's metrics (``fms_flush_seconds``, what it took on the
    cost clock, and ``fms_flush_interval_seconds``, from the last flush's start on the
    reactor's clock): operators see whether flushes overrun ``flush_interval``."""

    __slots__ = ("cost_clock", "last_cost", "last_start")

    def __init__(self, cost_clock: Callable[[], float]) -> None:
        self.cost_clock = cost_clock
        self.last_start: float | None = None
        self.last_cost = 0.0
        """What the last flush took (seconds), even one that raised."""

    def run(self, flush: Callable[[], None], started: float) -> float:
        """Run ``flush``, which starts at ``started`` (reactor seconds); return its cost."""
        self.starts(started)
        before = self.cost_clock()
        try:
            flush()
        finally:
            self.ended(self.cost_clock() - before)
        return self.last_cost

    def starts(self, started: float) -> None:
        """A flush (or a round of slices) starts at ``started`` (reactor seconds)."""
        if self.last_start is not None:
            COUNTERS.observe("flush_interval_seconds", started - self.last_start)
        self.last_start = started

    def ended(self, cost: float) -> None:
        """The flush that started last took ``cost`` seconds (its slices' sum, for a round)."""
        self.last_cost = cost
        COUNTERS.observe("flush_seconds", cost)


class FixedFlushes:
    """A flush every ``interval`` seconds; with 0, a flush after every read from a publisher."""

    def __init__(
        self,
        clock: IReactorTime,
        flush: Callable[[], None],
        interval: float,
        cost_clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.clock = clock
        self.flush = flush
        self.interval = interval
        self.figures = FlushFigures(cost_clock)
        self._loop: LoopingCall | None = None
        self._started = False

    @property
    def running(self) -> bool:
        return self._started

    def start(self) -> None:
        self._started = True
        if self.interval > 0 and self._loop is None:
            self._loop = LoopingCall(self._run)
            self._loop.clock = self.clock
            self._loop.start(self.interval, now=False)

    def stop(self) -> None:
        self._started = False
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def published(self) -> None:
        if self.interval == 0:
            self._run()

    def _run(self) -> None:
        self.figures.run(self.flush, self.clock.seconds())


class AdaptiveFlushes:
    """Flushes paced by their own cost (:class:`~fms.live.pacing.FlushPace`)."""

    def __init__(
        self,
        clock: IReactorTime,
        flush: Callable[[], None],
        ceiling: float,
        share: float,
        cost_clock: Callable[[], float] = time.perf_counter,
        busy_share: float = BUSY_SHARE,
        flush_round: Callable[[], Generator[None, None, None]] | None = None,
    ) -> None:
        self.clock = clock
        self.flush = flush
        self.flush_round = flush_round
        """The flush in slices (a generator yielding between them), when the owner has one:
        a round longer than :data:`SLICE_SECONDS` lets the reactor read between slices."""
        self._round: Generator[None, None, None] | None = None
        self._round_started = 0.0
        self._round_cost = 0.0
        self.pace = FlushPace(ceiling, share, min(FLOOR, ceiling), busy_share)
        self.figures = FlushFigures(cost_clock)
        """Times each flush, on ``cost_clock`` (seconds; ``time.perf_counter`` by default),
        and counts it in the metrics."""
        self._call: IDelayedCall | None = None
        self._started = False

    @property
    def running(self) -> bool:
        return self._started

    def start(self) -> None:
        self._started = True
        if self._call is None:
            self._schedule(self.clock.seconds() + self.pace.ceiling)

    def stop(self) -> None:
        self._started = False
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        if self._round is not None:
            round_, self._round = self._round, None
            round_.close()

    def published(self) -> None:
        if not self._started or self._round is not None:
            return  # a round under way hands what arrived to the players it has not served
        now = self.clock.seconds()
        due = self.pace.due(now)
        if self._call is None or self._call.getTime() > due:
            self._schedule(due)

    def _schedule(self, when: float) -> None:
        delay = max(0.0, when - self.clock.seconds())
        if self._call is not None and self._call.active():
            self._call.reset(delay)
        else:
            self._call = self.clock.callLater(delay, self._run)

    def _run(self) -> None:
        self._call = None
        started = self.clock.seconds()
        if self.flush_round is not None:
            self.figures.starts(started)
            self._round = self.flush_round()
            self._round_started = started
            self._round_cost = 0.0
            self._slice()
            return
        try:
            self.figures.run(self.flush, started)
        finally:
            self._flushed(started, self.figures.last_cost)

    def _slice(self) -> None:
        """Hand over the round for up to :data:`SLICE_SECONDS`, then let the reactor read."""
        self._call = None
        round_ = self._round
        if round_ is None:
            return
        clock = self.figures.cost_clock
        before = clock()
        done = True
        try:
            for _ in round_:
                if clock() - before >= SLICE_SECONDS:
                    done = False
                    break
        finally:
            self._round_cost += clock() - before
            if done:
                self._round = None
                self.figures.ended(self._round_cost)
                self._flushed(self._round_started, self._round_cost)
            elif self._started:
                self._call = self.clock.callLater(0, self._slice)

    def _flushed(self, started: float, cost: float) -> None:
        """A flush (or round) that started at ``started`` cost ``cost``: pace the next."""
        self.pace.flushed(started, cost)
        if self._started:
            # Until a publisher's read brings it forward, the next flush is the ceiling's (or
            # later, after a flush that overran it), so an idle server is not woken often.
            self._schedule(started + self.pace.period(cost, self.pace.ceiling))


def flushes_for(
    streams: StreamsConfig,
    clock: IReactorTime,
    flush: Callable[[], None],
    cost_clock: Callable[[], float] = time.perf_counter,
    flush_round: Callable[[], Generator[None, None, None]] | None = None,
) -> Flushes:
    """The flush loop ``[streams]`` asks for. ``flush_interval = 0`` flushes after every
    read from a publisher in either mode (there is nothing to adapt). ``flush_round``: the
    flush in slices, for the adaptive loop (:class:`AdaptiveFlushes`)."""
    if streams.flush == "fixed" or streams.flush_interval == 0:
        return FixedFlushes(clock, flush, streams.flush_interval, cost_clock)
    return AdaptiveFlushes(
        clock,
        flush,
        streams.flush_interval,
        streams.flush_share,
        cost_clock,
        streams.flush_busy_share,
        flush_round,
    )
