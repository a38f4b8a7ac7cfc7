"""One shared deadline queue for every connection, instead of timers per connection.

A server with 10,000 connections would otherwise hold several reactor timers per connection
(handshake, connect, idle, ping) and re-arm one on every read. Here each connection has at most
one entry: the time of its next check. A check recomputes the connection's real deadlines from
plain timestamps (last byte received, last media, last ping) and schedules the next one, so
bytes arriving only move a timestamp and never touch the queue. Only a change that makes a
deadline *earlier* (a publish starts, a ping goes out) pushes a new entry.

Pure Python, no reactor: time is an argument. The Twisted layer keeps a single delayed call
armed for :meth:`DeadlineQueue.next_time`.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


EPSILON = 0.001
"""Deadlines may fire this early (seconds), so clock rounding never makes one miss its turn."""


class DeadlineQueue(Generic[K]):
    """Keys with the time (seconds) they are next due, earliest first.

    A key is due once; after :meth:`pop_due` returned it, it is scheduled again only when the
    caller says so. Superseded entries stay in the heap until they surface (or the heap is
    compacted), so keys should be small (ids, not objects that hold buffers).
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._due: dict[K, float] = {}
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, key: object) -> bool:
        return key in self._due

    def when(self, key: K) -> float | None:
        """The time ``key`` is due, or None if it is not scheduled."""
        return self._due.get(key)

    def schedule(self, key: K, when: float) -> bool:
        """Make ``key`` due at ``when`` unless it is already due earlier; return whether the
        queue changed."""
        current = self._due.get(key)
        if current is not None and current <= when:
            return False
        self._due[key] = when
        heapq.heappush(self._heap, (when, next(self._order), key))
        if len(self._heap) > 2 * len(self._due) + 64:
            self._compact()
        return True

    def discard(self, key: K) -> None:
        """Forget ``key`` (its heap entry is skipped when it surfaces)."""
        self._due.pop(key, None)

    def next_time(self) -> float | None:
        """When the earliest key is due (None: nothing scheduled)."""
        heap = self._heap
        while heap and self._due.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> list[K]:
        """Every key due at or before ``now``, earliest first; they are no longer scheduled."""
        heap = self._heap
        due: list[K] = []
        while heap and heap[0][0] <= now:
            when, _, key = heapq.heappop(heap)
            if self._due.get(key) == when:
                del self._due[key]
                due.append(key)
        return due

    def _compact(self) -> None:
        self._heap = [entry for entry in self._heap if self._due.get(entry[2]) == entry[0]]
        heapq.heapify(self._heap)


__all__ = ["DeadlineQueue"]
