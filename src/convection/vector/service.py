"""Vector search for actions: ``await ctx.vector_search(table, index, vector=[...], limit=10,
filter=lambda q: q.or_(q.eq("userId", a), q.eq("userId", b)))`` (docs/search.md).

:class:`VectorKind` is the ``vector`` kind of derived index (database/derived.py): the
schema's vector indexes become ``_index`` documents (``kind: vector``, fields = vector field +
filter fields, ``options.dimensions``), created, backfilled from a snapshot with progress and
enabled like every index. Their contents are not in the index log: each is an HNSW graph
(vector/ann.py) kept in memory and saved under ``<data dir>/indexes/`` with the commit ts it
covers. Commits reach it through the durable hook (queued before the commit becomes visible,
applied by the next search or by the applier thread), so a vector written by a committed
mutation is searchable by every search that starts after the mutation returned. At start a
saved graph is loaded and only the document log after its ts is applied; without one (a new
data directory, an in-memory store) the index is built from the table once.

Vector search is not transactional: it runs on the latest state, records no read set and is
not reactive (actions only, like Convex). Results are ``[{"_id": id, "_score": cosine}]``,
best first, ties by id; load documents with ``ctx.run_query``. ``limit`` defaults to 10 and
is at most ``MAX_VECTOR_RESULTS_COUNT`` (256); a filter is ``q.eq(field, value)`` or
``q.or_(...)`` of them over the index's filter fields, at most
``MAX_VECTOR_FILTER_TERMS_COUNT`` (64) terms.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from convection import knobs
from convection.database.catalog import ENABLED, VECTOR_KIND, IndexInfo
from convection.database.committer import CommitRecord
from convection.database.database import Database
from convection.database.transaction import Write
from convection.errors import ConvectionError
from convection.indexing.keys import encode_value
from convection.persistence.base import DocumentRevision, IndexEntry
from convection.schema.schema import SchemaDefinition, VectorIndexDefinition
from convection.values.ids import encode_id
from convection.values.json import loads_stored
from convection.values.model import UNSET, normalize
from convection.values.order import MISSING
from convection.vector.ann import AnnIndex, numpy

log = logging.getLogger("convection.vector")

_MAX_TS = (1 << 63) - 1


class VectorSearchError(ConvectionError):
    """A ``ctx.vector_search`` call is invalid (arguments, filter, dimensions)."""

    code = "InvalidVectorQuery"


# --- the filter builder ----------------------------------------------------------------------
class _Eq:
    __slots__ = ("field", "value")

    def __init__(self, field: Any, value: Any) -> None:
        self.field = field
        self.value = value


class _Or:
    __slots__ = ("parts",)

    def __init__(self, parts: tuple[Any, ...]) -> None:
        self.parts = parts


class VectorFilterBuilder:
    """``q`` in ``filter=lambda q: q.or_(q.eq("userId", a), q.eq("kind", "x"))``."""

    def eq(self, field: str, value: Any) -> Any:
        """Documents whose filter field ``field`` equals ``value`` (``UNSET``: missing)."""
        return _Eq(field, value)

    def or_(self, *exprs: Any) -> Any:
        """Documents matching any of ``exprs`` (each ``q.eq`` or another ``q.or_``)."""
        return _Or(exprs)


def compile_filter(table: str, d: VectorIndexDefinition, fn: Any) -> list[tuple[int, bytes]] | None:
    """The filter as an OR of (filter field position, encoded value), or None for no filter."""
    if fn is None:
        return None
    where = f"Vector search against {table}.{d.name}"
    if not callable(fn):
        raise VectorSearchError(f"{where}: filter must be a function, e.g. lambda q: q.eq(field, value)")
    expr = fn(VectorFilterBuilder())
    positions = {f: i for i, f in enumerate(d.filter_fields)}
    terms: list[tuple[int, bytes]] = []

    def walk(e: Any) -> None:
        if isinstance(e, _Or):
            for part in e.parts:
                walk(part)
            return
        if not isinstance(e, _Eq):
            raise VectorSearchError(
                f"{where}: a filter is q.eq(field, value) or q.or_(...) of them, got {e!r}"
            )
        pos = positions.get(e.field) if isinstance(e.field, str) else None
        if pos is None:
            raise VectorSearchError(
                f"{where}: filter on {e.field!r}, which is not a filter field of the index "
                f"({', '.join(d.filter_fields) or 'none'})"
            )
        value = MISSING if e.value is UNSET else normalize(e.value)
        terms.append((pos, encode_value(value)))
        if len(terms) > knobs.MAX_VECTOR_FILTER_TERMS_COUNT:
            raise VectorSearchError(
                f"{where}: the filter has more than {knobs.MAX_VECTOR_FILTER_TERMS_COUNT} "
                "equality terms"
            )

    walk(expr)
    return terms


def _limit(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise VectorSearchError(f"limit must be a number, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise VectorSearchError(f"limit must be an integer, got {value!r}")
    n = int(value)
    if not 1 <= n <= knobs.MAX_VECTOR_RESULTS_COUNT:
        raise VectorSearchError(
            f"limit must be between 1 and {knobs.MAX_VECTOR_RESULTS_COUNT}, got {n}"
        )
    return n


# --- the kind ---------------------------------------------------------------------------------
def fields_of(d: VectorIndexDefinition) -> tuple[str, ...]:
    return (d.vector_field, *d.filter_fields)


class VectorKind:
    """The ``vector`` derived-index kind of one database. Thread-safe."""

    kind = VECTOR_KIND

    def __init__(self, db: Database, directory: Path | None) -> None:
        self.db = db
        self.directory = directory
        self._lock = threading.Lock()
        self._indexes: dict[int, AnnIndex] = {}  # replaced, never mutated (committer reads it)
        self._wake = threading.Event()
        self._stop = False
        self._applier = threading.Thread(target=self._apply_loop, name="convection-vector", daemon=True)
        self._applier.start()

    @classmethod
    def attach(cls, db: Database, directory: Path | None = None) -> VectorKind:
        """The database's vector kind, registered on first use; its enabled indexes are
        loaded (saved graph + the log after it) before this returns."""
        existing = db.derived.get(VECTOR_KIND)
        if isinstance(existing, VectorKind):
            return existing
        kind = cls(db, directory)
        db.add_durable_hook(kind._on_durable)
        db.add_maintenance_hook(lambda: kind.save())  # looked up each time (tests replace it)
        db.register_derived(kind)
        for info in list(db.catalog.indexes_by_kind(VECTOR_KIND)):
            if info.state == ENABLED:
                kind._index(info)
        return kind

    # --- DerivedIndexKind -------------------------------------------------------------------
    def declared(
        self, schema: SchemaDefinition
    ) -> list[tuple[str, str, tuple[str, ...], tuple[tuple[str, Any], ...]]]:
        return [
            (table, d.name, fields_of(d), (("dimensions", float(d.dimensions)),))
            for table, tdef in schema.tables.items()
            for d in tdef.vector_indexes
            if not d.staged
        ]

    def prepare(self, index: IndexInfo, write: Write) -> None:
        return None  # nothing in the index log: the graph follows the durable hook

    def commit_rows(self, index: IndexInfo, changes: list[tuple[Write, Any]], ts: int,
                    entries: list[IndexEntry], keys: list[bytes]) -> None:
        return None

    def backfill(
        self,
        index: IndexInfo,
        documents: Iterator[tuple[DocumentRevision, dict[str, Any]]],
        snapshot_ts: int,
        write: Callable[[list[IndexEntry]], None],
        progress: Callable[[int], None],
    ) -> None:
        ix = self._get(index)
        with ix.lock:
            done = 0
            for rev, doc in documents:
                ix.apply(rev.id, doc)
                done += 1
                if done % 1000 == 0:
                    progress(done)
            ix.applied_ts = snapshot_ts
            ix.ready = True
            ix.drain()  # commits after the snapshot, queued meanwhile
            self._save(ix)
        progress(done)

    def dropped(self, index: IndexInfo) -> None:
        with self._lock:
            indexes = dict(self._indexes)
            indexes.pop(index.index_id, None)
            self._indexes = indexes
        if self.directory is not None:
            AnnIndex.remove_files(self.directory, index.index_id)

    # --- the graphs ---------------------------------------------------------------------------
    def _get(self, info: IndexInfo) -> AnnIndex:
        ix = self._indexes.get(info.index_id)
        if ix is not None:
            return ix
        with self._lock:
            ix = self._indexes.get(info.index_id)
            if ix is None:
                dims = int(dict(info.options)["dimensions"])
                ix = AnnIndex(info.index_id, dims, info.fields[0], info.fields[1:])
                self._indexes = {**self._indexes, info.index_id: ix}
            return ix

    def _index(self, info: IndexInfo) -> AnnIndex:
        """The ready graph of an enabled index: loaded from disk and caught up from the log,
        or (no usable file) built from the table."""
        ix = self._get(info)
        if ix.ready:
            return ix
        with ix.lock:
            if ix.ready:
                return ix
            db = self.db
            s = db.latest_ts()
            number = info.table_number
            if self.directory is not None and ix.load(self.directory):
                log.info("vector index %s.%s: loaded %d vectors saved at ts %d", info.table, info.name, len(ix), ix.applied_ts)
            else:
                for rev in db.persistence.table_documents(number, s):
                    if rev.value is not None:
                        ix.apply(rev.id, loads_stored(rev.value))
                ix.applied_ts = s
            for rev in db.persistence.document_log(ix.applied_ts, _MAX_TS, table=number):
                ix.apply(rev.id, None if rev.value is None else loads_stored(rev.value))
                ix.applied_ts = max(ix.applied_ts, rev.ts)
            ix.ready = True
            ix.drain()
        return ix

    def _on_durable(self, batch: list[CommitRecord]) -> None:
        catalog = self.db.catalog
        wake = False
        for rec in batch:
            for w in rec.writes:
                for info in catalog.indexes_of_number(w.table_number).values():
                    if info.kind == VECTOR_KIND:
                        self._get(info).enqueue(rec.ts, w.internal_id, w.new)
                        wake = True
        if wake:
            self._wake.set()

    def _apply_loop(self) -> None:
        """Apply queued changes off the committer thread (searches also apply them)."""
        while not self._stop:
            self._wake.wait()
            self._wake.clear()
            for ix in list(self._indexes.values()):
                if ix.ready:
                    try:
                        with ix.lock:
                            ix.drain()
                            if ix.dirty and self.directory is not None and ix.changes_since_save >= knobs.VECTOR_SAVE_AFTER_COUNT:
                                self._save(ix)
                    except Exception:
                        log.exception("applying changes to vector index %d failed", ix.index_id)

    def _save(self, ix: AnnIndex) -> None:
        if self.directory is not None and ix.ready:
            ix.save(self.directory)

    def save(self) -> None:
        """Save every changed graph (maintenance, close)."""
        for ix in list(self._indexes.values()):
            if ix.ready and ix.dirty:
                with ix.lock:
                    ix.drain()
                    self._save(ix)

    def close(self) -> None:
        self.save()
        self._stop = True
        self._wake.set()

    # --- search --------------------------------------------------------------------------
    def search(
        self,
        table: Any,
        index: Any,
        *,
        vector: Any,
        limit: Any = 10,
        filter: Callable[[VectorFilterBuilder], Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Validate and run one vector search (blocking). See the module docstring."""
        if not isinstance(table, str) or not isinstance(index, str):
            raise VectorSearchError(
                f"vector_search(table, index, ...) takes two strings, got {table!r}, {index!r}"
            )
        schema = self.db.schema
        tdef = schema.tables.get(table) if schema is not None else None
        d = tdef.vector_index_named(index) if tdef is not None else None
        if d is None:
            known = [x.name for x in tdef.vector_indexes] if tdef is not None else []
            raise VectorSearchError(
                f"Vector index {table}.{index} not found. Vector indexes of table {table!r}: "
                f"{', '.join(known) or '(none)'}. Declare it in schema.py with "
                ".vector_index(name, vector_field=..., dimensions=..., filter_fields=[...]).",
                code="IndexNotFound",
            )
        if d.staged:
            raise VectorSearchError(
                f"Vector index {table}.{index} is staged and cannot be queried", code="IndexNotReady"
            )
        n = _limit(limit)
        if not isinstance(vector, list | tuple) or not all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in vector
        ):
            raise VectorSearchError(f"vector must be an array of numbers, got {type(vector).__name__}")
        if len(vector) != d.dimensions:
            raise VectorSearchError(
                f"Vector search against {table}.{index}: the vector has {len(vector)} "
                f"dimensions, the index has {d.dimensions}"
            )
        np = numpy()
        q = np.asarray([float(x) for x in vector], dtype=np.float64)
        if not np.all(np.isfinite(q)):
            raise VectorSearchError("vector must contain finite numbers only")
        norm = float(np.linalg.norm(q))
        query = (q / norm if norm > 0 else q).astype(np.float32)
        terms = compile_filter(table, d, filter)
        info = self.db.catalog.index(table, index)
        if info is None:
            return []  # the table does not exist yet
        if info.kind != VECTOR_KIND or info.state != ENABLED or info.fields != fields_of(d):
            raise VectorSearchError(
                f"Vector index {table}.{index} is still being built (backfilling); retry",
                code="IndexNotReady",
            )
        ix = self._index(info)
        with ix.lock:
            ix.drain()
            found = ix.search(query, n, terms)
        number = info.table_number
        ranked = sorted((-score, encode_id(number, iid)) for score, iid in found)[:n]
        return [{"_id": id_, "_score": -neg} for neg, id_ in ranked]

    def decorate_ctx(self, ctx: Any, txn: Any) -> None:
        """Install ``ctx.vector_search`` on action contexts (the runner's ``decorate_ctx``
        hook; actions are the contexts built without a transaction)."""
        if txn is not None:
            return
        service = self

        async def vector_search(
            table: str,
            index: str,
            query: dict[str, Any] | None = None,
            *,
            vector: Any = None,
            limit: Any = None,
            filter: Callable[[VectorFilterBuilder], Any] | None = None,
        ) -> list[dict[str, Any]]:
            """``await ctx.vector_search(table, index, vector=[...], limit=10, filter=None)``
            (a Convex-style options dict as third argument works too)."""
            if query is not None:
                if not isinstance(query, dict):
                    raise VectorSearchError("the third argument of vector_search must be a dict of options")
                extra = set(query) - {"vector", "limit", "filter"}
                if extra:
                    raise VectorSearchError(f"unknown vector_search options: {sorted(extra)}")
                vector = query.get("vector", vector)
                limit = query.get("limit", limit)
                filter = query.get("filter", filter)
            if vector is None:
                raise VectorSearchError("vector_search needs vector=[...]")
            return await asyncio.to_thread(
                service.search, table, index, vector=vector, limit=10 if limit is None else limit, filter=filter
            )

        ctx.vector_search = vector_search
