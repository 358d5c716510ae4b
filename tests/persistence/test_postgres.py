"""PostgreSQL-specific behaviour of PostgresPersistence (the shared contract is in
test_conformance.py): query plans, keys longer than the B-tree limit, URLs,
schema versions, reconnection, and a Database restarting on the same store."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from convection.database import Database
from convection.errors import ConvectionError, StorageFailure
from convection.persistence import open_persistence
from convection.persistence.base import CommitEntry, DocumentRevision, IndexEntry
from convection.persistence.postgres import (
    KEY_PREFIX_BYTES,
    PostgresPersistence,
    _scan_sql,
    split_key,
)

T = 1
INDEX = 10


def schema_name() -> str:
    return "t_" + uuid.uuid4().hex[:16]


@pytest.fixture
def schema() -> str:
    return schema_name()


@pytest.fixture
def store(postgres_url: str, schema: str) -> Iterator[PostgresPersistence]:
    p = PostgresPersistence(postgres_url, schema=schema)
    yield p
    p.close()


def sql_connection(url: str, schema: str) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(url, autocommit=True, options=f"-c search_path={schema}")


def put(p: PostgresPersistence, ts: int, key: bytes, *, index_id: int = INDEX) -> None:
    id = ts.to_bytes(8, "big")
    p.write([DocumentRevision(ts, T, id, b'{"ts":%d}' % ts)], [IndexEntry(index_id, key, ts, T, id)])


def keys(p: PostgresPersistence, start: bytes, end: bytes | None, *, reverse: bool = False, bs: int = 2) -> list[bytes]:
    return [k for k, _ in p.index_scan(INDEX, start, end, 2**62, reverse=reverse, batch_size=bs)]


# --- plans -----------------------------------------------------------------------------------


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _explain(p: PostgresPersistence, sql: str, params: tuple[Any, ...], *, generic: bool) -> dict[str, Any]:
    """The JSON plan of ``sql`` on one of the store's own connections (so with its planner
    settings): the custom plan for these values, or the generic plan a prepared statement
    may cache."""
    name = "q_" + uuid.uuid4().hex[:12]
    counter = iter(range(1, len(params) + 1))
    numbered = re.sub(r"%s", lambda _: f"${next(counter)}", sql)
    types = ", ".join("bytea" if isinstance(v, bytes) else "bigint" for v in params)
    mode = "force_generic_plan" if generic else "force_custom_plan"
    placeholders = ", ".join(["%s"] * len(params))

    def explain(conn: psycopg.Connection[tuple[Any, ...]]) -> Any:
        conn.execute(f"PREPARE {name} ({types}) AS {numbered}")
        conn.execute(f"SET plan_cache_mode = {mode}")
        try:
            # EXPLAIN takes no bind parameters: the values are quoted client-side.
            cursor = psycopg.ClientCursor(conn)
            row = cursor.execute(f"EXPLAIN (FORMAT JSON) EXECUTE {name} ({placeholders})", params).fetchone()
        finally:
            conn.execute("RESET plan_cache_mode")
            conn.execute(f"DEALLOCATE {name}")
        assert row is not None
        return row[0][0]["Plan"]

    plan: dict[str, Any] = p._read("explain", explain)
    return plan


def _assert_streaming(plan: dict[str, Any], *, index: str, backward: bool = False) -> None:
    """Rows come from ``index`` in order and nothing under the batch LIMIT sorts them."""
    nodes = list(_nodes(plan))
    scans = [n for n in nodes if n.get("Relation Name") in ("indexes", "documents")]
    assert scans and all(n["Node Type"] == "Index Scan" for n in scans), [n["Node Type"] for n in scans]
    first = next(n for n in scans if n["Index Name"] == index)
    assert first["Scan Direction"] == ("Backward" if backward else "Forward")
    assert not [n for n in nodes if n["Node Type"] in ("Hash Join", "Merge Join", "Materialize")]
    limits = [n for n in nodes if n["Node Type"] == "Limit"]
    assert limits
    assert not [n for n in _nodes(limits[0]) if "Sort" in n["Node Type"]]


@pytest.fixture(scope="module", params=[False, True], ids=["no-stats", "analyzed"])
def populated(request: pytest.FixtureRequest, postgres_url: str) -> Iterator[PostgresPersistence]:
    """10,000 documents in three indexes: fresh tables without statistics (what the planner
    sees during the first minute of a new deployment), or after ANALYZE."""
    schema = schema_name()
    p = PostgresPersistence(postgres_url, schema=schema)
    with sql_connection(postgres_url, schema) as conn:
        for table in ("documents", "indexes"):  # no autovacuum: the statistics stay as set
            conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    ts = 0
    for chunk in range(20):
        documents, entries = [], []
        for i in range(500):
            ts += 1
            id = ts.to_bytes(8, "big")
            documents.append(DocumentRevision(ts, T, id, b'{"v":1}'))
            for index_id in (INDEX, INDEX + 1, INDEX + 2):
                entries.append(IndexEntry(index_id, b"k%06d" % ((i * 7919 + chunk) % 100000), ts, T, id))
        p.write(documents, entries)
    if request.param:
        with sql_connection(postgres_url, schema) as conn:
            conn.execute("ANALYZE")
    yield p
    p.close()


def test_store_connections_walk_indexes_without_jit(store: PostgresPersistence) -> None:
    def settings(conn: psycopg.Connection[tuple[Any, ...]]) -> list[Any]:
        return [conn.execute(f"SHOW {name}").fetchone() for name in ("jit", "enable_sort", "enable_seqscan")]

    assert store._read("settings", settings) == [("off",)] * 3


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
@pytest.mark.parametrize("reverse", [False, True], ids=["asc", "desc"])
def test_index_scans_walk_the_index_in_order(populated: PostgresPersistence, reverse: bool, generic: bool) -> None:
    long = b"k" * (KEY_PREFIX_BYTES + 5)
    lp, ls = long[:KEY_PREFIX_BYTES], long[KEY_PREFIX_BYTES:]
    cases: list[tuple[tuple[bool, str, bool], tuple[Any, ...]]] = [
        ((False, "short", False), (INDEX, b"k0", b"k9", 10**6)),
        ((False, "short", False), (INDEX, b"k00001", b"k00002", 10**6)),  # narrow
        ((False, "none", False), (INDEX, b"", 10**6)),
        ((False, "short", True), (INDEX, b"k0", b"k9", 10**6, b"k05", b"")),
        ((True, "long", True), (INDEX, b"", b"", b"", lp, lp, ls, 10**6, b"k05", b"")),
        ((True, "none", False), (INDEX, b"", b"", b"", 10**6)),
    ]
    for (long_start, end, resume), params in cases:
        for limit in (1, 128):
            sql = _scan_sql(reverse, long_start, end, resume, limit)
            plan = _explain(populated, sql, params, generic=generic)
            _assert_streaming(plan, index="indexes_by_key", backward=reverse)


@pytest.mark.parametrize("generic", [False, True], ids=["custom", "generic"])
def test_point_reads_and_logs_use_indexes(populated: PostgresPersistence, generic: bool) -> None:
    from convection.persistence import postgres as pg

    def check(sql: str, params: tuple[Any, ...], index: str) -> None:
        _assert_streaming(_explain(populated, sql, params, generic=generic), index=index)

    check(pg._GET_DOCUMENT, (T, (7).to_bytes(8, "big"), 10**6), "documents_by_id")
    check(pg._TABLE_DOCUMENTS.format(after=""), (T, 10**6, 512), "documents_by_id")
    check(pg._TABLE_DOCUMENTS.format(after=" AND id > %s"), (T, 10**6, b"\x00", 512), "documents_by_id")
    log = pg._DOCUMENT_LOG.format(table="", after=" AND (ts, table_id, id) > (%s, %s, %s)")
    check(log, (0, 10**6, 20, T, b"", 512), "documents_pkey")
    log = pg._DOCUMENT_LOG.format(table=" AND table_id = %s", after="")
    check(log, (0, 10**6, T, 512), "documents_pkey")


def test_growing_batches_cover_long_ranges(store: PostgresPersistence) -> None:
    # Batches of 16, 32, 64, 128, 128 rows (tombstones count): every live key exactly once.
    ts = 0
    for i in range(300):
        ts += 1
        put(store, ts, b"k%04d" % i)
    for i in range(0, 300, 3):  # delete every third document
        ts += 1
        id = (i + 1).to_bytes(8, "big")
        store.write([DocumentRevision(ts, T, id, None, i + 1)], [IndexEntry(INDEX, b"k%04d" % i, ts, T, None)])
    live = [b"k%04d" % i for i in range(300) if i % 3]
    assert keys(store, b"", None, bs=128) == live
    assert keys(store, b"", None, reverse=True, bs=128) == live[::-1]
    assert keys(store, b"k0100", b"k0250", bs=1000) == [k for k in live if b"k0100" <= k < b"k0250"]


# --- long keys -------------------------------------------------------------------------------


def test_split_key() -> None:
    short = b"x" * KEY_PREFIX_BYTES
    assert split_key(short) == (short, b"", None)
    prefix, digest, suffix = split_key(short + b"yz")
    assert prefix == short and suffix == b"yz" and len(digest) == 32


def test_keys_longer_than_the_btree_limit(store: PostgresPersistence) -> None:
    p = b"p" * (KEY_PREFIX_BYTES - 1)
    exact = p + b"m"  # exactly KEY_PREFIX_BYTES long
    longs = [exact + b"\x00", exact + b"a" * 3000, exact + b"b", exact + b"zz" * 5000]
    ordered = [b"", p, p + b"\x00", exact, *sorted(longs), p + b"n", p + b"n" + b"x" * 4000, b"q"]
    for ts, key in enumerate(ordered, start=1):
        put(store, ts, key)
    got = keys(store, b"", None)
    # Exact order except among the keys that share their first KEY_PREFIX_BYTES bytes.
    assert got[:4] == ordered[:4] and got[8:] == ordered[8:]
    assert sorted(got[4:8]) == sorted(longs)  # among themselves: by digest
    for bs in (1, 2, 3, 100):
        assert keys(store, b"", None, bs=bs) == got
        assert keys(store, b"", None, reverse=True, bs=bs) == got[::-1]
    # Range membership is exact, whatever the bound lengths.
    for start in [b"", p, exact, *longs, exact + b"a", exact + b"a" * 3001, p + b"n"]:
        for end in [None, exact, exact + b"\x00", exact + b"b", exact + b"c", p + b"n\x00", b"q"]:
            want = {k for k in ordered if k >= start and (end is None or k < end)}
            for reverse in (False, True):
                found = keys(store, start, end, reverse=reverse, bs=2)
                assert set(found) == want and len(found) == len(want), (start[-3:], end)
                assert found == [k for k in (got[::-1] if reverse else got) if k in want]
    [(key, revision)] = list(store.index_scan(INDEX, longs[3], longs[3] + b"\x00", 2**62))
    assert key == longs[3] and revision.value == b'{"ts":%d}' % (ordered.index(longs[3]) + 1)


# --- URLs, versions, connections -------------------------------------------------------------


def test_open_persistence_takes_postgres_urls(postgres_url: str) -> None:
    schema = schema_name()
    url = f"{postgres_url}&schema={schema}"
    p = open_persistence(url)
    try:
        assert isinstance(p, PostgresPersistence) and schema in repr(p)
        p.set_global("where", "here")
    finally:
        p.close()
    q = open_persistence(url.replace("postgresql://", "postgres://", 1))
    try:
        assert q.get_global("where") == "here"
    finally:
        q.close()


def test_bad_urls_and_schemas_are_invalid_arguments(postgres_url: str) -> None:
    for bad in ("postgres://host/db?nonsense=1", "postgres://[oops/db"):
        with pytest.raises(ConvectionError) as info:
            PostgresPersistence(bad)
        assert info.value.code == "InvalidArgument", bad
    with pytest.raises(ConvectionError) as info:
        PostgresPersistence(postgres_url, schema="Robert'); DROP TABLE x;--")
    assert info.value.code == "InvalidArgument"


def test_unreachable_server_is_a_storage_failure() -> None:
    with pytest.raises(StorageFailure, match="cannot open PostgreSQL store"):
        PostgresPersistence("postgres://nobody@127.0.0.1:1/nothing", connect_timeout_s=2)


def test_newer_schema_version_is_refused(postgres_url: str, schema: str) -> None:
    PostgresPersistence(postgres_url, schema=schema).close()
    with sql_connection(postgres_url, schema) as conn:
        conn.execute("UPDATE persistence_meta SET value = 99 WHERE key = 'schema_version'")
    with pytest.raises(ConvectionError) as info:
        PostgresPersistence(postgres_url, schema=schema)
    assert info.value.code == "StorageVersionMismatch"


def test_reads_survive_dropped_connections(postgres_url: str, schema: str) -> None:
    app = "convection_" + schema
    p = PostgresPersistence(f"{postgres_url}&application_name={app}", schema=schema)
    try:
        put(p, 1, b"a")
        assert keys(p, b"", None) == [b"a"]
        with sql_connection(postgres_url, schema) as conn:
            killed = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (app,),
            ).fetchone()
        assert killed is not None and killed[0] >= 2  # the writer and an idle reader
        assert keys(p, b"", None) == [b"a"]  # retried on a fresh connection
        with pytest.raises(StorageFailure):
            put(p, 2, b"b")  # the writer's connection was gone: outcome unknown
        put(p, 3, b"c")  # reconnected
        assert keys(p, b"", None) == [b"a", b"c"]
    finally:
        p.close()


def test_database_restart_keeps_data_and_ts_monotonic(postgres_url: str, schema: str) -> None:
    d1 = Database(PostgresPersistence(postgres_url, schema=schema), secret=b"s")
    txn = d1.begin()
    id_ = txn.insert("r", {"x": "y"})
    ts = d1.commit(txn)
    d1.close()
    d2 = Database(PostgresPersistence(postgres_url, schema=schema), secret=b"s")
    try:
        assert d2.latest_ts() >= ts
        doc = d2.begin().get(id_)
        assert doc is not None and doc["x"] == "y"
        t = d2.begin()
        t.patch(id_, {"x": "z"})
        assert d2.commit(t) > ts
    finally:
        d2.close()


# --- commit notifications (persistence/postgres_notify.py) -------------------------------------


def _commit(p: PostgresPersistence, ts: int) -> None:
    id = ts.to_bytes(8, "big")
    with p.commit_session() as s:
        s.write([DocumentRevision(ts, T, id, b"{}")], [], [CommitEntry(ts, b"")])


def _listener_pid(url: str, schema: str, app: str, not_pid: int | None = None) -> int:
    """The backend pid of the store's LISTEN connection, once it listens (and is not ``not_pid``)."""
    deadline = time.monotonic() + 20
    with sql_connection(url, schema) as conn:
        while True:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
                " AND query LIKE 'LISTEN%%' AND pid <> %s",
                (app, not_pid or 0),
            ).fetchall()
            if rows:
                return int(rows[0][0])
            assert time.monotonic() < deadline, "the store never LISTENed"
            time.sleep(0.02)


def test_commits_of_another_node_wake_a_watching_store(postgres_url: str, schema: str) -> None:
    """A commit through one handle (another node) wakes the other's watcher by NOTIFY; when the
    LISTEN connection is killed, the store listens again on a new one and is woken again."""
    app = "convection_" + schema
    a = PostgresPersistence(postgres_url, schema=schema)
    b = PostgresPersistence(f"{postgres_url}&application_name={app}", schema=schema)
    woken = threading.Event()
    try:
        assert b.watch_commits(woken.set)
        first = _listener_pid(postgres_url, schema, app)
        _commit(a, 1)
        assert woken.wait(20), "no notification of the other node's commit"
        with sql_connection(postgres_url, schema) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (first,))
        _listener_pid(postgres_url, schema, app, not_pid=first)  # listening again
        woken.clear()
        _commit(a, 2)
        assert woken.wait(20), "no notification after the LISTEN connection came back"
    finally:
        b.close()
        a.close()

