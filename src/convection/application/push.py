"""Pushing new code (``convection dev`` on every change, ``convection deploy``).

A push loads nothing itself (the caller hands a :class:`LoadedApp`); it makes the new code go
live safely:

1. **Schema check.** Every table whose validator is new or changed is checked against all its
   existing documents at a snapshot (progress reported); the first offending document fails
   the push with its table, id and field path. The new schema then takes effect in one commit
   (``_schemas``) whose transaction checks the documents written since the snapshot and reads
   the changed tables whole: a write that lands first conflicts with it (the push retries and
   checks that write too), and a write validated under the old schema read the schema
   document, so it conflicts with the push and retries under the new schema. A failure writes
   nothing: the previous schema stays in force.
2. **Indexes.** New indexes are backfilled from a snapshot while writes continue; removed ones
   are dropped. Code using a new index goes live only after this.
3. **Code.** The runner is swapped and every live query subscription is invalidated, so
   subscribed clients get results from the new code without reconnecting.

A failed push leaves the previous code (and schema) serving.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from convection.database.transaction import SystemView, Transaction
from convection.errors import SchemaError, ValidationError
from convection.functions.loader import LoadedApp
from convection.schema.schema import SchemaDefinition
from convection.values.json import loads_stored

if TYPE_CHECKING:
    from convection.application.app import Application

Progress = Callable[[str, int], None]


def _changed_tables(old: SchemaDefinition | None, new: SchemaDefinition | None) -> list[str]:
    if new is None or not new.schema_validation:
        return []
    out = []
    for name, tdef in new.tables.items():
        prev = None if old is None or not old.schema_validation else old.tables.get(name)
        if prev is None or prev.document_validator.to_json() != tdef.document_validator.to_json():
            out.append(name)
    return out


def check_documents(app: Application, schema: SchemaDefinition, tables: list[str], read_ts: int,
                    progress: Progress | None) -> None:
    db = app.db
    for table in tables:
        number = db.catalog.table_number(table)
        if number is None:
            continue
        tdef = schema.tables[table]
        count = 0
        for rev in db.persistence.table_documents(number, read_ts):
            if rev.value is None:
                continue
            doc: dict[str, Any] = loads_stored(rev.value)
            try:
                tdef.validate_document(doc, table=table, id_checker=db._id_checker)
            except ValidationError as exc:
                raise SchemaError(
                    f"Schema validation failed: {exc.message}. Fix or delete the document, or "
                    "change the schema (e.g. v.optional for a new field).",
                ) from None
            count += 1
            if progress is not None and count % 1000 == 0:
                progress(f"checking {table}", count)
        if progress is not None:
            progress(f"checked {table}", count)


def check_written_since(app: Application, schema: SchemaDefinition, tables: list[str], after_ts: int,
                        up_to_ts: int) -> None:
    db = app.db
    numbers = {db.catalog.table_number(t): t for t in tables}
    for rev in db.persistence.document_log(after_ts, up_to_ts):
        table = numbers.get(rev.table)
        if table is None or rev.value is None:
            continue
        try:
            schema.tables[table].validate_document(loads_stored(rev.value), table=table, id_checker=db._id_checker)
        except ValidationError as exc:
            raise SchemaError(f"Schema validation failed: {exc.message}") from None


def push(
    app: Application,
    loaded: LoadedApp,
    progress: Progress | None = None,
    *,
    in_commit: Callable[[SystemView], None] | None = None,
) -> None:
    """Make ``loaded`` live (see the module docstring). Blocking: call from a thread.
    ``in_commit(system)`` adds writes, through the system view of the commit that makes the
    schema take effect, to that commit (a deploy stores the code there, so code and schema
    change together)."""
    db = app.db
    old_schema = db.schema
    new_schema = loaded.schema
    tables = _changed_tables(old_schema, new_schema)

    def add_writes(txn: Transaction) -> None:
        if in_commit is not None:
            in_commit(SystemView(txn))

    check: Callable[[Transaction], None] | None = add_writes if in_commit is not None else None
    if new_schema is not None and tables:
        snapshot = db.latest_ts()
        check_documents(app, new_schema, tables, snapshot, progress)
        checked = [snapshot]

        def check(txn: Transaction) -> None:
            # Runs in the schema commit's transaction (retried on conflicts): documents
            # written since the last check are checked, and the transaction reads the whole
            # tables, so a write landing before the schema commit conflicts and is checked
            # on the retry. Writes validated under the old schema read the schema document,
            # so they conflict with the schema commit and retry under the new schema.
            assert new_schema is not None
            check_written_since(app, new_schema, tables, checked[0], txn.begin_ts)
            checked[0] = max(checked[0], txn.begin_ts)
            for table in tables:
                txn.record_table_read(table)
            add_writes(txn)

    db.set_schema(new_schema, check=check, progress=progress)
    app.set_app(loaded)
