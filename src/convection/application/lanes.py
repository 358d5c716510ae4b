"""Fair use of the function worker pool: one function path may hold only part of it.

Queries and mutations run in a fixed pool of ``FUNCTION_WORKER_THREADS_COUNT`` threads. A
function stuck in a blocking call (or spinning on the CPU) holds its thread until it returns
or its time limit stops it, so without a bound twenty calls of one broken query take every
thread and an unrelated query waits for them. :class:`Lanes` admits at most
``FUNCTION_MAX_THREADS_PER_PATH_COUNT`` calls of one function path into the pool at a time;
the others of that path wait their turn (in arrival order) on the event loop, holding no
thread. So at least ``pool - per_path`` threads always remain for the other paths.

Invariants:
* ``running(key) <= limit`` for every key; a waiter is admitted as soon as a call of its key
  finishes (FIFO per key);
* a key with nothing running and nothing waiting is forgotten (no growth with distinct
  paths);
* a cancelled waiter never takes a slot, and a cancelled holder gives its slot back.

Used only from the event loop (no locks needed).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


@dataclass
class _Lane:
    running: int = 0
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)


class Lanes:
    """Per-key admission to the worker pool (see module docstring)."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._lanes: dict[str, _Lane] = {}
        self.waited = 0
        """Calls that had to wait for their path's lane (for /metrics and tests)."""

    def running(self, key: str) -> int:
        lane = self._lanes.get(key)
        return 0 if lane is None else lane.running

    def waiting(self, key: str) -> int:
        lane = self._lanes.get(key)
        return 0 if lane is None else len(lane.waiters)

    async def run(self, key: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Await ``fn()`` once ``key`` has a free slot; the slot is held until it returns."""
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        if lane.running >= self.limit or lane.waiters:
            self.waited += 1
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            lane.waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    # The slot was handed to us just as we were cancelled: pass it on.
                    self._release(key, lane)
                else:
                    lane.waiters.remove(waiter)
                    self._forget_if_idle(key, lane)
                raise
        else:
            lane.running += 1
        try:
            return await fn()
        finally:
            self._release(key, lane)

    def _release(self, key: str, lane: _Lane) -> None:
        while lane.waiters:
            waiter = lane.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to it: ``running`` is unchanged
                return
        lane.running -= 1
        self._forget_if_idle(key, lane)

    def _forget_if_idle(self, key: str, lane: _Lane) -> None:
        if lane.running <= 0 and not lane.waiters and self._lanes.get(key) is lane:
            del self._lanes[key]
