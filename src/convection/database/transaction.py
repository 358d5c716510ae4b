"""Transactions: snapshot reads with recorded read sets, buffered writes, limits.

A :class:`Transaction` begins at a published ts and reads that snapshot. Every read records
an interval of encoded keys in the :class:`ReadSet` (a ``get`` records the id's ``by_id`` key,
hit or miss; a range scan records the part it consumed). Writes are buffered per document
(coalesced: insert then patch is one insert) and overlaid on every read, so the transaction
reads its own writes through every index. Nothing reaches the database until
:meth:`Database.commit`. A transaction sees the database only through the
:class:`TransactionHost` protocol.

System tables (names starting with ``_``) are behind a capability: the write operations of a
:class:`Transaction` (``insert``/``patch``/``replace``/``delete``) always refuse them, and
only a :class:`SystemView` of the transaction writes them. The layer that owns a transaction
(the runner for a function call, an application service for its own transaction) creates
the view and hands it down to ``model/`` code; user code is never handed one. Reads of
system tables are not restricted here: ``ctx.db`` refuses them and ``ctx.db.system`` reads.

Documents handed out are fresh ``dict`` s: callers may mutate them freely.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from convection import knobs
from convection.clock import Clock
from convection.database.catalog import (
    BY_CREATION_TIME,
    BY_ID,
    BY_INDEX_ID,
    BY_NAME,
    BY_NUMBER,
    DATABASE_KIND,
    FIRST_SYSTEM_TABLE_NUMBER,
    FIRST_USER_TABLE_NUMBER,
    INDEX_NUMBER,
    INDEX_TABLE,
    SCHEMAS_TABLE,
    TABLES_NUMBER,
    TABLES_TABLE,
    Catalog,
    IndexInfo,
    bootstrap_index,
    make_index,
    system_index_fields,
)
from convection.database.pagination import CursorCodec
from convection.database.readset import ReadSet
from convection.database.search_provider import SearchProvider
from convection.errors import DatabaseError, IdError, LimitError, ValidationError
from convection.indexing.keys import encode_key, encode_value, prefix_end
from convection.persistence.base import Persistence
from convection.values.ids import decode_id, encode_id, new_internal_id
from convection.values.json import loads_stored
from convection.values.model import UNSET, normalize, value_size
from convection.values.order import MISSING

SYSTEM_FIELDS = ("_id", "_creationTime")

# New document ids come from one generator per process, seeded from os.urandom (seeding one
# per transaction cost an os.urandom call per insert). Reseeded in a forked child (``serve
# --workers``), so two workers never draw the same ids.
_ID_RNG = random.Random()
os.register_at_fork(after_in_child=_ID_RNG.seed)


@dataclass(slots=True)
class Write:
    """The pending change of one document: ``old`` as of the snapshot (None if inserted in
    this transaction), ``new`` (None if deleted)."""

    table: str
    table_number: int
    id: str
    internal_id: bytes
    old: dict[str, Any] | None
    old_ts: int | None
    new: dict[str, Any] | None


def field_value(doc: dict[str, Any], path: str) -> Any:
    """A (possibly dotted) field of a document, or MISSING."""
    if "." not in path:
        return doc.get(path, MISSING)
    cur: Any = doc
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return MISSING
        cur = cur[part]
    return cur


def index_key(index: IndexInfo, doc: dict[str, Any]) -> bytes:
    """The encoded key of ``doc`` in ``index``."""
    if index.name == BY_ID:
        return encode_value(doc["_id"])
    return encode_key([field_value(doc, f) for f in index.key_fields])


class TransactionHost(Protocol):
    """What a transaction (and the queries over it) use of the database that began it: the
    snapshot store, the catalog, the schema check and a few allocators. ``Database``
    implements it; the transaction module does not import the database module."""

    @property
    def persistence(self) -> Persistence: ...

    @property
    def catalog(self) -> Catalog: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def cursors(self) -> CursorCodec: ...

    @property
    def text_search(self) -> SearchProvider[Transaction] | None: ...

    def validate_document(self, table: str, fields: dict[str, Any], id_str: str) -> dict[str, Any] | None: ...

    def allocate_creation_time(self, at_least: float) -> float: ...

    def declared_index(self, table: str, name: str) -> bool: ...

    def declared_vector_index(self, table: str, name: str) -> bool: ...


class Transaction:
    """One unit of reads and writes at snapshot ``begin_ts``. Not thread-safe."""

    def __init__(
        self,
        db: TransactionHost,
        begin_ts: int,
        *,
        read_only: bool = False,
        now_ms: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.begin_ts = begin_ts
        self.read_only = read_only
        self.reads = ReadSet()
        self.writes: dict[bytes, Write] = {}  # internal id -> Write
        self._rng = rng  # None: the process's id generator (_ID_RNG)
        self.now_ms = now_ms if now_ms is not None else db.clock.now_ms()
        self._next_creation_time = max(self.now_ms, begin_ts / 1e6)
        self.rows_read = 0
        self.bytes_read = 0
        self.bytes_written = 0
        self.journal_in: str | None = None
        self.journal_out: str | None = None
        self.paginated = False
        self.closed = False
        self.source = ""
        # Tables and indexes created by this transaction (its own writes to _tables/_index):
        # visible to it at once, to everyone else when it commits.
        self._new_tables: dict[str, int] = {}
        self._new_table_names: dict[int, str] = {}
        self._new_indexes: dict[str, dict[str, IndexInfo]] = {}
        self._schema_read = False

    # --- limits ----------------------------------------------------------------------------
    def count_read(self, nbytes: int) -> None:
        """Charge one document of ``nbytes`` to this transaction's read limits (rows and
        bytes); raises LimitError past them. Reads through this class charge themselves;
        derived indexes (search) call it for the documents they hand out."""
        self.rows_read += 1
        self.bytes_read += nbytes
        if self.rows_read > knobs.TRANSACTION_MAX_READ_ROWS_COUNT:
            raise LimitError(
                f"Too many documents read in a single function execution (limit: "
                f"{knobs.TRANSACTION_MAX_READ_ROWS_COUNT}). Use an index to read fewer documents, "
                "or paginate.",
                code="TooManyDocumentsRead",
            )
        if self.bytes_read > knobs.TRANSACTION_MAX_READ_BYTES:
            raise LimitError(
                f"Too many bytes read in a single function execution (limit: "
                f"{knobs.TRANSACTION_MAX_READ_BYTES} bytes). Read fewer or smaller documents.",
                code="TooManyBytesRead",
            )

    def count_interval(self) -> None:
        """Charge one read call (a get, an index scan, a search) to the limit on reads per
        transaction; raises LimitError past it."""
        if self.reads.count >= knobs.TRANSACTION_MAX_READ_INTERVALS_COUNT:
            raise LimitError(
                f"Too many reads in a single function execution (limit: "
                f"{knobs.TRANSACTION_MAX_READ_INTERVALS_COUNT} db.get/db.query calls).",
                code="TooManyReads",
            )

    def _check_writable(self) -> None:
        if self.read_only:
            raise DatabaseError(
                "Cannot write in a query: queries are read-only. Use a mutation to write.",
                code="WriteInQuery",
            )
        if len(self.writes) >= knobs.TRANSACTION_MAX_WRITES_COUNT:
            raise LimitError(
                f"Too many documents written in a single mutation (limit: "
                f"{knobs.TRANSACTION_MAX_WRITES_COUNT}).",
                code="TooManyWrites",
            )

    # --- the catalog as this transaction sees it ------------------------------------------
    # The catalog (``db.catalog``) holds every table and index committed so far; tables this
    # transaction creates are overlaid. A lookup that misses records a read of the
    # ``_tables`` key it looked for, so creating that table later conflicts with (and
    # invalidates) this transaction.
    def table_number(self, table: str) -> int | None:
        """The table's number, or None (recorded as a miss) when it does not exist."""
        number = self._new_tables.get(table)
        if number is None:
            number = self.db.catalog.table_number(table)
            if number is None:
                self._record_table_miss(table)
        return number

    def table_name(self, number: int) -> str | None:
        return self._new_table_names.get(number) or self.db.catalog.table_name(number)

    def index_info(self, table: str, name: str) -> IndexInfo | None:
        created = self._new_indexes.get(table)
        if created is not None and name in created:
            return created[name]
        return self.db.catalog.index(table, name)

    def indexes_of(self, table: str) -> dict[str, IndexInfo]:
        created = self._new_indexes.get(table)
        known = self.db.catalog.indexes_of(table)
        return {**known, **created} if created else known

    def _record_table_miss(self, table: str) -> None:
        key = encode_key([table])
        self.reads.record_interval(bootstrap_index(TABLES_TABLE, BY_NAME).index_id, key, prefix_end(key))

    def record_schema_read(self) -> None:
        """This transaction depends on the schema in force (it validated a write): a schema
        push that commits meanwhile makes it conflict and retry under the new schema."""
        if not self._schema_read:
            self._schema_read = True
            ix = bootstrap_index(SCHEMAS_TABLE, BY_CREATION_TIME)
            self.reads.record_interval(ix.index_id, b"", None)

    def record_table_read(self, table: str) -> None:
        """Depend on every document of ``table`` (its whole ``by_creation_time`` range, or its
        absence): any write to the table after this transaction began conflicts with it."""
        ix = self.index_info(table, BY_CREATION_TIME)
        if ix is None:
            self.table_number(table)
            return
        self.reads.record_interval(ix.index_id, b"", None)

    def _last_in(self, table: str, index: str, lo: float, hi: float) -> dict[str, Any] | None:
        """The document with the largest key in ``[lo, hi)`` of a bootstrap index (first field
        numeric); records the range read, so a concurrent allocation conflicts."""
        ix = bootstrap_index(table, index)
        for _, doc in self.scan(ix, encode_key([float(lo)]), encode_key([float(hi)]), True):
            return doc
        return None

    def _allocate_index_ids(self, count: int) -> list[int]:
        top = max([0, *(i.index_id for t in self._new_indexes.values() for i in t.values())])
        last = self._last_in(INDEX_TABLE, BY_INDEX_ID, 1, 2.0**53)
        if last is not None:
            top = max(top, int(last["indexId"]))
        return list(range(top + 1, top + 1 + count))

    def create_table(self, table: str) -> int:
        """Create ``table`` (with its ``by_id`` and ``by_creation_time`` indexes) in this
        transaction; returns its number. Other transactions see it once this one commits;
        two transactions creating tables concurrently conflict (both read the highest table
        number), so one of them retries."""
        number = self.table_number(table)
        if number is not None:
            return number
        system = table.startswith("_")
        lo, hi = ((FIRST_SYSTEM_TABLE_NUMBER, FIRST_USER_TABLE_NUMBER - 1) if system
                  else (FIRST_USER_TABLE_NUMBER, 2.0**53))
        last = self._last_in(TABLES_TABLE, BY_NUMBER, lo, hi)
        mine = [n for n in self._new_tables.values() if lo <= n < hi]
        number = max([lo - 1, *mine, *([int(last["number"])] if last is not None else [])]) + 1
        if number >= hi:
            raise DatabaseError("too many system tables" if system else "too many tables")
        self._put_catalog_doc(TABLES_TABLE, TABLES_NUMBER, {"name": table, "number": float(number)})
        self._new_tables[table] = number
        self._new_table_names[number] = table
        for name, index_id in zip((BY_ID, BY_CREATION_TIME), self._allocate_index_ids(2), strict=True):
            self._add_index(make_index(index_id, table, number, name, system_index_fields(name)))
        return number

    def create_index(
        self, table: str, name: str, fields: tuple[str, ...], state: str,
        kind: str = DATABASE_KIND, options: tuple[tuple[str, Any], ...] = (),
    ) -> IndexInfo:
        """Add an index to ``table`` (created if needed) in this transaction (``kind``: a
        database index, or a derived one such as ``search``)."""
        number = self.create_table(table)
        if self.index_info(table, name) is not None:
            raise DatabaseError(f"index {table}.{name} already exists")
        (index_id,) = self._allocate_index_ids(1)
        info = make_index(index_id, table, number, name, fields, state, kind, options)
        self._add_index(info)
        return info

    def _add_index(self, info: IndexInfo) -> None:
        self._put_catalog_doc(INDEX_TABLE, INDEX_NUMBER, info.document())
        self._new_indexes.setdefault(info.table, {})[info.name] = info

    def _put_catalog_doc(self, table: str, number: int, fields: dict[str, Any]) -> str:
        internal = new_internal_id(self._rng or _ID_RNG, self.now_ms)
        id_str = encode_id(number, internal)
        ct = self.db.allocate_creation_time(self._next_creation_time)
        self._next_creation_time = math.nextafter(ct, math.inf)
        doc: dict[str, Any] = {"_creationTime": ct, "_id": id_str}
        doc.update(normalize(fields))
        self.writes[internal] = Write(table, number, id_str, internal, None, None, doc)
        return id_str

    def set_catalog_doc(self, id_str: str, fields: dict[str, Any] | None) -> None:
        """Replace (``fields``) or delete (None) a catalog document (``_index``, ``_schemas``)."""
        w = self._load_catalog_doc(id_str)
        if fields is None:
            if w.old is None:
                del self.writes[w.internal_id]
            else:
                w.new = None
            return
        assert w.new is not None
        doc = {"_creationTime": w.new["_creationTime"], "_id": w.id}
        doc.update(normalize(fields))
        w.new = doc

    def _load_catalog_doc(self, id_str: str) -> Write:
        number, internal = decode_id(id_str)
        w = self.writes.get(internal)
        if w is not None:
            return w
        table = self.table_name(number)
        assert table is not None
        ix = bootstrap_index(table, BY_ID)
        self.reads.record_point(ix.index_id, encode_value(id_str))
        rev = self.db.persistence.get_document(number, internal, self.begin_ts)
        if rev is None or rev.value is None:
            raise DatabaseError(f"catalog document {id_str} does not exist", code="NotFound")
        old = loads_stored(rev.value)
        w = Write(table, number, id_str, internal, old, rev.ts, old)
        self.writes[internal] = w
        return w

    def import_catalog(self, tables: dict[str, int], indexes: list[IndexInfo]) -> None:
        """Write catalog documents for tables and indexes that already have numbers and ids
        (migrating a store whose catalog was kept outside the log)."""
        for name, number in tables.items():
            self._put_catalog_doc(TABLES_TABLE, TABLES_NUMBER, {"name": name, "number": float(number)})
            self._new_tables[name] = number
            self._new_table_names[number] = name
        for info in indexes:
            self._add_index(info)

    def insert_schema_doc(self, schema_json: Any) -> None:
        self._put_catalog_doc(SCHEMAS_TABLE, 3, {"schema": schema_json})

    # --- ids -------------------------------------------------------------------------------
    def _parse_id(self, id_str: Any, *, expected_table: str | None = None) -> tuple[str, int, bytes]:
        if not isinstance(id_str, str):
            raise IdError(f"Expected a document id (string), got {type(id_str).__name__}: {id_str!r}")
        try:
            number, internal = decode_id(id_str)
        except IdError:
            raise IdError(f"Invalid ID {id_str!r}: not a document id of this deployment") from None
        table = self.table_name(number)
        if table is None:
            raise IdError(f"Invalid ID {id_str!r}: its table does not exist")
        if expected_table is not None and table != expected_table:
            raise IdError(f"ID {id_str!r} is an id of table {table!r}, not {expected_table!r}")
        return table, number, internal

    def normalize_id(self, table: str, id_str: Any) -> str | None:
        if not isinstance(id_str, str):
            return None
        try:
            number, _ = decode_id(id_str)
        except IdError:
            return None
        return id_str if self._known_number(table) == number else None

    def _known_number(self, table: str) -> int | None:
        return self._new_tables.get(table) or self.db.catalog.table_number(table)

    def id_belongs_to(self, table: str, id_str: str) -> bool:
        return self.normalize_id(table, id_str) is not None

    def table_of_id(self, id_str: str) -> str | None:
        try:
            number, _ = decode_id(id_str)
        except IdError:
            return None
        return self.table_name(number)

    # --- reads -----------------------------------------------------------------------------
    def get(self, id_str: Any) -> dict[str, Any] | None:
        """The document with this id at the snapshot (with this transaction's writes)."""
        table, number, internal = self._parse_id(id_str)
        w = self.writes.get(internal)
        by_id = self.index_info(table, BY_ID)
        assert by_id is not None
        self.count_interval()
        self.reads.record_point(by_id.index_id, encode_value(id_str))
        if w is not None:
            return None if w.new is None else _copy(w.new)
        rev = self.db.persistence.get_document(number, internal, self.begin_ts)
        if rev is None or rev.value is None:
            return None
        self.count_read(len(rev.value))
        doc: dict[str, Any] = loads_stored(rev.value)
        return doc

    def _load_for_write(self, id_str: Any, op: str, *, system: bool) -> Write:
        table, number, internal = self._parse_id(id_str)
        _check_scope(table, system, f"Cannot {op} documents of system table {table!r}")
        w = self.writes.get(internal)
        if w is not None:
            if w.new is None:
                raise DatabaseError(f"Cannot {op} document {id_str}: it was deleted in this transaction", code="NotFound")
            return w
        by_id = self.index_info(table, BY_ID)
        assert by_id is not None
        self.reads.record_point(by_id.index_id, encode_value(id_str))
        rev = self.db.persistence.get_document(number, internal, self.begin_ts)
        if rev is None or rev.value is None:
            raise DatabaseError(f"Cannot {op} document with ID {id_str!r}: it does not exist", code="NotFound")
        self.count_read(len(rev.value))
        old = loads_stored(rev.value)
        w = Write(table, number, id_str, internal, old, rev.ts, old)
        self.writes[internal] = w
        return w

    # --- writes ----------------------------------------------------------------------------
    def _prepare(self, table: str, fields: dict[str, Any], id_str: str, creation_time: float) -> dict[str, Any]:
        if not isinstance(fields, dict):
            raise ValidationError(f"A document must be an object (dict), got {type(fields).__name__}")
        for name in fields:
            if isinstance(name, str) and name in SYSTEM_FIELDS:
                continue
            if isinstance(name, str) and name.startswith("_") and not table.startswith("_"):
                raise ValidationError(
                    f"Field {name!r} starts with '_', which is reserved for system fields; "
                    f"rename it (table {table!r})",
                    path=name,
                )
        user = {k: v for k, v in fields.items() if k not in SYSTEM_FIELDS and v is not UNSET}
        if not table.startswith("_"):
            self.record_schema_read()
        checked = self.db.validate_document(table, user, id_str)
        if checked is None:
            checked = normalize(user, max_depth=knobs.MAX_DOCUMENT_NESTING_COUNT)
        doc: dict[str, Any] = {"_creationTime": creation_time, "_id": id_str}
        doc.update(checked)
        size = value_size(doc)
        # System documents (stored mutation results, scheduled job arguments) may be as large
        # as a function result; user documents are limited to 1 MiB.
        limit = knobs.MAX_FUNCTION_RESULT_SIZE_BYTES + 65536 if table.startswith("_") else knobs.MAX_DOCUMENT_SIZE_BYTES
        if size > limit:
            raise LimitError(
                f"Document with ID {id_str!r} in table {table!r} is {size} bytes; the limit is "
                f"{limit} bytes",
                code="DocumentTooLarge",
            )
        self.bytes_written += size
        if self.bytes_written > knobs.TRANSACTION_MAX_WRITE_BYTES:
            raise LimitError(
                f"Too many bytes written in a single mutation (limit: {knobs.TRANSACTION_MAX_WRITE_BYTES}).",
                code="TooManyBytesWritten",
            )
        return doc

    def insert(self, table: str, fields: dict[str, Any]) -> str:
        """Insert a document into user table ``table``; returns its id."""
        return self._insert(table, fields, system=False)

    def patch(self, id_str: Any, fields: dict[str, Any]) -> None:
        """Merge ``fields`` into a document of a user table (UNSET removes a field)."""
        self._patch(id_str, fields, system=False)

    def replace(self, id_str: Any, fields: dict[str, Any]) -> None:
        """Replace a document of a user table (system fields are kept)."""
        self._replace(id_str, fields, system=False)

    def delete(self, id_str: Any) -> None:
        """Delete a document of a user table."""
        self._delete(id_str, system=False)

    def insert_with_id(
        self, table: str, number: int, id_str: str, creation_time: float | None, fields: dict[str, Any]
    ) -> bool:
        """Insert a document of user table ``table`` (number ``number``) under a given ``_id``
        and ``_creationTime`` (None: now), as an import does. False (nothing written) when
        that id is live in this transaction's view; the lookup is recorded as a read, so a
        concurrent insert of the same id conflicts."""
        return self._insert_with_id(table, number, id_str, creation_time, fields, system=False)

    def _insert_with_id(
        self, table: str, number: int, id_str: str, creation_time: float | None, fields: dict[str, Any], *, system: bool
    ) -> bool:
        _check_scope(table, system, f"Cannot insert into system table {table!r}")
        if self.get(id_str) is not None:
            return False
        _, internal = decode_id(id_str)
        self._check_writable()
        prepared = self._prepare(table, fields, id_str, self.now_ms if creation_time is None else creation_time)
        pending = self.writes.get(internal)
        if pending is not None:  # deleted earlier in this transaction: becomes a replacement
            pending.new = prepared
        else:
            self.writes[internal] = Write(table, number, id_str, internal, None, None, prepared)
        return True

    def _insert(self, table: str, fields: dict[str, Any], *, system: bool) -> str:
        self._check_writable()
        if not isinstance(table, str) or not table:
            raise DatabaseError(f"Table name must be a non-empty string, got {table!r}", code="InvalidTableName")
        _check_scope(table, system, f"Cannot insert into system table {table!r}")
        if isinstance(fields, dict):
            given = [name for name in SYSTEM_FIELDS if name in fields]
            if given:
                raise ValidationError(
                    f"insert() into table {table!r} was given the system field "
                    f"{given[0]!r}; system fields (_id, _creationTime) are assigned by the "
                    "database. Remove it from the document, or store your own identifier "
                    "under another name.",
                    path=given[0],
                )
        number = self.create_table(table)
        internal = new_internal_id(self._rng or _ID_RNG, self.now_ms)
        id_str = encode_id(number, internal)
        ct = self.db.allocate_creation_time(self._next_creation_time)
        self._next_creation_time = math.nextafter(ct, math.inf)
        doc = self._prepare(table, fields, id_str, ct)
        self.writes[internal] = Write(table, number, id_str, internal, None, None, doc)
        return id_str

    def _patch(self, id_str: Any, fields: dict[str, Any], *, system: bool) -> None:
        self._check_writable()
        if not isinstance(fields, dict):
            raise ValidationError(f"patch() takes an object of fields, got {type(fields).__name__}")
        w = self._load_for_write(id_str, "patch", system=system)
        assert w.new is not None
        for name in ("_id", "_creationTime"):
            if name in fields and fields[name] != w.new[name]:
                raise ValidationError(f"Cannot change system field {name!r} with patch()", path=name)
        merged = {k: v for k, v in w.new.items() if k not in SYSTEM_FIELDS}
        for k, v in fields.items():
            if k in SYSTEM_FIELDS:
                continue
            if v is UNSET:
                merged.pop(k, None)
            else:
                merged[k] = v
        w.new = self._prepare(w.table, merged, w.id, w.new["_creationTime"])

    def _replace(self, id_str: Any, fields: dict[str, Any], *, system: bool) -> None:
        self._check_writable()
        w = self._load_for_write(id_str, "replace", system=system)
        assert w.new is not None
        if not isinstance(fields, dict):
            raise ValidationError(f"replace() takes a document object, got {type(fields).__name__}")
        for name in ("_id", "_creationTime"):
            if name in fields and fields[name] != w.new[name]:
                raise ValidationError(f"Cannot change system field {name!r} with replace()", path=name)
        w.new = self._prepare(w.table, fields, w.id, w.new["_creationTime"])

    def _delete(self, id_str: Any, *, system: bool) -> None:
        self._check_writable()
        w = self._load_for_write(id_str, "delete", system=system)
        if w.old is None:
            del self.writes[w.internal_id]  # inserted and deleted in this transaction
        else:
            w.new = None

    # --- index scans with the write overlay ------------------------------------------------
    def scan(
        self, index: IndexInfo, start: bytes, end: bytes | None, reverse: bool
    ) -> Iterator[tuple[bytes, dict[str, Any]]]:
        """Documents of ``index`` with keys in ``[start, end)`` in key order, at the snapshot
        with this transaction's writes overlaid. Records the consumed part of the range."""
        self.count_interval()
        rr = self.reads.record_range(index.index_id, start, end, reverse)
        overlay: list[tuple[bytes, dict[str, Any]]] = []
        hidden: set[bytes] = set()
        for w in self.writes.values():
            if w.table_number != index.table_number:
                continue
            hidden.add(w.internal_id)
            if w.new is not None:
                k = index_key(index, w.new)
                if k >= start and (end is None or k < end):
                    overlay.append((k, w.new))
        overlay.sort(key=lambda kv: kv[0], reverse=reverse)
        base = self.db.persistence.index_scan(
            index.index_id, start, end, self.begin_ts, reverse=reverse
        )
        oi = 0
        n_overlay = len(overlay)
        for key, rev in base:
            if rev.id in hidden:
                continue
            while oi < n_overlay and ((overlay[oi][0] > key) if reverse else (overlay[oi][0] < key)):
                k2, d2 = overlay[oi]
                oi += 1
                rr.last = k2
                yield k2, _copy(d2)
            value = rev.value
            assert value is not None
            self.count_read(len(value))
            rr.last = key
            yield key, loads_stored(value)
        while oi < n_overlay:
            k2, d2 = overlay[oi]
            oi += 1
            rr.last = k2
            yield k2, _copy(d2)
        rr.exhausted = True


class SystemView:
    """The capability to write system tables within one transaction (see the module
    docstring): created by the owner of ``txn`` and handed to ``model/`` code. Its writes
    accept only system tables; ``txn`` is the transaction, for reads and queries."""

    __slots__ = ("txn",)

    def __init__(self, txn: Transaction) -> None:
        self.txn = txn

    @property
    def now_ms(self) -> float:
        return self.txn.now_ms

    def get(self, id_str: Any) -> dict[str, Any] | None:
        return self.txn.get(id_str)

    def table_of_id(self, id_str: str) -> str | None:
        return self.txn.table_of_id(id_str)

    def insert(self, table: str, fields: dict[str, Any]) -> str:
        return self.txn._insert(table, fields, system=True)

    def patch(self, id_str: Any, fields: dict[str, Any]) -> None:
        self.txn._patch(id_str, fields, system=True)

    def replace(self, id_str: Any, fields: dict[str, Any]) -> None:
        self.txn._replace(id_str, fields, system=True)

    def delete(self, id_str: Any) -> None:
        self.txn._delete(id_str, system=True)

    def insert_with_id(
        self, table: str, number: int, id_str: str, creation_time: float | None, fields: dict[str, Any]
    ) -> bool:
        """:meth:`Transaction.insert_with_id` for a system table."""
        return self.txn._insert_with_id(table, number, id_str, creation_time, fields, system=True)


def _check_scope(table: str, system: bool, refusal: str) -> None:
    """User writes refuse system tables; system writes (a SystemView) accept only them."""
    if table.startswith("_") and not system:
        raise DatabaseError(f"{refusal}: system tables are read-only for functions", code="SystemTable")
    if system and not table.startswith("_"):
        raise DatabaseError(
            f"A system view writes only system tables, not {table!r}; use the transaction",
            code="InvalidTable",
        )


def _copy(doc: dict[str, Any]) -> dict[str, Any]:
    import copy

    return copy.deepcopy(doc)
