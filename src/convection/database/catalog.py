"""The catalog: tables, indexes and the schema in force, derived from system tables in the log.

Everything here is a *view* of documents written by ordinary commits (docs/internals/
transactions.md, "System tables"):

* ``_tables`` ``{name, number}``: one document per table. The table *number* is embedded in
  document ids: user tables from 10001 upward, system tables (names starting with ``_``)
  from 100 to 9999; the bootstrap tables below have fixed numbers under 100 and no document.
* ``_index`` ``{indexId, table, tableNumber, name, fields, state}``: one document per index of
  a table (``by_id``, ``by_creation_time`` and the declared ones). States: ``backfilling``
  (maintained by every commit, not readable) -> ``enabled``.
* ``_schemas`` ``{schema}``: at most one document, the JSON form of the schema in force
  (``schema`` null: no schema).

The three bootstrap tables have fixed numbers and fixed (negative) index ids, so the catalog
can be read before anything else is known. An index's *key fields* are its physical key:
``by_id`` is ``(_id,)``, every other index is its fields + ``_creationTime`` + ``_id``.

Invariants: the view changes only in :meth:`Catalog.apply`, which the committer calls under
its commit lock with the writes of a commit that passed validation, in commit-ts order (and
:meth:`Catalog.load` at start). So the catalog a commit is built with is exactly the catalog
at that commit's ts, including every earlier commit still being written. Readers never lock:
every change swaps in new immutable maps.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from convection.errors import DatabaseError
from convection.persistence.base import Persistence
from convection.values.json import loads_stored

if TYPE_CHECKING:
    from convection.schema.schema import SchemaDefinition

FIRST_USER_TABLE_NUMBER = 10001
FIRST_SYSTEM_TABLE_NUMBER = 100
BY_ID = "by_id"
BY_CREATION_TIME = "by_creation_time"

TABLES_TABLE = "_tables"
INDEX_TABLE = "_index"
SCHEMAS_TABLE = "_schemas"
TABLES_NUMBER = 1
INDEX_NUMBER = 2
SCHEMAS_NUMBER = 3
BY_NAME = "by_name"
BY_NUMBER = "by_number"
BY_TABLE = "by_table"
BY_INDEX_ID = "by_index_id"

BACKFILLING = "backfilling"
ENABLED = "enabled"

# Index kinds. ``database`` indexes map a document to one key (index_key); the others are
# derived indexes maintained by an ``IndexMaintainer`` registered on the database (search
# postings, vector indexes; docs/internals/derived-indexes.md). Their ``fields`` are the
# kind's own description (search: the search field, then the filter fields).
DATABASE_KIND = "database"
SEARCH_KIND = "search"
VECTOR_KIND = "vector"


@dataclass(frozen=True, slots=True)
class IndexInfo:
    index_id: int
    table_number: int
    table: str
    name: str
    fields: tuple[str, ...]
    key_fields: tuple[str, ...]
    state: str = ENABLED
    kind: str = DATABASE_KIND
    # Kind-specific settings (vector: dimensions), stored in the ``_index`` document.
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def readable(self) -> bool:
        return self.state == ENABLED

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.index_id,
            "table": self.table,
            "tableNumber": self.table_number,
            "name": self.name,
            "fields": list(self.fields),
            "state": self.state,
            "kind": self.kind,
        }

    def document(self) -> dict[str, Any]:
        """The ``_index`` document describing this index (``kind``/``options`` only for
        derived indexes, so database indexes keep the documents they always had)."""
        doc: dict[str, Any] = {
            "indexId": self.index_id,
            "table": self.table,
            "tableNumber": self.table_number,
            "name": self.name,
            "fields": list(self.fields),
            "state": self.state,
        }
        if self.kind != DATABASE_KIND:
            doc["kind"] = self.kind
            doc["options"] = dict(self.options)
        return doc


def key_fields_for(name: str, fields: tuple[str, ...]) -> tuple[str, ...]:
    if name == BY_ID:
        return ("_id",)
    if name == BY_CREATION_TIME:
        return ("_creationTime", "_id")
    return (*fields, "_creationTime", "_id")


def make_index(index_id: int, table: str, number: int, name: str, fields: tuple[str, ...],
               state: str = ENABLED, kind: str = DATABASE_KIND,
               options: tuple[tuple[str, Any], ...] = ()) -> IndexInfo:
    return IndexInfo(index_id, number, table, name, fields, key_fields_for(name, fields), state,
                     kind, options)


def system_index_fields(name: str) -> tuple[str, ...]:
    """The fields of the indexes every table has."""
    return ("_id",) if name == BY_ID else ("_creationTime",)


def _bootstrap() -> dict[int, IndexInfo]:
    out: dict[int, IndexInfo] = {}
    spec: tuple[tuple[str, int, tuple[tuple[str, tuple[str, ...]], ...]], ...] = (
        (TABLES_TABLE, TABLES_NUMBER, ((BY_NAME, ("name",)), (BY_NUMBER, ("number",)))),
        (INDEX_TABLE, INDEX_NUMBER, ((BY_TABLE, ("tableNumber", "name")), (BY_INDEX_ID, ("indexId",)))),
        (SCHEMAS_TABLE, SCHEMAS_NUMBER, ()),
    )
    next_id = -1
    for table, number, extra in spec:
        for name, fields in ((BY_ID, ()), (BY_CREATION_TIME, ("_creationTime",)), *extra):
            out[next_id] = make_index(next_id, table, number, name, fields)
            next_id -= 1
    return out


BOOTSTRAP_INDEXES = _bootstrap()
BOOTSTRAP_TABLES = {TABLES_TABLE: TABLES_NUMBER, INDEX_TABLE: INDEX_NUMBER, SCHEMAS_TABLE: SCHEMAS_NUMBER}


def bootstrap_index(table: str, name: str) -> IndexInfo:
    for info in BOOTSTRAP_INDEXES.values():
        if info.table == table and info.name == name:
            return info
    raise KeyError(f"{table}.{name}")


class Catalog:
    """The view of ``_tables``, ``_index`` and ``_schemas`` (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # serializes writers (apply/load); readers never lock
        self._tables: dict[str, int] = dict(BOOTSTRAP_TABLES)
        self._table_names: dict[int, str] = {n: t for t, n in self._tables.items()}
        self._indexes: dict[int, IndexInfo] = dict(BOOTSTRAP_INDEXES)
        self._by_table: dict[str, dict[str, IndexInfo]] = {}
        self._by_number: dict[int, dict[str, IndexInfo]] = {}
        # document id (string) -> what it describes, to apply patches and deletions
        self._table_docs: dict[str, str] = {}
        self._index_docs: dict[str, int] = {}
        self._schema_doc: str | None = None
        self._schema_json: Any = None
        self._schema: SchemaDefinition | None = None
        self._rebuild()

    # --- loading -----------------------------------------------------------------------------
    def load(self, persistence: Persistence, ts: int) -> None:
        """Read the catalog documents live at ``ts`` (at start)."""
        for number, table in ((TABLES_NUMBER, TABLES_TABLE), (INDEX_NUMBER, INDEX_TABLE),
                              (SCHEMAS_NUMBER, SCHEMAS_TABLE)):
            docs = [loads_stored(r.value) for r in persistence.table_documents(number, ts)
                    if r.value is not None]
            self._apply_docs(table, [(d["_id"], None, d) for d in docs])

    @property
    def empty(self) -> bool:
        """No table has been created yet (a new store, or one written before the catalog
        moved into the log)."""
        return not self._table_docs

    # --- changes (under the commit lock) -----------------------------------------------------
    def apply(self, writes: Iterable[Any]) -> bool:
        """Apply a validated commit's writes to catalog tables; True when anything changed.
        ``writes`` are ``Write`` s (``table``, ``id``, ``old``, ``new``)."""
        by_table: dict[str, list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]]] = {}
        for w in writes:
            if w.table_number in (TABLES_NUMBER, INDEX_NUMBER, SCHEMAS_NUMBER):
                by_table.setdefault(w.table, []).append((w.id, w.old, w.new))
        if not by_table:
            return False
        # _tables first: an index document may name a table created by the same commit.
        for table in (TABLES_TABLE, INDEX_TABLE, SCHEMAS_TABLE):
            if table in by_table:
                self._apply_docs(table, by_table[table])
        return True

    def _apply_docs(
        self, table: str,
        changes: list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]],
    ) -> None:
        if not changes:
            return
        with self._lock:
            tables = dict(self._tables)
            names = dict(self._table_names)
            indexes = dict(self._indexes)
            table_docs = dict(self._table_docs)
            index_docs = dict(self._index_docs)
            schema_changed = False
            for doc_id, _old, new in changes:
                if table == TABLES_TABLE:
                    prev = table_docs.pop(doc_id, None)
                    if prev is not None:
                        names.pop(tables.pop(prev, -1), None)
                    if new is not None:
                        number = int(new["number"])
                        tables[new["name"]] = number
                        names[number] = new["name"]
                        table_docs[doc_id] = new["name"]
                elif table == INDEX_TABLE:
                    prev_id = index_docs.pop(doc_id, None)
                    if prev_id is not None:
                        indexes.pop(prev_id, None)
                    if new is not None:
                        info = make_index(
                            int(new["indexId"]), new["table"], int(new["tableNumber"]), new["name"],
                            tuple(new["fields"]), new["state"], new.get("kind", DATABASE_KIND),
                            tuple(sorted((new.get("options") or {}).items())),
                        )
                        indexes[info.index_id] = info
                        index_docs[doc_id] = info.index_id
                else:
                    schema_changed = True
                    if new is None:
                        if self._schema_doc == doc_id:
                            self._schema_doc, self._schema_json = None, None
                    else:
                        self._schema_doc, self._schema_json = doc_id, new.get("schema")
            if schema_changed:
                self._schema = _parse_schema(self._schema_json)
            self._tables, self._table_names, self._indexes = tables, names, indexes
            self._table_docs, self._index_docs = table_docs, index_docs
            self._rebuild()

    def _rebuild(self) -> None:
        by_table: dict[str, dict[str, IndexInfo]] = {}
        by_number: dict[int, dict[str, IndexInfo]] = {}
        for info in self._indexes.values():
            by_table.setdefault(info.table, {})[info.name] = info
            by_number.setdefault(info.table_number, {})[info.name] = info
        self._by_table, self._by_number = by_table, by_number

    # --- reads -------------------------------------------------------------------------------
    def table_number(self, name: str) -> int | None:
        return self._tables.get(name)

    def table_name(self, number: int) -> str | None:
        return self._table_names.get(number)

    def tables(self) -> dict[str, int]:
        """Every table (name -> number), bootstrap tables excluded."""
        return {n: t for n, t in self._tables.items() if n not in BOOTSTRAP_TABLES}

    def table_document_id(self, name: str) -> str | None:
        for doc_id, table in self._table_docs.items():
            if table == name:
                return doc_id
        return None

    def index_document_id(self, index_id: int) -> str | None:
        for doc_id, iid in self._index_docs.items():
            if iid == index_id:
                return doc_id
        return None

    def indexes_of(self, table: str) -> dict[str, IndexInfo]:
        """Every index of a table (all states), by name. Empty if the table does not exist."""
        return self._by_table.get(table, {})

    def indexes_of_number(self, number: int) -> dict[str, IndexInfo]:
        return self._by_number.get(number, {})

    def index(self, table: str, name: str) -> IndexInfo | None:
        return self._by_table.get(table, {}).get(name)

    def indexes_by_kind(self, kind: str) -> list[IndexInfo]:
        """Every index of one kind (all states)."""
        return [info for info in self._indexes.values() if info.kind == kind]

    def index_by_id(self, index_id: int) -> IndexInfo | None:
        return self._indexes.get(index_id)

    @property
    def schema(self) -> SchemaDefinition | None:
        """The schema in force (None: no schema)."""
        return self._schema

    @property
    def schema_json(self) -> Any:
        return self._schema_json

    @property
    def schema_document_id(self) -> str | None:
        return self._schema_doc


def _parse_schema(raw: Any) -> SchemaDefinition | None:
    if raw is None:
        return None
    from convection.schema.schema import schema_from_json

    try:
        return schema_from_json(raw)
    except Exception as exc:  # written by us: a failure here is a bug, say where
        raise DatabaseError(f"the schema stored in _schemas cannot be read: {exc}") from exc


def legacy_catalog(persistence: Persistence) -> tuple[dict[str, int], list[IndexInfo]] | None:
    """The catalog of a store written before the catalog moved into the log (convection
    0.1.0 kept it in the ``tables``/``indexes`` globals), or None."""
    tables = persistence.get_global("tables")
    if not tables:
        return None
    indexes = [
        make_index(raw["id"], raw["table"], raw["tableNumber"], raw["name"], tuple(raw["fields"]),
                   raw["state"])
        for raw in persistence.get_global("indexes") or []
    ]
    return {str(k): int(v) for k, v in tables.items()}, indexes
