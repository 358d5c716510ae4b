"""Several databases (processes, nodes) on one store: commits are serialized by the store's
commit lock and every database tails the commit log (runs on SQLite and PostgreSQL; two
``Database`` objects in one test process stand for two processes: they share nothing but the
store)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from convection.database import Database
from convection.database.retry import run_in_transaction
from convection.errors import OccConflict
from convection.persistence.base import Persistence
from convection.persistence.sqlite import SqlitePersistence
from convection.schema.builders import v
from convection.schema.schema import define_schema, define_table


def second_handle(request: pytest.FixtureRequest) -> Persistence:
    if request.node.callspec.params["persistence"] == "postgres":
        from convection.persistence.postgres import PostgresPersistence

        return PostgresPersistence(request.getfixturevalue("postgres_store_url"))
    return SqlitePersistence(request.getfixturevalue("db_path"))


@pytest.fixture
def pair(persistence: Persistence, request: pytest.FixtureRequest) -> Iterator[tuple[Database, Database]]:
    a = Database(persistence, secret=b"s")
    b = Database(second_handle(request), secret=b"s")
    yield a, b
    b.close()
    a.close()


def eventually(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


def test_a_commit_on_one_is_published_on_the_other(pair: tuple[Database, Database]) -> None:
    a, b = pair
    q = b.begin(read_only=True)
    assert b.query(q, "items").collect() == []
    sub = b.subscribe(q.reads.freeze(), q.begin_ts)
    fired = threading.Event()
    sub.set_callback(fired.set)
    t = a.begin()
    doc_id = t.insert("items", {"n": 1})  # creates the table on a
    ts = a.commit(t)
    assert fired.wait(20), "b's subscription was not invalidated by a's commit"
    assert sub.invalidated_at == ts
    eventually(lambda: b.latest_ts() >= ts, "b to publish a's commit")
    # b learned the table from the log, and reads the document through its indexes
    assert b.catalog.table_number("items") == a.catalog.table_number("items")
    r = b.begin(read_only=True)
    assert [d["_id"] for d in b.query(r, "items").collect()] == [doc_id]
    assert b.query(r, "items").with_index("by_id", lambda q: q.eq("_id", doc_id)).first() is not None
    sub.close()


def test_timestamps_increase_across_both(pair: tuple[Database, Database]) -> None:
    a, b = pair
    seen: list[int] = []
    for i in range(10):
        db = (a, b)[i % 2]
        # the first insert creates the table; the other database may not have heard of it yet
        # and conflicts once (it read the table's absence): retried, as mutations are
        _, ts = run_in_transaction(db, lambda t, i=i: t.insert("log", {"i": i}))
        seen.append(ts)
    assert seen == sorted(seen) and len(set(seen)) == len(seen)


def test_a_write_on_one_conflicts_a_transaction_on_the_other(pair: tuple[Database, Database]) -> None:
    a, b = pair
    t = a.begin()
    counter = t.insert("counters", {"n": 0})
    ts = a.commit(t)
    eventually(lambda: b.latest_ts() >= ts, "b to see the counter")
    stale = b.begin()
    doc = stale.get(counter)
    assert doc is not None
    stale.patch(counter, {"n": doc["n"] + 1})
    t = a.begin()
    t.patch(counter, {"n": 10})
    a.commit(t)
    with pytest.raises(OccConflict):
        b.commit(stale)


def test_the_schema_and_indexes_reach_the_other(pair: tuple[Database, Database]) -> None:
    a, b = pair
    t = a.begin()
    for n in (3, 1, 2):
        t.insert("t", {"a": n})
    a.commit(t)
    a.set_schema(define_schema({"t": define_table({"a": v.number()}).index("by_a", ["a"])}))
    eventually(lambda: (ix := b.catalog.index("t", "by_a")) is not None and ix.readable,
               "b to see the index enabled")
    r = b.begin(read_only=True)
    assert [d["a"] for d in b.query(r, "t").with_index("by_a").collect()] == [1, 2, 3]
    assert b.schema is not None and "t" in b.schema.tables
    w = b.begin()
    with pytest.raises(Exception) as e:
        w.insert("t", {"a": "no"})
    assert getattr(e.value, "code", None) == "ValidationError"


def test_increments_from_both_are_serializable(pair: tuple[Database, Database]) -> None:
    a, b = pair
    t = a.begin()
    counter = t.insert("counters", {"n": 0})
    ts = a.commit(t)
    eventually(lambda: b.latest_ts() >= ts, "b to see the counter")
    done: list[int] = []
    lock = threading.Lock()

    def inc(txn_db: Database) -> None:
        def body(txn: object) -> None:
            doc = txn.get(counter)  # type: ignore[attr-defined]
            txn.patch(counter, {"n": doc["n"] + 1})  # type: ignore[attr-defined]

        for _ in range(15):
            _, ts = run_in_transaction(txn_db, body, max_retries=1000)  # type: ignore[arg-type]
            with lock:
                done.append(ts)

    threads = [threading.Thread(target=inc, args=(db,)) for db in (a, b, a, b)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    eventually(lambda: a.latest_ts() >= max(done), "a to publish every increment")
    r = a.begin(read_only=True)
    final = r.get(counter)
    assert final is not None and final["n"] == len(done) == 60
