"""The one OCC retry loop: run a function in a transaction and commit, retrying on write
conflicts (docs/internals/transactions.md). Every caller that commits a transaction it may have to redo
uses it: the runner (mutations), the scheduler and cron executors, file storage, admin
imports and env vars, the TestBackend.

Each attempt gets a fresh transaction at the latest published snapshot. On an OCC conflict
the attempt is retried after a full-jitter exponential backoff
(``rand[0,1) * min(MUTATION_OCC_BACKOFF_INITIAL_MS * 2^n, MUTATION_OCC_BACKOFF_MAX_MS)``) and,
when the conflict names the commit it lost to, once that commit is published (so the retry
reads it); at most ``MUTATION_MAX_OCC_RETRIES_COUNT`` retries unless the caller says
otherwise. Then the attempt runs in the **serialized lane** (``Database.serialized``): it
holds this process's commit order, so no commit of this process can come between its begin
and its commit; it cannot conflict with them, and contention costs time, never a failed call.
Only a commit of another process sharing the store can still conflict with it there: such
attempts are retried inside the lane (as many times again, then, with a jittered backoff of
at most 80 ms, until ``MUTATION_LANE_RETRY_MS`` has passed since the lane was entered), then
the last :class:`OccConflict` is raised. ``serialize=False`` skips the lane and raises after the
optimistic retries. Any other exception ends the
loop at once and the transaction's writes are discarded. An attempt that returns
:class:`Discard` ends the loop without committing (a user error turned into a result, an
answer from a stored result).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from convection import knobs
from convection.database.transaction import Transaction
from convection.errors import OccConflict

T = TypeVar("T")


class CommitLog(Protocol):
    """Waiting for a commit to be published (the database's committer)."""

    def wait_published(self, ts: int, timeout: float = ...) -> None: ...


class TransactionSource(Protocol):
    """What the loop needs of a database (``Database`` implements it; this module does not
    import the database module, which calls the loop)."""

    @property
    def committer(self) -> CommitLog: ...

    def begin(self) -> Transaction: ...

    def commit(self, txn: Transaction) -> int: ...

    def serialized(self, timeout_s: float) -> contextlib.AbstractContextManager[None]: ...


@dataclass(frozen=True, slots=True)
class Discard(Generic[T]):
    """What an attempt returns to end the loop with ``value`` and commit nothing."""

    value: T


def backoff_ms(attempt: int, rng: random.Random) -> float:
    """Full jitter: uniform in ``[0, min(initial * 2^attempt, max))`` milliseconds."""
    cap = min(knobs.MUTATION_OCC_BACKOFF_INITIAL_MS * (2**attempt), knobs.MUTATION_OCC_BACKOFF_MAX_MS)
    return float(rng.random() * cap)


def run_in_transaction(
    db: TransactionSource,
    fn: Callable[[Transaction], T | Discard[T]],
    *,
    max_retries: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    on_conflict: Callable[[int, OccConflict], None] | None = None,
    serialize: bool = True,
) -> tuple[T, int | None]:
    """Run ``fn(txn)`` and commit ``txn``, retrying conflicts (module docstring).

    Returns ``(fn's result, commit ts)``; the ts is None when ``fn`` returned
    :class:`Discard` (nothing was committed). ``on_conflict(n, exc)`` is called before the
    n-th retry (from 0); ``sleep`` takes seconds."""
    retries = knobs.MUTATION_MAX_OCC_RETRIES_COUNT if max_retries is None else max_retries
    limit = 2 * retries + 1 if serialize else retries
    attempt = 0
    lane_deadline = 0.0
    lane: contextlib.ExitStack = contextlib.ExitStack()
    with lane:
        while True:
            if attempt == retries + 1 and serialize:
                # Still conflicting after the optimistic retries: run alone from now on.
                lane.enter_context(db.serialized(knobs.MUTATION_SERIAL_WAIT_MS / 1000))
                lane_deadline = time.monotonic() + knobs.MUTATION_LANE_RETRY_MS / 1000
            txn = db.begin()
            result = fn(txn)
            if isinstance(result, Discard):
                return result.value, None
            try:
                ts = db.commit(txn)
            except OccConflict as exc:
                # Past ``limit`` only another process's commits can be winning (we hold this
                # process's order): keep trying them until the lane's time is up.
                overtime = attempt >= limit
                if overtime and not (serialize and time.monotonic() < lane_deadline):
                    raise
                if on_conflict is not None:
                    on_conflict(attempt, exc)
                if attempt < retries or overtime:
                    if rng is None:
                        rng = random.Random()  # seeded from os.urandom: only when needed
                    sleep(backoff_ms(3 if overtime else attempt, rng) / 1000.0)
                if exc.conflict_ts is not None:
                    # Retry on a snapshot that includes the conflicting commit.
                    db.committer.wait_published(exc.conflict_ts)
                attempt += 1
                continue
            return result, ts
