"""Full-text search indexes as derived indexes of the catalog, their postings in the index log.

:class:`SearchKind` is the ``search`` kind of derived index (database/derived.py): the schema's
search indexes become ``_index`` documents (``kind: search``, fields = search field + filter
fields), backfilled from a snapshot with progress and enabled by a commit like database
indexes. Each commit writes the postings and statistics deltas of the documents it writes, in
the same durable batch (search/postings.py): tokenizing happens in ``prepare``, outside the
commit lock; under the lock ``commit_rows`` only turns the prepared postings into entries.
Nothing is rebuilt at start and every process reads the same postings.

:class:`SearchKind` is also the database's ``SearchProvider``: ``with_search_index`` compiles
to a :class:`TextSearch`, which ranks over the view at the transaction's snapshot plus its own
writes (search/rank.py) and records, per query term, the key range of that term in the slot it
read (and, for the prefix term, the range of every term starting with it): a write that adds,
changes or removes a posting of such a term — under the first filter condition's value when
there is one — invalidates the subscription and conflicts a mutation that searched. A write
that only shifts corpus statistics does not (scores may drift until a matching write happens,
as in Convex).
"""

from __future__ import annotations

import copy
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from convection import knobs
from convection.database.catalog import ENABLED, SEARCH_KIND, IndexInfo
from convection.database.database import Database
from convection.database.query import vector_index_in_query
from convection.database.transaction import Transaction, Write
from convection.errors import DatabaseError, LimitError
from convection.persistence.base import DocumentRevision, IndexEntry
from convection.schema.schema import SchemaDefinition, SearchIndexDefinition
from convection.search.postings import (
    Analyzed,
    analyze,
    corpus_key,
    df_key,
    posting_keys,
    prefix_range,
    term_end,
    term_prefix,
)
from convection.search.query import CompiledTextQuery, compile_search
from convection.search.rank import View, rank, slot_of
from convection.search.stats import Statistics
from convection.values.json import loads_stored

_BACKFILL_CHUNK = 2000



@dataclass(frozen=True, slots=True)
class Prepared:
    """One write's change to one search index, computed outside the commit lock."""

    old_keys: list[bytes]  # every posting key of the old version (written keys)
    gone: list[bytes]  # posting keys to tombstone
    added: list[bytes]  # posting keys to write
    documents: int  # corpus deltas
    tokens: int
    df: dict[str, int]  # document-frequency deltas


def fields_of(d: SearchIndexDefinition) -> tuple[str, ...]:
    return (d.search_field, *d.filter_fields)


class SearchKind:
    """The ``search`` derived-index kind of one database, and its ``SearchProvider``."""

    kind = SEARCH_KIND

    def __init__(self, db: Database) -> None:
        self.db = db
        self._stats: dict[int, Statistics] = {}
        self._lock = threading.Lock()

    @classmethod
    def attach(cls, db: Database) -> SearchKind:
        """The database's search kind, registered (and its indexes brought in line with the
        schema) on first use."""
        existing = db.derived.get(SEARCH_KIND)
        if isinstance(existing, SearchKind):
            return existing
        service = cls(db)
        db.text_search = service
        db.register_derived(service)
        db.add_maintenance_hook(service.compact)
        return service

    def compact(self) -> int:
        """Compact the statistics of every enabled search index (search/compaction.py; a
        maintenance hook). Returns the entries merged away."""
        from convection.search.compaction import compact_statistics

        return sum(
            compact_statistics(self.db, index)
            for index in self.db.catalog.indexes_by_kind(SEARCH_KIND)
            if index.state == ENABLED
        )

    # --- DerivedIndexKind -------------------------------------------------------------------
    def declared(
        self, schema: SchemaDefinition
    ) -> list[tuple[str, str, tuple[str, ...], tuple[tuple[str, Any], ...]]]:
        return [
            (table, d.name, fields_of(d), ())
            for table, tdef in schema.tables.items()
            for d in tdef.search_indexes
            if not d.staged
        ]

    def prepare(self, index: IndexInfo, write: Write) -> Prepared:
        old = analyze(index.fields, write.old) if write.old is not None else None
        new = analyze(index.fields, write.new) if write.new is not None else None
        iid = write.internal_id
        old_keys = posting_keys(old, iid) if old is not None else []
        new_keys = posting_keys(new, iid) if new is not None else []
        df: Counter[str] = Counter()
        documents = tokens = 0
        if old is not None:
            documents -= 1
            tokens -= old.length
            df.subtract(old.freqs.keys())
        if new is not None:
            documents += 1
            tokens += new.length
            df.update(new.freqs.keys())
        if old is None:
            gone, added = [], new_keys
        else:
            o, n = set(old_keys), set(new_keys)
            gone, added = [k for k in old_keys if k not in n], [k for k in new_keys if k not in o]
        return Prepared(old_keys, gone, added, documents, tokens, {t: d for t, d in df.items() if d})

    def commit_rows(
        self,
        index: IndexInfo,
        changes: list[tuple[Write, Any]],
        ts: int,
        entries: list[IndexEntry],
        keys: list[bytes],
    ) -> None:
        df: Counter[str] = Counter()
        docs = tokens = 0
        iid_ = index.index_id
        number = index.table_number
        for w, p in changes:
            # Like database indexes, the old keys are written keys even when unchanged: a
            # search that returned this document reads its contents.
            keys.extend(p.old_keys)
            keys.extend(p.added)
            docs += p.documents
            tokens += p.tokens
            df.update(p.df)
            entries.extend([IndexEntry(iid_, k, ts, number, None) for k in p.gone])
            iid = w.internal_id
            entries.extend([IndexEntry(iid_, k, ts, number, iid) for k in p.added])
        for term, delta in sorted(df.items()):
            if delta:
                entries.append(IndexEntry(iid_, df_key(term, ts, delta), ts, number, b"\x00"))
        if docs or tokens:
            entries.append(IndexEntry(iid_, corpus_key(ts, docs, tokens), ts, number, b"\x00"))

    def backfill(
        self,
        index: IndexInfo,
        documents: Iterator[tuple[DocumentRevision, dict[str, Any]]],
        snapshot_ts: int,
        write: Callable[[list[IndexEntry]], None],
        progress: Callable[[int], None],
    ) -> None:
        df: Counter[str] = Counter()
        docs = tokens = done = 0
        batch: list[IndexEntry] = []
        number = index.table_number
        for rev, doc in documents:
            a = analyze(index.fields, doc)
            docs += 1
            tokens += a.length
            df.update(a.freqs.keys())
            batch.extend(IndexEntry(index.index_id, k, rev.ts, number, rev.id) for k in posting_keys(a, rev.id))
            done += 1
            if len(batch) >= _BACKFILL_CHUNK * 8:
                write(batch)
                batch = []
                progress(done)
        stats = [IndexEntry(index.index_id, df_key(t, snapshot_ts, n), snapshot_ts, number, b"\x00")
                 for t, n in sorted(df.items())]
        if docs:
            stats.append(IndexEntry(index.index_id, corpus_key(snapshot_ts, docs, tokens), snapshot_ts, number, b"\x00"))
        for i in range(0, len(stats), _BACKFILL_CHUNK):
            batch.extend(stats[i : i + _BACKFILL_CHUNK])
            write(batch)
            batch = []
        if batch:
            write(batch)
        progress(done)

    def dropped(self, index: IndexInfo) -> None:
        with self._lock:
            self._stats.pop(index.index_id, None)

    def statistics(self, index: IndexInfo) -> Statistics:
        with self._lock:
            st = self._stats.get(index.index_id)
            if st is None:
                st = self._stats[index.index_id] = Statistics(self.db.persistence, index.index_id)
            return st

    # --- SearchProvider ----------------------------------------------------------------------
    def compile(
        self, txn: Transaction, table: str, index: str, build: Callable[[Any], Any]
    ) -> TextSearch:
        schema = self.db.schema
        tdef = schema.tables.get(table) if schema is not None else None
        definition = tdef.search_index_named(index) if tdef is not None else None
        if definition is None and tdef is not None and tdef.vector_index_named(index) is not None:
            raise vector_index_in_query(table, index, "with_search_index")
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
        info = txn.index_info(table, index)
        if info is None and txn.table_number(table) is None:
            return TextSearch(self, txn, None, query, table, index)  # no table: no results
        if info is None or info.kind != SEARCH_KIND or info.fields != fields_of(definition) or info.state != ENABLED:
            raise DatabaseError(
                f"Search index {table}.{index} is still being built (backfilling); retry",
                code="IndexNotReady",
            )
        return TextSearch(self, txn, info, query, table, index)


class TextSearch:
    """A compiled search bound to its transaction (the query layer's ``CompiledSearch``)."""

    def __init__(self, service: SearchKind, txn: Transaction, info: IndexInfo | None,
                 query: CompiledTextQuery, table: str, index: str) -> None:
        self._service = service
        self._txn = txn
        self._info = info
        self._query = query
        self._table = table
        self.shape = query.shape(table, index)
        self._docs: dict[bytes, dict[str, Any]] = {}

    def _view(self, info: IndexInfo) -> View:
        txn = self._txn
        hidden: set[bytes] = set()
        pending: dict[bytes, Analyzed] = {}
        removed: list[Analyzed] = []
        for w in txn.writes.values():
            if w.table_number != info.table_number:
                continue
            hidden.add(w.internal_id)
            if w.old is not None:
                removed.append(analyze(info.fields, w.old))
            if w.new is not None:
                pending[w.internal_id] = analyze(info.fields, w.new)
        db = self._service.db
        return View(db.persistence, info.index_id, txn.begin_ts, self._service.statistics(info),
                    frozenset(hidden), pending, removed)

    def _record_reads(self, info: IndexInfo) -> None:
        """One key range per query term in the slot searched (the last term: every term
        starting with it)."""
        reads = self._txn.reads
        slot = slot_of(self._query)
        terms = self._query.terms
        for term in terms[:-1]:
            p = term_prefix(slot.number, slot.value, term)
            reads.record_interval(info.index_id, p, term_end(p))
        if terms:
            lo, hi = prefix_range(slot.number, slot.value, terms[-1])
            reads.record_interval(info.index_id, lo, hi)

    def _analyze(self, info: IndexInfo, view: View, iid: bytes) -> Analyzed | None:
        a = view.pending.get(iid)
        if a is not None:
            return a
        doc = self._load(iid)
        return None if doc is None else analyze(info.fields, doc)

    def _load(self, iid: bytes) -> dict[str, Any] | None:
        doc = self._docs.get(iid)
        if doc is not None:
            return doc
        info = self._info
        assert info is not None
        rev = self._service.db.persistence.get_document(info.table_number, iid, self._txn.begin_ts)
        if rev is None or rev.value is None:
            return None
        self._txn.count_read(len(rev.value))
        loaded: dict[str, Any] = loads_stored(rev.value)
        self._docs[iid] = loaded
        return loaded

    def rows(self, start: bytes, end: bytes | None) -> Iterator[tuple[bytes, dict[str, Any]]]:
        txn = self._txn
        info = self._info
        txn.count_interval()
        if info is None:
            txn.table_number(self._table)  # records the miss: creating the table invalidates
            return
        self._record_reads(info)
        view = self._view(info)
        limit = knobs.MAX_SEARCH_CANDIDATES_COUNT
        produced = 0
        for key, iid in rank(view, self._query, start, end, lambda i: self._analyze(info, view, i)):
            if produced >= limit:
                raise LimitError(
                    f"Search query against {info.table}.{info.name} matched more than "
                    f"{limit} documents (the most one search may return). Use take(n), "
                    "paginate, or add filter fields to narrow it.",
                    code="SearchQueryTooManyResults",
                )
            produced += 1
            w = txn.writes.get(iid)
            if w is not None:
                if w.new is None:
                    continue
                yield key, copy.deepcopy(w.new)
                continue
            doc = self._docs.pop(iid, None)
            if doc is None:
                doc = self._load(iid)
                self._docs.pop(iid, None)
            if doc is None:
                continue
            yield key, doc
