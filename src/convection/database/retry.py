"""Run a function in a transaction, retrying on write conflicts (docs/internals/transactions.md).

Each attempt gets a fresh transaction at the latest snapshot. On an OCC conflict the attempt
is retried after a full-jitter exponential backoff (``rand[0,1) * min(initial * 2^n, max)``),
at most ``MUTATION_MAX_OCC_RETRIES_COUNT`` times; any other exception (user errors) ends the
call without retry and discards the writes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from convection import knobs
from convection.errors import OccConflict

if TYPE_CHECKING:
    from convection.database.database import Database
    from convection.database.transaction import Transaction

T = TypeVar("T")


def backoff_ms(attempt: int, rng: random.Random) -> float:
    cap = min(knobs.MUTATION_OCC_BACKOFF_INITIAL_MS * (2**attempt), knobs.MUTATION_OCC_BACKOFF_MAX_MS)
    return float(rng.random() * cap)


def run_in_transaction(
    db: Database,
    fn: Callable[[Transaction], T],
    *,
    max_retries: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    on_conflict: Callable[[int, OccConflict], None] | None = None,
) -> tuple[T, int]:
    """Run ``fn(txn)`` and commit; returns (fn's result, commit ts)."""
    retries = knobs.MUTATION_MAX_OCC_RETRIES_COUNT if max_retries is None else max_retries
    r = rng or random.Random()
    attempt = 0
    while True:
        txn = db.begin()
        result = fn(txn)
        try:
            ts = db.commit(txn)
        except OccConflict as exc:
            if attempt >= retries:
                raise
            if on_conflict is not None:
                on_conflict(attempt, exc)
            sleep(backoff_ms(attempt, r) / 1000.0)
            if exc.conflict_ts is not None:
                db.committer.wait_published(exc.conflict_ts)
            attempt += 1
            continue
        return result, ts
