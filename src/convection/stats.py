"""Counters and fixed-bucket histograms that lower layers own as plain attributes.

The layers count what they do on their own objects (``Committer.commits``,
``Runner.stats``, ...) and ``application/metrics.py`` reads them when ``/metrics`` is scraped:
there is no global registry and nothing here knows about Prometheus. Recording is cheap (an
integer increment, or a bisect and two increments under an uncontended lock); reading
(``snapshot``) happens only at scrape time.

Invariants: counts only grow (they are never reset, so they can be exposed as Prometheus
counters); ``Histogram.snapshot`` returns cumulative bucket counts whose last entry equals
``count``.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable
from dataclasses import dataclass

# Seconds: from a cache-missing query (~100 µs) to an action near its time limit.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)
# Commits per persisted group-commit batch (at most GROUP_COMMIT_MAX_BATCH_COUNT).
BATCH_SIZE_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """``buckets``: (upper bound, cumulative count) pairs, the last bound being +inf."""

    buckets: tuple[tuple[float, int], ...]
    sum: float
    count: int


class Histogram:
    """Observations counted into fixed buckets (``value <= bound``), plus their sum."""

    __slots__ = ("_counts", "_lock", "_sum", "bounds")

    def __init__(self, bounds: Iterable[float] = LATENCY_BUCKETS_S) -> None:
        self.bounds = tuple(sorted(bounds))
        self._counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(self.bounds, value)
        with self._lock:
            self._counts[i] += 1
            self._sum += value

    @property
    def count(self) -> int:
        return sum(self._counts)

    def snapshot(self) -> HistogramSnapshot:
        with self._lock:
            counts = list(self._counts)
            total = self._sum
        running = 0
        buckets = []
        for bound, n in zip((*self.bounds, float("inf")), counts, strict=True):
            running += n
            buckets.append((bound, running))
        return HistogramSnapshot(tuple(buckets), total, running)


class Counter:
    """A thread-safe monotonic count (for counts bumped from several threads at once)."""

    __slots__ = ("_lock", "value")

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def inc(self, n: int = 1) -> None:
        with self._lock:
            self.value += n


class CallStats:
    """Function executions by kind (``query``, ``mutation``, ``action``, ``httpAction``) and
    outcome (``success``, ``error``): one latency histogram each (its count is the number of
    calls), plus mutation OCC retries. Owned by the runner; shared by its successors when new
    code is pushed, so the counts survive a deploy."""

    KINDS = ("query", "mutation", "action", "httpAction")
    OUTCOMES = ("success", "error")

    def __init__(self) -> None:
        self.calls: dict[tuple[str, str], Histogram] = {
            (kind, outcome): Histogram(LATENCY_BUCKETS_S) for kind in self.KINDS for outcome in self.OUTCOMES
        }
        self.occ_retries = Counter()

    def record(self, kind: str, success: bool, seconds: float) -> None:
        hist = self.calls.get((kind, "success" if success else "error"))
        if hist is not None:
            hist.observe(seconds)
