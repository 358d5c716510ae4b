"""The committer: the single write path of the database.

``commit`` (called from any thread) validates a transaction's read set against every commit
after its begin ts (published or still being written), assigns the commit ts from a hybrid
clock (``max(last + 1, wall clock ns)``: strictly increasing, close to wall time, never going
backwards, also across restarts since it starts above the persisted max ts), and queues the
commit. One writer thread persists queued commits in batches (group commit: everything
queued while the previous write was in flight goes into one durable SQL transaction), then
publishes them in ts order: write log, subscription invalidation, then ``latest_ts``. The
caller's ``commit`` returns once its commit is published.

Invariants:
* the write log holds commits in strictly increasing ts order;
* ``latest_ts`` only moves forward and only after subscriptions saw every commit up to it;
* a persistence failure (unknown outcome) stops the committer for good: every waiting and
  later commit raises :class:`StorageFailure`, and the process should restart and recover
  from the log rather than guess.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from convection import knobs
from convection.clock import Clock
from convection.database.readset import FrozenReadSet
from convection.database.subscriptions import SubscriptionManager
from convection.errors import OccConflict, StorageFailure
from convection.persistence.base import DocumentRevision, IndexEntry, Persistence
from convection.stats import BATCH_SIZE_BUCKETS, LATENCY_BUCKETS_S, Histogram

log = logging.getLogger("convection.committer")

# Called under the commit lock with the assigned ts: the commit's revisions, index entries and
# written keys (index id -> keys), computed with the catalog at that ts.
RowsBuilder = Callable[[int], tuple[list[DocumentRevision], list[IndexEntry], dict[int, list[bytes]]]]


@dataclass(eq=False)
class CommitRecord:
    ts: int
    index_keys: dict[int, list[bytes]]
    documents: list[DocumentRevision] = field(default_factory=list)
    entries: list[IndexEntry] = field(default_factory=list)
    published: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    source: str = ""
    # The transaction's ``Write`` s (table, id, old and new document), for ``on_durable``
    # consumers (in-memory search indexes); dropped once published.
    writes: list[Any] = field(default_factory=list)


class Committer:
    """Owns the write log, the commit clock and the writer thread. See module docstring.

    Counters for ``/metrics`` (read at scrape time, never reset): ``commits`` (published),
    ``occ_conflicts`` (commits refused by OCC validation), ``commit_seconds`` (from
    ``commit()`` to published, successful commits) and ``batch_sizes`` (commits per persisted
    group-commit batch)."""

    def __init__(
        self,
        persistence: Persistence,
        subscriptions: SubscriptionManager,
        clock: Clock,
        *,
        start_ts: int,
        on_publish: Callable[[list[CommitRecord]], None] | None = None,
        on_durable: Callable[[list[CommitRecord]], None] | None = None,
    ) -> None:
        self._persistence = persistence
        self._subscriptions = subscriptions
        self._clock = clock
        self._on_publish = on_publish
        # Runs in the writer thread once a batch is durable and before any of it is published
        # (before ``latest_ts`` moves past it): derived in-memory indexes see every commit a
        # reader can see. Must be quick and must not raise.
        self._on_durable = on_durable
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._log: list[CommitRecord] = []  # ts order; published prefix, then pending
        self._log_ts: list[int] = []
        self._log_floor = start_ts  # commits at or before this ts are not in the log
        self._queue: deque[CommitRecord] = deque()
        self._last_assigned = start_ts
        self.latest_ts = start_ts
        self._failed: BaseException | None = None
        self._stopping = False
        self._listeners: list[Callable[[int], None]] = []
        self.commits = 0  # bumped by the writer thread only
        self.occ_conflicts = 0  # bumped under self._lock
        self.commit_seconds = Histogram(LATENCY_BUCKETS_S)
        self.batch_sizes = Histogram(BATCH_SIZE_BUCKETS)
        self._thread = threading.Thread(target=self._writer, name="convection-committer", daemon=True)
        self._thread.start()

    # --- public ---------------------------------------------------------------------------
    def add_listener(self, fn: Callable[[int], None]) -> None:
        """``fn(latest_ts)`` runs in the writer thread after each published batch."""
        self._listeners.append(fn)

    def bump_ts(self, ts: int) -> None:
        """Make every future commit and ``latest_ts`` at least ``ts`` (a client observed it)."""
        with self._lock:
            if ts > self._last_assigned:
                self._last_assigned = ts
            if not self._queue and ts > self.latest_ts:
                self.latest_ts = ts

    def commit(
        self,
        begin_ts: int,
        read_set: FrozenReadSet,
        build_rows: RowsBuilder,
        *,
        source: str = "",
        writes: list[Any] | None = None,
    ) -> int:
        """Validate, persist and publish one commit; returns its ts. Raises OccConflict or
        StorageFailure. ``writes`` ride along on the record for ``on_durable``."""
        started = time.perf_counter()
        with self._lock:
            if self._failed is not None:
                raise StorageFailure(f"the database stopped after a storage failure: {self._failed}")
            if self._stopping:
                raise StorageFailure("the database is shutting down")
            self._validate(begin_ts, read_set)
            ts = max(self._last_assigned + 1, self._clock.now_ns())
            self._last_assigned = ts
            docs, entries, index_keys = build_rows(ts)
            rec = CommitRecord(ts, index_keys, docs, entries, source=source, writes=writes or [])
            self._log.append(rec)
            self._log_ts.append(ts)
            self._queue.append(rec)
            self._cond.notify_all()
        rec.done.wait()
        if rec.error is not None:
            raise StorageFailure(f"commit failed with an unknown outcome: {rec.error}") from rec.error
        self.commit_seconds.observe(time.perf_counter() - started)
        return ts

    def _validate(self, begin_ts: int, read_set: FrozenReadSet) -> None:
        if begin_ts < self._log_floor:
            raise OccConflict(
                "the transaction's snapshot is older than the write log's retention; retry it",
                code="OutOfRetention",
            )
        if not read_set.by_index:
            return
        i = bisect.bisect_right(self._log_ts, begin_ts)
        for rec in self._log[i:]:
            if read_set.overlaps_keys(rec.index_keys):
                self.occ_conflicts += 1
                raise OccConflict(
                    "Documents read from or written to this transaction changed while it was "
                    f"being run (conflicting commit at ts {rec.ts}{' by ' + rec.source if rec.source else ''}). "
                    "The mutation is retried automatically.",
                    conflict_ts=rec.ts,
                )

    def first_overlap_after(self, ts: int, read_set: FrozenReadSet) -> int | None:
        """ts of the first *published* commit after ``ts`` overlapping ``read_set``. Commits
        at or before the log floor are unknown: reports the floor as an overlap."""
        with self._lock:
            if ts < self._log_floor:
                return self._log_floor
            i = bisect.bisect_right(self._log_ts, ts)
            for rec in self._log[i:]:
                if not rec.published:
                    break
                if read_set.overlaps_keys(rec.index_keys):
                    return rec.ts
        return None

    def wait_published(self, ts: int, timeout: float = 1.0) -> None:
        """Block until ``latest_ts >= ts`` (or the timeout passes, or the committer failed)."""
        import time as _time

        deadline = _time.monotonic() + timeout
        with self._lock:
            while self.latest_ts < ts and self._failed is None:
                left = deadline - _time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=10)

    @property
    def failed(self) -> BaseException | None:
        return self._failed

    # --- writer thread --------------------------------------------------------------------
    def _writer(self) -> None:
        max_batch = knobs.GROUP_COMMIT_MAX_BATCH_COUNT
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue and self._stopping:
                    return
                batch: list[CommitRecord] = []
                while self._queue and len(batch) < max_batch:
                    batch.append(self._queue.popleft())
            docs: list[DocumentRevision] = []
            entries: list[IndexEntry] = []
            for rec in batch:
                docs.extend(rec.documents)
                entries.extend(rec.entries)
            try:
                self._persistence.write(docs, entries)
            except BaseException as exc:  # unknown outcome: stop for good
                log.critical("persistence write failed; the database stops: %s", exc)
                with self._lock:
                    self._failed = exc
                    failed = batch + list(self._queue)
                    self._queue.clear()
                for rec in failed:
                    rec.error = exc
                    rec.done.set()
                return
            if self._on_durable is not None:
                try:
                    self._on_durable(batch)
                except Exception:
                    log.exception("durable hook failed")
            callbacks: list[Callable[[], None]] = []
            for rec in batch:
                with self._lock:
                    rec.published = True
                callbacks.extend(self._subscriptions.publish(rec.ts, rec.index_keys))
                with self._lock:
                    self.latest_ts = rec.ts
                    self._cond.notify_all()
                rec.documents = []
                rec.entries = []
                rec.writes = []
            self._trim()
            self.commits += len(batch)
            self.batch_sizes.observe(len(batch))
            if self._on_publish is not None:
                self._on_publish(batch)
            for rec in batch:
                rec.done.set()
            for cb in callbacks:
                try:
                    cb()
                except Exception:  # a subscriber's bug must not stop the committer
                    log.exception("subscription callback failed")
            latest = self.latest_ts
            for fn in self._listeners:
                try:
                    fn(latest)
                except Exception:
                    log.exception("commit listener failed")

    def _trim(self) -> None:
        horizon = self._clock.now_ns() - knobs.WRITE_LOG_RETENTION_MS * 1_000_000
        with self._lock:
            n = 0
            log_ = self._log
            while n < len(log_) - 1 and log_[n].published and log_[n].ts < horizon:
                n += 1
            if n:
                self._log_floor = log_[n - 1].ts
                del log_[:n]
                del self._log_ts[:n]
