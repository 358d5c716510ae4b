"""The catalog: tables and indexes known to a database.

Tables have a stable *table number* (embedded in document ids): user tables from 10001
upward, system tables (names starting with ``_``) below 10000. Every table has the system
indexes ``by_id`` and ``by_creation_time``; user indexes come from the schema.

An index's *key fields* are its physical key: ``by_id`` is ``(_id,)``, every other index is
its fields + ``_creationTime`` + ``_id`` (so keys are unique). Index states:
``backfilling`` (maintained by writes, not yet readable) -> ``enabled``.

The catalog is persisted as small JSON globals and changed only by the database owner
(under its commit lock); readers get immutable :class:`IndexInfo` objects.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from convection.errors import DatabaseError
from convection.persistence.base import Persistence

FIRST_USER_TABLE_NUMBER = 10001
FIRST_SYSTEM_TABLE_NUMBER = 100
BY_ID = "by_id"
BY_CREATION_TIME = "by_creation_time"


@dataclass(frozen=True, slots=True)
class IndexInfo:
    index_id: int
    table_number: int
    table: str
    name: str
    fields: tuple[str, ...]
    key_fields: tuple[str, ...]
    state: str = "enabled"

    @property
    def readable(self) -> bool:
        return self.state == "enabled"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.index_id,
            "table": self.table,
            "tableNumber": self.table_number,
            "name": self.name,
            "fields": list(self.fields),
            "state": self.state,
        }


def key_fields_for(name: str, fields: tuple[str, ...]) -> tuple[str, ...]:
    if name == BY_ID:
        return ("_id",)
    if name == BY_CREATION_TIME:
        return ("_creationTime", "_id")
    return (*fields, "_creationTime", "_id")


class Catalog:
    """Tables and their indexes. Thread-safe; persisted through ``Persistence`` globals."""

    def __init__(self, persistence: Persistence) -> None:
        self._persistence = persistence
        self._lock = threading.RLock()
        self._tables: dict[str, int] = dict(persistence.get_global("tables") or {})
        self._table_names: dict[int, str] = {n: t for t, n in self._tables.items()}
        self._indexes: dict[int, IndexInfo] = {}
        self._next_index_id = int(persistence.get_global("next_index_id") or 1)
        for raw in persistence.get_global("indexes") or []:
            info = IndexInfo(
                index_id=raw["id"],
                table_number=raw["tableNumber"],
                table=raw["table"],
                name=raw["name"],
                fields=tuple(raw["fields"]),
                key_fields=key_fields_for(raw["name"], tuple(raw["fields"])),
                state=raw["state"],
            )
            self._indexes[info.index_id] = info
        self._rebuild()

    def _rebuild(self) -> None:
        by_table: dict[str, dict[str, IndexInfo]] = {}
        for info in self._indexes.values():
            by_table.setdefault(info.table, {})[info.name] = info
        self._by_table = by_table

    def _save(self) -> None:
        self._persistence.set_global("tables", self._tables)
        self._persistence.set_global("indexes", [i.to_json() for i in self._indexes.values()])
        self._persistence.set_global("next_index_id", self._next_index_id)

    # --- tables -----------------------------------------------------------------------------
    def table_number(self, name: str) -> int | None:
        return self._tables.get(name)

    def table_name(self, number: int) -> str | None:
        return self._table_names.get(number)

    def tables(self) -> dict[str, int]:
        return dict(self._tables)

    def ensure_table(self, name: str) -> int:
        """The table's number, creating the table (and its system indexes) if needed."""
        number = self._tables.get(name)
        if number is not None:
            return number
        with self._lock:
            number = self._tables.get(name)
            if number is not None:
                return number
            system = name.startswith("_")
            used = [n for n in self._tables.values() if (n < FIRST_USER_TABLE_NUMBER) == system]
            base = FIRST_SYSTEM_TABLE_NUMBER if system else FIRST_USER_TABLE_NUMBER
            number = max([base - 1, *used]) + 1
            if system and number >= FIRST_USER_TABLE_NUMBER:
                raise DatabaseError("too many system tables")
            self._tables[name] = number
            self._table_names[number] = name
            for idx_name, fields in ((BY_ID, ()), (BY_CREATION_TIME, ("_creationTime",))):
                self._add_index_locked(name, number, idx_name, fields, "enabled")
            self._rebuild()
            self._save()
            return number

    # --- indexes ----------------------------------------------------------------------------
    def _add_index_locked(
        self, table: str, number: int, name: str, fields: tuple[str, ...], state: str
    ) -> IndexInfo:
        info = IndexInfo(
            index_id=self._next_index_id,
            table_number=number,
            table=table,
            name=name,
            fields=fields,
            key_fields=key_fields_for(name, fields),
            state=state,
        )
        self._next_index_id += 1
        self._indexes[info.index_id] = info
        return info

    def add_index(self, table: str, name: str, fields: tuple[str, ...], state: str) -> IndexInfo:
        number = self.ensure_table(table)
        with self._lock:
            existing = self._by_table.get(table, {}).get(name)
            if existing is not None:
                raise DatabaseError(f"index {table}.{name} already exists")
            info = self._add_index_locked(table, number, name, fields, state)
            self._rebuild()
            self._save()
            return info

    def set_index_state(self, index_id: int, state: str) -> IndexInfo:
        with self._lock:
            old = self._indexes[index_id]
            new = IndexInfo(
                old.index_id, old.table_number, old.table, old.name, old.fields, old.key_fields, state
            )
            self._indexes[index_id] = new
            self._rebuild()
            self._save()
            return new

    def drop_index(self, index_id: int) -> None:
        with self._lock:
            self._indexes.pop(index_id, None)
            self._rebuild()
            self._save()

    def indexes_of(self, table: str) -> dict[str, IndexInfo]:
        """Every index of a table (all states), by name. Empty if the table does not exist."""
        return self._by_table.get(table, {})

    def index(self, table: str, name: str) -> IndexInfo | None:
        return self._by_table.get(table, {}).get(name)

