"""The catalog lives in the log: tables, indexes and the schema are documents of ``_tables``,
``_index`` and ``_schemas`` written by ordinary commits (runs on SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from convection.database import Database
from convection.database.catalog import INDEX_NUMBER, SCHEMAS_NUMBER, TABLES_NUMBER
from convection.errors import OccConflict
from convection.persistence.base import Persistence
from convection.persistence.sqlite import SqlitePersistence
from convection.schema.builders import v
from convection.schema.schema import define_schema, define_table
from convection.values.json import loads_stored


def catalog_docs(db: Database, number: int) -> list[dict[str, object]]:
    return [loads_stored(r.value) for r in db.persistence.table_documents(number, db.latest_ts())
            if r.value is not None]


def test_a_read_never_creates_a_table_and_the_creation_invalidates_it(db: Database) -> None:
    q = db.begin(read_only=True)
    assert db.query(q, "typo").collect() == []
    assert db.query(q, "typo").with_index("by_id").collect() == []
    assert db.catalog.table_number("typo") is None
    assert "typo" not in db.catalog.tables()
    assert all(d["name"] != "typo" for d in catalog_docs(db, TABLES_NUMBER))
    sub = db.subscribe(q.reads.freeze(), q.begin_ts)
    t = db.begin()
    t.insert("typo", {"x": 1})
    ts = db.commit(t)
    assert sub.invalidated_at == ts
    sub.close()


def test_the_inserting_commit_creates_the_table_and_its_indexes(db: Database) -> None:
    t = db.begin()
    doc_id = t.insert("fresh", {"x": 1})
    # visible to the creating transaction at once (read your writes) ...
    assert [d["_id"] for d in db.query(t, "fresh").collect()] == [doc_id]
    # ... to nobody else before it commits
    assert db.catalog.table_number("fresh") is None
    ts = db.commit(t)
    number = db.catalog.table_number("fresh")
    assert number is not None and number >= 10001
    tables = {d["name"]: d for d in catalog_docs(db, TABLES_NUMBER)}
    assert tables["fresh"]["number"] == number
    indexes = {(d["table"], d["name"]): d for d in catalog_docs(db, INDEX_NUMBER)}
    assert indexes["fresh", "by_id"]["state"] == "enabled"
    assert indexes["fresh", "by_creation_time"]["state"] == "enabled"
    # the catalog documents carry the creating commit's ts
    revs = list(db.persistence.document_log(ts - 1, ts))
    assert {r.table for r in revs} == {TABLES_NUMBER, INDEX_NUMBER, number}


def test_concurrent_table_creations_conflict_and_retry_to_distinct_numbers(db: Database) -> None:
    a, b = db.begin(), db.begin()
    a.insert("left", {"x": 1})
    b.insert("right", {"x": 2})
    db.commit(a)
    with pytest.raises(OccConflict):
        db.commit(b)
    b = db.begin()
    b.insert("right", {"x": 2})
    db.commit(b)
    assert db.catalog.table_number("left") != db.catalog.table_number("right")
    # the same table created twice concurrently: one table
    a, b = db.begin(), db.begin()
    a.insert("same", {"x": 1})
    b.insert("same", {"x": 2})
    db.commit(a)
    with pytest.raises(OccConflict):
        db.commit(b)
    b = db.begin()
    b.insert("same", {"x": 2})
    db.commit(b)
    q = db.begin(read_only=True)
    assert sorted(d["x"] for d in db.query(q, "same").collect()) == [1, 2]


def test_with_index_by_id(db: Database) -> None:
    t = db.begin()
    ids = [t.insert("items", {"n": n}) for n in range(5)]
    db.commit(t)
    q = db.begin(read_only=True)
    assert [d["n"] for d in db.query(q, "items").with_index("by_id", lambda r: r.eq("_id", ids[2])).collect()] == [2]
    every = db.query(q, "items").with_index("by_id").collect()
    assert sorted(d["_id"] for d in every) == sorted(ids)
    assert [d["_id"] for d in every] == sorted(ids)  # by_id is ordered by id
    # a write through by_id invalidates a subscription on it
    sub = db.subscribe(q.reads.freeze(), q.begin_ts)
    t = db.begin()
    t.patch(ids[0], {"n": 10})
    ts = db.commit(t)
    assert sub.invalidated_at == ts
    sub.close()


SCHEMA = define_schema({"t": define_table({"a": v.number()}).index("by_a", ["a"])})


def reopen(request: pytest.FixtureRequest) -> Persistence:
    """A new connection to the same store (what a restarted process opens)."""
    if request.node.callspec.params["persistence"] == "postgres":
        from convection.persistence.postgres import PostgresPersistence

        return PostgresPersistence(request.getfixturevalue("postgres_store_url"))
    return SqlitePersistence(request.getfixturevalue("db_path"))


def test_catalog_and_schema_are_recovered_from_the_log(
    persistence: Persistence, request: pytest.FixtureRequest
) -> None:
    db = Database(persistence, secret=b"s")
    db.set_schema(SCHEMA)
    t = db.begin()
    for a in (3, 1, 2):
        t.insert("t", {"a": a})
    t.insert("other", {"b": 1})
    db.commit(t)
    numbers = dict(db.catalog.tables())
    by_a = db.catalog.index("t", "by_a")
    assert by_a is not None and by_a.readable
    assert [d["schema"] is not None for d in catalog_docs(db, SCHEMAS_NUMBER)] == [True]
    db.close()

    db = Database(reopen(request), secret=b"s")
    try:
        assert db.catalog.tables() == numbers
        assert db.catalog.index("t", "by_a") == by_a
        assert db.schema == SCHEMA
        q = db.begin(read_only=True)
        assert [d["a"] for d in db.query(q, "t").with_index("by_a").collect()] == [1, 2, 3]
        # validation is in force after the restart
        t = db.begin()
        with pytest.raises(Exception) as e:
            t.insert("t", {"a": "not a number"})
        assert getattr(e.value, "code", None) == "ValidationError"
    finally:
        db.close()


def test_index_states_are_commits(db: Database) -> None:
    t = db.begin()
    for a in range(3):
        t.insert("t", {"a": a})
    db.commit(t)
    before = db.latest_ts()
    db.set_schema(SCHEMA)
    states = [
        (loads_stored(r.value)["name"], loads_stored(r.value)["state"])
        for r in db.persistence.document_log(before, db.latest_ts(), table=INDEX_NUMBER)
        if r.value is not None
    ]
    assert states == [("by_a", "backfilling"), ("by_a", "enabled")]
    # dropping the index (schema without it) is a commit too
    db.set_schema(define_schema({"t": define_table({"a": v.number()})}))
    assert db.catalog.index("t", "by_a") is None
    assert all(d["name"] != "by_a" for d in catalog_docs(db, INDEX_NUMBER))


def test_a_write_validated_under_the_old_schema_conflicts_with_the_push(db: Database) -> None:
    loose = define_schema({"t": define_table({"a": v.optional(v.number())})})
    strict = define_schema({"t": define_table({"a": v.number()})})
    db.set_schema(loose)
    t = db.begin()
    t.insert("t", {})  # valid under the schema in force when it was validated
    db.set_schema(strict)  # the push commits first
    with pytest.raises(OccConflict):
        db.commit(t)
    retry = db.begin()
    with pytest.raises(Exception) as e:
        retry.insert("t", {})
    assert getattr(e.value, "code", None) == "ValidationError"
