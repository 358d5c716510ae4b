"""Search and vector indexes shared by several processes on one store (two ``Database``
objects stand for two processes: they share nothing but the store). Postings are written by
whichever process commits the document; the other one reads them, is invalidated by them,
and its vector graph follows the other's commits through the commit log."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from convection.database import Database
from convection.database.query import Query
from convection.persistence.sqlite import SqlitePersistence
from convection.schema.builders import v
from convection.schema.schema import define_schema, define_table
from convection.search import SearchKind, postings
from convection.vector import VectorKind

SCHEMA = define_schema({
    "posts": define_table({"text": v.string(), "tag": v.string()}).search_index(
        "by_text", search_field="text", filter_fields=["tag"]),
    "items": define_table({"e": v.array(v.float64())}).vector_index("by_e", vector_field="e", dimensions=2),
})


def eventually(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def search(db: Database, text: str, tag: str) -> tuple[list[str], Any]:
    txn = db.begin(read_only=True)
    found = Query(txn, "posts").with_search_index(
        "by_text", lambda q: q.search("text", text).eq("tag", tag)).collect()
    return [d["text"] for d in found], txn


def test_two_processes_share_search_and_vector_indexes(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    a = Database(SqlitePersistence(path), secret=b"s")
    SearchKind.attach(a)
    VectorKind.attach(a, tmp_path / "indexes-a")
    a.set_schema(SCHEMA)
    b = Database(SqlitePersistence(path), secret=b"s")
    try:
        SearchKind.attach(b)
        vb = VectorKind.attach(b, tmp_path / "indexes-b")
        eventually(lambda: b.catalog.index("posts", "by_text") is not None, "b to see the index")
        t = a.begin()
        t.insert("posts", {"text": "shared words", "tag": "x"})
        t.insert("items", {"e": [1.0, 0.0]})
        ts = a.commit(t)
        eventually(lambda: b.latest_ts() >= ts, "b to publish a's commit")
        tokenized = postings.TOKENIZED[0]
        found, txn = search(b, "shared", "x")
        assert found == ["shared words"]
        assert postings.TOKENIZED[0] == tokenized  # b read a's postings, analyzed nothing
        # b's search is invalidated by a's matching write, not by an unrelated one.
        sub = b.subscribe(txn.reads.freeze(), txn.begin_ts)
        fired = threading.Event()
        sub.set_callback(fired.set)
        t = a.begin()
        t.insert("posts", {"text": "other words", "tag": "x"})
        ts = a.commit(t)
        eventually(lambda: b.latest_ts() >= ts, "b to publish a's commit")
        assert not fired.is_set()
        t = a.begin()
        t.insert("posts", {"text": "shared again", "tag": "x"})
        a.commit(t)
        assert fired.wait(20)
        assert sorted(search(b, "shared", "x")[0]) == ["shared again", "shared words"]
        # b's vector graph applied a's commit (from the commit log).
        found_v = vb.search("items", "by_e", vector=[1.0, 0.1], limit=1)
        assert len(found_v) == 1 and found_v[0]["_score"] > 0.99
    finally:
        b.close()
        a.close()

