"""The query API of ``ctx.db.query(table)`` (docs/database.md).

A query is an index range (``with_index``: equality on a prefix of the index fields, then at
most one lower and one upper bound on the next field; no ``with_index`` = a table scan of
``by_creation_time``), an order, and post-filters. Terminal operations (``collect``, ``take``,
``first``, ``unique``, ``paginate``, iteration) pull rows lazily from
:meth:`Transaction.scan`, which records exactly the consumed part of the range as read.

``with_search_index`` makes the query a full-text search instead: the database's
:class:`SearchProvider` (installed by ``convection.search``, a layer above) compiles the
search and yields its results in relevance order with synthetic keys, over which the same
terminal operations (pagination included) work; ``order()`` is not allowed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from convection import knobs
from convection.database.catalog import (
    BY_CREATION_TIME,
    BY_ID,
    DATABASE_KIND,
    IndexInfo,
    make_index,
    system_index_fields,
)
from convection.database.filters import FilterBuilder, build_filter
from convection.database.pagination import Cursor, InvalidCursor
from convection.database.search_provider import CompiledSearch
from convection.errors import ConvectionError, DatabaseError, at_user_location
from convection.indexing.keys import encode_key, encode_value, prefix_end
from convection.values.model import normalize

if TYPE_CHECKING:
    from convection.database.transaction import Transaction


class PaginationError(ConvectionError):
    code = "PaginationError"


def as_count(value: Any, what: str) -> int:
    """Counts arrive from JS clients as floats (5.0): accept integral numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DatabaseError(f"{what} must be a number, got {value!r}", code="InvalidArgument")
    if isinstance(value, float):
        if not value.is_integer():
            raise DatabaseError(f"{what} must be an integer, got {value!r}", code="InvalidArgument")
        value = int(value)
    if value < 0:
        raise DatabaseError(f"{what} must not be negative, got {value}", code="InvalidArgument")
    return int(value)


# The index id a query of a missing table scans: no entry ever has it, so the scan is empty.
MISSING_TABLE_INDEX_ID = 0


def vector_index_in_query(table: str, index: str, method: str) -> DatabaseError:
    """``with_index``/``with_search_index`` named a vector index: vector search runs only in
    actions (as in Convex)."""
    return DatabaseError(
        f"{table}.{index} is declared as a vector index, and vector search runs only in "
        f"actions (as in Convex), not through {method}() in a query or mutation"
        f"{at_user_location(3)}. Search from an @action with await ctx.vector_search("
        f"{table!r}, {index!r}, vector=[...], limit=10), then load the documents it returns "
        "with await ctx.run_query(...).",
        code="VectorSearchOutsideAction",
    )


class IndexRangeBuilder:
    """The ``q`` of ``with_index(name, lambda q: q.eq(...).gt(...))``."""

    def __init__(self, index: IndexInfo) -> None:
        self._index = index
        if index.name == BY_ID:
            self._fields = ["_id"]
        elif index.name == BY_CREATION_TIME:
            self._fields = ["_creationTime"]
        else:
            self._fields = [*index.fields, "_creationTime"]
        self._eq: list[Any] = []
        self._lower: tuple[str, Any] | None = None  # (op, value)
        self._upper: tuple[str, Any] | None = None
        self._range_field: str | None = None

    def _next_field(self, field: str, op: str) -> None:
        if self._range_field is not None:
            if field != self._range_field:
                raise DatabaseError(
                    f"Index range on {self._index.table}.{self._index.name}: after a range "
                    f"condition on {self._range_field!r} only the other bound of the same field "
                    f"may follow, got .{op}({field!r}, ...)",
                    code="InvalidIndexRange",
                )
            return
        pos = len(self._eq)
        if pos >= len(self._fields) or self._fields[pos] != field:
            expected = self._fields[pos] if pos < len(self._fields) else None
            raise DatabaseError(
                f"Index range on {self._index.table}.{self._index.name} (fields "
                f"{self._fields}): .{op}({field!r}, ...) is out of order; the next field must be "
                f"{expected!r}. Conditions must follow the index fields in order.",
                code="InvalidIndexRange",
            )

    def eq(self, field: str, value: Any) -> IndexRangeBuilder:
        if self._range_field is not None:
            raise DatabaseError(
                f"Index range on {self._index.table}.{self._index.name}: .eq({field!r}) cannot "
                "follow a range condition (gt/gte/lt/lte)",
                code="InvalidIndexRange",
            )
        self._next_field(field, "eq")
        self._eq.append(normalize(value))
        return self

    def _bound(self, op: str, field: str, value: Any) -> IndexRangeBuilder:
        self._next_field(field, op)
        self._range_field = field
        v = normalize(value)
        if op in ("gt", "gte"):
            if self._lower is not None:
                raise DatabaseError(f"Index range: two lower bounds on {field!r}", code="InvalidIndexRange")
            self._lower = (op, v)
        else:
            if self._upper is not None:
                raise DatabaseError(f"Index range: two upper bounds on {field!r}", code="InvalidIndexRange")
            self._upper = (op, v)
        return self

    def gt(self, field: str, value: Any) -> IndexRangeBuilder:
        return self._bound("gt", field, value)

    def gte(self, field: str, value: Any) -> IndexRangeBuilder:
        return self._bound("gte", field, value)

    def lt(self, field: str, value: Any) -> IndexRangeBuilder:
        return self._bound("lt", field, value)

    def lte(self, field: str, value: Any) -> IndexRangeBuilder:
        return self._bound("lte", field, value)

    def interval(self) -> tuple[bytes, bytes | None]:
        prefix = encode_key(self._eq)
        if self._lower is None:
            start = prefix
        else:
            op, v = self._lower
            bound = prefix + encode_value(v)
            start = bound if op == "gte" else prefix_end(bound)
        # Keys whose first values equal t are exactly [encode_key(t), prefix_end(encode_key(t))):
        # a complete value is followed by a type tag or nothing, never by 0xFF.
        if self._upper is None:
            end = prefix_end(prefix) if prefix else None
        else:
            op, v = self._upper
            bound = prefix + encode_value(v)
            end = bound if op == "lt" else prefix_end(bound)
        return start, end

    def describe(self) -> str:
        return repr((self._eq, self._lower, self._upper))


class Query:
    """A query under construction; terminal methods run it inside the transaction."""

    def __init__(self, txn: Transaction, table: str) -> None:
        self._txn = txn
        self._table = table
        self._index_name: str | None = None
        self._range: IndexRangeBuilder | None = None
        self._order = "asc"
        self._filters: list[Callable[[dict[str, Any]], bool]] = []
        self._consumed = False
        self._search: CompiledSearch | None = None
        self._order_set = False

    # --- builders ----------------------------------------------------------------------------
    def with_index(self, name: str, range_fn: Callable[[IndexRangeBuilder], Any] | None = None) -> Query:
        if self._index_name is not None:
            raise DatabaseError("with_index() may be called only once per query", code="InvalidQuery")
        index = self._resolve_index(name)
        self._index_name = name
        if range_fn is not None:
            rb = IndexRangeBuilder(index)
            result = range_fn(rb)
            if result is not None and not isinstance(result, IndexRangeBuilder):
                raise DatabaseError(
                    "The with_index range function must return the range builder (q.eq(...).gt(...))",
                    code="InvalidIndexRange",
                )
            self._range = rb
        return self

    def with_search_index(self, name: str, search_fn: Callable[[Any], Any]) -> Query:
        """Full-text search: ``lambda q: q.search(field, text).eq(filter_field, value)``."""
        if self._index_name is not None or self._search is not None:
            raise DatabaseError(
                "A query reads one index: with_index() or with_search_index(), once",
                code="InvalidQuery",
            )
        if self._order_set:
            raise DatabaseError(
                "Search results are ordered by relevance: order() cannot be combined with "
                "with_search_index()",
                code="InvalidQuery",
            )
        provider = self._txn.db.text_search
        if provider is None:
            raise DatabaseError(
                f"Full-text search is not available on this database (table {self._table!r})",
                code="IndexNotFound",
            )
        self._search = provider.compile(self._txn, self._table, name, search_fn)
        return self

    def order(self, order: str) -> Query:
        if order not in ("asc", "desc"):
            raise DatabaseError(f'order() takes "asc" or "desc", got {order!r}', code="InvalidQuery")
        if self._search is not None:
            raise DatabaseError(
                "Search results are ordered by relevance: order() cannot be combined with "
                "with_search_index()",
                code="InvalidQuery",
            )
        self._order = order
        self._order_set = True
        return self

    def filter(self, fn: Callable[[FilterBuilder], Any]) -> Query:
        self._filters.append(build_filter(fn))
        return self

    # --- execution ---------------------------------------------------------------------------
    def _resolve_index(self, name: str) -> IndexInfo:
        txn = self._txn
        index = txn.index_info(self._table, name)
        # A table that does not exist (yet) reads as empty: reading never creates it. The miss
        # is in the read set (table_number), so creating the table invalidates this read.
        if (
            index is None
            and txn.table_number(self._table) is None
            and (name in (BY_ID, BY_CREATION_TIME) or txn.db.declared_index(self._table, name))
        ):
            return make_index(MISSING_TABLE_INDEX_ID, self._table, 0, name,
                                  system_index_fields(name))
        if index is not None and index.kind != DATABASE_KIND:
            index = None  # a search or vector index: read with with_search_index/vector_search
        if index is None:
            if txn.db.declared_vector_index(self._table, name):
                raise vector_index_in_query(self._table, name, "with_index")
            known = sorted(n for n, i in txn.indexes_of(self._table).items() if i.kind == DATABASE_KIND)
            raise DatabaseError(
                f"Index {self._table}.{name} not found. Indexes of table {self._table!r}: "
                f"{', '.join(known) or '(none)'}. Declare it in schema.py with .index(...).",
                code="IndexNotFound",
            )
        if not index.readable:
            raise DatabaseError(
                f"Index {self._table}.{name} is still backfilling and cannot be read yet",
                code="IndexNotReady",
            )
        return index

    def _consume(self) -> None:
        if self._consumed:
            raise DatabaseError("A query can be run only once; build a new one", code="InvalidQuery")
        self._consumed = True

    def _plan(self) -> tuple[IndexInfo, bytes, bytes | None]:
        self._consume()
        name = self._index_name or BY_CREATION_TIME
        index = self._resolve_index(name)
        if self._range is not None:
            start, end = self._range.interval()
        else:
            start, end = b"", None
        return index, start, end

    def _shape(self, index: IndexInfo, start: bytes, end: bytes | None) -> str:
        h = hashlib.sha256()
        for part in (self._table.encode(), index.name.encode(), start, end or b"\xff-none", self._order.encode()):
            h.update(len(part).to_bytes(4, "big"))
            h.update(part)
        return h.hexdigest()[:16]

    def _rows(self, index: IndexInfo, start: bytes, end: bytes | None) -> Iterator[tuple[bytes, dict[str, Any]]]:
        filters = self._filters
        for key, doc in self._txn.scan(index, start, end, self._order == "desc"):
            if filters and not all(f(doc) for f in filters):
                continue
            yield key, doc

    def _search_rows(
        self, search: CompiledSearch, start: bytes, end: bytes | None
    ) -> Iterator[tuple[bytes, dict[str, Any]]]:
        filters = self._filters
        for key, doc in search.rows(start, end):
            if filters and not all(f(doc) for f in filters):
                continue
            yield key, doc

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._search is not None:
            self._consume()
            for _, doc in self._search_rows(self._search, b"", None):
                yield doc
            return
        index, start, end = self._plan()
        for _, doc in self._rows(index, start, end):
            yield doc

    def collect(self) -> list[dict[str, Any]]:
        return list(self)

    def take(self, n: Any) -> list[dict[str, Any]]:
        count = as_count(n, "take(n)")
        out: list[dict[str, Any]] = []
        if count == 0:
            if self._search is not None:
                self._consume()
            else:
                self._plan()
            return out
        for doc in self:
            out.append(doc)
            if len(out) >= count:
                break
        return out

    def first(self) -> dict[str, Any] | None:
        for doc in self:
            return doc
        return None

    def unique(self) -> dict[str, Any] | None:
        found: list[dict[str, Any]] = []
        for doc in self:
            found.append(doc)
            if len(found) > 1:
                raise DatabaseError(
                    f"unique() found more than one document in table {self._table!r}: "
                    f"{found[0]['_id']} and {found[1]['_id']}. Use first() or take() for "
                    "queries that may match several documents.",
                    code="UniqueQueryMultipleResults",
                )
        return found[0] if found else None

    def paginate(self, opts: Any) -> dict[str, Any]:
        """One page of results (docs/pagination.md)."""
        txn = self._txn
        if txn.paginated:
            raise PaginationError(
                "This function already called paginate(): only one paginated query is allowed "
                "per function execution",
                code="MultiplePaginatedDatabaseQueries",
            )
        txn.paginated = True
        if not isinstance(opts, dict):
            raise PaginationError(
                "paginate() takes pagination options {'numItems': n, 'cursor': None | str}",
                code="InvalidPaginationOpts",
            )
        num_items = as_count(opts.get("numItems"), "paginationOpts.numItems")
        max_rows_raw = opts.get("maximumRowsRead")
        max_rows = None if max_rows_raw is None else as_count(max_rows_raw, "maximumRowsRead")
        if max_rows == 0:
            raise PaginationError("maximumRowsRead must be positive", code="InvalidPaginationLimit")
        if num_items > knobs.TRANSACTION_MAX_READ_ROWS_COUNT:
            raise PaginationError(
                f"numItems {num_items} is larger than the read limit {knobs.TRANSACTION_MAX_READ_ROWS_COUNT}",
                code="PageSizeTooLarge",
            )
        search = self._search
        index: IndexInfo | None = None
        if search is not None:  # relevance order over synthetic keys, never reversed
            self._consume()
            r_start, r_end, shape = b"", None, search.shape
        else:
            index, r_start, r_end = self._plan()
            shape = self._shape(index, r_start, r_end)
        codec = txn.db.cursors
        reverse = self._order == "desc"
        try:
            start_c = None if opts.get("cursor") is None else codec.decode_cursor(opts["cursor"], shape)
            end_raw = opts.get("endCursor")
            end_c = None if end_raw is None else codec.decode_cursor(end_raw, shape)
        except InvalidCursor as exc:
            from convection.errors import ConvexError

            err = ConvexError({"isConvexSystemError": True, "paginationError": "InvalidCursor"})
            err.args = (str(exc),)
            raise err from None
        if end_c is None:
            end_c = codec.decode_journal(txn.journal_in, shape)
        if num_items == 0 and end_c is None:
            raise PaginationError("paginationOpts.numItems must be positive", code="NoDocumentsForPagination")

        # Effective scan interval [s, e) from the range, the start cursor and the end cursor.
        s, e = r_start, r_end
        if start_c is not None:
            if start_c.key is None:
                return self._page([], Cursor(shape, None), None, None, txn, shape)
            if reverse:
                e = _min_end(e, start_c.key)
            else:
                s = max(s, start_c.key + b"\x00")
        if end_c is not None and end_c.key is not None:
            if reverse:
                s = max(s, end_c.key)
            else:
                e = _min_end(e, end_c.key + b"\x00")
        page: list[dict[str, Any]] = []
        keys: list[bytes] = []
        rows_read = 0
        exhausted = True
        status: str | None = None
        if e is None or s < e:
            if search is not None:
                it = search.rows(s, e)
            else:
                assert index is not None
                it = self._txn.scan(index, s, e, reverse)
            filters = self._filters
            for key, doc in it:
                rows_read += 1
                if not filters or all(f(doc) for f in filters):
                    page.append(doc)
                    keys.append(key)
                if end_c is None and len(page) >= num_items:
                    exhausted = False
                    last_key = key
                    break
                if max_rows is not None and rows_read >= max_rows:
                    exhausted = False
                    last_key = key
                    status = "SplitRequired"
                    break
            else:
                last_key = None
        else:
            last_key = None
        if end_c is not None and status is None:
            position = end_c  # the page ends exactly at the requested end
        elif exhausted:
            position = Cursor(shape, None)
        else:
            assert last_key is not None
            position = Cursor(shape, last_key)
        split = None
        if len(keys) >= 2:
            split = Cursor(shape, keys[len(keys) // 2 - 1])
        if status is None and len(page) > 8192:
            status = "SplitRecommended"
        return self._page(page, position, split, status, txn, shape)

    @staticmethod
    def _page(
        page: list[dict[str, Any]],
        position: Cursor,
        split: Cursor | None,
        status: str | None,
        txn: Transaction,
        shape: str,
    ) -> dict[str, Any]:
        codec = txn.db.cursors
        txn.journal_out = codec.encode_journal(position)
        return {
            "page": page,
            "isDone": position.is_end,
            "continueCursor": codec.encode_cursor(position),
            "splitCursor": None if split is None else codec.encode_cursor(split),
            "pageStatus": status,
        }


def _min_end(a: bytes | None, b: bytes) -> bytes:
    return b if a is None or b < a else a

