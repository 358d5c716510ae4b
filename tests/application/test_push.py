from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from convection.application.app import Application
from convection.application.push import push
from convection.database import Database
from convection.errors import SchemaError
from convection.functions.loader import load_app
from convection.persistence.sqlite import SqlitePersistence


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
    app = Application(db, load_app(folder))
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
