"""Process-wide event counters for the metrics (``/metrics``): what happened and was gone.

Figures of what exists now (connections, streams, players) are read from the server's state at
scrape time; events that leave nothing behind (a refused connection, a failed handshake, a
plugin's decision, a slow player closed) are counted here, where they happen. Standard library
only, so that every room may count; :mod:`fms.http.metrics` turns :func:`snapshot` into
Prometheus families.

Counters are monotonic floats keyed by a name and a set of labels; histograms have fixed
bucket bounds (seconds) chosen by their name.
"""

from __future__ import annotations

import bisect
from typing import Any

DECISION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
"""Bucket upper bounds (seconds) of ``plugin_decision_seconds``: a chain of in-process
plugins answers in microseconds; one that asks a web service, in tens of milliseconds."""

FLUSH_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 1.0
)  # fmt: skip
"""Bucket upper bounds (seconds) of ``flush_seconds`` (what one fan-out flush took) and
``flush_interval_seconds`` (from one flush's start to the next's): a few players flush in
under a millisecond, 10,000 in about 100 ms (docs/performance.md, "Adaptive flush"); the
buckets around the 100 ms ceiling are fine enough to see whether flushes overrun it."""

_BUCKETS = {
    "plugin_decision_seconds": DECISION_BUCKETS,
    "flush_seconds": FLUSH_BUCKETS,
    "flush_interval_seconds": FLUSH_BUCKETS,
}

Labels = tuple[tuple[str, str], ...]


class _Histogram:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0


class Counters:
    """Counters and histograms of one process (see the module docstring)."""

    def __init__(self) -> None:
        self._counters: dict[str, dict[Labels, float]] = {}
        self._histograms: dict[str, dict[Labels, _Histogram]] = {}

    def add(self, name: str, amount: float = 1, **labels: str) -> None:
        """Count ``amount`` more of ``name`` under ``labels``."""
        key = tuple(sorted(labels.items()))
        family = self._counters.setdefault(name, {})
        family[key] = family.get(key, 0) + amount

    def observe(self, name: str, value: float, **labels: str) -> None:
        """Record one ``value`` (seconds) in histogram ``name``."""
        key = tuple(sorted(labels.items()))
        family = self._histograms.setdefault(name, {})
        histogram = family.get(key)
        if histogram is None:
            histogram = family[key] = _Histogram(_BUCKETS.get(name, DECISION_BUCKETS))
        histogram.counts[bisect.bisect_left(histogram.bounds, value)] += 1
        histogram.sum += value

    def value(self, name: str, **labels: str) -> float:
        """The count of ``name`` under exactly ``labels`` (0 if never counted)."""
        return self._counters.get(name, {}).get(tuple(sorted(labels.items())), 0)

    def snapshot(self) -> dict[str, Any]:
        """Everything counted, as JSON: ``{"counters": {name: [[labels, value], ...]},
        "histograms": {name: [[labels, bounds, counts, sum], ...]}}`` (``counts`` per bucket,
        not cumulative, the last one above every bound), so that the figures of several
        processes can be added (:func:`merge`)."""
        return {
            "counters": {
                name: [[dict(key), value] for key, value in family.items()]
                for name, family in self._counters.items()
            },
            "histograms": {
                name: [
                    [dict(key), list(h.bounds), list(h.counts), h.sum] for key, h in family.items()
                ]
                for name, family in self._histograms.items()
            },
        }

    def clear(self) -> None:
        """Forget everything (tests)."""
        self._counters.clear()
        self._histograms.clear()


def merge(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """Add the :meth:`Counters.snapshot` of several processes into one."""
    counters: dict[str, dict[Labels, float]] = {}
    histograms: dict[str, dict[Labels, list[Any]]] = {}
    for snap in snapshots:
        for name, rows in snap.get("counters", {}).items():
            family = counters.setdefault(name, {})
            for labels, value in rows:
                key = tuple(sorted(labels.items()))
                family[key] = family.get(key, 0) + value
        for name, rows in snap.get("histograms", {}).items():
            hfamily = histograms.setdefault(name, {})
            for labels, bounds, counts, total in rows:
                key = tuple(sorted(labels.items()))
                have = hfamily.get(key)
                if have is None or have[0] != bounds:
                    hfamily[key] = [list(bounds), list(counts), total]
                else:
                    have[1] = [a + b for a, b in zip(have[1], counts, strict=True)]
                    have[2] += total
    return {
        "counters": {n: [[dict(k), v] for k, v in f.items()] for n, f in counters.items()},
        "histograms": {n: [[dict(k), *row] for k, row in f.items()] for n, f in histograms.items()},
    }


COUNTERS = Counters()
"""This process's counters."""
