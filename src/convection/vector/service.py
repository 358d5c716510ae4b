"""Vector search for actions: ``await ctx.vector_search(table, index, vector=[...], limit=10,
filter=lambda q: q.or_(q.eq("userId", a), q.eq("userId", b)))`` (docs/search.md).

:meth:`VectorSearchService.attach` creates one service per database and registers a durable
hook: each commit's writes to a table with vector indexes are queued on those indexes before
the commit becomes visible and applied by the next search (or once the queue is long). So a
vector written by a committed mutation is searchable by every search that starts after the
mutation returned. Indexes follow the schema in force and are built from the table at the
latest snapshot plus the document log after it (also after a restart).

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
import math
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from convection import knobs
from convection.database.committer import CommitRecord
from convection.database.database import Database
from convection.errors import ConvectionError, MissingExtra
from convection.indexing.keys import encode_value
from convection.schema.schema import SchemaDefinition, VectorIndexDefinition
from convection.values.ids import encode_id
from convection.values.json import loads_stored
from convection.values.model import UNSET, normalize
from convection.values.order import MISSING

if TYPE_CHECKING:  # numpy is the optional extra ``convection[vector]``: imported on first use
    from types import ModuleType

    from convection.vector.index import VectorIndex

log = logging.getLogger("convection.vector")

_MAX_TS = (1 << 63) - 1
_APPLY_INLINE_AT = 256

_SERVICES: weakref.WeakKeyDictionary[Database, VectorSearchService] = weakref.WeakKeyDictionary()
_SERVICES_LOCK = threading.Lock()


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


def _index_module() -> ModuleType:
    """``convection.vector.index`` (which needs numpy), imported when a vector index is first
    declared or searched, so apps without vector indexes never load numpy."""
    try:
        import convection.vector.index as module
    except ImportError as exc:
        if exc.name != "numpy" and not str(exc.name or "").startswith("numpy."):
            raise
        raise MissingExtra("Vector search (a vector index in schema.py)", "numpy", "vector") from None
    return module


# --- the service -----------------------------------------------------------------------------
class VectorSearchService:
    """The vector indexes of one database. Thread-safe. See the module docstring."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._registry_lock = threading.Lock()
        self._sync_lock = threading.RLock()
        self._indexes: dict[tuple[str, str], VectorIndex] = {}
        self._by_table: dict[str, list[VectorIndex]] = {}  # replaced, never mutated
        self._synced: SchemaDefinition | bool | None = False

    @classmethod
    def attach(cls, db: Database) -> VectorSearchService:
        """The database's vector search service, created and hooked in on first use."""
        with _SERVICES_LOCK:
            service = _SERVICES.get(db)
            if service is None:
                service = _SERVICES[db] = cls(db)
                db.add_durable_hook(service._on_durable)
        service.sync()
        return service

    def sync(self) -> None:
        """Build declared vector indexes that are missing (from disk); drop undeclared ones."""
        if self.db.schema is self._synced:
            return
        with self._sync_lock:
            schema = self.db.schema
            if schema is self._synced:
                return
            wanted: dict[tuple[str, str], VectorIndexDefinition] = {}
            if schema is not None:
                for table, tdef in schema.tables.items():
                    for d in tdef.vector_indexes:
                        if not d.staged:
                            wanted[(table, d.name)] = d
            new: list[VectorIndex] = []
            if wanted:
                module = _index_module()
            with self._registry_lock:
                indexes = {}
                for key, d in wanted.items():
                    cur = self._indexes.get(key)
                    if cur is not None and cur.ready and cur.definition == d:
                        indexes[key] = cur
                    else:
                        new.append(module.VectorIndex(key[0], d))
                        indexes[key] = new[-1]
                by_table: dict[str, list[VectorIndex]] = {}
                for (table, _), ix in indexes.items():
                    by_table.setdefault(table, []).append(ix)
                self._indexes = indexes
                self._by_table = by_table
            for ix in new:
                with ix.lock:
                    self._build(ix)
            self._synced = schema

    def _build(self, ix: VectorIndex) -> None:
        db = self.db
        s = db.latest_ts()
        through = s
        number = db.catalog.table_number(ix.table)
        if number is not None:
            for rev in db.persistence.table_documents(number, s):
                if rev.value is not None:
                    ix.apply(rev.id, loads_stored(rev.value))
            for rev in db.persistence.document_log(s, _MAX_TS, table=number):
                ix.apply(rev.id, None if rev.value is None else loads_stored(rev.value))
                through = max(through, rev.ts)
        ix.built_through = through
        ix.ready = True
        ix.drain()

    def _on_durable(self, batch: list[CommitRecord]) -> None:
        by_table = self._by_table
        if not by_table:
            return
        long: list[VectorIndex] = []
        for rec in batch:
            for w in rec.writes:
                for ix in by_table.get(w.table, ()):
                    if ix.enqueue(rec.ts, w.internal_id, w.new) >= _APPLY_INLINE_AT:
                        long.append(ix)
        for ix in long:
            if ix.ready and ix.lock.acquire(blocking=False):
                try:
                    ix.drain()
                except Exception:
                    log.exception("applying changes to vector index %s.%s failed", ix.table, ix.definition.name)
                finally:
                    ix.lock.release()

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
        self.sync()
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
        floats = [float(x) for x in vector]
        if not all(math.isfinite(x) for x in floats):
            raise VectorSearchError("vector must contain finite numbers only")
        query = _index_module().unit_vector(floats, d.dimensions)
        terms = compile_filter(table, d, filter)
        ix = self._indexes.get((table, index))
        if ix is None:
            return []
        with ix.lock:
            ix.drain()
            found = ix.search(query, n, terms)
        number = self.db.catalog.table_number(table)
        if number is None:
            return []
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
