from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convection.database import Database
from convection.indexing.keys import encode_key, prefix_end
from convection.persistence.memory import MemoryPersistence
from convection.schema.builders import v
from convection.schema.schema import define_schema, define_table

SCHEMA = define_schema({"t": define_table({"a": v.number(), "b": v.number()}).index("by_ab", ["a", "b"])})


def fresh() -> Database:
    db = Database(MemoryPersistence(), secret=b"x")
    db.set_schema(SCHEMA)
    return db


def test_invalidated_by_overlapping_write_only() -> None:
    db = fresh()
    try:
        t = db.begin()
        t.insert("t", {"a": 1, "b": 1})
        db.commit(t)
        q = db.begin(read_only=True)
        db.query(q, "t").with_index("by_ab", lambda r: r.eq("a", 1)).collect()
        sub = db.subscribe(q.reads.freeze(), q.begin_ts)
        fired: list[bool] = []
        sub.set_callback(lambda: fired.append(True))
        t = db.begin()
        t.insert("t", {"a": 2, "b": 0})
        db.commit(t)
        assert sub.invalidated_at is None and not fired
        t = db.begin()
        t.insert("t", {"a": 1, "b": 5})
        ts = db.commit(t)
        assert sub.invalidated_at == ts and fired == [True]
        sub.close()
    finally:
        db.close()


def test_subscription_born_invalid_when_a_write_landed_after_its_ts() -> None:
    db = fresh()
    try:
        q = db.begin(read_only=True)
        db.query(q, "t").collect()
        t = db.begin()
        t.insert("t", {"a": 1, "b": 1})
        ts = db.commit(t)
        sub = db.subscribe(q.reads.freeze(), q.begin_ts)
        assert sub.invalidated_at == ts
    finally:
        db.close()


docs = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), max_size=8)
query_shape = st.tuples(
    st.integers(0, 4),  # a == x
    st.sampled_from(["eq", "eq_gt", "all"]),
    st.integers(0, 4),  # bound on b
    st.integers(1, 5),  # take n
    st.booleans(),  # desc
)
writes = st.lists(
    st.tuples(st.sampled_from(["insert", "patch", "delete"]), st.integers(0, 7), st.integers(0, 4), st.integers(0, 4)),
    min_size=1,
    max_size=3,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(docs, query_shape, writes)
def test_invalidated_iff_a_committed_write_overlaps_the_read_set(
    initial: list[tuple[int, int]], shape: tuple[int, str, int, int, bool], ops: list[tuple[str, int, int, int]]
) -> None:
    db = fresh()
    try:
        t = db.begin()
        ids = [t.insert("t", {"a": a, "b": b}) for a, b in initial]
        db.commit(t)
        x, kind, bound, n, desc = shape

        def rng(r: Any) -> Any:
            if kind == "eq":
                return r.eq("a", x)
            if kind == "eq_gt":
                return r.eq("a", x).gt("b", bound)
            return r

        q = db.begin(read_only=True)
        results = db.query(q, "t").with_index("by_ab", rng).order("desc" if desc else "asc").take(n)
        sub = db.subscribe(q.reads.freeze(), q.begin_ts)

        # The read set by definition: the range, trimmed at the n-th result when not exhausted.
        def key(d: dict[str, Any]) -> bytes:
            return encode_key([d["a"], d["b"], d["_creationTime"], d["_id"]])

        if kind == "eq":
            lo, hi = encode_key([float(x)]), prefix_end(encode_key([float(x)]))
        elif kind == "eq_gt":
            lo = prefix_end(encode_key([float(x), float(bound)])) or b""
            hi = prefix_end(encode_key([float(x)]))
        else:
            lo, hi = b"", None
        if len(results) == n:
            if desc:
                lo = key(results[-1])
            else:
                hi = key(results[-1]) + b"\x00"

        def inside(k: bytes) -> bool:
            return lo <= k and (hi is None or k < hi)

        t = db.begin()
        for op, i, a, b in ops:
            if op == "insert" or not ids:
                ids.append(t.insert("t", {"a": a, "b": b}))
                continue
            target = ids[i % len(ids)]
            if t.get(target) is None:
                continue
            if op == "patch":
                t.patch(target, {"a": a, "b": b})
            else:
                t.delete(target)
        touched = [d for w in t.writes.values() for d in (w.old, w.new) if d is not None]
        db.commit(t)
        expected = any(inside(key(d)) for d in touched)
        assert (sub.invalidated_at is not None) == expected
        sub.close()
    finally:
        db.close()
