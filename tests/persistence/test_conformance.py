"""The Persistence conformance suite: every implementation, the same behaviour.

Each test gets a fresh store from every backend of ``BACKEND_NAMES``: SQLite, memory and
PostgreSQL (a schema of its own on the session's throwaway server, ``postgres_url`` in
tests/conftest.py; skipped when PostgreSQL is not installed). ``MemoryPersistence`` is also the reference model: the
stateful hypothesis test runs random histories against it and every other backend side by side.
"""

from __future__ import annotations

import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from convection.errors import StorageFailure
from convection.persistence import (
    DocumentRevision,
    IndexEntry,
    MemoryPersistence,
    Persistence,
    SqlitePersistence,
)
from convection.persistence.postgres import PostgresPersistence


@dataclass(frozen=True)
class Backend:
    name: str
    # Open the store kept under ``where`` (a fresh, empty directory for a new store).
    open: Callable[[Path], Persistence]
    # Whether closing and opening again with the same ``where`` keeps the data.
    durable: bool


BACKENDS = [
    Backend("sqlite", lambda where: SqlitePersistence(where / "db.sqlite3"), durable=True),
    Backend("memory", lambda where: MemoryPersistence(), durable=False),
]
# Backends that need a server, resolved per test (skipped when the server is unavailable).
SERVER_BACKENDS = ["postgres"]
BACKEND_NAMES = [b.name for b in BACKENDS] + SERVER_BACKENDS


def postgres_backend(url: str) -> Backend:
    """A store per ``where``: a schema of its own on the session's server, its name kept in a
    file under ``where`` so that reopening finds the same store."""

    def open_store(where: Path) -> Persistence:
        marker = where / "postgres-schema"
        if not marker.exists():
            marker.write_text("t_" + uuid.uuid4().hex[:16])
        return PostgresPersistence(url, schema=marker.read_text())

    return Backend("postgres", open_store, durable=True)


def resolve_backend(name: str, request: pytest.FixtureRequest) -> Backend:
    if name == "postgres":
        return postgres_backend(request.getfixturevalue("postgres_url"))
    return next(b for b in BACKENDS if b.name == name)


@pytest.fixture(params=BACKEND_NAMES)
def backend(request: pytest.FixtureRequest) -> Backend:
    return resolve_backend(request.param, request)


@pytest.fixture
def store(backend: Backend, tmp_path: Path) -> Iterator[Persistence]:
    p = backend.open(tmp_path)
    yield p
    p.close()


Doc = DocumentRevision
Entry = IndexEntry
T = 1  # a table id
BY_ID = 10  # an index id


def doc(ts: int, id: bytes, value: str | None, prev_ts: int | None = None, table: int = T) -> Doc:
    return Doc(ts, table, id, None if value is None else value.encode(), prev_ts)


def scan(
    p: Persistence,
    index_id: int,
    start: bytes,
    end: bytes | None,
    ts: int,
    *,
    reverse: bool = False,
    batch_size: int = 128,
) -> list[tuple[bytes, bytes | None]]:
    """(key, value) pairs of a scan, for compact assertions."""
    return [
        (key, rev.value)
        for key, rev in p.index_scan(
            index_id, start, end, ts, reverse=reverse, batch_size=batch_size
        )
    ]


# --- round trips and snapshot reads ------------------------------------------------------


def test_empty_store(store: Persistence) -> None:
    assert store.max_ts() == 0
    assert store.get_document(T, b"a", 100) is None
    assert list(store.index_scan(BY_ID, b"", None, 100)) == []
    assert list(store.document_log(0, 100)) == []
    assert list(store.table_documents(T, 100)) == []
    assert store.get_global("missing") is None


def test_write_read_round_trip(store: Persistence) -> None:
    a = Doc(5, T, b"\x00a\xff", b'{"x":1}')
    store.write([a], [Entry(BY_ID, b"key-a", 5, T, b"\x00a\xff")])
    got = store.get_document(T, b"\x00a\xff", 5)
    assert got == a and isinstance(got.value, bytes)
    assert list(store.index_scan(BY_ID, b"", None, 5)) == [(b"key-a", a)]
    assert store.max_ts() == 5


def test_get_document_is_newest_revision_at_or_before_read_ts(store: Persistence) -> None:
    store.write([doc(10, b"a", "v1")], [])
    store.write([doc(20, b"a", "v2", prev_ts=10)], [])
    store.write([doc(30, b"a", None, prev_ts=20)], [])
    store.write([doc(40, b"a", "v4", prev_ts=30)], [])
    expected: dict[int, Doc | None] = {
        9: None,
        10: doc(10, b"a", "v1"),
        19: doc(10, b"a", "v1"),
        20: doc(20, b"a", "v2", 20 - 10),
        29: doc(20, b"a", "v2", 10),
        30: doc(30, b"a", None, 20),
        39: doc(30, b"a", None, 20),
        40: doc(40, b"a", "v4", 30),
        10**18: doc(40, b"a", "v4", 30),
    }
    for ts, want in expected.items():
        assert store.get_document(T, b"a", ts) == want, ts
    deleted = store.get_document(T, b"a", 35)
    assert deleted is not None and deleted.deleted
    assert store.get_document(T + 1, b"a", 40) is None  # same id, other table


def _history(p: Persistence) -> None:
    """Key k1 -> doc a; a moves to k3; b appears at k2 and is deleted; c at k4 stays."""
    p.write(
        [doc(1, b"a", "a1"), doc(1, b"c", "c1")],
        [Entry(BY_ID, b"k1", 1, T, b"a"), Entry(BY_ID, b"k4", 1, T, b"c")],
    )
    p.write([doc(2, b"b", "b2")], [Entry(BY_ID, b"k2", 2, T, b"b")])
    p.write(
        [doc(3, b"a", "a3", prev_ts=1)],
        [Entry(BY_ID, b"k1", 3, T, None), Entry(BY_ID, b"k3", 3, T, b"a")],
    )
    p.write([doc(4, b"b", None, prev_ts=2)], [Entry(BY_ID, b"k2", 4, T, None)])
    p.write([doc(5, b"c", "c5", prev_ts=1)], [Entry(BY_ID, b"k4", 5, T, b"c")])


HISTORY_SCANS: dict[int, list[tuple[bytes, bytes | None]]] = {
    0: [],
    1: [(b"k1", b"a1"), (b"k4", b"c1")],
    2: [(b"k1", b"a1"), (b"k2", b"b2"), (b"k4", b"c1")],
    3: [(b"k2", b"b2"), (b"k3", b"a3"), (b"k4", b"c1")],
    4: [(b"k3", b"a3"), (b"k4", b"c1")],
    5: [(b"k3", b"a3"), (b"k4", b"c5")],
    6: [(b"k3", b"a3"), (b"k4", b"c5")],
}


def test_index_scan_snapshot_at_every_ts(store: Persistence) -> None:
    _history(store)
    for ts, want in HISTORY_SCANS.items():
        assert scan(store, BY_ID, b"", None, ts) == want, ts
        assert scan(store, BY_ID, b"", None, ts, reverse=True) == want[::-1], ts
        for batch_size in (1, 2):
            assert scan(store, BY_ID, b"", None, ts, batch_size=batch_size) == want
            assert (
                scan(store, BY_ID, b"", None, ts, reverse=True, batch_size=batch_size)
                == want[::-1]
            )


def test_index_scan_yields_the_revision_pointed_to(store: Persistence) -> None:
    _history(store)
    [(key, rev)] = list(store.index_scan(BY_ID, b"k3", b"k4", 10))
    assert key == b"k3" and rev == doc(3, b"a", "a3", prev_ts=1)


def test_index_scan_bounds(store: Persistence) -> None:
    _history(store)
    assert scan(store, BY_ID, b"k2", b"k4", 3) == [(b"k2", b"b2"), (b"k3", b"a3")]
    assert scan(store, BY_ID, b"k2", b"k4", 3, reverse=True) == [(b"k3", b"a3"), (b"k2", b"b2")]
    assert scan(store, BY_ID, b"k2\x00", b"k4", 3) == [(b"k3", b"a3")]  # start inclusive
    assert scan(store, BY_ID, b"k2", b"k3", 3) == [(b"k2", b"b2")]  # end exclusive
    assert scan(store, BY_ID, b"k3", None, 3) == [(b"k3", b"a3"), (b"k4", b"c1")]
    assert scan(store, BY_ID, b"k3", None, 3, reverse=True) == [(b"k4", b"c1"), (b"k3", b"a3")]
    assert scan(store, BY_ID, b"k3", b"k3", 3) == []  # empty range
    assert scan(store, BY_ID, b"k4", b"k1", 3) == []  # inverted range
    assert scan(store, BY_ID, b"z", None, 3) == []
    assert scan(store, BY_ID + 1, b"", None, 3) == []  # other index


def test_index_scan_keys_sharing_prefixes(store: Persistence) -> None:
    keys = [b"", b"\x00", b"\x00\x00", b"a", b"a\x00", b"a\x00\x01", b"a\x01", b"ab", b"\xff"]
    for i, key in enumerate(keys):
        ts = i + 1
        store.write([doc(ts, bytes([i]), f"v{i}")], [Entry(BY_ID, key, ts, T, bytes([i]))])

    def keys_of(start: bytes, end: bytes | None, reverse: bool = False, bs: int = 2) -> list[bytes]:
        return [k for k, _ in store.index_scan(BY_ID, start, end, 99, reverse=reverse, batch_size=bs)]

    assert keys_of(b"", None) == keys
    assert keys_of(b"", None, reverse=True) == keys[::-1]
    assert keys_of(b"a", b"a\x01") == [b"a", b"a\x00", b"a\x00\x01"]
    assert keys_of(b"a", b"a\x01", reverse=True) == [b"a\x00\x01", b"a\x00", b"a"]
    assert keys_of(b"a\x00", b"ab") == [b"a\x00", b"a\x00\x01", b"a\x01"]
    assert keys_of(b"\x00", b"a") == [b"\x00", b"\x00\x00"]
    assert keys_of(b"", b"\x00", reverse=True) == [b""]


def test_index_scan_batches_across_boundaries(store: Persistence) -> None:
    # 7 live keys interleaved with deleted and superseded ones, batch_size=2.
    ts = 0
    for i in range(7):
        ts += 1
        live, dead = b"k%d" % i, b"k%d-dead" % i
        store.write(
            [doc(ts, live, f"v{i}"), doc(ts, dead, "x")],
            [Entry(BY_ID, live, ts, T, live), Entry(BY_ID, dead, ts, T, dead)],
        )
    for i in range(7):
        ts += 1
        live, dead = b"k%d" % i, b"k%d-dead" % i
        store.write(
            [doc(ts, live, f"w{i}", prev_ts=i + 1), doc(ts, dead, None, prev_ts=i + 1)],
            [Entry(BY_ID, live, ts, T, live), Entry(BY_ID, dead, ts, T, None)],
        )
    want = [(b"k%d" % i, b"w%d" % i) for i in range(7)]
    for batch_size in (1, 2, 3, 7, 8, 128):
        assert scan(store, BY_ID, b"", None, ts, batch_size=batch_size) == want
        assert scan(store, BY_ID, b"", None, ts, reverse=True, batch_size=batch_size) == want[::-1]
        assert scan(store, BY_ID, b"k1", b"k5", ts, batch_size=batch_size) == want[1:5]
        assert (
            scan(store, BY_ID, b"k1", b"k5", ts, reverse=True, batch_size=batch_size)
            == want[1:5][::-1]
        )
    # At ts 7 every key, dead ones included, is live with its first value.
    at7 = scan(store, BY_ID, b"", None, 7, batch_size=2)
    assert len(at7) == 14 and at7[0] == (b"k0", b"v0")


def test_index_scan_is_lazy_and_stops_early(store: Persistence) -> None:
    store.write(
        [doc(1, b"%03d" % i, "v") for i in range(50)],
        [Entry(BY_ID, b"%03d" % i, 1, T, b"%03d" % i) for i in range(50)],
    )
    it = store.index_scan(BY_ID, b"", None, 1, batch_size=4)
    assert [k for k, _ in islice(it, 3)] == [b"000", b"001", b"002"]
    close = getattr(it, "close", None)
    if close is not None:
        close()
    # Abandoned scans do not disturb later reads or writes.
    abandoned = store.index_scan(BY_ID, b"", None, 1, reverse=True, batch_size=4)
    assert next(abandoned)[0] == b"049"
    store.write([doc(2, b"new", "v")], [Entry(BY_ID, b"new", 2, T, b"new")])
    assert scan(store, BY_ID, b"new", None, 2) == [(b"new", b"v")]
    del abandoned


def test_scans_can_interleave_on_one_thread(store: Persistence) -> None:
    store.write(
        [doc(1, b"%d" % i, f"v{i}") for i in range(10)],
        [Entry(BY_ID, b"%d" % i, 1, T, b"%d" % i) for i in range(10)],
    )
    forward = store.index_scan(BY_ID, b"", None, 1, batch_size=2)
    backward = store.index_scan(BY_ID, b"", None, 1, reverse=True, batch_size=2)
    pairs = [(f[0], b[0]) for f, b in zip(forward, backward, strict=True)]
    assert pairs[0] == (b"0", b"9") and pairs[-1] == (b"9", b"0")
    # A scan in progress while writes land and point reads happen on the same thread.
    it = store.index_scan(BY_ID, b"", None, 2, batch_size=1)
    assert next(it)[0] == b"0"
    store.write([doc(2, b"x", "vx")], [Entry(BY_ID, b"x", 2, T, b"x")])
    assert store.get_document(T, b"x", 2) == doc(2, b"x", "vx")
    assert [k for k, _ in it][-1] in (b"9", b"x")


def test_max_ts(store: Persistence) -> None:
    store.write([doc(3, b"a", "v")], [])
    assert store.max_ts() == 3
    store.write([doc(7, b"b", "v"), doc(7, b"c", "v"), doc(9, b"d", "v")], [])
    assert store.max_ts() == 9
    store.write([], [Entry(BY_ID, b"k", 9, T, b"d")])  # index-only writes do not count
    assert store.max_ts() == 9
    store.write([doc(12, b"d", None, prev_ts=9)], [])
    assert store.max_ts() == 12


def test_globals(store: Persistence) -> None:
    value = {"tables": [1, 2], "name": "é", "nested": {"n": None, "f": 1.5, "b": True}}
    store.set_global("registry", value)
    assert store.get_global("registry") == value
    store.set_global("registry", 42)
    assert store.get_global("registry") == 42
    store.set_global("other", [])
    assert store.get_global("other") == [] and store.get_global("registry") == 42
    returned = store.get_global("other")
    returned.append(1)  # the caller's copy, not the stored value
    assert store.get_global("other") == []


def test_write_many_commits_in_one_call(store: Persistence) -> None:
    documents = [doc(ts, b"a", f"v{ts}", prev_ts=ts - 1 if ts > 1 else None) for ts in range(1, 6)]
    entries = [Entry(BY_ID, b"a", ts, T, b"a") for ts in range(1, 6)]
    store.write(documents, entries)
    assert store.max_ts() == 5
    for ts in range(1, 6):
        assert scan(store, BY_ID, b"", None, ts) == [(b"a", b"v%d" % ts)]


def test_duplicate_write_is_a_storage_failure(store: Persistence) -> None:
    store.write([doc(1, b"a", "v")], [Entry(BY_ID, b"k", 1, T, b"a")])
    with pytest.raises(StorageFailure) as info:
        store.write([doc(1, b"a", "again")], [])
    assert info.value.code == "StorageFailure"
    with pytest.raises(StorageFailure):
        store.write([doc(2, b"b", "v")], [Entry(BY_ID, b"k", 1, T, b"b")])
    # Atomic: the failed write left nothing behind.
    assert store.get_document(T, b"b", 5) is None
    assert store.get_document(T, b"a", 5) == doc(1, b"a", "v")
    assert store.max_ts() == 1


def test_index_backfill_writes_entries_at_old_ts(store: Persistence) -> None:
    # A new index is backfilled from table_documents: its entries carry the documents' ts.
    store.write([doc(1, b"a", "va"), doc(2, b"b", "vb")], [])
    store.write([doc(3, b"c", "vc")], [])
    live = sorted(store.table_documents(T, 3), key=lambda r: r.id)
    store.write([], [Entry(BY_ID + 1, b"i" + r.id, r.ts, T, r.id) for r in live])
    assert scan(store, BY_ID + 1, b"", None, 3) == [(b"ia", b"va"), (b"ib", b"vb"), (b"ic", b"vc")]
    assert scan(store, BY_ID + 1, b"", None, 1) == [(b"ia", b"va")]


# --- the document log ---------------------------------------------------------------------


def test_document_log_ranges_and_table_filter(store: Persistence) -> None:
    store.write([doc(1, b"b", "t1b"), doc(1, b"a", "t1a"), doc(1, b"a", "t2a", table=2)], [])
    store.write([doc(2, b"a", "t1a2", prev_ts=1)], [])
    store.write([doc(4, b"c", "t2c", table=2)], [])
    store.write([doc(5, b"a", None, prev_ts=2)], [])

    def log(after: int, upto: int, table: int | None = None) -> list[tuple[int, int, bytes]]:
        return [(r.ts, r.table, r.id) for r in store.document_log(after, upto, table=table)]

    everything = [(1, 1, b"a"), (1, 1, b"b"), (1, 2, b"a"), (2, 1, b"a"), (4, 2, b"c"), (5, 1, b"a")]
    assert log(0, 5) == everything
    assert log(0, 100) == everything
    assert log(1, 4) == [(2, 1, b"a"), (4, 2, b"c")]  # after exclusive, up_to inclusive
    assert log(2, 3) == []
    assert log(5, 5) == [] and log(4, 1) == []
    assert log(0, 5, table=2) == [(1, 2, b"a"), (4, 2, b"c")]
    assert log(0, 5, table=1) == [(1, 1, b"a"), (1, 1, b"b"), (2, 1, b"a"), (5, 1, b"a")]
    assert log(0, 5, table=3) == []
    revisions = list(store.document_log(1, 5, table=1))
    assert revisions == [doc(2, b"a", "t1a2", prev_ts=1), doc(5, b"a", None, prev_ts=2)]
    assert revisions[1].deleted


def test_table_documents(store: Persistence) -> None:
    store.write([doc(1, b"a", "a1"), doc(1, b"b", "b1"), doc(1, b"x", "other", table=2)], [])
    store.write([doc(2, b"a", "a2", prev_ts=1), doc(2, b"c", "c2")], [])
    store.write([doc(3, b"b", None, prev_ts=1)], [])

    def live(ts: int, table: int = T) -> list[Doc]:
        return sorted(store.table_documents(table, ts), key=lambda r: r.id)

    assert live(0) == []
    assert live(1) == [doc(1, b"a", "a1"), doc(1, b"b", "b1")]
    assert live(2) == [doc(2, b"a", "a2", prev_ts=1), doc(1, b"b", "b1"), doc(2, b"c", "c2")]
    assert live(3) == [doc(2, b"a", "a2", prev_ts=1), doc(2, b"c", "c2")]
    assert live(3, table=2) == [doc(1, b"x", "other", table=2)]


def test_delete_index(store: Persistence) -> None:
    _history(store)
    store.write([], [Entry(BY_ID + 1, b"k3", 3, T, b"a")])
    store.delete_index(BY_ID)
    assert scan(store, BY_ID, b"", None, 10) == []
    assert scan(store, BY_ID + 1, b"", None, 10) == [(b"k3", b"a3")]
    assert store.get_document(T, b"a", 10) == doc(3, b"a", "a3", prev_ts=1)
    store.delete_index(12345)  # unknown: nothing to do


# --- retention ------------------------------------------------------------------------------


def _observe(p: Persistence, ts: int) -> dict[str, Any]:
    """Everything a reader at ``ts`` can see."""
    return {
        "scan": scan(p, BY_ID, b"", None, ts),
        "docs": {
            id: (None if (r := p.get_document(T, id, ts)) is None or r.deleted else r.value)
            for id in (b"a", b"b", b"c")
        },
        "table": sorted((r.id, r.value) for r in p.table_documents(T, ts)),
    }


def test_prune_keeps_reads_at_or_after_the_bounds(store: Persistence) -> None:
    _history(store)
    before = {ts: _observe(store, ts) for ts in range(8)}
    removed = store.prune(index_before_ts=4, documents_before_ts=3)
    # Index: k1@1 (superseded at 3), k1@3 (tombstone), k2@2 (superseded at 4), k2@4 (tombstone).
    # Documents: a@1 (superseded at 3).
    assert removed == 5
    for ts in range(4, 8):
        assert _observe(store, ts) == before[ts], ts
    assert scan(store, BY_ID, b"", None, 2) == [(b"k4", b"c1")]  # older snapshots lose rows
    assert store.get_document(T, b"a", 2) is None
    assert [(r.ts, r.id) for r in store.document_log(0, 10)] == [
        (1, b"c"), (2, b"b"), (3, b"a"), (4, b"b"), (5, b"c"),
    ]
    assert store.prune(4, 3) == 0  # idempotent
    # Index: k4@1 (superseded at 5). Documents: c@1 and b@2 (superseded), b@4 (deletion).
    assert store.prune(10, 10) == 4
    for ts in range(5, 8):
        assert _observe(store, ts) == before[ts], ts
    assert [(r.ts, r.id) for r in store.document_log(0, 10)] == [(3, b"a"), (5, b"c")]
    assert store.max_ts() == 5


def test_prune_never_lowers_max_ts(store: Persistence) -> None:
    store.write([doc(1, b"a", "v")], [])
    store.write([doc(2, b"a", None, prev_ts=1)], [])
    assert store.prune(100, 100) == 1  # a@1 superseded; the deletion at max_ts stays
    assert store.max_ts() == 2
    assert store.get_document(T, b"a", 5) == doc(2, b"a", None, prev_ts=1)
    store.write([doc(3, b"b", "v")], [])
    assert store.prune(100, 100) == 1  # now the deletion at 2 can go
    assert store.get_document(T, b"a", 5) is None
    assert store.max_ts() == 3


# --- lifecycle ------------------------------------------------------------------------------


def test_checkpoint_is_safe_any_time(store: Persistence) -> None:
    store.checkpoint()
    _history(store)
    it = store.index_scan(BY_ID, b"", None, 5, batch_size=1)
    next(it)
    store.prune(5, 5)
    store.checkpoint()  # with a scan in flight
    assert [k for k, _ in it] == [b"k4"]
    store.checkpoint()
    assert scan(store, BY_ID, b"", None, 5) == HISTORY_SCANS[5]


def test_closed_store_refuses_calls(backend: Backend, tmp_path: Path) -> None:
    p = backend.open(tmp_path)
    p.close()
    p.close()  # idempotent
    for call in (
        lambda: p.max_ts(),
        lambda: p.get_document(T, b"a", 1),
        lambda: list(p.index_scan(BY_ID, b"", None, 1)),
        lambda: p.write([doc(1, b"a", "v")], []),
        lambda: p.set_global("k", 1),
    ):
        with pytest.raises(StorageFailure):
            call()


def test_reopen_keeps_everything(backend: Backend, tmp_path: Path) -> None:
    if not backend.durable:
        pytest.skip(f"{backend.name} is not durable")
    p = backend.open(tmp_path)
    _history(p)
    p.set_global("clock", {"floor": 5})
    before = {ts: _observe(p, ts) for ts in range(7)}
    p.checkpoint()
    p.close()
    q = backend.open(tmp_path)
    try:
        assert q.max_ts() == 5
        assert q.get_global("clock") == {"floor": 5}
        assert {ts: _observe(q, ts) for ts in range(7)} == before
        q.write([doc(6, b"d", "d6")], [Entry(BY_ID, b"k5", 6, T, b"d")])
        assert q.max_ts() == 6
        assert q.prune(5, 5) > 0
    finally:
        q.close()
    r = backend.open(tmp_path)
    try:
        assert r.max_ts() == 6
        assert scan(r, BY_ID, b"", None, 6) == [*HISTORY_SCANS[5], (b"k5", b"d6")]
    finally:
        r.close()


# --- concurrency ----------------------------------------------------------------------------


def test_commit_sessions_of_two_stores_take_turns(backend: Backend, tmp_path: Path) -> None:
    """Two handles on one store (two processes, or two nodes on one database) commit through
    the commit lock in turn: a session sees every commit made before it took the lock, and a
    second session waits while the first holds it."""
    import threading

    from convection.persistence.base import CommitEntry, decode_written_keys, encode_written_keys

    if not backend.durable:
        pytest.skip(f"{backend.name} is one process's")
    a = backend.open(tmp_path)
    b = backend.open(tmp_path)
    try:
        keys = {5: [b"k1", b""], -3: [b"x" * 3000]}
        assert decode_written_keys(encode_written_keys(keys)) == keys
        with a.commit_session() as s:
            assert s.commits_after(0) == []
            s.write([doc(1, b"a", "v1")], [Entry(BY_ID, b"ka", 1, T, b"a")],
                    [CommitEntry(1, encode_written_keys(keys))])
        assert [(c.ts, decode_written_keys(c.keys)) for c in b.commits_after(0)] == [(1, keys)]
        assert b.others_may_have_committed()
        order: list[str] = []
        inside = threading.Event()

        def second() -> None:
            inside.wait(10)
            with b.commit_session() as s:
                order.append("b")
                assert [c.ts for c in s.commits_after(1)] == [2]
                s.write([doc(3, b"c", "v3")], [], [CommitEntry(3, b"")])

        t = threading.Thread(target=second)
        t.start()
        with a.commit_session() as s:
            inside.set()
            t.join(0.3)  # b cannot get in while a holds the lock
            order.append("a")
            s.write([doc(2, b"b", "v2")], [], [CommitEntry(2, b"")])
        t.join(30)
        assert order == ["a", "b"]
        assert [c.ts for c in a.commits_after(0)] == [1, 2, 3]
        assert a.max_ts() == 3 and b.max_ts() == 3
        # a session that fails writes nothing
        with pytest.raises(RuntimeError), a.commit_session() as s:
            s.write([doc(4, b"d", "v4")], [], [CommitEntry(4, b"")])
            raise RuntimeError("boom")
        assert [c.ts for c in b.commits_after(3)] == [] and b.get_document(T, b"d", 9) is None
    finally:
        b.close()
        a.close()


def test_concurrent_reads_see_whole_writes(backend: Backend, tmp_path: Path) -> None:
    """Readers on several threads while one thread writes: every read is a snapshot.

    Write i stores documents a_i (key b"a"+i) and z_i (key b"z"+i) and moves a counter
    document; a scan that sees one of a pair must see the other, even at a read ts beyond
    everything written (where only the storage snapshot protects it) and with batch_size=1
    (so writes land between batches).
    """
    p = backend.open(tmp_path)
    writes = 150
    errors: list[BaseException] = []
    done = threading.Event()

    def writer() -> None:
        try:
            for i in range(1, writes + 1):
                n = b"%05d" % i
                p.write(
                    [doc(i, b"a" + n, "a"), doc(i, b"z" + n, "z"),
                     doc(i, b"counter", str(i), prev_ts=i - 1 if i > 1 else None)],
                    [Entry(BY_ID, b"a" + n, i, T, b"a" + n), Entry(BY_ID, b"z" + n, i, T, b"z" + n),
                     Entry(BY_ID + 1, b"c", i, T, b"counter")],
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.set()

    def reader(reverse: bool) -> None:
        try:
            rounds = 0
            while not done.is_set() or rounds < 3:
                rounds += 1
                for read_ts in (p.max_ts(), 2**62):
                    keys = [k for k, _ in p.index_scan(BY_ID, b"", None, read_ts, reverse=reverse, batch_size=1)]
                    a = {k[1:] for k in keys if k[:1] == b"a"}
                    z = {k[1:] for k in keys if k[:1] == b"z"}
                    assert a == z, (read_ts, sorted(a ^ z))
                    if read_ts < 2**62:
                        assert len(a) == read_ts
                        counter = p.get_document(T, b"counter", read_ts)
                        assert (counter.value if counter else b"0") == str(read_ts).encode()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader, args=(i % 2 == 1,)) for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors, errors[0]
        assert p.max_ts() == writes
        assert len(scan(p, BY_ID, b"", None, writes)) == 2 * writes
    finally:
        p.close()


# --- random histories against the reference model -------------------------------------------

IDS = [b"a", b"ab", b"b", b"\x00", b"a\x00"]
TABLES = [1, 2]
VALUE_INDEX = 20  # key: one byte of the value + the id (keys share prefixes)
ID_INDEX = 21  # key: table byte + id
BOUNDS = [b"", b"\x00", b"\x01", b"\x01a", b"\x02", b"\x02\x00", b"\x03", b"a", b"b", b"\xff"]


def value_key(table: int, id: bytes, value: int) -> bytes:
    return bytes([value]) + bytes([table]) + id


def id_key(table: int, id: bytes) -> bytes:
    return bytes([table]) + id


ops = st.lists(
    st.tuples(st.sampled_from(TABLES), st.sampled_from(IDS), st.none() | st.integers(0, 3)),
    min_size=1,
    max_size=6,
)


def outcome(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except StorageFailure:
        return "StorageFailure"


class ModelComparison(RuleBasedStateMachine):
    """Drives ``subject`` and a MemoryPersistence with the same committer-like history."""

    backend: Backend  # set by make_machine

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.subject = self.backend.open(Path(self.dir.name))
        self.model = MemoryPersistence()
        self.ts = 0
        # Current state per document: (table, id) -> (ts, value number or None when deleted).
        self.docs: dict[tuple[int, bytes], tuple[int, int | None]] = {}
        self.indexes = {VALUE_INDEX, ID_INDEX}
        self.next_index = 30
        self.written: list[tuple[int, int, bytes]] = []  # (ts, table, id) of every revision

    def draw_ts(self, data: st.DataObject) -> int:
        """A read ts: often exactly a written ts (boundaries matter), sometimes any."""
        written = sorted({ts for ts, _, _ in self.written}) or [0]
        return data.draw(st.sampled_from(written) | st.integers(0, self.ts + 2))

    @initialize(commits=st.lists(st.tuples(st.integers(1, 2), ops), min_size=2, max_size=8))
    def start(self, commits: list[tuple[int, list[tuple[int, bytes, int | None]]]]) -> None:
        assert self.subject.max_ts() == 0
        for commit in commits:  # one write per commit
            self.write([commit])

    def teardown(self) -> None:
        self.subject.close()
        self.model.close()
        self.dir.cleanup()

    def both(self, fn: Callable[[Persistence], Any]) -> Any:
        got, want = outcome(lambda: fn(self.subject)), outcome(lambda: fn(self.model))
        assert got == want
        return got

    def commit_rows(
        self, ts: int, ops: list[tuple[int, bytes, int | None]]
    ) -> tuple[list[Doc], list[Entry]]:
        documents: list[Doc] = []
        entries: list[Entry] = []
        seen: set[tuple[int, bytes]] = set()
        for table, id, value in ops:
            if (table, id) in seen:
                continue
            seen.add((table, id))
            prev = self.docs.get((table, id))
            if (prev is None or prev[1] is None) and value is None:
                continue  # deleting a document that does not exist
            prev_ts, prev_value = prev if prev is not None else (None, None)
            body = None if value is None else b'{"v":%d,"ts":%d}' % (value, ts)
            documents.append(Doc(ts, table, id, body, prev_ts))
            self.written.append((ts, table, id))
            self.docs[(table, id)] = (ts, value)
            if VALUE_INDEX in self.indexes:
                if prev_value is not None and prev_value != value:
                    entries.append(Entry(VALUE_INDEX, value_key(table, id, prev_value), ts, table, None))
                if value is not None:
                    entries.append(Entry(VALUE_INDEX, value_key(table, id, value), ts, table, id))
            if ID_INDEX in self.indexes and (value is not None or prev_value is not None):
                entries.append(Entry(ID_INDEX, id_key(table, id), ts, table, None if value is None else id))
        return documents, entries

    @rule(commits=st.lists(st.tuples(st.integers(1, 3), ops), min_size=1, max_size=3))
    def write(self, commits: list[tuple[int, list[tuple[int, bytes, int | None]]]]) -> None:
        documents: list[Doc] = []
        entries: list[Entry] = []
        for step, ops in commits:  # several commits in one write (group commit)
            self.ts += step
            d, e = self.commit_rows(self.ts, ops)
            documents += d
            entries += e
        self.both(lambda p: p.write(documents, entries))

    @rule(data=st.data())
    def get_document(self, data: st.DataObject) -> None:
        table, id = data.draw(st.sampled_from(TABLES)), data.draw(st.sampled_from(IDS))
        ts = self.draw_ts(data)
        self.both(lambda p: p.get_document(table, id, ts))

    @rule(data=st.data())
    def index_scan(self, data: st.DataObject) -> None:
        index_id = data.draw(st.sampled_from(sorted(self.indexes | {VALUE_INDEX, 99})))
        start = data.draw(st.just(b"") | st.sampled_from(BOUNDS))
        end = data.draw(st.none() | st.sampled_from(BOUNDS))
        ts = self.draw_ts(data)
        reverse = data.draw(st.booleans())
        batch_size = data.draw(st.integers(1, 3))
        limit = data.draw(st.none() | st.integers(0, 5))
        self.both(
            lambda p: list(
                islice(p.index_scan(index_id, start, end, ts, reverse=reverse, batch_size=batch_size), limit)
            )
        )

    @rule(data=st.data())
    def document_log(self, data: st.DataObject) -> None:
        after, upto = self.draw_ts(data), self.draw_ts(data)
        table = data.draw(st.none() | st.sampled_from(TABLES))
        self.both(lambda p: list(p.document_log(after, upto, table=table)))

    @rule(data=st.data())
    def table_documents(self, data: st.DataObject) -> None:
        table, ts = data.draw(st.sampled_from(TABLES)), self.draw_ts(data)
        self.both(lambda p: sorted(p.table_documents(table, ts), key=lambda r: r.id))

    @rule(data=st.data())
    def prune(self, data: st.DataObject) -> None:
        index_bound = self.draw_ts(data)
        document_bound = data.draw(st.integers(0, index_bound))
        self.both(lambda p: p.prune(index_bound, document_bound))

    @rule()
    def backfill_new_index(self) -> None:
        index_id, self.next_index = self.next_index, self.next_index + 1
        live = self.model.table_documents(1, self.ts)
        entries = [Entry(index_id, b"x" + r.id, r.ts, r.table, r.id) for r in live]
        self.both(lambda p: p.write([], entries))
        self.indexes.add(index_id)

    @precondition(lambda self: len(self.indexes) > 2)
    @rule(data=st.data())
    def delete_index(self, data: st.DataObject) -> None:
        index_id = data.draw(st.sampled_from(sorted(self.indexes - {VALUE_INDEX, ID_INDEX})))
        self.both(lambda p: p.delete_index(index_id))
        self.indexes.discard(index_id)

    @rule(key=st.sampled_from(["a", "b"]), value=st.integers() | st.lists(st.integers(), max_size=2))
    def set_global(self, key: str, value: Any) -> None:
        self.both(lambda p: p.set_global(key, value))

    @precondition(lambda self: self.backend.durable)
    @rule()
    def reopen(self) -> None:
        self.subject.close()
        self.subject = self.backend.open(Path(self.dir.name))

    @invariant()
    def same_max_ts_and_globals(self) -> None:
        self.both(lambda p: (p.max_ts(), p.get_global("a"), p.get_global("b")))


def make_machine(backend: Backend) -> type[ModelComparison]:
    return type(f"ModelComparison_{backend.name}", (ModelComparison,), {"backend": backend})


@pytest.mark.parametrize("subject", [n for n in BACKEND_NAMES if n != "memory"])
def test_matches_the_reference_model(subject: str, request: pytest.FixtureRequest) -> None:
    run_state_machine_as_test(
        make_machine(resolve_backend(subject, request)),
        settings=settings(
            max_examples=60,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
