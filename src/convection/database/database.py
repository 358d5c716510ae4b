"""The database: persistence + catalog + committer + subscriptions, and the schema in force.

Lifecycle: ``Database(persistence, ...)`` loads the catalog and starts the committer at
``max(persisted max ts, wall clock)``; ``begin()`` starts transactions at the latest published
ts (or an older ts within the retention window: ``query_at_ts``); ``commit()`` turns a
transaction's writes into revisions and index entries and hands them to the committer;
``subscribe()`` watches a read set; ``close()`` stops the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any, TypeVar

from convection import knobs
from convection.clock import Clock, SystemClock
from convection.database.catalog import (
    BACKFILLING,
    BY_CREATION_TIME,
    BY_ID,
    DATABASE_KIND,
    ENABLED,
    FIRST_SYSTEM_TABLE_NUMBER,
    Catalog,
    IndexInfo,
    legacy_catalog,
)
from convection.database.committer import CommitRecord, Committer, RowsBuilder
from convection.database.derived import DerivedIndexKind
from convection.database.pagination import CursorCodec
from convection.database.query import Query
from convection.database.readset import FrozenReadSet
from convection.database.search_provider import SearchProvider
from convection.database.subscriptions import Subscription, SubscriptionManager
from convection.database.transaction import Transaction, Write, index_key
from convection.errors import DatabaseError, StorageFailure
from convection.persistence.base import DocumentRevision, IndexEntry, Persistence
from convection.schema.schema import SchemaDefinition
from convection.values.ids import encode_id
from convection.values.json import dumps, loads_stored

T = TypeVar("T")
# A transaction of the database's own (catalog, schema) retries on conflicts far longer than a
# mutation: it must not fail because users write concurrently.
SYSTEM_TXN_MAX_RETRIES = 1000


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
        # Everything committed up to ``start`` is known; later commits (of any process) get
        # larger ts (committer.py), so a snapshot at ``latest_ts`` never changes.
        start = persistence.max_ts()
        self.catalog = Catalog()
        self.catalog.load(persistence, start)
        self.subscriptions = SubscriptionManager()
        self.cursors = CursorCodec(secret or os.urandom(32))
        self.committer = Committer(
            persistence,
            self.subscriptions,
            self.clock,
            start_ts=start,
            on_publish=self._published,
            on_durable=self._durable,
            on_remote=self._remote_commit,
            on_failed=self._unapply_failed,
        )
        self._publish_hooks: list[Callable[[list[CommitRecord]], None]] = []
        self._durable_hooks: list[Callable[[list[CommitRecord]], None]] = []
        # Full-text search for Query.with_search_index (installed by convection.search).
        self.text_search: SearchProvider[Transaction] | None = None
        # Derived index kinds (search, vector) by kind name (database/derived.py).
        self.derived: dict[str, DerivedIndexKind] = {}
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
        if self.catalog.empty:
            self._migrate_legacy_catalog()

    def set_cursor_secret(self, secret: bytes) -> None:
        """Sign pagination cursors with the deployment's secret (read from the log after the
        database opened)."""
        self.cursors = CursorCodec(secret)

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
            except StorageFailure as exc:
                if self._stop.is_set():
                    return  # closing: the store was closed under a long pass
                self.committer.storage_failed(exc)  # one log line per state change
            except Exception:
                log.exception("maintenance failed")

    # --- time ------------------------------------------------------------------------------
    def latest_ts(self) -> int:
        return self.committer.latest_ts

    def bump_ts(self, ts: int) -> None:
        """A client observed ``ts`` (on another process, or before a restart): make
        ``latest_ts`` reach it (``Committer.bump_ts``)."""
        self.committer.bump_ts(ts)

    def _unapply_failed(self, records: list[CommitRecord]) -> None:
        """Commits built (their catalog changes applied at build time) whose write failed,
        latest first: undo their catalog changes by applying each write inverted."""
        for rec in records:
            inverse = [replace(w, old=w.new, new=w.old) for w in reversed(rec.writes)
                       if isinstance(w, Write)]
            if inverse:
                self.catalog.apply(inverse)

    def _remote_commit(self, ts: int, revisions: list[DocumentRevision]) -> list[Any]:
        """A commit another process made (called by the committer's writer thread, in ts
        order, before anything after it is built): its catalog changes take effect here, and
        its ``Write`` s go to the durable hooks (derived indexes)."""
        writes: list[Write] = []
        need_old = bool(self._durable_hooks)
        catalog = self.catalog
        # catalog documents first: the commit may create the tables its other writes go to
        ordered = sorted(revisions, key=lambda r: r.table >= FIRST_SYSTEM_TABLE_NUMBER)
        for rev in ordered:
            new = None if rev.value is None else loads_stored(rev.value)
            old = None
            if rev.prev_ts is not None and (need_old or rev.table < FIRST_SYSTEM_TABLE_NUMBER):
                prev = self.persistence.get_document(rev.table, rev.id, rev.prev_ts)
                old = None if prev is None or prev.value is None else loads_stored(prev.value)
            table = catalog.table_name(rev.table) or ""
            w = Write(table, rev.table, encode_id(rev.table, rev.id), rev.id, old, rev.prev_ts, new)
            if rev.table < FIRST_SYSTEM_TABLE_NUMBER:
                catalog.apply([w])
            writes.append(w)
        return writes

    def add_publish_hook(self, fn: Callable[[list[CommitRecord]], None]) -> None:
        self._publish_hooks.append(fn)

    def _published(self, batch: list[CommitRecord]) -> None:
        for hook in self._publish_hooks:
            hook(batch)

    def add_durable_hook(self, fn: Callable[[list[CommitRecord]], None]) -> None:
        """``fn(batch)`` runs in the committer thread once the batch is durable and before any
        of it becomes visible (``latest_ts`` has not moved past it); ``rec.writes`` holds each
        commit's ``Write`` s. For derived in-memory indexes (vector graphs): must be quick."""
        self._durable_hooks.append(fn)

    def _durable(self, batch: list[CommitRecord]) -> None:
        for hook in self._durable_hooks:
            hook(batch)

    def register_derived(self, kind: DerivedIndexKind) -> None:
        """Maintain indexes of ``kind.kind`` with ``kind`` from now on, and bring them in line
        with the schema (creating and backfilling the missing ones)."""
        self.derived = {**self.derived, kind.kind: kind}
        self.ensure_indexes()

    # --- schema and catalog ----------------------------------------------------------------
    # The catalog and the schema are documents of system tables (catalog.py); every change
    # below is an ordinary commit, retried on conflicts like any mutation.
    def run_system(self, fn: Callable[[Transaction], T]) -> tuple[T, int]:
        """Run ``fn`` in a transaction of the database's own and commit it (retried on
        conflicts); returns (fn's result, commit ts)."""
        from convection.database.retry import run_in_transaction

        value, ts = run_in_transaction(self, fn, max_retries=SYSTEM_TXN_MAX_RETRIES)
        assert ts is not None  # fn never returns Discard
        return value, ts

    @property
    def schema(self) -> SchemaDefinition | None:
        """The schema in force: the ``_schemas`` document as of the latest commit."""
        return self.catalog.schema

    def ensure_table(self, name: str) -> int:
        """The table's number, creating the table in a commit of its own when it is missing."""
        number = self.catalog.table_number(name)
        if number is not None:
            return number
        created, _ = self.run_system(lambda txn: txn.create_table(name))
        return created

    def ensure_system_table(self, name: str, indexes: dict[str, tuple[str, ...]]) -> None:
        """Create a system table and its indexes when missing (at start). An index added to a
        table that has documents is backfilled."""
        self.ensure_table(name)
        for index, fields in indexes.items():
            if self.catalog.index(name, index) is None:
                self.backfill_index(name, index, fields)

    def set_schema(
        self,
        schema: SchemaDefinition | None,
        *,
        check: Callable[[Transaction], None] | None = None,
        progress: Callable[[str, int], None] | None = None,
    ) -> None:
        """Make ``schema`` the schema in force (a commit writing ``_schemas``), then bring the
        indexes in line with it (:meth:`ensure_indexes`).

        Writes validated under the previous schema conflict with this commit (they read the
        schema document), so they retry under the new one. ``check(txn)`` runs inside the
        schema transaction before it writes (the push flow checks the documents written
        since its snapshot there and records reads of those tables, so a write landing
        before the schema commit makes the push retry and check it)."""
        raw = None if schema is None else schema.to_json()

        def write(txn: Transaction) -> None:
            if check is not None:
                check(txn)
            doc_id = self.catalog.schema_document_id
            if doc_id is None:
                if raw is not None:
                    txn.insert_schema_doc(raw)
            elif self.catalog.schema_json != raw:
                txn.set_catalog_doc(doc_id, {"schema": raw})
            txn.record_schema_read()

        if check is not None or self.catalog.schema_json != raw:
            self.run_system(write)
        self.ensure_indexes(progress)

    def declared_index(self, table: str, name: str) -> bool:
        schema = self.schema
        if schema is None:
            return False
        t = schema.tables.get(table)
        return t is not None and any(ix.name == name for ix in t.indexes)

    def declared_vector_index(self, table: str, name: str) -> bool:
        """Whether the schema declares ``table.name`` as a vector index (queries explain that
        vector search runs only in actions)."""
        schema = self.schema
        t = schema.tables.get(table) if schema is not None else None
        return t is not None and t.vector_index_named(name) is not None

    def ensure_indexes(self, progress: Callable[[str, int], None] | None = None) -> None:
        """Bring the catalog in line with the schema: create declared indexes (backfilling
        them from a snapshot while writes continue, then enabling them) and drop user indexes
        no longer declared. Staged indexes are left alone. An index left ``backfilling`` by a
        crash is dropped and built again."""
        schema = self.schema
        if schema is None:
            return
        # Derived indexes (search, vector) of the registered kinds: (kind, name) -> spec.
        derived: dict[str, dict[str, tuple[str, tuple[str, ...], tuple[tuple[str, Any], ...]]]] = {}
        for kind in self.derived.values():
            for table, name, fields, options in kind.declared(schema):
                derived.setdefault(table, {})[name] = (kind.kind, fields, options)
        for table in sorted({*schema.tables, *derived}):
            tdef = schema.tables.get(table)
            existing = self.catalog.indexes_of(table)
            declared = {ix.name: ix for ix in tdef.indexes} if tdef is not None else {}
            mine = derived.get(table, {})
            for name, info in list(existing.items()):
                if name in (BY_ID, BY_CREATION_TIME):
                    continue
                if info.kind != DATABASE_KIND:
                    if info.kind not in self.derived:
                        continue  # its kind is not registered (yet): leave it alone
                    spec = mine.get(name)
                    if spec is None or spec != (info.kind, info.fields, info.options) or not info.readable:
                        self.drop_index(info)
                    continue
                want = declared.get(name)
                if want is None or tuple(want.fields) != info.fields or not info.readable:
                    self.drop_index(info)
            existing = self.catalog.indexes_of(table)
            for ix in tdef.indexes if tdef is not None else ():
                if ix.name in existing or getattr(ix, "staged", False):
                    continue
                self.backfill_index(table, ix.name, tuple(ix.fields), progress=progress)
            for name, (kind_name, fields, options) in mine.items():
                if name not in existing:
                    self.backfill_index(table, name, fields, progress=progress, kind=kind_name,
                                        options=options)

    def drop_index(self, info: IndexInfo) -> None:
        """Remove an index: a commit deletes its ``_index`` document, then its entries go."""
        doc_id = self.catalog.index_document_id(info.index_id)
        if doc_id is not None:
            self.run_system(lambda txn: txn.set_catalog_doc(doc_id, None))
        self.persistence.delete_index(info.index_id)
        kind = self.derived.get(info.kind)
        if kind is not None:
            kind.dropped(info)

    def backfill_index(
        self,
        table: str,
        name: str,
        fields: tuple[str, ...],
        *,
        progress: Callable[[str, int], None] | None = None,
        chunk: int = 1000,
        kind: str = DATABASE_KIND,
        options: tuple[tuple[str, Any], ...] = (),
    ) -> IndexInfo:
        """Create an index and fill it from the table's documents.

        A commit at ts ``s`` adds the index in state ``backfilling`` (creating the table if
        needed); every commit after ``s`` maintains it (commits are built with the catalog
        at their own ts). Documents live at ``s`` are then written into the index with their
        own revision ts, and a second commit enables it. A crash in between leaves it
        ``backfilling``; :meth:`ensure_indexes` drops and rebuilds such an index."""
        info, s = self.run_system(
            lambda txn: txn.create_index(table, name, fields, BACKFILLING, kind, options)
        )
        number = info.table_number
        batch: list[IndexEntry] = []
        done = 0
        from convection.values.json import loads_stored

        derived = self.derived.get(kind) if kind != DATABASE_KIND else None
        if derived is not None:
            # A derived index writes its own entries (postings, statistics).
            docs = (
                (rev, loads_stored(rev.value))
                for rev in self.persistence.table_documents(number, s)
                if rev.value is not None
            )

            def report(n: int) -> None:
                if progress is not None:
                    progress(f"{table}.{name}", n)

            derived.backfill(info, docs, s, lambda rows: self.persistence.write([], rows), report)
        for rev in self.persistence.table_documents(number, s) if derived is None else ():
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
        if progress is not None and derived is None:
            progress(f"{table}.{name}", done)
        enabled = replace(info, state=ENABLED)
        doc_id = self.catalog.index_document_id(info.index_id)
        assert doc_id is not None
        self.run_system(lambda txn: txn.set_catalog_doc(doc_id, enabled.document()))
        return enabled

    def _migrate_legacy_catalog(self) -> None:
        """A store written by convection 0.1.0 kept its catalog in globals and never wrote
        ``by_id`` entries: write the ``by_id`` entries (idempotently: the index is cleared
        first), then one commit writes the ``_tables``/``_index`` documents with the old
        table numbers and index ids. Indexes that were still backfilling are dropped (the
        schema's :meth:`ensure_indexes` builds them again). A crash before the commit
        repeats the whole migration at the next start."""
        legacy = legacy_catalog(self.persistence)
        if legacy is None:
            return
        tables, indexes = legacy
        ts = self.latest_ts()
        keep = []
        for info in indexes:
            if info.state != ENABLED:
                self.persistence.delete_index(info.index_id)
                continue
            keep.append(info)
            if info.name != BY_ID:
                continue
            self.persistence.delete_index(info.index_id)
            batch: list[IndexEntry] = []
            from convection.values.json import loads_stored

            for rev in self.persistence.table_documents(info.table_number, ts):
                if rev.value is None:
                    continue
                key = index_key(info, loads_stored(rev.value))
                batch.append(IndexEntry(info.index_id, key, rev.ts, info.table_number, rev.id))
                if len(batch) >= 1000:
                    self.persistence.write([], batch)
                    batch = []
            if batch:
                self.persistence.write([], batch)

        def write(txn: Transaction) -> None:
            txn.import_catalog(tables, keep)

        self.run_system(write)

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
        build = self._commit_builder(txn)
        if build is None:
            return txn.begin_ts
        return self.committer.commit(
            txn.begin_ts, txn.reads.freeze(), build, source=txn.source, writes=list(txn.writes.values())
        )

    async def commit_async(self, txn: Transaction) -> int:
        """:meth:`commit` for the event loop: the writer thread's work is awaited, not blocked
        on. Raises :class:`OrderHeld` (nothing committed, ``txn`` closed) instead of waiting
        when another thread holds the serialized lane."""
        build = self._commit_builder(txn)
        if build is None:
            return txn.begin_ts
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def done() -> None:  # on the writer thread
            try:
                loop.call_soon_threadsafe(_resolve, fut)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

        started = time.perf_counter()
        rec = self.committer.submit(
            txn.begin_ts, txn.reads.freeze(), build, source=txn.source,
            writes=list(txn.writes.values()), on_done=done, wait_for_order=False,
        )
        await asyncio.shield(fut)
        return self.committer.outcome(rec, started)

    def _commit_builder(self, txn: Transaction) -> RowsBuilder | None:
        """Close ``txn`` and return the builder of its commit's rows (run by the writer under
        the commit lock), or None when it wrote nothing."""
        if txn.closed:
            raise DatabaseError("transaction already committed", code="InvalidTransaction")
        txn.closed = True
        writes = list(txn.writes.values())
        if not writes:
            return None
        catalog = self.catalog
        # Derived indexes (search postings): prepared here, outside the commit lock, for the
        # indexes known now; the builder only re-checks the index set (database/derived.py).
        kinds = self.derived
        prepared: dict[tuple[int, bytes], Any] = {}
        if kinds:
            for w in writes:
                for index in catalog.indexes_of_number(w.table_number).values():
                    kind = kinds.get(index.kind)
                    if kind is not None:
                        prepared[(index.index_id, w.internal_id)] = kind.prepare(index, w)

        def build(ts: int) -> tuple[list[DocumentRevision], list[IndexEntry], dict[int, list[bytes]]]:
            # Runs under the commit lock once the read set is validated: this commit's
            # catalog changes take effect first, then rows AND written keys are computed with
            # the catalog at exactly this ts (a concurrently enabled index gets both).
            catalog.apply(writes)
            docs: list[DocumentRevision] = []
            entries: list[IndexEntry] = []
            index_keys: dict[int, list[bytes]] = {}
            derived: dict[int, tuple[IndexInfo, list[tuple[Any, Any]]]] = {}
            for w in writes:
                docs.append(
                    DocumentRevision(
                        ts, w.table_number, w.internal_id,
                        None if w.new is None else dumps(w.new), w.old_ts,
                    )
                )
                for index in catalog.indexes_of_number(w.table_number).values():
                    if index.kind != DATABASE_KIND:
                        kind = kinds.get(index.kind)
                        if kind is not None:
                            key = (index.index_id, w.internal_id)
                            prep = prepared[key] if key in prepared else kind.prepare(index, w)
                            derived.setdefault(index.index_id, (index, []))[1].append((w, prep))
                        continue
                    old_k = index_key(index, w.old) if w.old is not None else None
                    new_k = index_key(index, w.new) if w.new is not None else None
                    keys = index_keys.setdefault(index.index_id, [])
                    if old_k is not None:
                        keys.append(old_k)
                        if old_k != new_k:
                            entries.append(IndexEntry(index.index_id, old_k, ts, w.table_number, None))
                    if new_k is not None:
                        if new_k != old_k:
                            keys.append(new_k)
                        entries.append(IndexEntry(index.index_id, new_k, ts, w.table_number, w.internal_id))
            for index, changes in derived.values():
                kinds[index.kind].commit_rows(
                    index, changes, ts, entries, index_keys.setdefault(index.index_id, [])
                )
            return docs, entries, index_keys

        return build

    @contextlib.contextmanager
    def serialized(self, timeout_s: float) -> Iterator[None]:
        """The serialized lane: while inside, this thread holds the commit order (this
        process's other commits wait), so a transaction it begins and commits inside cannot
        conflict with them. For a mutation that kept conflicting under optimistic retries.
        Raises ``MutationTimeout`` when the lane is not free within ``timeout_s``."""
        if not self.committer.hold_order(timeout_s):
            raise DatabaseError(
                "The mutation kept conflicting with concurrent writes and the serialized lane "
                f"did not become free within {timeout_s:g} s (knob MUTATION_SERIAL_WAIT_MS); "
                "it was not applied. Retry it later.",
                code="MutationTimeout",
            )
        try:
            yield
        finally:
            self.committer.release_order()

    # --- subscriptions ---------------------------------------------------------------------
    def subscribe(self, read_set: FrozenReadSet, ts: int) -> Subscription:
        return self.subscriptions.subscribe(read_set, ts, self.committer.first_overlap_after)

    def close(self) -> None:
        self._stop.set()
        if self._maintenance is not None:
            self._maintenance.join(timeout=5)
        self.committer.stop()
        self.persistence.close()


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
