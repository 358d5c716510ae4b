"""The committer: the write path of the database, shared by every process using the store.

``commit`` (called from any thread) checks a transaction's read set against the commits this
process already knows (an early, cheap refusal) and queues it. One writer thread takes the
queued commits as a batch (group commit) and, holding the store's **commit lock**
(``Persistence.commit_session``: SQLite's write lock, a PostgreSQL advisory lock), which every
process and node using the store takes in turn:

1. **catches up**: reads the commit-log entries other processes wrote since the last ts this
   process knows (their written keys), and hands their document revisions to the database
   (``on_remote``: the catalog learns their tables and indexes, derived indexes their writes);
2. **validates** each queued commit against every commit after its begin ts (this process's,
   the other processes', and the batch's earlier ones): an overlap fails it with OccConflict;
3. **assigns** its ts from a hybrid clock (``max(last ts known + 1, wall clock ns)``: strictly
   increasing across processes, close to wall time) and **builds** its rows and written keys
   with the catalog at that ts;
4. **writes** the rows and the commit-log entries in one durable transaction, releasing the
   lock.

Then it publishes, in ts order, the other processes' commits and its own: write log,
subscription invalidation, then ``latest_ts``; the callers of ``commit`` return. When no commit
is queued the writer **tails** the log: when the store wakes it (PostgreSQL: a NOTIFY sent by
another node's commit, ``Persistence.watch_commits``), and otherwise every
``LOG_TAIL_POLL_MS`` (SQLite) or ``LOG_TAIL_FALLBACK_POLL_MS`` (PostgreSQL: a lost
notification), it asks the store (cheaply) whether another process committed, and publishes
what it finds.

Invariants:
* the write log holds commits in strictly increasing ts order, and a ts is never reused by any
  process (ts assignment and the write happen under the one commit lock);
* ``latest_ts`` only moves forward, only after subscriptions saw every commit up to it, and
  everything committed at or before it (by any process) is known here: a snapshot at
  ``latest_ts`` never changes;
* a failed persistence write fails only the commits in flight (:class:`StorageUnavailable`):
  their records leave the write log and their catalog changes are undone (``on_failed``); the
  other processes' commits read in that session are read again later. When the failure came
  after the write was sent (the outcome is unknown), a new commit session (which waits for the
  lost connection's transaction to end) reads the log first: if the batch's first ts landed,
  the batch is durable and published instead. Writes resume by themselves (each later commit
  and an idle probe every ``STORAGE_RETRY_INTERVAL_MS`` try again); ``health`` says which
  (``database/storage_health.py``). Any other exception in the writer stops it for good:
  every waiting and later commit raises :class:`StorageFailure`.
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
from convection.database.readset import EMPTY_READ_SET, FrozenReadSet
from convection.database.storage_health import (
    OK,
    RESOLVING,
    UNAVAILABLE,
    WriteHealth,
    probe,
    set_state,
)
from convection.database.subscriptions import SubscriptionManager
from convection.errors import OccConflict, StorageFailure, StorageUnavailable
from convection.persistence.base import (
    CommitEntry,
    DocumentRevision,
    IndexEntry,
    Persistence,
    decode_written_keys,
    encode_written_keys,
)
from convection.stats import BATCH_SIZE_BUCKETS, LATENCY_BUCKETS_S, Histogram

log = logging.getLogger("convection.committer")

# Called under the commit lock with the assigned ts: the commit's revisions, index entries and
# written keys (index id -> keys), computed with the catalog at that ts.
RowsBuilder = Callable[[int], tuple[list[DocumentRevision], list[IndexEntry], dict[int, list[bytes]]]]
# The database's view of commits made by other processes: given their revisions (in ts order,
# grouped per commit), update what depends on them (the catalog) and return each commit's
# ``Write`` s for derived indexes.
RemoteHandler = Callable[[int, list[DocumentRevision]], list[Any]]


class OrderHeld(Exception):
    """``Committer.submit(wait_for_order=False)``: another thread holds the serialized lane,
    so the commit would have to wait; nothing was queued."""


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
    # consumers (derived in-memory indexes); dropped once published.
    writes: list[Any] = field(default_factory=list)
    # Until the writer assigns the ts: what to validate and how to build the rows.
    begin_ts: int = 0
    read_set: FrozenReadSet = EMPTY_READ_SET
    build: RowsBuilder | None = None
    remote: bool = False  # committed by another process
    min_ts: int = 0  # the ts must be at least this (bump_ts)
    failures: int = 0  # storage failures of batches it was in (one is retried at once)
    # Called on the writer thread once ``done`` is set (``submit``'s callers that do not block
    # on ``done``: the event loop's inline mutations).
    on_done: Callable[[], None] | None = None


def _empty_rows(ts: int) -> tuple[list[DocumentRevision], list[IndexEntry], dict[int, list[bytes]]]:
    return [], [], {}


class Committer:
    """Owns the write log, the commit clock and the writer thread. See module docstring.

    Counters for ``/metrics`` (read at scrape time, never reset): ``commits`` (published, this
    process's), ``remote_commits`` (other processes' commits published here),
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
        on_remote: RemoteHandler | None = None,
        on_failed: Callable[[list[CommitRecord]], None] | None = None,
    ) -> None:
        self._persistence = persistence
        self._subscriptions = subscriptions
        self._clock = clock
        self._on_publish = on_publish
        # Runs in the writer thread once a batch is durable and before any of it is published
        # (before ``latest_ts`` moves past it): derived in-memory indexes see every commit a
        # reader can see. Must be quick and must not raise.
        self._on_durable = on_durable
        self._on_remote = on_remote
        # Called in the writer thread with this process's records that were built (their
        # catalog changes applied) but not persisted, latest first: undo what building did.
        self._on_failed = on_failed
        self.health = WriteHealth()
        """Whether writes work (database/storage_health.py; ``/health``)."""
        # The batch being written: built records, refused ones, and other processes'
        # commits read in its session (for the failure policy).
        self._flight_built: list[CommitRecord] = []
        self._flight_refused: list[CommitRecord] = []
        self._flight_remote: list[CommitRecord] = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._log: list[CommitRecord] = []  # ts order; published prefix, then built ones
        self._log_ts: list[int] = []
        self._log_floor = start_ts  # commits at or before this ts are not in the log
        # index id -> ts of the newest commit in the log that wrote it (never lower than the
        # truth; stale-high after a failed batch is dropped, which only costs a full check).
        self._index_written_ts: dict[int, int] = {}
        self._queue: deque[CommitRecord] = deque()
        self._last_assigned = start_ts  # the largest ts known to be taken, by anyone
        self._known_ts = start_ts  # the commit log has been read up to here
        self._flight_known_ts = start_ts
        self._flight_sent = False
        self.latest_ts = start_ts
        self._failed: BaseException | None = None
        self._stopping = False
        # The serialized lane (hold_order): while a thread holds the commit order, every other
        # thread's commit waits before it is queued, so the holder's transaction cannot
        # conflict with this process's commits.
        self._order_holder: int | None = None
        # This process's commits queued and not yet done (refused, published or failed).
        self._unpublished = 0
        self.commits = 0  # bumped by the writer thread only
        self.remote_commits = 0
        self.occ_conflicts = 0  # bumped under self._lock
        self.commit_seconds = Histogram(LATENCY_BUCKETS_S)
        self.batch_sizes = Histogram(BATCH_SIZE_BUCKETS)
        # Set by the store's commit notifications (any thread): tail the log now.
        self._wake_pending = False
        pushed = bool(knobs.LOG_TAIL_NOTIFY) and persistence.watch_commits(self._wake)
        self._tail_poll_ms = knobs.LOG_TAIL_FALLBACK_POLL_MS if pushed else knobs.LOG_TAIL_POLL_MS
        self._thread = threading.Thread(target=self._writer, name="convection-committer", daemon=True)
        self._thread.start()

    # --- public ---------------------------------------------------------------------------
    def bump_ts(self, ts: int) -> None:
        """Make ``latest_ts`` at least ``ts`` (a client observed it: on another process, or
        before a restart). An empty commit with a ts at or above it goes through the commit
        path like any other, so every process sharing the store learns of it, and timestamps
        stay strictly increasing across them (a local jump of ``latest_ts`` could let another
        process commit below it, under a snapshot already served)."""
        if self.latest_ts >= ts:
            return
        with self._lock:
            if self._failed is not None or self._stopping:
                return
            rec = CommitRecord(0, {}, source="observed ts", begin_ts=self.latest_ts,
                               build=_empty_rows, min_ts=ts)
            self._queue.append(rec)
            self._unpublished += 1
            self._cond.notify_all()
        rec.done.wait()

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
        rec = self.submit(begin_ts, read_set, build_rows, source=source, writes=writes)
        rec.done.wait()
        return self.outcome(rec, started)

    def submit(
        self,
        begin_ts: int,
        read_set: FrozenReadSet,
        build_rows: RowsBuilder,
        *,
        source: str = "",
        writes: list[Any] | None = None,
        on_done: Callable[[], None] | None = None,
        wait_for_order: bool = True,
    ) -> CommitRecord:
        """Queue one commit and return its record without waiting for it: ``rec.done`` is set
        (and ``on_done`` called, on the writer thread) once it is refused, published or failed;
        then :meth:`outcome` gives its ts or raises. Raises at once what :meth:`commit` would
        raise before queueing. With ``wait_for_order=False`` a caller that must not block (the
        event loop) gets :class:`OrderHeld` instead of waiting while another thread holds the
        serialized lane."""
        me = threading.get_ident()
        with self._lock:
            while self._order_holder is not None and self._order_holder != me:
                if not wait_for_order:
                    raise OrderHeld("the serialized lane is held by another thread")
                self._cond.wait()  # the serialized lane is taken: commit after it
            if self._failed is not None:
                raise StorageFailure(f"the database stopped after a storage failure: {self._failed}")
            if self.health.state == RESOLVING:
                raise StorageUnavailable(
                    "The store failed during a write and its outcome is being resolved from the "
                    "commit log; this commit was not applied. Retry it shortly."
                )
            if self._stopping:
                raise StorageFailure("the database is shutting down")
            self._check(begin_ts, read_set)  # early refusal: what this process already knows
            rec = CommitRecord(0, {}, source=source, writes=writes or [], begin_ts=begin_ts,
                               read_set=read_set, build=build_rows, on_done=on_done)
            self._queue.append(rec)
            self._unpublished += 1
            self._cond.notify_all()
        return rec

    def outcome(self, rec: CommitRecord, started: float) -> int:
        """The ts of a done record from :meth:`submit` (``started``: ``perf_counter()`` when
        it was submitted, for the latency histogram), or its error raised."""
        if rec.error is not None:
            if isinstance(rec.error, OccConflict | StorageUnavailable):
                raise rec.error
            raise StorageFailure(f"commit failed with an unknown outcome: {rec.error}") from rec.error
        self.commit_seconds.observe(time.perf_counter() - started)
        return rec.ts

    def hold_order(self, timeout_s: float) -> bool:
        """Take the commit order for the calling thread: wait (at most ``timeout_s``) until no
        other thread holds it, then until every commit of this process already queued is done.
        Until :meth:`release_order`, other threads' commits wait before they are queued, so a
        transaction this thread begins now cannot conflict with this process's commits (other
        processes sharing the store are not held). False (nothing held) when time ran out."""
        deadline = time.monotonic() + timeout_s
        me = threading.get_ident()
        with self._lock:
            while self._order_holder is not None and self._order_holder != me:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            self._order_holder = me
            while self._unpublished > 0 and self._failed is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._order_holder = None
                    self._cond.notify_all()
                    return False
                self._cond.wait(left)
        return True

    def release_order(self) -> None:
        with self._lock:
            if self._order_holder == threading.get_ident():
                self._order_holder = None
                self._cond.notify_all()

    def _wake(self) -> None:
        """Another process committed (the store's notification): tail the log now."""
        with self._lock:
            self._wake_pending = True
            self._cond.notify_all()

    def _done(self, recs: list[CommitRecord]) -> None:
        """Set ``done`` on this process's records (refused, published or failed), keeping the
        count of unfinished ones for the serialized lane."""
        with self._lock:
            for rec in recs:
                if not rec.remote and not rec.done.is_set():
                    self._unpublished -= 1
            self._cond.notify_all()
        for rec in recs:
            rec.done.set()
            if rec.on_done is not None:
                rec.on_done()

    def _check(self, begin_ts: int, read_set: FrozenReadSet) -> None:
        """Raise OccConflict if a known commit after ``begin_ts`` overlaps ``read_set``
        (call with the lock held)."""
        if begin_ts < self._log_floor:
            raise OccConflict(
                "the transaction's snapshot is older than the write log's retention; retry it",
                code="OutOfRetention",
            )
        if not read_set.by_index:
            return
        written = self._index_written_ts
        if all(written.get(index_id, 0) <= begin_ts for index_id in read_set.by_index):
            return  # no commit after begin_ts wrote any index this transaction read
        i = bisect.bisect_right(self._log_ts, begin_ts)
        read_indexes = read_set.by_index.keys()
        for rec in self._log[i:]:
            # Most commits write none of the indexes this transaction read: a C-level set
            # check skips them (under concurrency every commit is checked against dozens).
            if read_indexes.isdisjoint(rec.index_keys):
                continue
            if read_set.overlaps_keys(rec.index_keys):
                self.occ_conflicts += 1
                by = "another process" if rec.remote else rec.source
                raise OccConflict(
                    "Documents read from or written to this transaction changed while it was "
                    f"being run (conflicting commit at ts {rec.ts}{' by ' + by if by else ''}). "
                    "The mutation is retried automatically.",
                    conflict_ts=rec.ts,
                )

    def _note_written(self, rec: CommitRecord) -> None:
        """Record the indexes ``rec`` (just appended to the log) wrote (lock held)."""
        written = self._index_written_ts
        for index_id in rec.index_keys:
            if written.get(index_id, 0) < rec.ts:
                written[index_id] = rec.ts

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
        deadline = time.monotonic() + timeout
        with self._lock:
            while self.latest_ts < ts and self._failed is None:
                left = deadline - time.monotonic()
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

    def storage_failed(self, exc: BaseException) -> None:
        """A read (or another use of the store outside commits) failed: report writes as
        unavailable until the writer's probe succeeds (``/health``)."""
        with self._lock:
            if self.health.state == OK and self._failed is None:
                set_state(self.health, UNAVAILABLE, str(exc))
                self._cond.notify_all()

    # --- writer thread --------------------------------------------------------------------
    def _writer(self) -> None:
        max_batch = knobs.GROUP_COMMIT_MAX_BATCH_COUNT
        poll_s = max(self._tail_poll_ms, 0) / 1000 or None
        retry_s = max(knobs.STORAGE_RETRY_INTERVAL_MS, 1) / 1000
        next_probe = 0.0
        while True:
            with self._lock:
                if not self._queue and not self._stopping and not self._wake_pending:
                    self._cond.wait(poll_s)
                self._wake_pending = False  # a batch's session or the tail reads the log
                if not self._queue and self._stopping:
                    return
                batch: list[CommitRecord] = []
                while self._queue and len(batch) < max_batch:
                    batch.append(self._queue.popleft())
            try:
                if batch:
                    self._commit_batch(batch)
                    set_state(self.health, OK)
                elif self.health.state == UNAVAILABLE:
                    # Idle while the store fails: probe it now and then, so writes (and
                    # /health) recover without waiting for traffic.
                    if time.monotonic() >= next_probe:
                        next_probe = time.monotonic() + retry_s
                        probe(self._persistence, self.health)
                else:
                    self._tail()
            except StorageFailure as exc:
                if not self._storage_fault(exc, batch, retry_s):
                    return
            except BaseException as exc:  # not the store: a bug; stop for good
                self._fail(exc, batch)
                return

    def _tail(self) -> None:
        if not self._persistence.others_may_have_committed():
            return
        remote = self._ingest(self._persistence.commits_after(self._known_ts))
        if remote:
            self._publish(remote)

    def _commit_batch(self, batch: list[CommitRecord]) -> None:
        self._flight_built = built = []
        self._flight_refused = refused = []
        self._flight_remote = []
        self._flight_known_ts = self._known_ts
        self._flight_sent = False
        with self._persistence.commit_session() as session:
            remote = self._ingest(session.commits_after(self._known_ts))
            self._flight_remote = remote
            docs: list[DocumentRevision] = []
            entries: list[IndexEntry] = []
            for rec in batch:
                with self._lock:
                    try:
                        self._check(rec.begin_ts, rec.read_set)
                    except OccConflict as exc:
                        rec.error = exc
                        refused.append(rec)
                        continue
                    ts = max(self._last_assigned + 1, self._clock.now_ns(), rec.min_ts)
                    assert rec.build is not None
                    rec.documents, rec.entries, rec.index_keys = rec.build(ts)
                    self._last_assigned = rec.ts = ts
                    self._log.append(rec)
                    self._log_ts.append(ts)
                    self._note_written(rec)
                built.append(rec)
                docs.extend(rec.documents)
                entries.extend(rec.entries)
            if built:
                self._flight_sent = True
                session.write(
                    docs, entries,
                    [CommitEntry(rec.ts, encode_written_keys(rec.index_keys)) for rec in built],
                )
        if built:
            self._known_ts = built[-1].ts
            self.batch_sizes.observe(len(built))
        self._done(refused)
        self._publish(remote + built)

    def _storage_fault(self, exc: StorageFailure, batch: list[CommitRecord], retry_s: float) -> bool:
        """The failure policy for a batch whose session failed (module docstring). False when
        the committer stops meanwhile."""
        built, refused = self._flight_built, self._flight_refused
        if not batch:  # tailing failed: nothing in flight; read the log again later
            self._forget_unpublished(self._known_ts)
            self.storage_failed(exc)
            return True
        landed = False
        if built and self._flight_sent:
            set_state(self.health, RESOLVING, str(exc))
            while True:
                try:
                    with self._persistence.commit_session() as session:
                        after = session.commits_after(self._flight_known_ts)
                    landed = any(c.ts == built[0].ts for c in after)
                    break
                except StorageFailure as again:
                    self.health.reason = str(again)
                with self._lock:
                    if self._stopping:
                        self._fail(exc, batch)
                        return False
                    self._cond.wait(retry_s)
            if landed:
                log.warning("storage: a write that failed after it was sent had committed; "
                            "its commits are published")
        if landed:
            # Durable: publish what the session read and wrote, as on success.
            self._known_ts = built[-1].ts
            self.batch_sizes.observe(len(built))
            self._done(refused)
            self._publish(self._flight_remote + built)
            set_state(self.health, OK)
            return True
        set_state(self.health, UNAVAILABLE, str(exc))
        self._forget_unpublished(self._flight_known_ts)
        if built and self._on_failed is not None:
            try:
                self._on_failed(list(reversed(built)))
            except Exception:
                log.exception("undoing the catalog changes of failed commits failed")
        # A first failure is retried at once (an idle database restart broke the connection:
        # the next session reconnects); a second one fails the commits.
        retry = [rec for rec in batch if rec.error is None and rec.failures == 0]
        for rec in batch:
            rec.failures += 1
        if retry:
            with self._lock:
                for rec in reversed(retry):
                    rec.ts, rec.documents, rec.entries, rec.index_keys = 0, [], [], {}
                    self._queue.appendleft(rec)
            batch = [rec for rec in batch if rec not in retry]
        error = StorageUnavailable(
            f"The commit was not applied: the store failed ({exc}). Writes resume by themselves "
            "when it is back (GET /health); retry the call."
        )
        for rec in batch:
            if rec.error is None:
                rec.error = error
        self._done(batch)
        return True

    def _forget_unpublished(self, known_ts: int) -> None:
        """Drop every unpublished record from the write log (this batch's own, and other
        processes' commits read in its session: they are read again from ``known_ts``)."""
        with self._lock:
            keep = [rec for rec in self._log if rec.published]
            self._log = keep
            self._log_ts = [rec.ts for rec in keep]
        self._known_ts = known_ts

    def _ingest(self, found: list[CommitEntry]) -> list[CommitRecord]:
        """Records for commits other processes made (``found``, in ts order, all after
        ``_known_ts``), added to the write log as not yet published."""
        found = [c for c in found if c.ts > self._known_ts]
        if not found:
            return []
        revisions: dict[int, list[DocumentRevision]] = {}
        for rev in self._persistence.document_log(self._known_ts, found[-1].ts):
            revisions.setdefault(rev.ts, []).append(rev)
        out = []
        for entry in found:
            writes = self._on_remote(entry.ts, revisions.get(entry.ts, [])) if self._on_remote else []
            rec = CommitRecord(entry.ts, decode_written_keys(entry.keys), writes=writes, remote=True)
            with self._lock:
                self._log.append(rec)
                self._log_ts.append(rec.ts)
                self._note_written(rec)
                self._last_assigned = max(self._last_assigned, rec.ts)
            out.append(rec)
        self._known_ts = found[-1].ts
        return out

    def _publish(self, batch: list[CommitRecord]) -> None:
        """Make durable commits visible, in ts order (see the module docstring)."""
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
            rec.build, rec.read_set = None, EMPTY_READ_SET
            if rec.remote:
                self.remote_commits += 1
            else:
                self.commits += 1
        self._trim()
        if self._on_publish is not None:
            self._on_publish(batch)
        self._done(batch)
        for cb in callbacks:
            try:
                cb()
            except Exception:  # a subscriber's bug must not stop the committer
                log.exception("subscription callback failed")

    def _fail(self, exc: BaseException, batch: list[CommitRecord]) -> None:
        log.critical("persistence write failed; the database stops: %s", exc)
        with self._lock:
            self._failed = exc
            failed = batch + list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for rec in failed:
            if not rec.done.is_set():
                rec.error = rec.error or exc
        self._done(failed)

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
