"""Full-text search for a :class:`Database`: ``Query.with_search_index`` (SEMANTICS.md §4).

:meth:`TextSearchService.attach` installs one service per database as
``db.text_search`` (the :class:`SearchProvider` the query layer calls) and registers two
database hooks:

* a **durable hook**: each commit's writes to a table with search indexes are queued on those
  indexes before the commit becomes visible, and applied by the next search (or once the
  queue is long), so an index never lags behind what a reader can see;
* a **write-keys hook**: every write to such a table also "writes" keys of one pseudo index
  per search index (a negative index id), so search read sets take part in OCC and
  subscriptions like any index read (below).

Indexes follow the schema in force (``db.schema``): declared, non-staged search indexes are
built from the table at the latest snapshot plus the document log after it (at
:meth:`sync`, called at attach and again whenever a search sees a new schema), so a restart
rebuilds them from disk.

**Consistency.** A search runs at its transaction's snapshot ``S``: the index's view at ``S``
(see ``index.py``; from the document log when ``S`` is older than the in-memory change log)
with the transaction's own pending writes to the table put on top and scored with the same
statistics (read-your-writes). Candidates are then read at ``S`` (the pending version for
documents the transaction wrote), counted as reads. Results, scores and order are exactly
those of the same search over the table as of ``S`` plus the transaction's writes.

**Reads, OCC and reactivity.** A search records one read on its index's pseudo index: the
point "filter field #i == v" of its first ``eq`` condition, or the whole pseudo index when it
has none. A write to the table writes, for each version of the document (old and new), the
key "filter field #i == value" for every filter field (one fixed key for an index without
filter fields). So every write that could change a result — the document matches all the
conditions before or after the write — invalidates the subscription and conflicts a mutation
that searched. It over-approximates: any write to a document matching the first condition
counts, whatever its text (and, without conditions, any write to the table). Like Convex,
a write that only shifts corpus statistics (a document outside the conditions) does not
invalidate, so scores of a cached result may drift until some matching write happens.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from convection import knobs
from convection.database.committer import CommitRecord
from convection.database.database import Database
from convection.database.transaction import Transaction, field_value
from convection.errors import DatabaseError, LimitError
from convection.indexing.keys import encode_value
from convection.schema.schema import SchemaDefinition, SearchIndexDefinition
from convection.search.index import Overrides, TextIndex, make_entry
from convection.search.query import CompiledTextQuery, compile_search
from convection.values.json import loads_stored

log = logging.getLogger("convection.search")

_MAX_TS = (1 << 63) - 1
_FIRST_PSEUDO_ID = -(1 << 20)
_APPLY_INLINE_AT = 256  # queued changes after which the committer thread applies them itself

_DefKey = tuple[str, str, str, tuple[str, ...]]  # table, name, search field, filter fields


def _def_key(table: str, d: SearchIndexDefinition) -> _DefKey:
    return (table, d.name, d.search_field, tuple(d.filter_fields))


class TextSearchService:
    """The search indexes of one database. Thread-safe. See the module docstring."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._registry_lock = threading.Lock()
        self._sync_lock = threading.RLock()
        self._indexes: dict[tuple[str, str], TextIndex] = {}
        self._by_table: dict[str, list[TextIndex]] = {}  # replaced, never mutated (committer reads it)
        self._synced: SchemaDefinition | bool | None = False  # the schema last synced
        self._pseudo_ids: dict[_DefKey, int] = {}
        # (schema, table -> [(pseudo id, filter fields)]), replaced as one object.
        self._key_plan: tuple[SchemaDefinition | None, dict[str, list[tuple[int, tuple[str, ...]]]]] = (None, {})

    @classmethod
    def attach(cls, db: Database) -> TextSearchService:
        """The database's search service, created and hooked in on first use."""
        existing = db.text_search
        if isinstance(existing, TextSearchService):
            existing.sync()
            return existing
        service = cls(db)
        db.add_durable_hook(service._on_durable)
        db.add_write_keys_hook(service._write_keys)
        db.text_search = service
        service.sync()
        return service

    # --- index registry ------------------------------------------------------------------
    def pseudo_id(self, table: str, d: SearchIndexDefinition) -> int:
        """The (negative) pseudo index id of a search index definition, stable in-process.
        Below ``_FIRST_PSEUDO_ID``: the catalog's bootstrap indexes use small negative ids."""
        key = _def_key(table, d)
        with self._registry_lock:
            pid = self._pseudo_ids.get(key)
            if pid is None:
                pid = self._pseudo_ids[key] = _FIRST_PSEUDO_ID - len(self._pseudo_ids)
            return pid

    def sync(self) -> None:
        """Bring the in-memory indexes in line with the schema in force: build the declared
        ones that are missing (from disk), drop those no longer declared."""
        schema = self.db.schema
        if schema is self._synced:
            return
        with self._sync_lock:
            schema = self.db.schema
            if schema is self._synced:
                return
            wanted: dict[tuple[str, str], SearchIndexDefinition] = {}
            if schema is not None:
                for table, tdef in schema.tables.items():
                    for d in tdef.search_indexes:
                        if not d.staged:
                            wanted[(table, d.name)] = d
            new: list[TextIndex] = []
            with self._registry_lock:
                indexes = {}
                for key, d in wanted.items():
                    cur = self._indexes.get(key)
                    if cur is not None and cur.ready and _def_key(key[0], cur.definition) == _def_key(key[0], d):
                        indexes[key] = cur
                    else:
                        new.append(TextIndex(key[0], d, 0))
                        indexes[key] = new[-1]
                by_table: dict[str, list[TextIndex]] = {}
                for (table, _), ix in indexes.items():
                    by_table.setdefault(table, []).append(ix)
                # From here on the committer thread queues changes for the new indexes.
                self._indexes = indexes
                self._by_table = by_table
            for ix in new:
                ix.pseudo_id = self.pseudo_id(ix.table, ix.definition)
                with ix.lock:
                    self._build(ix)
            self._synced = schema

    def _build(self, ix: TextIndex) -> None:
        """Fill a registered index (lock held): the table at the latest snapshot ``s``, then
        every revision durable after ``s``; queued changes up to there are skipped."""
        db = self.db
        s = db.latest_ts()
        number = db.catalog.table_number(ix.table)
        through = s
        if number is not None:
            for rev in db.persistence.table_documents(number, s):
                if rev.value is not None:
                    ix.load(rev.id, loads_stored(rev.value))
            for rev in db.persistence.document_log(s, _MAX_TS, table=number):
                ix.apply(rev.ts, rev.id, None if rev.value is None else loads_stored(rev.value))
                through = max(through, rev.ts)
        ix.applied_ts = max(ix.applied_ts, through)
        ix.built_through = through
        ix.change_floor = s
        ix.ready = True
        ix.drain(self._log_horizon(), knobs.SEARCH_CHANGE_LOG_MAX_COUNT)

    def _log_horizon(self) -> int:
        retention = max(knobs.WRITE_LOG_RETENTION_MS, 1000)
        return self.db.clock.now_ns() - retention * 1_000_000

    # --- database hooks ------------------------------------------------------------------
    def _on_durable(self, batch: list[CommitRecord]) -> None:
        by_table = self._by_table
        if not by_table:
            return
        long: list[TextIndex] = []
        for rec in batch:
            for w in rec.writes:
                for ix in by_table.get(w.table, ()):
                    if ix.enqueue(rec.ts, w.internal_id, w.new) >= _APPLY_INLINE_AT:
                        long.append(ix)
        for ix in long:
            if ix.ready and ix.lock.acquire(blocking=False):
                try:
                    ix.drain(self._log_horizon(), knobs.SEARCH_CHANGE_LOG_MAX_COUNT)
                except Exception:
                    log.exception("applying changes to search index %s.%s failed", ix.table, ix.definition.name)
                finally:
                    ix.lock.release()

    def _plan_for(self, schema: SchemaDefinition) -> dict[str, list[tuple[int, tuple[str, ...]]]]:
        cached_for, cached = self._key_plan
        if cached_for is schema:
            return cached
        plan: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
        for table, tdef in schema.tables.items():
            for d in tdef.search_indexes:
                plan.setdefault(table, []).append((self.pseudo_id(table, d), tuple(d.filter_fields)))
        self._key_plan = (schema, plan)
        return plan

    def _write_keys(self, writes: list[Any], index_keys: dict[int, list[bytes]]) -> None:
        schema = self.db.schema
        if schema is None:
            return
        plan = self._plan_for(schema)
        if not plan:
            return
        for w in writes:
            specs = plan.get(w.table)
            if not specs:
                continue
            for pid, fields in specs:
                keys: set[bytes] = set()
                for doc in (w.old, w.new):
                    if doc is None:
                        continue
                    if not fields:
                        keys.add(b"")
                    for i, f in enumerate(fields):
                        keys.add(bytes([i]) + encode_value(field_value(doc, f)))
                index_keys.setdefault(pid, []).extend(keys)

    # --- SearchProvider ------------------------------------------------------------------
    def compile(
        self, txn: Transaction, table: str, index: str, build: Callable[[Any], Any]
    ) -> TextSearch:
        self.sync()
        schema = self.db.schema
        tdef = schema.tables.get(table) if schema is not None else None
        definition = tdef.search_index_named(index) if tdef is not None else None
        if definition is None:
            known = [d.name for d in tdef.search_indexes] if tdef is not None else []
            raise DatabaseError(
                f"Search index {table}.{index} not found. Search indexes of table {table!r}: "
                f"{', '.join(known) or '(none)'}. Declare it in schema.py with "
                ".search_index(name, search_field=..., filter_fields=[...]).",
                code="IndexNotFound",
            )
        if definition.staged:
            raise DatabaseError(
                f"Search index {table}.{index} is staged and cannot be queried until it is "
                "enabled (staged=False)",
                code="IndexNotReady",
            )
        query = compile_search(table, definition, build)
        ix = self._indexes.get((table, index))
        if ix is None or ix.definition != definition:
            raise DatabaseError(
                f"Search index {table}.{index} is not built yet; retry", code="IndexNotReady"
            )
        return TextSearch(self, txn, ix, query)

    # --- execution -----------------------------------------------------------------------
    def rank(
        self, txn: Transaction, ix: TextIndex, query: CompiledTextQuery, start: bytes, end: bytes | None
    ) -> tuple[list[tuple[bytes, bytes]], bool]:
        limit = knobs.MAX_SEARCH_CANDIDATES_COUNT
        with ix.lock:
            ix.drain(self._log_horizon(), knobs.SEARCH_CHANGE_LOG_MAX_COUNT)
            overrides = ix.overrides_since(txn.begin_ts)
            if overrides is None:
                overrides = self._overrides_from_log(ix, txn.begin_ts)
            for w in txn.writes.values():
                if w.table == ix.table:
                    overrides[w.internal_id] = None if w.new is None else make_entry(ix.definition, w.new)
            return ix.rank(query, overrides, start, end, limit)

    def _overrides_from_log(self, ix: TextIndex, ts: int) -> Overrides:
        """The view at ``ts`` from disk, for a snapshot older than the change log (lock held)."""
        db = self.db
        number = db.catalog.table_number(ix.table)
        out: Overrides = {}
        if number is None:
            return out
        ids = {rev.id for rev in db.persistence.document_log(ts, ix.applied_ts, table=number)}
        for iid in sorted(ids):
            rev = db.persistence.get_document(number, iid, ts)
            out[iid] = None if rev is None or rev.value is None else make_entry(ix.definition, loads_stored(rev.value))
        return out


class TextSearch:
    """A compiled search bound to its transaction (the query layer's ``CompiledSearch``)."""

    def __init__(self, service: TextSearchService, txn: Transaction, ix: TextIndex, query: CompiledTextQuery) -> None:
        self._service = service
        self._txn = txn
        self._ix = ix
        self._query = query
        self.shape = query.shape(ix.table, ix.definition.name)

    def rows(self, start: bytes, end: bytes | None) -> Iterator[tuple[bytes, dict[str, Any]]]:
        txn = self._txn
        ix = self._ix
        txn.count_interval()
        if self._query.filters:
            pos, enc = self._query.filters[0]
            txn.reads.record_point(ix.pseudo_id, bytes([pos]) + enc)
        else:
            txn.reads.record_interval(ix.pseudo_id, b"", None)
        ranked, truncated = self._service.rank(txn, ix, self._query, start, end)
        db = self._service.db
        number = db.catalog.table_number(ix.table)
        for key, iid in ranked:
            w = txn.writes.get(iid)
            if w is not None:
                if w.new is None:
                    continue
                yield key, copy.deepcopy(w.new)
                continue
            if number is None:
                continue
            rev = db.persistence.get_document(number, iid, txn.begin_ts)
            if rev is None or rev.value is None:
                continue
            txn.count_read(len(rev.value))
            yield key, loads_stored(rev.value)
        if truncated:
            raise LimitError(
                f"Search query against {ix.table}.{ix.definition.name} matched more than "
                f"{knobs.MAX_SEARCH_CANDIDATES_COUNT} documents (the most one search may "
                "return). Use take(n), paginate, or add filter fields to narrow it.",
                code="SearchQueryTooManyResults",
            )
