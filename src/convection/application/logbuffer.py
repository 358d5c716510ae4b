"""The function-log ring buffer behind ``convection logs``, the dashboard's live logs and the
admin ``/api/admin/logs`` long-poll: a bounded ring of recent calls' log lines with sequence
numbers, fed from any thread and awaited on an event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from convection import knobs


@dataclass(frozen=True, slots=True)
class LogEntry:
    """The log lines of one function call: ``seq`` increases by one per entry."""

    seq: int
    ts: float  # ms since the epoch
    path: str
    kind: str
    lines: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "ts": self.ts, "path": self.path, "kind": self.kind, "lines": list(self.lines)}


class LogBuffer:
    """A bounded ring of the most recent :class:`LogEntry` objects, for tailing.

    ``record`` (the runner's ``on_log``) may be called from any thread; ``wait`` is a coroutine
    woken on its own event loop when an entry arrives. Sequence numbers start at 1; ``after=0``
    means "from the oldest entry kept"."""

    def __init__(self, capacity: int | None = None, now_ms: Callable[[], float] | None = None) -> None:
        self._entries: deque[LogEntry] = deque(maxlen=capacity or knobs.ADMIN_LOG_BUFFER_ENTRIES_COUNT)
        self._seq = 0
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._now_ms = now_ms or (lambda: time.time() * 1000.0)

    @property
    def last_seq(self) -> int:
        return self._seq

    def record(self, path: str, kind: str, lines: list[str]) -> None:
        with self._lock:
            self._seq += 1
            self._entries.append(LogEntry(self._seq, self._now_ms(), path, kind, tuple(lines)))
            waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # the waiter's loop is closed
                loop.call_soon_threadsafe(event.set)

    def _since(self, after: int) -> list[LogEntry]:
        return [e for e in self._entries if e.seq > after]

    def since(self, after: int) -> list[LogEntry]:
        """Entries with ``seq > after`` still in the ring, oldest first."""
        with self._lock:
            return self._since(after)

    def tail(self, n: int) -> list[LogEntry]:
        """The last ``n`` entries, oldest first."""
        with self._lock:
            return list(self._entries)[-n:] if n > 0 else []

    async def wait(self, after: int, timeout_s: float) -> list[LogEntry]:
        """Entries after ``after``; waits up to ``timeout_s`` for one when there is none yet."""
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        waiter = (loop, event)
        with self._lock:
            found = self._since(after)
            if found:
                return found
            self._waiters.append(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout_s)
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
        return self.since(after)
