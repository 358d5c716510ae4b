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
until ``_LEARN_RUNS`` consecutive runs took at most ``INLINE_CALL_MAX_US`` (runs in a worker
thread are measured in that thread's CPU time, so waiting for the GIL does not count; inline
runs in wall time, which is what the loop was held); one longer run sends it back to the
pool. The worst a misjudged path costs is one run of the loop held for that run's duration.
Invariant: only the event loop's thread calls :meth:`InlinePolicy.allows`/``observe`` for
inline runs; pool runs report through :meth:`observe` from their threads (a plain dict
update, racing is harmless: the policy is a heuristic, never a correctness matter).
"""

from __future__ import annotations

_LEARN_RUNS = 3


class InlinePolicy:
    def __init__(self, max_us: float) -> None:
        self.max_s = max_us / 1e6
        self._fast: dict[str, int] = {}  # path -> consecutive short runs
        self.inline_runs = 0  # for /metrics and tests
        self.pool_runs = 0

    def allows(self, path: str) -> bool:
        """Run the next call of ``path`` on the event loop?"""
        return self.max_s > 0 and self._fast.get(path, 0) >= _LEARN_RUNS

    def observe(self, path: str, seconds: float, inline: bool) -> None:
        """A run of ``path`` took ``seconds`` of work."""
        if inline:
            self.inline_runs += 1
        else:
            self.pool_runs += 1
        if seconds <= self.max_s:
            n = self._fast.get(path, 0)
            if n < _LEARN_RUNS:
                if len(self._fast) >= 10_000:  # bounded: paths are few, this is a guard
                    self._fast.clear()
                self._fast[path] = n + 1
        else:
            self._fast[path] = 0
