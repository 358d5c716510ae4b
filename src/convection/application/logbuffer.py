"""The call log behind the dashboard's Logs page, ``convection logs``, ``convection dev``'s
one line per call and the admin ``/api/admin/logs`` long-poll: a bounded ring of the most
recent function calls (:class:`~convection.functions.calllog.CallRecord`: kind, path,
duration, outcome, request id, identity, log lines) with sequence numbers, fed from any thread
and awaited on an event loop.

Memory is bounded: at most ``ADMIN_LOG_BUFFER_ENTRIES_COUNT`` entries are kept (older ones
are dropped), and each entry is bounded by the capture limits (``MAX_LOG_LINES_COUNT`` lines
of ``MAX_LOG_LINE_LENGTH_COUNT`` characters). Listeners (``convection dev``'s printer) are
called synchronously on the recording thread and must be quick; one that raises is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

from convection import knobs
from convection.functions.calllog import CallRecord


class LogEntry(NamedTuple):
    """One function call in the ring: ``seq`` increases by one per entry (a named tuple:
    immutable and cheap, one is built per call)."""

    seq: int
    ts: float  # ms since the epoch, when the call started
    path: str
    kind: str
    lines: tuple[str, ...]
    call: CallRecord | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seq": self.seq, "ts": self.ts, "path": self.path, "kind": self.kind, "lines": list(self.lines)
        }
        c = self.call
        if c is not None:
            out.update(
                origin=c.origin,
                durationMs=c.duration_ms,
                status="success" if c.success else "failure",
                error=c.error,
                frames=list(c.frames),
                requestId=c.request_id,
                identity=c.identity,
            )
        return out

    def matches(self, path: str | None, status: str | None) -> bool:
        """The Logs page's filters: ``path`` is a substring of the path; ``status`` is
        ``success`` or ``failure``."""
        if path and path not in self.path:
            return False
        if status and self.call is not None:
            return (status == "success") == self.call.success
        return True


class LogBuffer:
    """A bounded ring of the most recent :class:`LogEntry` objects, for tailing.

    ``record_call`` (the runner's ``on_call``) and ``record`` may be called from any thread;
    ``wait`` is a coroutine woken on its own event loop when an entry arrives. Sequence
    numbers start at 1; ``after=0`` means "from the oldest entry kept"."""

    def __init__(self, capacity: int | None = None, now_ms: Callable[[], float] | None = None) -> None:
        self._entries: deque[LogEntry] = deque(maxlen=capacity or knobs.ADMIN_LOG_BUFFER_ENTRIES_COUNT)
        self._seq = 0
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._listeners: list[Callable[[CallRecord], None]] = []
        self._now_ms = now_ms or (lambda: time.time() * 1000.0)

    @property
    def last_seq(self) -> int:
        return self._seq

    @property
    def capacity(self) -> int:
        return self._entries.maxlen or 0

    def add_listener(self, listener: Callable[[CallRecord], None]) -> None:
        """Call ``listener`` with every call recorded from now on."""
        self._listeners.append(listener)

    def record(self, path: str, kind: str, lines: list[str]) -> None:
        """Log lines without a call record (kept for callers of the older interface)."""
        self._append(lambda seq: LogEntry(seq, self._now_ms(), path, kind, tuple(lines)))

    def record_call(self, call: CallRecord) -> None:
        with self._lock:
            self._seq += 1
            self._entries.append(LogEntry(self._seq, call.ts, call.path, call.kind, call.lines, call))
            waiters, self._waiters = self._waiters, []
        self._wake(waiters)
        for listener in list(self._listeners):
            try:
                listener(call)
            except Exception:  # a broken printer must not break function calls
                with contextlib.suppress(ValueError):
                    self._listeners.remove(listener)

    def _append(self, make: Callable[[int], LogEntry]) -> None:
        with self._lock:
            self._seq += 1
            self._entries.append(make(self._seq))
            waiters, self._waiters = self._waiters, []
        self._wake(waiters)

    @staticmethod
    def _wake(waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]) -> None:
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
