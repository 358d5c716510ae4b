"""SQLite specifics: query plans, streaming, file settings, maintenance.

Behaviour shared by every implementation lives in test_conformance.py; here we pin how the
SQLite store gets it: every read is an index seek or a streaming range scan (no temp B-tree,
no materialized subquery), and a scan that stops early executes little.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from convection.errors import ConvectionError, StorageFailure
from convection.persistence import sqlite as impl
from convection.persistence.base import DocumentRevision, IndexEntry
from convection.persistence.sqlite import SqlitePersistence

T = 1
INDEX = 7


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlitePersistence]:
    p = SqlitePersistence(tmp_path / "db.sqlite3")
    yield p
    p.close()


@pytest.fixture
def conn(store: SqlitePersistence, tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = sqlite3.connect(tmp_path / "db.sqlite3")
    yield c
    c.close()


def plan(conn: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> list[str]:
    return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]


def assert_streaming(details: list[str]) -> None:
    text = "\n".join(details)
    assert "TEMP B-TREE" not in text, text
    assert "MATERIALIZE" not in text, text
    assert not any(d.startswith(("SCAN indexes", "SCAN documents")) for d in details)


def test_point_read_is_an_index_seek(conn: sqlite3.Connection) -> None:
    details = plan(conn, impl._GET_DOCUMENT, (T, b"a", 5))
    assert details == [
        "SEARCH documents USING INDEX documents_by_id (table_id=? AND id=? AND ts<?)"
    ]
    assert plan(conn, impl._MAX_TS, ()) == [
        "SEARCH documents USING COVERING INDEX sqlite_autoindex_documents_1"
    ]


@pytest.mark.parametrize(
    ("sql", "params", "range_"),
    [
        (impl._SCAN_BOUNDED, (INDEX, b"a", b"b", 5), "(index_id=? AND key>? AND key<?)"),
        (impl._SCAN_BOUNDED_DESC, (INDEX, b"a", b"b", 5), "(index_id=? AND key>? AND key<?)"),
        (impl._SCAN_UNBOUNDED, (INDEX, b"a", 5), "(index_id=? AND key>?)"),
        (impl._SCAN_UNBOUNDED_DESC, (INDEX, b"a", 5), "(index_id=? AND key>?)"),
    ],
)
def test_index_scan_is_a_streaming_pk_range_scan(
    conn: sqlite3.Connection, sql: str, params: tuple[object, ...], range_: str
) -> None:
    details = plan(conn, sql, params)
    assert_streaming(details)
    assert details == [
        "CO-ROUTINE i",
        f"SEARCH indexes USING PRIMARY KEY {range_}",
        "SCAN i",
        "SEARCH d USING INDEX sqlite_autoindex_documents_1 (ts=? AND table_id=? AND id=?) "
        "LEFT-JOIN",
    ]


def test_log_and_table_reads_stream_without_sorting(conn: sqlite3.Connection) -> None:
    for sql, params in [(impl._DOCUMENT_LOG, (0, 5)), (impl._DOCUMENT_LOG_TABLE, (0, 5, T))]:
        details = plan(conn, sql, params)
        assert_streaming(details)
        assert details == [
            "SEARCH documents USING INDEX sqlite_autoindex_documents_1 (ts>? AND ts<?)"
        ]
    details = plan(conn, impl._TABLE_DOCUMENTS, (T, 5))
    assert_streaming(details)
    assert details == ["SEARCH documents USING INDEX documents_by_id (table_id=?)"]


def test_commit_log_reads_are_seeks(conn: sqlite3.Connection) -> None:
    # Every commit session reads the log after the last known ts: a rowid range, whatever the
    # log's length; its retention deletes a rowid range too.
    assert plan(conn, impl._COMMITS_AFTER, (5,)) == [
        "SEARCH commits USING INTEGER PRIMARY KEY (rowid>?)"
    ]
    assert plan(conn, impl._PRUNE_COMMITS, (5,))[0] == (
        "SEARCH commits USING INTEGER PRIMARY KEY (rowid<?)"
    )


def test_prune_queries_do_not_sort(conn: sqlite3.Connection) -> None:
    # Index retention reads only the entries written since its watermark (a range of
    # indexes_by_ts) and seeks each one's older entries by PK: never a scan of the index log,
    # whose cost would grow with the store (bench/PROFILES.md, "G1 insert growth").
    index_plan = plan(conn, impl._PRUNE_INDEX_CANDIDATES, (0, 5))
    assert "TEMP B-TREE" not in "\n".join(index_plan)
    assert not any(step.startswith("SCAN") for step in index_plan), index_plan
    assert index_plan == [
        "COMPOUND QUERY",
        "LEFT-MOST SUBQUERY",
        "SEARCH n USING COVERING INDEX indexes_by_ts (ts>? AND ts<?)",
        "SEARCH o USING PRIMARY KEY (index_id=? AND key=? AND ts<?)",
        "UNION ALL",
        "SEARCH indexes USING COVERING INDEX indexes_by_ts (ts>? AND ts<?)",
    ]
    document_plan = plan(conn, impl._PRUNE_DOCUMENT_CANDIDATES, (0, 5, 9))
    assert "TEMP B-TREE" not in "\n".join(document_plan)
    assert "SEARCH o USING COVERING INDEX documents_by_id (table_id=? AND id=? AND ts<?)" in (
        document_plan
    )


def _fill(store: SqlitePersistence, n: int) -> None:
    keys = [b"k%06d" % i for i in range(n)]
    store.write(
        [DocumentRevision(1, T, k, b'{"v":1}') for k in keys],
        [IndexEntry(INDEX, k, 1, T, k) for k in keys],
    )


def _instructions(
    conn: sqlite3.Connection, sql: str, params: tuple[object, ...], rows: int | None
) -> int:
    count = 0

    def tick() -> int:
        nonlocal count
        count += 1
        return 0

    conn.set_progress_handler(tick, 1)
    try:
        cursor = conn.execute(sql, params)
        got = cursor.fetchall() if rows is None else cursor.fetchmany(rows)
        cursor.close()
    finally:
        conn.set_progress_handler(None, 1)
    assert got
    return count


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("bounded", [False, True])
def test_scan_that_stops_early_executes_little(
    store: SqlitePersistence, conn: sqlite3.Connection, reverse: bool, bounded: bool
) -> None:
    _fill(store, 5000)
    if bounded:
        sql = impl._SCAN_BOUNDED_DESC if reverse else impl._SCAN_BOUNDED
        params: tuple[object, ...] = (INDEX, b"k", b"l", 1)
    else:
        sql = impl._SCAN_UNBOUNDED_DESC if reverse else impl._SCAN_UNBOUNDED
        params = (INDEX, b"k", 1)
    first = conn.execute(sql, params).fetchone()
    assert first[0] == (b"k004999" if reverse else b"k000000")
    partial = _instructions(conn, sql, params, rows=3)
    full = _instructions(conn, sql, params, rows=None)
    assert partial * 500 < full, (partial, full)


def test_file_settings(store: SqlitePersistence, conn: sqlite3.Connection) -> None:
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
    assert conn.execute("PRAGMA user_version").fetchone()[0] == impl.SCHEMA_VERSION
    without_rowid = conn.execute("SELECT sql FROM sqlite_schema WHERE name = 'indexes'").fetchone()[
        0
    ]
    assert "WITHOUT ROWID" in without_rowid


@pytest.mark.parametrize(("mode", "level"), [("NORMAL", 1), ("full", 2), ("OFF", 0)])
def test_synchronous_mode(tmp_path: Path, mode: str, level: int) -> None:
    p = SqlitePersistence(tmp_path / "db.sqlite3", synchronous=mode)
    try:
        assert p._writer.execute("PRAGMA synchronous").fetchone()[0] == level
    finally:
        p.close()


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConvectionError) as info:
        SqlitePersistence(tmp_path / "db.sqlite3", synchronous="sometimes")
    assert info.value.code == "InvalidArgument"
    with pytest.raises(ConvectionError) as info:
        SqlitePersistence(":memory:")
    assert info.value.code == "InvalidArgument"


def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    SqlitePersistence(tmp_path / "db.sqlite3").close()
    c = sqlite3.connect(tmp_path / "db.sqlite3")
    c.execute("PRAGMA user_version=99")
    c.close()
    with pytest.raises(ConvectionError) as info:
        SqlitePersistence(tmp_path / "db.sqlite3")
    assert info.value.code == "StorageVersionMismatch"


def test_unopenable_file_is_a_storage_failure(tmp_path: Path) -> None:
    (tmp_path / "garbage.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageFailure):
        SqlitePersistence(tmp_path / "garbage.db")


def test_creates_parent_directories(tmp_path: Path) -> None:
    p = SqlitePersistence(tmp_path / "a" / "b" / "db.sqlite3")
    p.close()
    assert (tmp_path / "a" / "b" / "db.sqlite3").exists()


def test_checkpoint_truncates_wal_and_vacuums(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    p = SqlitePersistence(path)
    try:
        body = b'{"v":"' + b"x" * 2000 + b'"}'
        for ts in range(1, 201):
            p.write(
                [DocumentRevision(ts, T, b"doc", body, ts - 1 if ts > 1 else None)],
                [IndexEntry(INDEX, b"key", ts, T, b"doc")],
            )
        assert Path(str(path) + "-wal").stat().st_size > 0
        p.checkpoint()
        assert Path(str(path) + "-wal").stat().st_size == 0
        pages_before = p._writer.execute("PRAGMA page_count").fetchone()[0]
        assert p.prune(200, 200) == 2 * 199
        p.checkpoint()
        assert p._writer.execute("PRAGMA freelist_count").fetchone()[0] == 0
        assert p._writer.execute("PRAGMA page_count").fetchone()[0] < pages_before
        assert p.get_document(T, b"doc", 200) is not None
    finally:
        p.close()


def test_checkpoint_does_not_wait_for_a_long_scan(store: SqlitePersistence) -> None:
    _fill(store, 10)
    scan = store.index_scan(INDEX, b"", None, 1, batch_size=1)
    next(scan)  # holds a read snapshot
    store.write([DocumentRevision(2, T, b"x", b"{}")], [])
    store.checkpoint()  # returns at once (busy), does not raise
    assert len(list(scan)) == 9
    store.checkpoint()


def test_scan_connections_are_reused(store: SqlitePersistence) -> None:
    _fill(store, 10)
    for _ in range(20):
        assert len(list(store.index_scan(INDEX, b"", None, 1))) == 10
        assert store.get_document(T, b"k000001", 1) is not None
    partial = store.index_scan(INDEX, b"", None, 1, batch_size=1)
    next(partial)
    del partial  # abandoned: the connection goes back to the pool
    # writer + at most one reader (+ the one the abandoned scan held, now idle again)
    assert len(store._connections) <= 3
    assert len(store._idle) == len(store._connections) - 1


def test_dangling_index_entry_is_reported(store: SqlitePersistence) -> None:
    store.write([], [IndexEntry(INDEX, b"k", 1, T, b"nowhere")])
    with pytest.raises(StorageFailure) as info:
        list(store.index_scan(INDEX, b"", None, 1))
    assert "not in the document log" in info.value.message


def _prune_instructions(store: SqlitePersistence, bound: int) -> tuple[int, int]:
    """(rows removed, SQLite VM instructions run on every connection) of one ``prune``."""
    count = 0

    def tick() -> int:
        nonlocal count
        count += 1
        return 0

    connections = list(store._connections)
    for c in connections:
        c.set_progress_handler(tick, 1)
    try:
        removed = store.prune(bound, 0)
    finally:
        for c in connections:
            c.set_progress_handler(None, 1)
    return removed, count


def test_prune_work_follows_what_was_written_not_the_store_size(tmp_path: Path) -> None:
    # Retention runs every MAINTENANCE_INTERVAL_MS. When it read the whole index log each time,
    # a store of 1,000,000 documents spent ~5 s of CPU per round, which showed as insert
    # cost growing with the table (bench/PROFILES.md, "G1 insert growth").
    work = {}
    for n in (100, 4000):
        p = SqlitePersistence(tmp_path / f"{n}.sqlite3")
        try:
            _fill(p, n)  # n keys at ts 1
            list(p.index_scan(INDEX, b"", None, 1))  # open a reader connection
            p.prune(1, 0)  # the first pass looks at everything once
            # then: k0 rewritten at 2, k1 deleted at 3
            p.write([DocumentRevision(2, T, b"k000000", b'{"v":2}', 1)],
                    [IndexEntry(INDEX, b"k000000", 2, T, b"k000000")])
            p.write([DocumentRevision(3, T, b"k000001", None, 1)],
                    [IndexEntry(INDEX, b"k000001", 3, T, None)])
            removed, work[n] = _prune_instructions(p, 3)
            assert removed == 3  # k0@1, k1@1 and k1's tombstone
            assert [k for k, _ in p.index_scan(INDEX, b"", None, 3)][:2] == [b"k000000", b"k000002"]
            assert p.prune(3, 0) == 0
        finally:
            p.close()
    # the same few rows were written after the first pass: the same work, whatever the size
    assert work[4000] < work[100] * 1.5, work


def test_version_2_store_gains_the_retention_watermark(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    p = SqlitePersistence(path)
    _fill(p, 10)
    p.close()
    c = sqlite3.connect(path)  # what convection with schema version 2 left
    c.execute("DROP INDEX indexes_by_ts")
    c.execute("DROP TABLE persistence_meta")
    c.execute("PRAGMA user_version=2")
    c.close()
    p = SqlitePersistence(path)
    try:
        assert p._writer.execute("PRAGMA user_version").fetchone()[0] == impl.SCHEMA_VERSION
        p.write([DocumentRevision(2, T, b"k000000", None, 1)], [IndexEntry(INDEX, b"k000000", 2, T, None)])
        assert p.prune(2, 0) == 2
        keys = [k for k, _ in p.index_scan(INDEX, b"", None, 2)]
        assert keys[:2] == [b"k000001", b"k000002"]  # k0 and its superseded entry are gone
        index = p._writer.execute("SELECT 1 FROM sqlite_schema WHERE name = 'indexes_by_ts'")
        assert index.fetchall() == [(1,)]
    finally:
        p.close()
