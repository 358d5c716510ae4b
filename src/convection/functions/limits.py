"""Time limits for synchronous function calls running in worker threads.

A single watchdog thread keeps the deadlines of running calls; it sleeps until the earliest
one and is woken only by a call whose deadline comes before it (not once per call). When one passes it raises
:class:`FunctionTimeout` inside the call's thread (``PyThreadState_SetAsyncExc``), which
interrupts Python code at the next bytecode boundary (not a blocking C call). A call that
finishes first unregisters under the same lock and clears any exception injected too late,
so the exception never escapes the protected region.
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from convection.errors import ConvectionError

T = TypeVar("T")


class FunctionTimeout(ConvectionError):
    code = "FunctionTimeout"

    def __init__(self, message: str = "the function timed out") -> None:
        super().__init__(message)


_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = [ctypes.c_ulong, ctypes.py_object]


class _Entry:
    __slots__ = ("deadline", "fired", "tid")

    def __init__(self, tid: int, deadline: float) -> None:
        self.tid = tid
        self.deadline = deadline
        self.fired = False


class Watchdog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, _Entry]] = []
        self._active: set[_Entry] = set()
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="convection-watchdog", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                while self._heap and (self._heap[0][2] not in self._active):
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                deadline, _, entry = self._heap[0]
                if deadline > now:
                    self._cond.wait(deadline - now)
                    continue
                heapq.heappop(self._heap)
                entry.fired = True
                _set_async_exc(entry.tid, FunctionTimeout)

    def run(self, fn: Callable[[], T], timeout_s: float, what: str) -> T:
        entry = _Entry(threading.get_ident(), time.monotonic() + timeout_s)
        with self._lock:
            self._ensure_thread()
            self._active.add(entry)
            # The watchdog sleeps until the earliest deadline in the heap (finished calls
            # leave theirs there until it pops them): wake it only when this deadline comes
            # first. Waking it on every call cost a thread hand-off (and a GIL switch) per
            # query and mutation.
            wake = not self._heap or entry.deadline < self._heap[0][0]
            heapq.heappush(self._heap, (entry.deadline, next(self._counter), entry))
            if wake:
                self._cond.notify()
        try:
            return fn()
        except FunctionTimeout:
            raise FunctionTimeout(f"{what} timed out after {timeout_s:g} s") from None
        finally:
            with self._lock:
                self._active.discard(entry)
                if entry.fired:
                    _set_async_exc(entry.tid, ctypes.py_object())  # clear a late injection


WATCHDOG = Watchdog()
