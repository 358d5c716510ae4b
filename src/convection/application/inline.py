"""Which queries and mutations run on the event loop itself (issue 15: the mutation path's
hand-offs, uncached queries).

Under the GIL a function run in a worker thread does not leave the event loop free to work
while it runs Python code; what the thread buys is freedom while the function waits outside
Python (storage I/O, a sleep). For a short function it mostly costs: the submit to the pool,
a thread wake-up, the result posted back to the loop (a self-pipe write and another wake-up),
about 100-200 us of CPU per call, plus GIL convoys under load. So a function whose recent
runs were all short runs inline, on the loop; a mutation then awaits its commit instead of
blocking a thread on it.

The policy is per function path and learns from the runs themselves: a path runs in the pool
until ``_LEARN_RUNS`` consecutive runs took at most ``INLINE_CALL_MAX_US`` of CPU time on
their thread (so neither waiting for the GIL in a worker nor the whole process being
descheduled on a busy machine counts as the function's work); one longer run sends it back
to the pool. A function that blocks outside Python (``time.sleep``) uses little CPU, though:
such a run is caught by its wall time instead, when it is over 50 ms (wall time below that is
no evidence: under load it is mostly waiting for the GIL or for a core), and each inline run
that turned out long doubles the short runs the path needs to be trusted again (3, 6, 12 ...
up to 768), so a function that sometimes blocks rarely holds the loop. Only stores whose
reads are local (SQLite, memory: ``Persistence.local_reads``) run calls inline; over the
network (PostgreSQL) every read would hold the loop for a round trip that worker threads
overlap, so there every call runs in the pool.
"""

from __future__ import annotations

_LEARN_RUNS = 3
_MAX_STRIKES = 8  # at most 3 << 8 = 768 short runs to be trusted again
_BLOCKED_S = 0.05  # a run this long in wall time blocked (or the machine is swamped)


class InlinePolicy:
    def __init__(self, max_us: float) -> None:
        self.max_s = max_us / 1e6
        self._fast: dict[str, int] = {}  # path -> consecutive short runs
        self._strikes: dict[str, int] = {}  # path -> inline runs that turned out long
        self.inline_runs = 0  # for /metrics and tests
        self.pool_runs = 0

    def allows(self, path: str) -> bool:
        """Run the next call of ``path`` on the event loop?"""
        if self.max_s <= 0:
            return False
        return self._fast.get(path, 0) >= _LEARN_RUNS << self._strikes.get(path, 0)

    def observe(self, path: str, cpu_s: float, wall_s: float, inline: bool) -> None:
        """A run of ``path`` took ``cpu_s`` of CPU on its thread and ``wall_s`` in all."""
        if len(self._fast) >= 10_000:  # bounded: paths are few, this is a guard
            self._fast.clear()
            self._strikes.clear()
        slow = cpu_s > self.max_s or wall_s > _BLOCKED_S
        if inline:
            self.inline_runs += 1
            if slow:
                self._strikes[path] = min(self._strikes.get(path, 0) + 1, _MAX_STRIKES)
        else:
            self.pool_runs += 1
        if slow:
            self._fast[path] = 0
        else:
            self._fast[path] = self._fast.get(path, 0) + 1
