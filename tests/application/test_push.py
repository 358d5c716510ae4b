from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from convection.application.push import push
from convection.database import Database
from convection.errors import SchemaError
from convection.functions.loader import load_app
from convection.persistence.sqlite import SqlitePersistence
from convection.server.compose import build_application


def write_app(folder: Path, schema: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "schema.py").write_text(textwrap.dedent(schema))
    (folder / "notes.py").write_text(textwrap.dedent('''
        from convection import mutation, query

        @mutation
        def add(ctx, **doc):
            return ctx.db.insert("notes", doc)

        @query
        def by_tag(ctx, tag):
            return ctx.db.query("notes").with_index("by_tag", lambda q: q.eq("tag", tag)).collect()
    '''))


def test_push_checks_existing_documents_and_backfills_indexes(tmp_path: Path) -> None:
    folder = tmp_path / "convex"
    write_app(folder, '''
        from convection import define_schema, define_table, v
        schema = define_schema({"notes": define_table({"text": v.string(), "tag": v.optional(v.string())})})
    ''')
    db = Database(SqlitePersistence(tmp_path / "db.sqlite3"), secret=b"s")
    app = build_application(db, load_app(folder))
    try:
        for i in range(5):
            t = db.begin()
            t.insert("notes", {"text": f"n{i}"} | ({"tag": "x"} if i % 2 else {}))
            db.commit(t)
        # a schema that existing documents violate is refused, naming the document and field
        write_app(folder, '''
            from convection import define_schema, define_table, v
            schema = define_schema({"notes": define_table({"text": v.string(), "tag": v.string()}).index("by_tag", ["tag"])})
        ''')
        before = app.loaded
        with pytest.raises(SchemaError) as e:
            push(app, load_app(folder))
        assert "notes" in str(e.value) and "tag" in str(e.value)
        assert app.loaded is before and db.catalog.index("notes", "by_tag") is None
        # a compatible schema with a new index goes live with the index backfilled
        write_app(folder, '''
            from convection import define_schema, define_table, v
            schema = define_schema({"notes": define_table({"text": v.string(), "tag": v.optional(v.string())}).index("by_tag", ["tag"])})
        ''')
        progress: list[tuple[str, int]] = []
        push(app, load_app(folder), lambda what, n: progress.append((what, n)))
        assert app.loaded is not before
        t = db.begin(read_only=True)
        assert len(db.query(t, "notes").with_index("by_tag", lambda q: q.eq("tag", "x")).collect()) == 2
        assert progress
    finally:
        app.close()
        db.close()



def test_schema_push_races_mutations_validated_under_the_old_schema(tmp_path: Path) -> None:
    """Writers validate documents that only the old schema accepts, then commit after a push
    made the field required. The push goes through (no such document was committed before
    it), and every one of those commits conflicts: retried, each fails validation under the
    schema in force, so no document violates it. (Before the schema was a document in the
    log, these writes committed and left documents the schema in force rejects.)"""
    import threading

    from convection.database.retry import run_in_transaction
    from convection.errors import OccConflict, ValidationError

    folder = tmp_path / "convex"
    write_app(folder, '''
        from convection import define_schema, define_table, v
        schema = define_schema({"notes": define_table({"text": v.string(), "tag": v.optional(v.string())})})
    ''')
    db = Database(SqlitePersistence(tmp_path / "db.sqlite3"), secret=b"s")
    app = build_application(db, load_app(folder))
    validated = threading.Barrier(5)
    pushed = threading.Event()
    outcomes: list[str] = []

    def writer() -> None:
        txn = db.begin()
        txn.insert("notes", {"text": "untagged"})  # validated under the old schema
        validated.wait()
        pushed.wait(60)
        try:
            db.commit(txn)
            outcomes.append("committed")
        except OccConflict:
            try:  # what the runner does: run the mutation again
                run_in_transaction(db, lambda t: t.insert("notes", {"text": "untagged"}))
                outcomes.append("committed on retry")
            except ValidationError:
                outcomes.append("refused")

    try:
        threads = [threading.Thread(target=writer) for _ in range(4)]
        for t in threads:
            t.start()
        validated.wait()
        write_app(folder, '''
            from convection import define_schema, define_table, v
            schema = define_schema({"notes": define_table({"text": v.string(), "tag": v.string()})})
        ''')
        push(app, load_app(folder))
        pushed.set()
        for t in threads:
            t.join(timeout=60)
        assert outcomes == ["refused"] * 4
        q = db.begin(read_only=True)
        assert db.query(q, "notes").collect() == []
    finally:
        pushed.set()
        app.close()
        db.close()
