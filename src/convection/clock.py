"""Time sources. Core code takes time from an injected :class:`Clock` so tests never sleep.

Wall time is in milliseconds (float) or nanoseconds (int) since the Unix epoch; monotonic
time in seconds (float) for timeouts.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Protocol


class Clock(Protocol):
    def now_ns(self) -> int:
        """Wall-clock nanoseconds since the epoch (may jump; callers make it monotonic)."""

    def now_ms(self) -> float:
        """Wall-clock milliseconds since the epoch."""


class SystemClock:
    """The real wall clock."""

    def now_ns(self) -> int:
        return time.time_ns()

    def now_ms(self) -> float:
        return time.time_ns() / 1e6


class ManualClock:
    """A clock that moves only when told to (TestBackend, scheduler tests)."""

    def __init__(self, start_ms: float | None = None) -> None:
        self._lock = threading.Lock()
        self._ns = _ms_to_ns(start_ms) if start_ms is not None else time.time_ns()

    def now_ns(self) -> int:
        with self._lock:
            return self._ns

    def now_ms(self) -> float:
        return self.now_ns() / 1e6

    def advance_ms(self, ms: float) -> None:
        if ms < 0:
            raise ValueError("a clock cannot go backwards")
        with self._lock:
            self._ns += _ms_to_ns(ms)

    def set_ms(self, ms: float) -> None:
        with self._lock:
            self._ns = max(self._ns, _ms_to_ns(ms))


def _ms_to_ns(ms: float) -> int:
    """Exact conversion (a float times 1e6 is off by up to ~128 ns at today's epoch)."""
    return int(Decimal(repr(float(ms))) * 1_000_000)
