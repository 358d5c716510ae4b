"""The database: persistence + catalog + committer + subscriptions, and the schema in force.

Lifecycle: ``Database(persistence, ...)`` loads the catalog and starts the committer at
``max(persisted max ts, wall clock)``; ``begin()`` starts transactions at the latest published
ts (or an older ts within the retention window: ``query_at_ts``); ``commit()`` turns a
transaction's writes into revisions and index entries and hands them to the committer;
``subscribe()`` watches a read set; ``close()`` stops the writer.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable
from typing import Any

from convection import knobs
from convection.clock import Clock, SystemClock
from convection.database.catalog import BY_ID, Catalog, IndexInfo
from convection.database.committer import CommitRecord, Committer
from convection.database.pagination import CursorCodec
from convection.database.query import Query
from convection.database.readset import FrozenReadSet
from convection.database.search_provider import SearchProvider
from convection.database.subscriptions import Subscription, SubscriptionManager
from convection.database.transaction import Transaction, index_key
from convection.errors import DatabaseError
from convection.persistence.base import DocumentRevision, IndexEntry, Persistence
from convection.schema.schema import SchemaDefinition
from convection.values.json import dumps


class Database:
    """The transactional document database. Thread-safe."""

    def __init__(
        self,
        persistence: Persistence,
        *,
        clock: Clock | None = None,
        secret: bytes | None = None,
    ) -> None:
        self.persistence = persistence
        self.clock = clock or SystemClock()
        self.catalog = Catalog(persistence)
        self.subscriptions = SubscriptionManager()
        self.cursors = CursorCodec(secret or os.urandom(32))
        self.schema: SchemaDefinition | None = None
        self._schema_lock = threading.Lock()
        start = max(persistence.max_ts(), self.clock.now_ns())
        self.committer = Committer(
            persistence,
            self.subscriptions,
            self.clock,
            start_ts=start,
            on_publish=self._published,
            on_durable=self._durable,
        )
        self._publish_hooks: list[Callable[[list[CommitRecord]], None]] = []
        self._durable_hooks: list[Callable[[list[CommitRecord]], None]] = []
        self._write_keys_hooks: list[Callable[[list[Any], dict[int, list[bytes]]], None]] = []
        # Full-text search for Query.with_search_index (installed by convection.search).
        self.text_search: SearchProvider[Transaction] | None = None
        self._maintenance_hooks: list[Callable[[], object]] = []
        self._creation_lock = threading.Lock()
        self._last_creation_time = 0.0
        self._stop = threading.Event()
        self._maintenance: threading.Thread | None = None
        if knobs.MAINTENANCE_INTERVAL_MS > 0:
            self._maintenance = threading.Thread(
                target=self._maintenance_loop, name="convection-maintenance", daemon=True
            )
            self._maintenance.start()

    def allocate_creation_time(self, at_least: float) -> float:
        """A ``_creationTime`` (ms) >= ``at_least`` and greater than every one handed out
        before in this process, so documents inserted one after another sort in insertion
        order even when the clock does not move (a manual clock, or commits closer together
        than a float's resolution at today's epoch)."""
        import math

        with self._creation_lock:
            ct = max(at_least, math.nextafter(self._last_creation_time, math.inf))
            self._last_creation_time = ct
            return ct

    # --- retention ---------------------------------------------------------------------------
    def run_maintenance(self) -> int:
        """Prune revisions no reader can need any more, then checkpoint. Returns rows removed.

        Index entries superseded more than ``SNAPSHOT_RETENTION_MS`` ago go (snapshot reads
        older than that are refused by ``begin``); document revisions superseded more than
        ``DOCUMENT_RETENTION_MS`` ago go too."""
        latest = self.latest_ts()
        index_before = latest - knobs.SNAPSHOT_RETENTION_MS * 1_000_000
        docs_before = min(index_before, latest - knobs.DOCUMENT_RETENTION_MS * 1_000_000)
        for hook in list(self._maintenance_hooks):
            hook()
        removed = self.persistence.prune(index_before, docs_before)
        self.persistence.checkpoint()
        return removed

    def add_maintenance_hook(self, fn: Callable[[], object]) -> None:
        """``fn()`` runs at the start of every maintenance round (in the maintenance thread)."""
        self._maintenance_hooks.append(fn)

    def _maintenance_loop(self) -> None:
        import logging

        log = logging.getLogger("convection.database")
        while not self._stop.wait(knobs.MAINTENANCE_INTERVAL_MS / 1000):
            try:
                removed = self.run_maintenance()
                if removed:
                    log.info("retention removed %d superseded rows", removed)
            except Exception:
                log.exception("maintenance failed")

    # --- time ------------------------------------------------------------------------------
    def latest_ts(self) -> int:
        return self.committer.latest_ts

    def add_publish_hook(self, fn: Callable[[list[CommitRecord]], None]) -> None:
        self._publish_hooks.append(fn)

    def _published(self, batch: list[CommitRecord]) -> None:
        for hook in self._publish_hooks:
            hook(batch)

    def add_durable_hook(self, fn: Callable[[list[CommitRecord]], None]) -> None:
        """``fn(batch)`` runs in the committer thread once the batch is durable and before any
        of it becomes visible (``latest_ts`` has not moved past it); ``rec.writes`` holds each
        commit's ``Write`` s. For derived in-memory indexes (search): must be quick."""
        self._durable_hooks.append(fn)

    def _durable(self, batch: list[CommitRecord]) -> None:
        for hook in self._durable_hooks:
            hook(batch)

    def add_write_keys_hook(self, fn: Callable[[list[Any], dict[int, list[bytes]]], None]) -> None:
        """``fn(writes, index_keys)`` adds keys of derived (pseudo) indexes to a commit's written
        keys, so reads recorded on them (search read sets) conflict and invalidate."""
        self._write_keys_hooks.append(fn)

    # --- schema and catalog ----------------------------------------------------------------
    def ensure_table(self, name: str) -> int:
        return self.catalog.ensure_table(name)

    def set_schema(self, schema: SchemaDefinition | None) -> None:
        """Make ``schema`` the schema in force (validation of writes, declared indexes).

        Index creation and backfill for a *changed* schema is the push flow's job
        (application layer); here declared indexes missing from the catalog of tables that
        have no documents yet are created directly."""
        with self._schema_lock:
            self.schema = schema
        self.ensure_indexes()

    def declared_index(self, table: str, name: str) -> bool:
        schema = self.schema
        if schema is None:
            return False
        t = schema.tables.get(table)
        return t is not None and any(ix.name == name for ix in t.indexes)

    def ensure_indexes(self, progress: Callable[[str, int], None] | None = None) -> None:
        """Bring the catalog in line with the schema: create declared indexes (backfilling
        them from a snapshot while writes continue, then enabling them) and drop user indexes
        no longer declared. Staged indexes are left alone."""
        schema = self.schema
        if schema is None:
            return
        for table, tdef in schema.tables.items():
            existing = self.catalog.indexes_of(table)
            declared = {ix.name: ix for ix in tdef.indexes}
            for name, info in list(existing.items()):
                if name in (BY_ID, "by_creation_time"):
                    continue
                want = declared.get(name)
                if want is None or tuple(want.fields) != info.fields:
                    self.catalog.drop_index(info.index_id)
                    self.persistence.delete_index(info.index_id)
            existing = self.catalog.indexes_of(table)
            for ix in tdef.indexes:
                if ix.name in existing or getattr(ix, "staged", False):
                    continue
                self.backfill_index(table, ix.name, tuple(ix.fields), progress=progress)

    def backfill_index(
        self,
        table: str,
        name: str,
        fields: tuple[str, ...],
        *,
        progress: Callable[[str, int], None] | None = None,
        chunk: int = 1000,
    ) -> IndexInfo:
        """Create an index and fill it from the table's documents.

        The index is added in state ``backfilling`` under the commit lock, so every commit
        after that point maintains it; the snapshot ``s`` is the last ts assigned before, and
        documents live at ``s`` are written into the index with their own revision ts. Then
        the index is enabled."""
        self.catalog.ensure_table(table)
        committer = self.committer
        with committer._lock:
            info = self.catalog.add_index(table, name, fields, "backfilling")
            s = committer._last_assigned
        while self.latest_ts() < s and committer.failed is None:
            committer.wait_published(s)
        number = info.table_number
        batch: list[IndexEntry] = []
        done = 0
        from convection.values.json import loads_stored

        for rev in self.persistence.table_documents(number, s):
            if rev.value is None:
                continue
            doc = loads_stored(rev.value)
            batch.append(IndexEntry(info.index_id, index_key(info, doc), rev.ts, number, rev.id))
            if len(batch) >= chunk:
                self.persistence.write([], batch)
                done += len(batch)
                batch = []
                if progress is not None:
                    progress(f"{table}.{name}", done)
        if batch:
            self.persistence.write([], batch)
            done += len(batch)
        if progress is not None:
            progress(f"{table}.{name}", done)
        return self.catalog.set_index_state(info.index_id, "enabled")

    def validate_document(self, table: str, fields: dict[str, Any], id_str: str) -> dict[str, Any] | None:
        """Check user fields against the schema. Returns the normalized fields, or None when
        the table is not validated (no schema, validation off, or table not in the schema)."""
        schema = self.schema
        if schema is None or not schema.schema_validation:
            return None
        tdef = schema.tables.get(table)
        if tdef is None:
            return None
        return tdef.validate_document(fields, table=table, id=id_str, id_checker=self._id_checker)

    def _id_checker(self, table: str, id_str: str) -> bool:
        from convection.values.ids import table_number_of

        n = table_number_of(id_str)
        return n is not None and self.catalog.table_number(table) == n

    # --- transactions ----------------------------------------------------------------------
    def begin(
        self,
        *,
        read_only: bool = False,
        ts: int | None = None,
        now_ms: float | None = None,
        rng: random.Random | None = None,
    ) -> Transaction:
        latest = self.latest_ts()
        if ts is None:
            ts = latest
        elif ts > latest:
            raise DatabaseError(f"Timestamp {ts} is in the future (latest is {latest})", code="TooEarly")
        elif ts < latest - knobs.SNAPSHOT_RETENTION_MS * 1_000_000:
            raise DatabaseError(
                f"Timestamp {ts} is older than the snapshot retention window "
                f"({knobs.SNAPSHOT_RETENTION_MS} ms)",
                code="OutOfRetention",
            )
        return Transaction(self, ts, read_only=read_only, now_ms=now_ms, rng=rng)

    def query(self, txn: Transaction, table: str) -> Query:
        return Query(txn, table)

    def commit(self, txn: Transaction) -> int:
        """Commit ``txn``'s writes; returns the commit ts (the begin ts for a transaction that
        wrote nothing). Raises OccConflict when something it read changed meanwhile."""
        if txn.closed:
            raise DatabaseError("transaction already committed", code="InvalidTransaction")
        txn.closed = True
        writes = list(txn.writes.values())
        if not writes:
            return txn.begin_ts
        index_keys: dict[int, list[bytes]] = {}
        for w in writes:
            for index in self.catalog.indexes_of(w.table).values():
                if not index.readable:
                    continue
                keys = index_keys.setdefault(index.index_id, [])
                old_k = index_key(index, w.old) if w.old is not None else None
                new_k = index_key(index, w.new) if w.new is not None else None
                if old_k is not None:
                    keys.append(old_k)
                if new_k is not None and new_k != old_k:
                    keys.append(new_k)
        for hook in self._write_keys_hooks:
            hook(writes, index_keys)
        read_set = txn.reads.freeze()
        catalog = self.catalog

        def build(ts: int) -> tuple[list[DocumentRevision], list[IndexEntry]]:
            # Runs under the commit lock: the set of indexes maintained here is exactly the
            # catalog's at this commit's ts (see backfill_index).
            docs: list[DocumentRevision] = []
            entries: list[IndexEntry] = []
            for w in writes:
                docs.append(
                    DocumentRevision(
                        ts, w.table_number, w.internal_id,
                        None if w.new is None else dumps(w.new), w.old_ts,
                    )
                )
                for index in catalog.indexes_of(w.table).values():
                    if index.name == BY_ID:
                        continue
                    old_k = index_key(index, w.old) if w.old is not None else None
                    new_k = index_key(index, w.new) if w.new is not None else None
                    if old_k is not None and old_k != new_k:
                        entries.append(IndexEntry(index.index_id, old_k, ts, w.table_number, None))
                    if new_k is not None:
                        entries.append(IndexEntry(index.index_id, new_k, ts, w.table_number, w.internal_id))
            return docs, entries

        return self.committer.commit(
            txn.begin_ts, read_set, index_keys, build, source=txn.source, writes=writes
        )

    # --- subscriptions ---------------------------------------------------------------------
    def subscribe(self, read_set: FrozenReadSet, ts: int) -> Subscription:
        return self.subscriptions.subscribe(read_set, ts, self.committer.first_overlap_after)

    def close(self) -> None:
        self._stop.set()
        if self._maintenance is not None:
            self._maintenance.join(timeout=5)
        self.committer.stop()
        self.persistence.close()
