from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from convection.database import Database, Transaction, run_in_transaction
from convection.database.transaction import SystemView
from convection.errors import DatabaseError, IdError, LimitError, OccConflict, ValidationError
from convection.persistence.sqlite import SqlitePersistence
from convection.schema.builders import v
from convection.schema.schema import define_schema, define_table
from convection.values.model import UNSET, Int64


def insert(db: Database, table: str, doc: dict[str, Any]) -> str:
    txn = db.begin()
    id_ = txn.insert(table, doc)
    db.commit(txn)
    return id_


def test_insert_get_patch_replace_delete(db: Database) -> None:
    id_ = insert(db, "users", {"name": "ada", "age": 36})
    txn = db.begin()
    doc = txn.get(id_)
    assert doc is not None
    assert doc["name"] == "ada" and doc["age"] == 36.0 and type(doc["age"]) is float
    assert doc["_id"] == id_ and isinstance(doc["_creationTime"], float)
    txn.patch(id_, {"age": 37, "email": None})
    assert txn.get(id_) == {**doc, "age": 37.0, "email": None}
    db.commit(txn)

    txn = db.begin()
    txn.patch(id_, {"email": UNSET})
    assert "email" not in (txn.get(id_) or {})
    txn.replace(id_, {"name": "lovelace"})
    got = txn.get(id_)
    assert got is not None and got["name"] == "lovelace" and "age" not in got
    assert got["_creationTime"] == doc["_creationTime"]
    db.commit(txn)

    txn = db.begin()
    txn.delete(id_)
    assert txn.get(id_) is None
    db.commit(txn)
    assert db.begin().get(id_) is None


def test_creation_times_increase_within_a_transaction(db: Database) -> None:
    txn = db.begin()
    ids = [txn.insert("t", {"i": i}) for i in range(5)]
    db.commit(txn)
    docs = [db.begin().get(i) for i in ids]
    times = [d["_creationTime"] for d in docs if d is not None]
    assert times == sorted(times) and len(set(times)) == 5


def test_read_your_writes_through_indexes(db: Database) -> None:
    db.set_schema(define_schema({"msgs": define_table({"ch": v.string(), "n": v.number()}).index("by_ch", ["ch"])}))
    insert(db, "msgs", {"ch": "a", "n": 1})
    insert(db, "msgs", {"ch": "b", "n": 2})
    txn = db.begin()
    new_id = txn.insert("msgs", {"ch": "a", "n": 3})
    got = [d["n"] for d in db.query(txn, "msgs").with_index("by_ch", lambda q: q.eq("ch", "a")).collect()]
    assert got == [1.0, 3.0]
    txn.patch(new_id, {"ch": "b"})
    got = [d["n"] for d in db.query(txn, "msgs").with_index("by_ch", lambda q: q.eq("ch", "b")).collect()]
    assert got == [2.0, 3.0]
    assert [d["n"] for d in db.query(txn, "msgs").order("desc").collect()] == [3.0, 2.0, 1.0]


def test_query_ranges_order_filter_and_terminals(db: Database) -> None:
    db.set_schema(define_schema({"p": define_table({"cat": v.string(), "price": v.number()}).index("by_cat_price", ["cat", "price"])}))
    for cat, price in [("a", 5), ("a", 1), ("a", 3), ("b", 2), ("c", 9)]:
        insert(db, "p", {"cat": cat, "price": price})
    txn = db.begin()

    def prices(q: Any) -> list[float]:
        return [d["price"] for d in q]

    q = lambda: db.query(txn, "p")  # noqa: E731
    assert prices(q().with_index("by_cat_price", lambda r: r.eq("cat", "a")).collect()) == [1, 3, 5]
    assert prices(q().with_index("by_cat_price", lambda r: r.eq("cat", "a").gt("price", 1)).collect()) == [3, 5]
    assert prices(q().with_index("by_cat_price", lambda r: r.eq("cat", "a").gte("price", 1).lt("price", 5)).collect()) == [1, 3]
    assert prices(q().with_index("by_cat_price", lambda r: r.eq("cat", "a").lte("price", 3)).order("desc").collect()) == [3, 1]
    assert prices(q().with_index("by_cat_price", lambda r: r.gt("cat", "a")).collect()) == [2, 9]
    assert prices(q().with_index("by_cat_price").take(2)) == [1, 3]
    assert prices(q().filter(lambda f: f.gt(f.field("price"), 2)).collect()) == [5, 3, 9]
    assert prices(q().filter(lambda f: f.and_(f.eq(f.field("cat"), "a"), f.neq(f.field("price"), 3))).collect()) == [5, 1]
    assert prices(q().filter(lambda f: f.eq(f.mod(f.field("price"), 2.0), 0.0)).collect()) == [2]
    assert (q().with_index("by_cat_price", lambda r: r.eq("cat", "zzz")).first()) is None
    one = q().with_index("by_cat_price", lambda r: r.eq("cat", "b")).unique()
    assert one is not None and one["price"] == 2
    with pytest.raises(DatabaseError) as e:
        q().with_index("by_cat_price", lambda r: r.eq("cat", "a")).unique()
    assert e.value.code == "UniqueQueryMultipleResults"
    assert sum(1 for _ in q()) == 5
    with pytest.raises(DatabaseError) as e:
        q().with_index("by_cat_price", lambda r: r.eq("price", 1))
    assert e.value.code == "InvalidIndexRange"
    with pytest.raises(DatabaseError) as e:
        q().with_index("nope")
    assert e.value.code == "IndexNotFound"
    assert prices(q().take(2.0)) == [5, 1]


def test_schema_validation_names_table_document_and_path(db: Database) -> None:
    db.set_schema(define_schema({"users": define_table({"name": v.string(), "tags": v.array(v.string()), "n": v.int64()})}))
    with pytest.raises(ValidationError) as e:
        insert(db, "users", {"name": "x", "tags": ["a", 3], "n": 1})
    assert e.value.code == "ValidationError"
    assert "users" in str(e.value) and "tags" in str(e.value)
    id_ = insert(db, "users", {"name": "x", "tags": [], "n": 1})
    doc = db.begin().get(id_)
    assert doc is not None and type(doc["n"]) is Int64
    insert(db, "unvalidated_table", {"anything": [1, {"x": b"b"}]})


def test_limits_and_misuse(db: Database) -> None:
    txn = db.begin(read_only=True)
    with pytest.raises(DatabaseError) as e:
        txn.insert("t", {})
    assert e.value.code == "WriteInQuery"
    txn = db.begin()
    with pytest.raises(ValidationError):
        txn.insert("t", {"_secret": 1})
    with pytest.raises(LimitError) as le:
        txn.insert("t", {"big": "x" * (1 << 20)})
    assert le.value.code == "DocumentTooLarge"
    with pytest.raises(IdError):
        txn.get("not-an-id")
    with pytest.raises(DatabaseError) as e:
        txn.insert("_storage", {})
    assert e.value.code == "SystemTable"


def test_insert_refuses_system_fields(db: Database) -> None:
    existing = insert(db, "t", {"n": 1})
    txn = db.begin()
    for field, value in (("_id", existing), ("_creationTime", 1.0)):
        with pytest.raises(ValidationError) as e:
            txn.insert("t", {field: value, "n": 2})
        assert e.value.code == "ValidationError"
        assert f"system field {field!r}" in e.value.message
        assert "_id, _creationTime" in e.value.message
    assert txn.writes == {}


def test_conflicting_commit_raises_occ(db: Database) -> None:
    id_ = insert(db, "c", {"n": 0})
    t1, t2 = db.begin(), db.begin()
    t1.patch(id_, {"n": 1})
    t2.patch(id_, {"n": 2})
    db.commit(t1)
    with pytest.raises(OccConflict):
        db.commit(t2)


def test_phantom_protection_on_range_and_miss(db: Database) -> None:
    db.set_schema(define_schema({"m": define_table({"ch": v.string()}).index("by_ch", ["ch"])}))
    t1 = db.begin()
    assert db.query(t1, "m").with_index("by_ch", lambda q: q.eq("ch", "x")).collect() == []
    t1.insert("log", {"saw": 0})
    insert(db, "m", {"ch": "x"})  # a phantom in t1's read range
    with pytest.raises(OccConflict):
        db.commit(t1)
    # a write outside the consumed range does not conflict
    t2 = db.begin()
    db.query(t2, "m").with_index("by_ch", lambda q: q.eq("ch", "x")).collect()
    t2.insert("log", {"saw": 1})
    insert(db, "m", {"ch": "y"})
    db.commit(t2)


def test_take_records_only_the_consumed_prefix(db: Database) -> None:
    for i in range(5):
        insert(db, "q", {"i": i})
    t = db.begin()
    first_two = db.query(t, "q").take(2)
    assert len(first_two) == 2
    t.insert("out", {})
    insert(db, "q", {"i": 99})  # lands after the consumed prefix in creation order
    db.commit(t)


def test_serializable_money_transfers(db: Database) -> None:
    accounts = [insert(db, "acct", {"bal": 100.0}) for _ in range(5)]
    total = 500.0
    errors: list[BaseException] = []
    done = [0]

    def worker(seed: int) -> None:
        import random

        rng = random.Random(seed)
        for _ in range(25):
            a, b = rng.sample(accounts, 2)
            amount = float(rng.randint(1, 30))

            def transfer(txn: Transaction) -> None:
                da, db_ = txn.get(a), txn.get(b)
                assert da is not None and db_ is not None
                if da["bal"] >= amount:
                    txn.patch(a, {"bal": da["bal"] - amount})
                    txn.patch(b, {"bal": db_["bal"] + amount})

            try:
                run_in_transaction(db, transfer, max_retries=1000, sleep=lambda s: None)
                done[0] += 1
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    txn = db.begin()
    balances = [txn.get(a)["bal"] for a in accounts]  # type: ignore[index]
    assert sum(balances) == total and all(b >= 0 for b in balances)
    assert done[0] == 200


def test_counter_incremented_by_n_transactions_ends_at_n(db: Database) -> None:
    cid = insert(db, "counter", {"n": 0.0})
    successes = [0]
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(30):
            def inc(txn: Transaction) -> None:
                d = txn.get(cid)
                assert d is not None
                txn.patch(cid, {"n": d["n"] + 1})

            try:
                run_in_transaction(db, inc, max_retries=4, sleep=lambda s: None)
            except OccConflict:
                continue
            with lock:
                successes[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = db.begin().get(cid)
    # After its retries a transaction runs in the serialized lane: contention never fails one.
    assert final is not None and final["n"] == successes[0] == 8 * 30


def test_serialized_lane_excludes_other_commits(db: Database) -> None:
    cid = insert(db, "counter", {"n": 0.0})
    inside = threading.Event()
    other_done = threading.Event()

    def other() -> None:
        inside.wait(30)
        run_in_transaction(db, lambda txn: txn.patch(cid, {"n": 100.0}), sleep=lambda s: None)
        other_done.set()

    thread = threading.Thread(target=other)
    thread.start()
    with db.serialized(30):
        txn = db.begin()
        doc = txn.get(cid)
        assert doc is not None
        inside.set()
        # The other thread's commit waits for the lane: it cannot slip in before ours.
        assert not other_done.wait(0.2)
        txn.patch(cid, {"n": doc["n"] + 1})
        db.commit(txn)
    assert other_done.wait(30)
    thread.join()
    assert db.begin().get(cid)["n"] == 100  # type: ignore[index]


def test_serialized_lane_times_out_with_a_code(db: Database) -> None:
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with db.serialized(30):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(30)
    try:
        with pytest.raises(DatabaseError) as info, db.serialized(0.05):
            pass
        assert info.value.code == "MutationTimeout"
    finally:
        release.set()
        thread.join()


def test_snapshot_reads_at_older_ts(db: Database) -> None:
    id_ = insert(db, "s", {"v": 1})
    ts1 = db.latest_ts()
    t = db.begin()
    t.patch(id_, {"v": 2})
    db.commit(t)
    old = db.begin(ts=ts1, read_only=True).get(id_)
    new = db.begin(read_only=True).get(id_)
    assert old is not None and new is not None and old["v"] == 1 and new["v"] == 2
    with pytest.raises(DatabaseError) as e:
        db.begin(ts=db.latest_ts() + 10**12)
    assert e.value.code == "TooEarly"


def test_restart_keeps_data_and_ts_monotonic(db_path: Path) -> None:
    d1 = Database(SqlitePersistence(db_path), secret=b"s")
    id_ = insert(d1, "r", {"x": "y"})
    ts = d1.latest_ts()
    d1.close()
    d2 = Database(SqlitePersistence(db_path), secret=b"s")
    try:
        assert d2.latest_ts() >= ts
        doc = d2.begin().get(id_)
        assert doc is not None and doc["x"] == "y"
        t = d2.begin()
        t.patch(id_, {"x": "z"})
        assert d2.commit(t) > ts
    finally:
        d2.close()


def test_new_index_on_existing_data_is_backfilled_and_removed_index_dropped(db: Database) -> None:
    for i in range(25):
        insert(db, "b", {"k": i % 5, "i": i})
    seen: list[tuple[str, int]] = []
    db.set_schema(define_schema({"b": define_table({"k": v.number(), "i": v.number()}).index("by_k", ["k"])}))
    db.ensure_indexes(progress=lambda name, n: seen.append((name, n)))
    t = db.begin()
    got = db.query(t, "b").with_index("by_k", lambda q: q.eq("k", 3)).collect()
    assert [d["i"] for d in got] == [3, 8, 13, 18, 23]
    t.insert("b", {"k": 3, "i": 99})
    db.commit(t)
    t = db.begin()
    assert len(db.query(t, "b").with_index("by_k", lambda q: q.eq("k", 3)).collect()) == 6
    db.set_schema(define_schema({"b": define_table({"k": v.number(), "i": v.number()})}))
    with pytest.raises(DatabaseError) as e:
        db.query(db.begin(), "b").with_index("by_k").collect()
    assert e.value.code == "IndexNotFound"


def test_retention_prunes_old_revisions_but_keeps_the_snapshot_window(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    from convection import knobs

    id_ = insert(db, "r", {"v": 0})
    for i in range(1, 6):
        t = db.begin()
        t.patch(id_, {"v": i})
        db.commit(t)
    ts_recent = db.latest_ts()
    # With the windows at zero, every superseded revision is prunable.
    monkeypatch.setattr(knobs, "SNAPSHOT_RETENTION_MS", 0)
    monkeypatch.setattr(knobs, "DOCUMENT_RETENTION_MS", 0)
    assert db.run_maintenance() > 0
    doc = db.begin(read_only=True, ts=ts_recent).get(id_)
    assert doc is not None and doc["v"] == 5


def test_ranges_with_nul_bytes_in_strings(db: Database) -> None:
    db.set_schema(define_schema({"s": define_table({"k": v.string()}).index("by_k", ["k"])}))
    for k in ["", "\x00abc", "a", "a\x00", "b"]:
        insert(db, "s", {"k": k})
    t = db.begin()

    def ks(fn: Any) -> list[str]:
        return [d["k"] for d in db.query(t, "s").with_index("by_k", fn).collect()]

    assert ks(lambda q: q.eq("k", "")) == [""]
    assert ks(lambda q: q.gt("k", "a")) == ["a\x00", "b"]
    assert ks(lambda q: q.lte("k", "a")) == ["", "\x00abc", "a"]
    assert ks(lambda q: q.eq("k", "a")) == ["a"]


def test_system_tables_are_written_only_through_a_system_view(db: Database) -> None:
    txn = db.begin()
    with pytest.raises(DatabaseError) as info:
        txn.insert("_things", {"a": 1})
    assert info.value.code == "SystemTable"
    system = SystemView(txn)
    sys_id = system.insert("_things", {"a": 1})
    user_id = txn.insert("things", {"a": 1})
    with pytest.raises(DatabaseError) as info:
        system.insert("things", {"a": 2})  # the view is for system tables only
    assert info.value.code == "InvalidTable"
    db.commit(txn)

    txn = db.begin()
    for op in (lambda: txn.patch(sys_id, {"a": 2}), lambda: txn.replace(sys_id, {"a": 2}), lambda: txn.delete(sys_id)):
        with pytest.raises(DatabaseError) as info:
            op()
        assert info.value.code == "SystemTable"
    with pytest.raises(DatabaseError) as info:
        SystemView(txn).patch(user_id, {"a": 2})
    assert info.value.code == "InvalidTable"
    system = SystemView(txn)
    system.patch(sys_id, {"a": 3})
    assert txn.get(sys_id) is not None and system.get(sys_id) == txn.get(sys_id)
    db.commit(txn)
    txn = db.begin()
    SystemView(txn).delete(sys_id)
    db.commit(txn)
    assert db.begin().get(sys_id) is None


def test_retry_loop_backs_off_retries_on_a_fresh_snapshot_and_gives_up(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """The one OCC retry loop (database/retry.py): every conflict is followed by a full-jitter
    sleep below the capped exponential bound and a retry that sees the conflicting commit;
    after ``max_retries`` retries the conflict is raised; ``Discard`` commits nothing."""
    from convection import knobs
    from convection.database.retry import Discard

    monkeypatch.setattr(knobs, "MUTATION_OCC_BACKOFF_INITIAL_MS", 10)
    monkeypatch.setattr(knobs, "MUTATION_OCC_BACKOFF_MAX_MS", 25)
    cid = insert(db, "counter", {"n": 0.0})
    seen: list[float] = []
    sleeps: list[float] = []
    conflicts: list[int] = []

    def always_loses(txn: Transaction) -> None:
        d = txn.get(cid)
        assert d is not None
        seen.append(d["n"])
        other = db.begin()  # a concurrent writer commits first, every time
        other.patch(cid, {"n": d["n"] + 1})
        db.commit(other)
        txn.patch(cid, {"n": -1.0})

    with pytest.raises(OccConflict):
        run_in_transaction(
            db, always_loses, max_retries=3, sleep=sleeps.append,
            on_conflict=lambda n, exc: conflicts.append(n), serialize=False,
        )
    assert seen == [0.0, 1.0, 2.0, 3.0]  # each retry read the commit it lost to
    assert conflicts == [0, 1, 2]
    assert len(sleeps) == 3 and all(0 <= s < cap / 1000 for s, cap in zip(sleeps, [10, 20, 25], strict=True))

    # With the serialized lane (the default), attempts after the retries run holding the commit
    # order; a writer the lane does not hold (here the holder's own thread, as another process
    # sharing the store would be) still wins: retried in the lane as often again, then raised.
    seen.clear(), sleeps.clear(), conflicts.clear()
    monkeypatch.setattr(knobs, "MUTATION_LANE_RETRY_MS", 0)
    with pytest.raises(OccConflict):
        run_in_transaction(
            db, always_loses, max_retries=1, sleep=sleeps.append,
            on_conflict=lambda n, exc: conflicts.append(n),
        )
    assert seen == [4.0, 5.0, 6.0, 7.0] and conflicts == [0, 1, 2] and len(sleeps) == 1
    assert db.committer.hold_order(1)  # the lane was released
    db.committer.release_order()

    # With time left in the lane (MUTATION_LANE_RETRY_MS), a writer the lane does not hold
    # that wins 6 more times does not fail the call: it keeps retrying, with short backoffs.
    monkeypatch.setattr(knobs, "MUTATION_LANE_RETRY_MS", 60_000)
    seen.clear(), sleeps.clear(), conflicts.clear()
    losses = iter(range(9))

    def loses_nine_times(txn: Transaction) -> str:
        d = txn.get(cid)
        assert d is not None
        seen.append(d["n"])
        if next(losses, None) is not None:
            other = db.begin()
            other.patch(cid, {"n": d["n"] + 1})
            db.commit(other)
        txn.patch(cid, {"n": d["n"] + 100})
        return "won"

    result, ts = run_in_transaction(
        db, loses_nine_times, max_retries=1, sleep=sleeps.append,
        on_conflict=lambda n, exc: conflicts.append(n),
    )
    assert result == "won" and ts is not None
    assert conflicts == list(range(9)) and seen == [8.0 + i for i in range(10)]
    assert all(0 <= s < 25 / 1000 for s in sleeps)
    assert db.committer.hold_order(1)
    db.committer.release_order()

    def discarded(txn: Transaction) -> str | Discard[str]:
        txn.patch(cid, {"n": 100.0})
        return Discard("kept out")

    assert run_in_transaction(db, discarded) == ("kept out", None)
    final = db.begin().get(cid)
    assert final is not None and final["n"] == 117.0  # 8 + 9 lost races + our 100
