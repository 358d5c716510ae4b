"""Schemas: ``define_schema`` / ``define_table`` (API.md §4, SEMANTICS.md §1.4, §4.1, §5, §11).

A :class:`TableDefinition` is a document validator plus the table's indexes: database indexes
(``.index``), full-text search indexes (``.search_index``) and vector indexes
(``.vector_index``). :func:`define_schema` binds each table to its name and checks every rule
below, raising :class:`~convection.errors.SchemaError` (code ``InvalidSchema``) naming the table
and index:

* table names are identifiers (``[A-Za-z][A-Za-z0-9_]*``) of at most 1024 characters; names
  starting with ``_`` are reserved for system tables.
* index names are identifiers of at most 64 characters, unique per table across all three
  kinds, not starting with ``_`` and not ``by_id``/``by_creation_time``.
* a database index has 1..``knobs.MAX_INDEX_FIELDS_COUNT`` distinct fields (dot paths such as
  ``author.name`` allowed) that exist in the document validator (an object field; for a union,
  in at least one member; anything under ``v.any()``); ``_id`` and ``_creationTime`` may not be
  listed (``_creationTime`` is appended implicitly).
* at most ``knobs.MAX_INDEXES_PER_TABLE_COUNT`` user indexes of all kinds per table, at most
  ``knobs.MAX_SEARCH_INDEXES_PER_TABLE_COUNT`` search and
  ``knobs.MAX_VECTOR_INDEXES_PER_TABLE_COUNT`` vector indexes.
* a search index has one string search field and at most ``knobs.MAX_FILTER_FIELDS_COUNT``
  distinct filter fields; a vector index's field is ``v.array(v.float64())`` (optional
  allowed), ``dimensions`` is an integer in 2..4096, with the same filter-field limit.

Every table also has the system indexes ``by_id`` (fields ``()``) and ``by_creation_time``
(fields ``("_creationTime",)``): see :meth:`TableDefinition.all_database_indexes`. The *physical
key* of a database index is its fields + ``_creationTime`` + ``_id`` (``by_id``: just ``_id``),
so keys are unique: :attr:`IndexDefinition.key_fields`.

JSON (``to_json``/:func:`schema_from_json`/:func:`table_from_json`) follows Convex's schema
JSON (``tables: [{tableName, indexes: [{indexDescriptor, fields, staged}], searchIndexes,
vectorIndexes, documentType}], schemaValidation``) plus ``strictTableNameTypes``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from convection import knobs
from convection.errors import SchemaError, ValidationError, ValueError_
from convection.schema.validator_json import validator_from_json
from convection.schema.validators import (
    AnyValidator,
    ArrayValidator,
    Float64Validator,
    IdChecker,
    LiteralValidator,
    ObjectValidator,
    OptionalValidator,
    RecordValidator,
    StringValidator,
    UnionValidator,
    Validator,
)
from convection.values.model import UNSET, check_field_name, describe
from convection.values.order import MISSING

__all__ = [
    "BY_CREATION_TIME",
    "BY_ID",
    "MISSING",
    "SYSTEM_FIELDS",
    "IndexDefinition",
    "SchemaDefinition",
    "SearchIndexDefinition",
    "TableDefinition",
    "VectorIndexDefinition",
    "define_schema",
    "define_table",
    "field_path_get",
    "schema_from_json",
    "table_from_json",
]

BY_ID: Final = "by_id"
BY_CREATION_TIME: Final = "by_creation_time"
CREATION_TIME: Final = "_creationTime"
ID: Final = "_id"
SYSTEM_FIELDS: Final = (ID, CREATION_TIME)

MAX_TABLE_NAME_LENGTH: Final = 1024
MAX_INDEX_NAME_LENGTH: Final = 64
MIN_VECTOR_DIMENSIONS: Final = 2
MAX_VECTOR_DIMENSIONS: Final = 4096

_IDENTIFIER: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


# --- index definitions -------------------------------------------------------------------


@dataclass(frozen=True)
class IndexDefinition:
    """A database index. ``fields`` excludes the implicit ``_creationTime``/``_id`` suffix
    (except for the system index ``by_creation_time``, whose fields are ``("_creationTime",)``).
    ``staged`` indexes are backfilled but not usable until a later push un-stages them."""

    name: str
    fields: tuple[str, ...]
    staged: bool = False

    @property
    def key_fields(self) -> tuple[str, ...]:
        """The fields of the physical index key: fields + ``_creationTime`` + ``_id``."""
        if self.name == BY_ID:
            return (ID,)
        if self.fields and self.fields[-1] == CREATION_TIME:
            return (*self.fields, ID)
        return (*self.fields, CREATION_TIME, ID)

    def to_json(self) -> dict[str, Any]:
        return {"indexDescriptor": self.name, "fields": list(self.fields), "staged": self.staged}


@dataclass(frozen=True)
class SearchIndexDefinition:
    """A full-text search index over one string field, with equality filter fields."""

    name: str
    search_field: str
    filter_fields: tuple[str, ...] = ()
    staged: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "indexDescriptor": self.name,
            "searchField": self.search_field,
            "filterFields": list(self.filter_fields),
            "staged": self.staged,
        }


@dataclass(frozen=True)
class VectorIndexDefinition:
    """A vector index over a ``v.array(v.float64())`` field of ``dimensions`` elements."""

    name: str
    vector_field: str
    dimensions: int
    filter_fields: tuple[str, ...] = ()
    staged: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "indexDescriptor": self.name,
            "vectorField": self.vector_field,
            "dimensions": self.dimensions,
            "filterFields": list(self.filter_fields),
            "staged": self.staged,
        }


SYSTEM_INDEXES: Final = (
    IndexDefinition(BY_ID, ()),
    IndexDefinition(BY_CREATION_TIME, (CREATION_TIME,)),
)


# --- field paths -------------------------------------------------------------------------


def field_path_get(doc: Any, path: str | Sequence[str]) -> Any:
    """The value at dot path ``path`` ("a.b") of ``doc``, or
    :data:`convection.values.order.MISSING` when a step is absent or not an object (arrays are
    not traversed). A field holding ``UNSET`` is missing."""
    parts = path.split(".") if isinstance(path, str) else path
    cur = doc
    for part in parts:
        if not isinstance(cur, dict):
            return MISSING
        cur = cur.get(part, MISSING)
        if cur is MISSING or cur is UNSET:
            return MISSING
    return cur


def _leaves(val: Validator) -> list[Validator]:
    """``val`` with unions and optionals flattened."""
    if isinstance(val, OptionalValidator):
        return _leaves(val.inner)
    if isinstance(val, UnionValidator):
        return [x for m in val.members for x in _leaves(m)]
    return [val]


def _resolve(val: Validator, parts: Sequence[str]) -> list[Validator]:
    """Every validator the field at ``parts`` may have under ``val`` (flattened; empty when the
    path cannot exist). ``v.any()`` admits every path and resolves to itself."""
    out: list[Validator] = []
    for leaf in _leaves(val):
        if not parts or isinstance(leaf, AnyValidator):
            out.append(leaf)
        elif isinstance(leaf, ObjectValidator):
            f = leaf.fields.get(parts[0])
            if f is not None:
                out.extend(_resolve(f, parts[1:]))
        elif isinstance(leaf, RecordValidator):
            key_ok = any(
                not isinstance(k, LiteralValidator) or k.value == parts[0]
                for k in _leaves(leaf.keys)
            )
            if key_ok:
                out.extend(_resolve(leaf.values, parts[1:]))
    return out


# --- tables ------------------------------------------------------------------------------


def _document_validator(fields: Any) -> Validator:
    if isinstance(fields, Mapping) and not isinstance(fields, Validator):
        val: Validator = ObjectValidator(fields)
    elif isinstance(fields, Validator):
        val = fields
    else:
        raise SchemaError(
            f"define_table(...) expects a dict of field validators, v.object(...) or a v.union of "
            f"objects, got {type(fields).__name__}"
        )
    _check_document_validator(val, top=val)
    return val


def _check_document_validator(val: Validator, *, top: Validator) -> None:
    if isinstance(val, OptionalValidator):
        raise SchemaError(
            f"define_table({val!r}): a table's document validator cannot be v.optional(...)"
        )
    if isinstance(val, AnyValidator):
        return
    if isinstance(val, UnionValidator):
        for m in val.members:
            _check_document_validator(m, top=top)
        return
    if not isinstance(val, ObjectValidator):
        raise SchemaError(
            f"define_table(...) expects an object validator (or a union of objects), got "
            f"{val!r} in {top!r}"
        )
    for name in val.fields:
        if name.startswith("_"):
            raise SchemaError(
                f"Field {name!r} of a table's document validator starts with '_', which is "
                "reserved for system fields (_id and _creationTime are added automatically)"
            )


def _check_identifier(kind: str, name: Any, max_len: int, where: str) -> str:
    if not isinstance(name, str):
        raise SchemaError(f"{where}: {kind} names must be strings, got {describe(name)}")
    if name.startswith("_"):
        raise SchemaError(
            f"{where}: {kind} name {name!r} starts with '_', which is reserved for system "
            f"{kind}s"
        )
    if not _IDENTIFIER.fullmatch(name):
        raise SchemaError(
            f"{where}: {kind} name {name!r} is not a valid identifier: use letters, digits and "
            "underscores, starting with a letter"
        )
    if len(name) > max_len:
        raise SchemaError(f"{where}: {kind} name {name[:40]!r}... is longer than {max_len} characters")
    return name


def _fields_list(fields: Any, where: str, what: str) -> tuple[str, ...]:
    if isinstance(fields, str) or not isinstance(fields, Sequence):
        raise SchemaError(f"{where}: {what} must be a list of field paths such as ['author.name'], got {describe(fields)}")
    for f in fields:
        if not isinstance(f, str):
            raise SchemaError(f"{where}: {what} must be strings, got {describe(f)}")
    return tuple(fields)


def _check_staged(staged: Any, where: str) -> bool:
    if not isinstance(staged, bool):
        raise SchemaError(f"{where}: staged must be True or False, got {describe(staged)}")
    return staged


class TableDefinition:
    """One table of a schema. Build with :func:`define_table`; chain ``.index(...)``,
    ``.search_index(...)`` and ``.vector_index(...)`` (each returns the table itself).

    Index rules are checked when the table is bound to a name by :func:`define_schema` (or
    :meth:`validate`), so errors can name the table.
    """

    def __init__(self, document_validator: Validator) -> None:
        self._validator = _document_validator(document_validator)
        self.name: str | None = None
        self.indexes: list[IndexDefinition] = []
        self.search_indexes: list[SearchIndexDefinition] = []
        self.vector_indexes: list[VectorIndexDefinition] = []

    # --- builders -------------------------------------------------------------------------
    def index(self, name: str, fields: Sequence[str] | Mapping[str, Any], *, staged: bool = False) -> TableDefinition:
        """A database index on ``fields`` (``["a", "b.c"]``), or ``{"fields": [...],
        "staged": bool}`` as Convex accepts. ``_creationTime`` is appended implicitly."""
        where = f"index {name!r}"
        if isinstance(fields, Mapping):
            extra = set(fields) - {"fields", "staged"}
            if extra or "fields" not in fields:
                raise SchemaError(f"{where}: expected {{'fields': [...], 'staged': bool}}, got {describe(fields)}")
            staged = fields.get("staged", staged)
            fields = fields["fields"]
        self.indexes.append(IndexDefinition(name, _fields_list(fields, where, "fields"), _check_staged(staged, where)))
        return self

    def search_index(
        self,
        name: str,
        *,
        search_field: str,
        filter_fields: Sequence[str] = (),
        staged: bool = False,
    ) -> TableDefinition:
        """A full-text search index on the string field ``search_field``."""
        where = f"search index {name!r}"
        if not isinstance(search_field, str):
            raise SchemaError(f"{where}: search_field must be one field path string, got {describe(search_field)}")
        self.search_indexes.append(
            SearchIndexDefinition(
                name,
                search_field,
                _fields_list(filter_fields, where, "filter_fields"),
                _check_staged(staged, where),
            )
        )
        return self

    def vector_index(
        self,
        name: str,
        *,
        vector_field: str,
        dimensions: int,
        filter_fields: Sequence[str] = (),
        staged: bool = False,
    ) -> TableDefinition:
        """A vector index on the ``v.array(v.float64())`` field ``vector_field``."""
        where = f"vector index {name!r}"
        if not isinstance(vector_field, str):
            raise SchemaError(f"{where}: vector_field must be one field path string, got {describe(vector_field)}")
        dims: Any = dimensions
        if isinstance(dims, float) and dims.is_integer():
            dims = int(dims)
        if not isinstance(dims, int) or isinstance(dims, bool):
            raise SchemaError(f"{where}: dimensions must be an integer, got {describe(dimensions)}")
        self.vector_indexes.append(
            VectorIndexDefinition(
                name,
                vector_field,
                int(dims),
                _fields_list(filter_fields, where, "filter_fields"),
                _check_staged(staged, where),
            )
        )
        return self

    # --- accessors -------------------------------------------------------------------------
    @property
    def document_validator(self) -> Validator:
        """The validator of the user fields of documents (system fields excluded)."""
        return self._validator

    def all_database_indexes(self) -> list[IndexDefinition]:
        """``by_id``, ``by_creation_time`` and then the user database indexes."""
        return [*SYSTEM_INDEXES, *self.indexes]

    def database_index(self, name: str) -> IndexDefinition | None:
        """The database index (system or user) called ``name``, or None."""
        return next((ix for ix in self.all_database_indexes() if ix.name == name), None)

    def search_index_named(self, name: str) -> SearchIndexDefinition | None:
        return next((ix for ix in self.search_indexes if ix.name == name), None)

    def vector_index_named(self, name: str) -> VectorIndexDefinition | None:
        return next((ix for ix in self.vector_indexes if ix.name == name), None)

    def validate_document(
        self,
        doc: Mapping[str, Any],
        *,
        table: str | None = None,
        id: str | None = None,
        id_checker: IdChecker | None = None,
    ) -> dict[str, Any]:
        """Check a document's user fields against the validator and return the normalized
        document. ``_id``/``_creationTime`` in ``doc`` are passed through unchecked (``id``
        defaults to ``doc["_id"]``, used in messages). Raises
        :class:`~convection.errors.ValidationError` ``Document with ID "..." in table "t" does
        not match the schema: ...`` naming the field path, or ``LimitError`` for nesting deeper
        than ``knobs.MAX_DOCUMENT_NESTING_COUNT``."""
        name = table if table is not None else (self.name or "?")
        if not isinstance(doc, Mapping):
            raise ValidationError(
                f'A document of table "{name}" must be an object (dict), got {type(doc).__name__}'
            )
        system = {k: doc[k] for k in SYSTEM_FIELDS if k in doc}
        user = {k: x for k, x in doc.items() if k not in SYSTEM_FIELDS}
        doc_id = id if id is not None else system.get(ID)
        try:
            checked = self._validator.check(
                user, id_checker=id_checker, max_depth=knobs.MAX_DOCUMENT_NESTING_COUNT
            )
        except ValidationError as exc:
            what = f'Document with ID "{doc_id}"' if doc_id is not None else "Document"
            raise ValidationError(
                f'{what} in table "{name}" does not match the schema: {exc.message}',
                path=exc.path,
            ) from None
        return {**system, **checked}

    # --- checks ----------------------------------------------------------------------------
    def validate(self, table_name: str) -> None:
        """Check the table name and every index rule (see the module docstring)."""
        _check_table_name(table_name)
        where_t = f"Table {table_name!r}"
        seen: set[str] = set()
        total = len(self.indexes) + len(self.search_indexes) + len(self.vector_indexes)
        if total > knobs.MAX_INDEXES_PER_TABLE_COUNT:
            raise SchemaError(
                f"{where_t} has {total} indexes; the limit is {knobs.MAX_INDEXES_PER_TABLE_COUNT} "
                "(database, search and vector indexes together)"
            )
        if len(self.search_indexes) > knobs.MAX_SEARCH_INDEXES_PER_TABLE_COUNT:
            raise SchemaError(
                f"{where_t} has {len(self.search_indexes)} search indexes; the limit is "
                f"{knobs.MAX_SEARCH_INDEXES_PER_TABLE_COUNT}"
            )
        if len(self.vector_indexes) > knobs.MAX_VECTOR_INDEXES_PER_TABLE_COUNT:
            raise SchemaError(
                f"{where_t} has {len(self.vector_indexes)} vector indexes; the limit is "
                f"{knobs.MAX_VECTOR_INDEXES_PER_TABLE_COUNT}"
            )
        for kind, name in (
            *(("index", ix.name) for ix in self.indexes),
            *(("search index", ix.name) for ix in self.search_indexes),
            *(("vector index", ix.name) for ix in self.vector_indexes),
        ):
            where = f"{where_t}, {kind} {name!r}"
            _check_identifier("index", name, MAX_INDEX_NAME_LENGTH, where)
            if name in (BY_ID, BY_CREATION_TIME):
                raise SchemaError(f"{where}: the index name {name!r} is reserved for a system index")
            if name in seen:
                raise SchemaError(f"{where}: the table has two indexes named {name!r}; index names must be unique per table")
            seen.add(name)
        for ix in self.indexes:
            self._check_database_index(table_name, ix)
        for s in self.search_indexes:
            self._check_search_index(table_name, s)
        for vi in self.vector_indexes:
            self._check_vector_index(table_name, vi)

    def _check_path(self, path: str, where: str, *, system_ok: bool) -> list[Validator]:
        parts = path.split(".")
        for part in parts:
            if part == "":
                raise SchemaError(f"{where}: field path {path!r} has an empty component")
            try:
                check_field_name(part, path)
            except ValueError_ as exc:
                raise SchemaError(f"{where}: invalid field path {path!r}: {exc.message}") from None
        if parts[0] in SYSTEM_FIELDS:
            if system_ok and len(parts) == 1:
                return [StringValidator() if parts[0] == ID else Float64Validator()]
            raise SchemaError(f"{where}: the system field {path!r} cannot be used here")
        found = _resolve(self._validator, parts)
        if not found:
            raise SchemaError(
                f"{where}: the field {path!r} does not exist in the table's validator "
                f"{_short(self._validator)}"
            )
        return found

    def _check_filter_fields(self, fields: tuple[str, ...], where: str) -> None:
        if len(fields) > knobs.MAX_FILTER_FIELDS_COUNT:
            raise SchemaError(
                f"{where}: {len(fields)} filter fields; the limit is {knobs.MAX_FILTER_FIELDS_COUNT}"
            )
        if len(set(fields)) != len(fields):
            raise SchemaError(f"{where}: duplicate filter fields in {list(fields)}")
        for f in fields:
            self._check_path(f, where, system_ok=True)

    def _check_database_index(self, table: str, ix: IndexDefinition) -> None:
        where = f"Table {table!r}, index {ix.name!r}"
        if not ix.fields:
            raise SchemaError(f"{where}: an index needs at least one field")
        if len(ix.fields) > knobs.MAX_INDEX_FIELDS_COUNT:
            raise SchemaError(
                f"{where}: {len(ix.fields)} fields; the limit is {knobs.MAX_INDEX_FIELDS_COUNT}"
            )
        if len(set(ix.fields)) != len(ix.fields):
            raise SchemaError(f"{where}: duplicate fields in {list(ix.fields)}")
        for f in ix.fields:
            if f == CREATION_TIME:
                raise SchemaError(
                    f"{where}: '_creationTime' is appended to every index automatically; remove "
                    "it from the index fields"
                )
            if f == ID:
                raise SchemaError(
                    f"{where}: '_id' is appended to every index key automatically (and by_id "
                    "exists); remove it from the index fields"
                )
            self._check_path(f, where, system_ok=False)

    def _check_search_index(self, table: str, s: SearchIndexDefinition) -> None:
        where = f"Table {table!r}, search index {s.name!r}"
        found = self._check_path(s.search_field, where, system_ok=False)
        if not any(
            isinstance(x, StringValidator | AnyValidator)
            or (isinstance(x, LiteralValidator) and type(x.value) is str)
            for x in found
        ):
            raise SchemaError(
                f"{where}: the search field {s.search_field!r} must be a string field (v.string()), "
                f"but it is {' | '.join(repr(x) for x in found)}"
            )
        self._check_filter_fields(s.filter_fields, where)

    def _check_vector_index(self, table: str, vi: VectorIndexDefinition) -> None:
        where = f"Table {table!r}, vector index {vi.name!r}"
        if not MIN_VECTOR_DIMENSIONS <= vi.dimensions <= MAX_VECTOR_DIMENSIONS:
            raise SchemaError(
                f"{where}: dimensions must be between {MIN_VECTOR_DIMENSIONS} and "
                f"{MAX_VECTOR_DIMENSIONS}, got {vi.dimensions}"
            )
        found = self._check_path(vi.vector_field, where, system_ok=False)
        if not any(
            isinstance(x, AnyValidator)
            or (isinstance(x, ArrayValidator) and isinstance(x.item, Float64Validator))
            for x in found
        ):
            raise SchemaError(
                f"{where}: the vector field {vi.vector_field!r} must be v.array(v.float64()), "
                f"but it is {' | '.join(repr(x) for x in found)}"
            )
        self._check_filter_fields(vi.filter_fields, where)

    # --- JSON, equality ----------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.name is not None:
            out["tableName"] = self.name
        out["indexes"] = [ix.to_json() for ix in self.indexes]
        out["searchIndexes"] = [ix.to_json() for ix in self.search_indexes]
        out["vectorIndexes"] = [ix.to_json() for ix in self.vector_indexes]
        out["documentType"] = self._validator.to_json()
        return out

    def _structure(self) -> tuple[Any, ...]:
        return (
            self._validator,
            tuple(self.indexes),
            tuple(self.search_indexes),
            tuple(self.vector_indexes),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TableDefinition):
            return NotImplemented
        return self._structure() == other._structure()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        parts = [f"define_table({_short(self._validator)})"]
        parts += [f".index({ix.name!r}, {list(ix.fields)!r})" for ix in self.indexes]
        parts += [f".search_index({ix.name!r}, search_field={ix.search_field!r})" for ix in self.search_indexes]
        parts += [f".vector_index({ix.name!r}, vector_field={ix.vector_field!r})" for ix in self.vector_indexes]
        return "".join(parts)


def _short(val: Validator, limit: int = 200) -> str:
    text = repr(val)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_table_name(name: Any) -> None:
    _check_identifier("table", name, MAX_TABLE_NAME_LENGTH, "define_schema(...)")


def define_table(fields: Mapping[str, Validator] | Validator) -> TableDefinition:
    """A table whose documents match ``fields``: a dict of field validators, a ``v.object``,
    a ``v.union`` of objects, or ``v.any()``. Top-level field names may not start with ``_``."""
    return TableDefinition(_document_validator(fields))


def _index_from_json(d: Any, keys: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(d, dict) or any(k not in d for k in keys):
        raise SchemaError(f"Invalid {where} JSON (needs {', '.join(keys)}): {describe(d, 120)}")
    return d


def table_from_json(d: Any) -> TableDefinition:
    """The table whose JSON is ``d`` (inverse of :meth:`TableDefinition.to_json`). When ``d``
    has a ``tableName`` the table is bound to it and checked."""
    if not isinstance(d, dict) or "documentType" not in d:
        raise SchemaError(f"Invalid table JSON (needs documentType): {describe(d, 120)}")
    t = define_table(validator_from_json(d["documentType"]))
    for ix in d.get("indexes") or []:
        ix = _index_from_json(ix, ("indexDescriptor", "fields"), "index")
        t.index(ix["indexDescriptor"], ix["fields"], staged=ix.get("staged", False))
    for ix in d.get("searchIndexes") or []:
        ix = _index_from_json(ix, ("indexDescriptor", "searchField"), "search index")
        t.search_index(
            ix["indexDescriptor"],
            search_field=ix["searchField"],
            filter_fields=ix.get("filterFields") or [],
            staged=ix.get("staged", False),
        )
    for ix in d.get("vectorIndexes") or []:
        ix = _index_from_json(ix, ("indexDescriptor", "vectorField", "dimensions"), "vector index")
        t.vector_index(
            ix["indexDescriptor"],
            vector_field=ix["vectorField"],
            dimensions=ix["dimensions"],
            filter_fields=ix.get("filterFields") or [],
            staged=ix.get("staged", False),
        )
    name = d.get("tableName")
    if name is not None:
        t.validate(name)
        t.name = name
    return t


# --- schemas -----------------------------------------------------------------------------


class SchemaDefinition:
    """A checked schema: tables by name and the two options of ``define_schema``."""

    def __init__(
        self,
        tables: dict[str, TableDefinition],
        *,
        schema_validation: bool,
        strict_table_name_types: bool,
    ) -> None:
        self.tables = tables
        self.schema_validation = schema_validation
        self.strict_table_name_types = strict_table_name_types

    def table(self, name: str) -> TableDefinition | None:
        """The table called ``name``, or None when the schema does not list it."""
        return self.tables.get(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "tables": [t.to_json() for t in self.tables.values()],
            "schemaValidation": self.schema_validation,
            "strictTableNameTypes": self.strict_table_name_types,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SchemaDefinition):
            return NotImplemented
        return (
            self.tables == other.tables
            and self.schema_validation == other.schema_validation
            and self.strict_table_name_types == other.strict_table_name_types
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"define_schema({{{', '.join(repr(n) for n in self.tables)}}})"


def define_schema(
    tables: Mapping[str, TableDefinition],
    *,
    schema_validation: bool = True,
    strict_table_name_types: bool = True,
) -> SchemaDefinition:
    """A schema of these tables (API.md §4). Checks every rule of the module docstring.

    ``schema_validation=False`` turns off runtime validation of documents;
    ``strict_table_name_types=False`` only matters for typed codegen (tables not in the schema
    are always allowed and unvalidated)."""
    if not isinstance(tables, Mapping):
        raise SchemaError(f"define_schema(...) expects a dict of table name -> define_table(...), got {type(tables).__name__}")
    for opt, val in (("schema_validation", schema_validation), ("strict_table_name_types", strict_table_name_types)):
        if not isinstance(val, bool):
            raise SchemaError(f"define_schema(..., {opt}=...) must be True or False, got {describe(val)}")
    out: dict[str, TableDefinition] = {}
    for name, tdef in tables.items():
        _check_table_name(name)
        if not isinstance(tdef, TableDefinition):
            raise SchemaError(
                f"define_schema(...): table {name!r} must be define_table(...), got {type(tdef).__name__}"
            )
        tdef.validate(name)
        if tdef.name is not None and tdef.name != name:
            tdef = _copy_table(tdef)
        tdef.name = name
        out[name] = tdef
    return SchemaDefinition(
        out, schema_validation=schema_validation, strict_table_name_types=strict_table_name_types
    )


def _copy_table(t: TableDefinition) -> TableDefinition:
    c = copy.copy(t)
    c.indexes = list(t.indexes)
    c.search_indexes = list(t.search_indexes)
    c.vector_indexes = list(t.vector_indexes)
    return c


def schema_from_json(d: Any) -> SchemaDefinition:
    """The schema whose JSON is ``d`` (inverse of :meth:`SchemaDefinition.to_json`)."""
    if not isinstance(d, dict) or not isinstance(d.get("tables"), list):
        raise SchemaError(f"Invalid schema JSON (needs a 'tables' list): {describe(d, 120)}")
    tables: dict[str, TableDefinition] = {}
    for td in d["tables"]:
        if not isinstance(td, dict) or not isinstance(td.get("tableName"), str):
            raise SchemaError(f"Invalid table JSON in schema (needs tableName): {describe(td, 120)}")
        if td["tableName"] in tables:
            raise SchemaError(f"Invalid schema JSON: table {td['tableName']!r} is listed twice")
        tables[td["tableName"]] = table_from_json(td)
    return define_schema(
        tables,
        schema_validation=d.get("schemaValidation", True),
        strict_table_name_types=d.get("strictTableNameTypes", True),
    )

