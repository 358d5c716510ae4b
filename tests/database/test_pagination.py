from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from convection.database import Database
from convection.errors import ConvexError
from convection.persistence.sqlite import SqlitePersistence


def fill(db: Database, n: int, table: str = "items") -> list[str]:
    t = db.begin()
    ids = [t.insert(table, {"i": i}) for i in range(n)]
    db.commit(t)
    return ids


def page(db: Database, opts: dict[str, Any], *, journal: str | None = None, order: str = "asc", table: str = "items") -> tuple[dict[str, Any], str | None]:
    t = db.begin(read_only=True)
    t.journal_in = journal
    result = db.query(t, table).order(order).paginate(opts)
    return result, t.journal_out


def items(result: dict[str, Any]) -> list[float]:
    return [d["i"] for d in result["page"]]


def test_pages_cover_everything_without_gaps(db: Database) -> None:
    fill(db, 10)
    seen: list[float] = []
    cursor = None
    pages = 0
    while True:
        r, _ = page(db, {"numItems": 3, "cursor": cursor})
        seen += items(r)
        pages += 1
        assert isinstance(r["continueCursor"], str)
        if r["isDone"]:
            break
        cursor = r["continueCursor"]
    assert seen == [float(i) for i in range(10)] and pages == 4


def test_desc_pages_and_split_cursor(db: Database) -> None:
    fill(db, 6)
    r, _ = page(db, {"numItems": 4, "cursor": None}, order="desc")
    assert items(r) == [5, 4, 3, 2] and not r["isDone"]
    r2, _ = page(db, {"numItems": 4, "cursor": r["continueCursor"]}, order="desc")
    assert items(r2) == [1, 0]
    left, _ = page(db, {"numItems": 4, "cursor": None, "endCursor": r["splitCursor"]}, order="desc")
    right, _ = page(db, {"numItems": 4, "cursor": r["splitCursor"], "endCursor": r["continueCursor"]}, order="desc")
    assert items(left) + items(right) == items(r)


def test_end_cursor_reruns_exactly_to_it_and_journal_keeps_boundaries(db: Database) -> None:
    fill(db, 5)
    r, journal = page(db, {"numItems": 2, "cursor": None})
    assert items(r) == [0, 1]
    again, _ = page(db, {"numItems": 100, "cursor": None, "endCursor": r["continueCursor"]})
    assert items(again) == [0, 1] and again["continueCursor"] == r["continueCursor"]
    # another client inserts in the middle of the first page: rerun with the journal grows it
    t = db.begin()
    first = db.query(t, "items").first()
    assert first is not None
    t.insert("items", {"i": 0.5})
    db.commit(t)
    rerun, journal2 = page(db, {"numItems": 2, "cursor": None}, journal=journal)
    assert len(rerun["page"]) == 2 or rerun["continueCursor"] == r["continueCursor"]
    assert rerun["continueCursor"] == r["continueCursor"] and journal2 == journal


def test_maximum_rows_read_requires_split(db: Database) -> None:
    fill(db, 10)
    r, _ = page(db, {"numItems": 8, "cursor": None, "maximumRowsRead": 3})
    assert len(r["page"]) == 3 and r["pageStatus"] == "SplitRequired" and not r["isDone"]


def test_cursor_of_another_query_is_invalid(db: Database) -> None:
    fill(db, 3)
    fill(db, 3, table="other")
    r, _ = page(db, {"numItems": 1, "cursor": None})
    with pytest.raises(ConvexError) as e:
        page(db, {"numItems": 1, "cursor": r["continueCursor"]}, table="other")
    assert e.value.data == {"isConvexSystemError": True, "paginationError": "InvalidCursor"}
    assert "InvalidCursor" in str(e.value)
    with pytest.raises(ConvexError):
        page(db, {"numItems": 1, "cursor": "garbage"})


def test_only_one_paginate_per_execution(db: Database) -> None:
    fill(db, 2)
    t = db.begin(read_only=True)
    db.query(t, "items").paginate({"numItems": 1, "cursor": None})
    from convection.errors import ConvectionError

    with pytest.raises(ConvectionError) as e:
        db.query(t, "items").paginate({"numItems": 1, "cursor": None})
    assert e.value.code == "MultiplePaginatedDatabaseQueries"


def test_cursors_survive_restart(db_path: Path) -> None:
    d1 = Database(SqlitePersistence(db_path), secret=b"same")
    fill(d1, 4)
    r, _ = page(d1, {"numItems": 2, "cursor": None})
    d1.close()
    d2 = Database(SqlitePersistence(db_path), secret=b"same")
    try:
        r2, _ = page(d2, {"numItems": 2, "cursor": r["continueCursor"]})
        assert items(r2) == [2, 3]
    finally:
        d2.close()
