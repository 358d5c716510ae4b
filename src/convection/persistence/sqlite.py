"""SQLite implementation of the Persistence protocol (the default, embedded store).

Layout (docs/internals/transactions.md), in one database file in WAL mode:

* ``documents(ts, table_id, id, json, deleted, prev_ts)``: the document log, PK
  ``(ts, table_id, id)`` (a rowid table: rows carry whole documents, too wide for WITHOUT
  ROWID) plus the index ``documents_by_id(table_id, id, ts)`` for point reads.
* ``indexes(index_id, key, ts, deleted, table_id, document_id)``: the MVCC index log,
  ``WITHOUT ROWID`` clustered on its PK ``(index_id, key, ts)``, so a key range is one
  contiguous B-tree range and a snapshot scan is a single streaming pass over it; plus
  ``indexes_by_ts(ts, deleted)`` so retention finds the entries written since its last pass
  (ts only grows, so a commit appends to its right edge; ``deleted`` makes finding the
  tombstones among them a covering range read).
* ``globals(key, json)``: small JSON values.
* ``commits(ts, keys)``: the commit log (each commit's written keys, for other processes).
* ``persistence_meta(key, value)``: this layer's own bookkeeping (the retention watermark).

Snapshot reads at ``read_ts`` take, per key, the newest entry with ts <= read_ts (SQLite's
"bare column with MAX()" rule picks ``deleted``/``table_id``/``document_id`` from that same
row), drop deleted keys, and join the survivors to ``documents`` on (ts, table_id, id). Every
query is written so that the plan is an index seek or a streaming range scan in either
direction (no temp B-tree); ``tests/persistence/test_sqlite.py`` pins the plans.

Concurrency: the engine reads from many worker threads and writes from one committer
thread. Reads use a pool of reader connections: a read call (or a whole lazy scan) checks one
out, so it never shares a connection with another in-flight read. Each scan is ONE SQL
statement stepped lazily (``fetchmany(batch_size)``); in WAL mode a statement reads a single
snapshot of the file for its whole life, so a scan is consistent even while commits land, and
a consumer that stops early stops the statement (early termination costs nothing). Closing
or dropping the iterator resets the statement and returns the connection. Writes (``write``,
globals, ``delete_index``, ``prune``, ``checkpoint``) go through one writer connection guarded
by a lock, each in a ``BEGIN IMMEDIATE`` transaction.

Durability: ``synchronous=NORMAL`` (the default) makes a committed ``write`` durable against
a crash of the process (the WAL is in the OS page cache); ``FULL`` syncs the WAL on every
commit, durable against power loss and OS crashes too, at the cost of an fsync per write.

Retention (``prune``) never removes the revision(s) at ``max_ts()``, so ``max_ts`` never goes
backwards, even across a restart (the clock floor relies on it). Its cost follows what was
written since the last pass, never the size of the store: index entries are found through
``indexes_by_ts`` from a watermark kept in ``persistence_meta`` (every entry at or below it
was examined; commits only ever get larger ts), document revisions through the PK's ts
prefix. (Scanning the whole index log every MAINTENANCE_INTERVAL_MS cost ~5 s of CPU per
round with 1,000,000 documents: bench/PROFILES.md, "G1 insert growth".)
"""

from __future__ import annotations

import fcntl
import json
import operator
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from convection.errors import ConvectionError, StorageFailure
from convection.knobs import (
    SQLITE_BUSY_TIMEOUT_MS,
    SQLITE_PRUNE_BATCH_COUNT,
    SQLITE_VACUUM_PAGES_COUNT,
)
from convection.persistence.base import CommitEntry, DocumentRevision, IndexEntry
from convection.persistence.local_wake import LocalWake

# 3: retention by watermark (indexes_by_ts, persistence_meta); 2: the commit log;
# 1: convection 0.1.0
SCHEMA_VERSION: Final = 3

_CREATE_COMMITS: Final = (
    "CREATE TABLE IF NOT EXISTS commits (ts INTEGER PRIMARY KEY, keys BLOB NOT NULL)"
)
_CREATE_RETENTION: Final = (
    "CREATE INDEX IF NOT EXISTS indexes_by_ts ON indexes (ts, deleted)",
    "CREATE TABLE IF NOT EXISTS persistence_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)
_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS documents ("
    " ts INTEGER NOT NULL, table_id INTEGER NOT NULL, id BLOB NOT NULL, json BLOB,"
    " deleted INTEGER NOT NULL, prev_ts INTEGER, PRIMARY KEY (ts, table_id, id))",
    "CREATE INDEX IF NOT EXISTS documents_by_id ON documents (table_id, id, ts)",
    "CREATE TABLE IF NOT EXISTS indexes ("
    " index_id INTEGER NOT NULL, key BLOB NOT NULL, ts INTEGER NOT NULL,"
    " deleted INTEGER NOT NULL, table_id INTEGER NOT NULL, document_id BLOB,"
    " PRIMARY KEY (index_id, key, ts)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS globals (key TEXT PRIMARY KEY, json TEXT NOT NULL)",
    _CREATE_COMMITS,
    *_CREATE_RETENTION,
)

_SYNCHRONOUS_MODES: Final = ("OFF", "NORMAL", "FULL", "EXTRA")

# --- statements (constant text: sqlite3 caches the prepared statement per connection) -------

_INSERT_DOCUMENT: Final = (
    "INSERT INTO documents (ts, table_id, id, json, deleted, prev_ts) VALUES (?, ?, ?, ?, ?, ?)"
)
_PK: Final = operator.itemgetter(0, 1, 2)  # (index_id, key, ts) of an index row
_INSERT_INDEX: Final = (
    "INSERT INTO indexes (index_id, key, ts, deleted, table_id, document_id)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_MAX_TS: Final = "SELECT MAX(ts) FROM documents"
_INSERT_COMMIT: Final = "INSERT INTO commits (ts, keys) VALUES (?, ?)"
_COMMITS_AFTER: Final = "SELECT ts, keys FROM commits WHERE ts > ? ORDER BY ts"
_PRUNE_COMMITS: Final = (
    "DELETE FROM commits WHERE ts <= ? AND ts < (SELECT MAX(ts) FROM commits)"
)
_GET_DOCUMENT: Final = (
    "SELECT ts, json, prev_ts FROM documents"
    " WHERE table_id = ? AND id = ? AND ts <= ? ORDER BY ts DESC LIMIT 1"
)

# Index scans. The inner query is a streaming GROUP BY over the PK range: MAX(ts) picks the
# newest entry <= read_ts per key and the bare columns come from that row (also in HAVING).
# The LEFT JOIN (not JOIN) keeps the subquery a co-routine: with an inner join SQLite
# materializes the whole range first. No outer ORDER BY (it would add a temp B-tree): the
# nested loop emits rows in the co-routine's order. A document that is missing (an index entry
# pointing nowhere) shows up as json NULL and is reported as corruption.
_SCAN: Final = (
    "SELECT i.key, i.ts, i.table_id, i.document_id, d.json, d.prev_ts FROM ("
    "SELECT key, MAX(ts) AS ts, deleted, table_id, document_id FROM indexes"
    " WHERE index_id = ? AND key >= ?{upper} AND ts <= ?"
    " GROUP BY key HAVING deleted = 0 ORDER BY key{desc}"
    ") AS i LEFT JOIN documents AS d"
    " ON d.ts = i.ts AND d.table_id = i.table_id AND d.id = i.document_id"
)
_FIRST_SCAN_BATCH: Final = 16
_SCAN_BOUNDED: Final = _SCAN.format(upper=" AND key < ?", desc="")
_SCAN_UNBOUNDED: Final = _SCAN.format(upper="", desc="")
_SCAN_BOUNDED_DESC: Final = _SCAN.format(upper=" AND key < ?", desc=" DESC")
_SCAN_UNBOUNDED_DESC: Final = _SCAN.format(upper="", desc=" DESC")

# Key-only scans (derived indexes): the same streaming GROUP BY, no join, bounded.
_KEYS: Final = (
    "SELECT key, MAX(ts), deleted FROM indexes"
    " WHERE index_id = ? AND key >= ?{upper} AND ts <= ?"
    " GROUP BY key HAVING deleted = 0 ORDER BY key LIMIT ?"
)
_KEYS_BOUNDED: Final = _KEYS.format(upper=" AND key < ?")
_KEYS_UNBOUNDED: Final = _KEYS.format(upper="")

_DOCUMENT_LOG: Final = (
    "SELECT ts, table_id, id, json, prev_ts FROM documents"
    " WHERE ts > ? AND ts <= ? ORDER BY ts, table_id, id"
)
# ``+table_id`` keeps the planner on the PK (ts order, streaming) instead of documents_by_id
# followed by a sort of the whole table's history.
_DOCUMENT_LOG_TABLE: Final = (
    "SELECT ts, table_id, id, json, prev_ts FROM documents"
    " WHERE ts > ? AND ts <= ? AND +table_id = ? ORDER BY ts, table_id, id"
)
_TABLE_DOCUMENTS: Final = (
    "SELECT MAX(ts), id, json, prev_ts FROM documents"
    " WHERE table_id = ? AND ts <= ? GROUP BY id HAVING deleted = 0"
)

_GET_GLOBAL: Final = "SELECT json FROM globals WHERE key = ?"
_SET_GLOBAL: Final = (
    "INSERT INTO globals (key, json) VALUES (?, ?)"
    " ON CONFLICT (key) DO UPDATE SET json = excluded.json"
)
_DELETE_INDEX: Final = "DELETE FROM indexes WHERE index_id = ?"

# Retention. Index entries: an entry n with ts in (watermark, bound] supersedes every older
# entry of its key, and is itself removable when it is a tombstone. n comes from a range of
# indexes_by_ts, each older entry from a PK seek: the work follows the entries written since
# the last pass (~1.5 µs per entry; a store of 1,000,000 documents has ~3,000,000 entries,
# which the full scan this replaced read every pass). Candidates are collected on a reader connection (no write lock), deduplicated
# and deleted in PK order in small write transactions: a key's older entries go before (or
# with) its tombstone, so no reader can see a deleted key come back.
_PRUNE_INDEX_CANDIDATES: Final = (
    "SELECT o.index_id, o.key, o.ts FROM indexes AS n JOIN indexes AS o"
    " ON o.index_id = n.index_id AND o.key = n.key AND o.ts < n.ts"
    " WHERE n.ts > ?1 AND n.ts <= ?2"
    " UNION ALL SELECT index_id, key, ts FROM indexes"
    " WHERE ts > ?1 AND ts <= ?2 AND deleted"
)
_INDEX_WATERMARK: Final = "index_pruned_ts"
_DOCUMENTS_WATERMARK: Final = "documents_pruned_ts"
_GET_META: Final = "SELECT value FROM persistence_meta WHERE key = ?"
_SET_META: Final = (
    "INSERT INTO persistence_meta (key, value) VALUES (?1, ?2)"
    " ON CONFLICT (key) DO UPDATE SET value = MAX(value, excluded.value)"
)
_DELETE_INDEX_ENTRY: Final = "DELETE FROM indexes WHERE index_id = ? AND key = ? AND ts = ?"
# Document revisions: a revision n with ts in (after, bound] supersedes every older revision of
# its document; deletion revisions in (after, bound] go too, except at max_ts.
_PRUNE_DOCUMENT_CANDIDATES: Final = (
    "SELECT o.rowid FROM documents AS n JOIN documents AS o"
    " ON o.table_id = n.table_id AND o.id = n.id AND o.ts < n.ts"
    " WHERE n.ts > ?1 AND n.ts <= ?2"
    " UNION ALL SELECT rowid FROM documents"
    " WHERE ts > ?1 AND ts <= ?2 AND ts < ?3 AND deleted"
)
_DELETE_DOCUMENT_ROW: Final = "DELETE FROM documents WHERE rowid = ?"

_CHECKPOINT: Final = "PRAGMA wal_checkpoint(TRUNCATE)"
_VACUUM: Final = f"PRAGMA incremental_vacuum({SQLITE_VACUUM_PAGES_COUNT});"


class SqlitePersistence:
    """The Persistence protocol over one SQLite file (created on first open).

    Owns one writer connection (guarded by ``_write_lock``) and a pool of reader connections
    opened on demand; ``close()`` closes all of them. See the module docstring for the
    concurrency and durability model.
    """

    local_reads = True  # see Persistence.local_reads

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL") -> None:
        mode = synchronous.upper()
        if mode not in _SYNCHRONOUS_MODES:
            raise ConvectionError(
                f"synchronous={synchronous!r} is not a SQLite synchronous mode; "
                f"use one of {', '.join(_SYNCHRONOUS_MODES)}",
                code="InvalidArgument",
            )
        text = str(path)
        if text == "" or text == ":memory:" or text.startswith("file:"):
            raise ConvectionError(
                f"SqlitePersistence needs a file path, got {text!r}; "
                "use MemoryPersistence for an in-memory store",
                code="InvalidArgument",
            )
        self._path = Path(path)
        self._synchronous = mode
        self._closed = False
        self._thread_lock = threading.Lock()  # the writer connection, within this process
        self._write_lock = _WriteLock(self._thread_lock, Path(f"{self._path}-commit.lock"))
        self._local_wake = LocalWake(self._path)  # tells the other local processes we committed
        self._pool_lock = threading.Lock()  # guards _connections (not the hot _idle list)
        self._connections: list[sqlite3.Connection] = []
        # Idle reader connections. list.pop()/append() are atomic, so checkout is lock-free.
        self._idle: list[sqlite3.Connection] = []
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = self._connect()
            # Under the commit flock: another process opening the file at the same time
            # (``serve --workers``) waits for an upgrade (which may build an index for
            # seconds) here instead of running out of SQLite's busy timeout.
            with self._write_lock:
                self._create_schema()
            row = self._writer.execute(_MAX_TS).fetchone()
        except (sqlite3.Error, OSError) as exc:
            self.close()
            raise StorageFailure(f"cannot open SQLite database {self._path}: {exc}") from exc
        self._max_ts: int = row[0] or 0
        self._data_version = 0

    def __repr__(self) -> str:
        return f"SqlitePersistence({str(self._path)!r})"

    # --- connections --------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: autocommit, we issue BEGIN/COMMIT ourselves. Connections are
        # handed between threads by the pool (a lazy scan may be finished by another thread),
        # which SQLite's serialized mode allows.
        conn = sqlite3.connect(
            self._path,
            isolation_level=None,
            check_same_thread=False,
            timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
            cached_statements=64,
        )
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        with self._pool_lock:
            self._connections.append(conn)
        return conn

    def _create_schema(self) -> None:
        conn = self._writer
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version in (1, 2):  # 0.1.0: add the commit log; 2: the retention watermark
            conn.execute("BEGIN IMMEDIATE")
            try:
                # re-read under the write lock: another process may have upgraded meanwhile
                if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                    conn.execute(_CREATE_COMMITS)
                    for statement in _CREATE_RETENTION:  # one pass over the index log
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            version = SCHEMA_VERSION
        if version == SCHEMA_VERSION:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        if version != 0:
            raise ConvectionError(
                f"{self._path} has storage schema version {version}, this convection "
                f"understands version {SCHEMA_VERSION}; upgrade convection",
                code="StorageVersionMismatch",
            )
        # auto_vacuum must be chosen before the first table exists.
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _acquire(self) -> sqlite3.Connection:
        if self._closed:
            raise StorageFailure(f"{self!r} is closed")
        try:
            return self._idle.pop()
        except IndexError:
            return self._connect()

    def _release(self, conn: sqlite3.Connection) -> None:
        if self._closed:
            conn.close()
        else:
            self._idle.append(conn)

    # --- writes -------------------------------------------------------------------------

    def write(self, documents: Sequence[DocumentRevision], indexes: Sequence[IndexEntry]) -> None:
        doc_rows = [(d.ts, d.table, d.id, d.value, d.value is None, d.prev_ts) for d in documents]
        index_rows = [(e.index_id, e.key, e.ts, e.id is None, e.table, e.id) for e in indexes]
        with self._write_lock:
            conn = self._writable()
            try:
                conn.execute("BEGIN IMMEDIATE")
                if doc_rows:
                    conn.executemany(_INSERT_DOCUMENT, doc_rows)
                if index_rows:
                    conn.executemany(_INSERT_INDEX, index_rows)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(conn)
                raise StorageFailure(
                    f"writing {len(doc_rows)} document revisions and {len(index_rows)} index "
                    f"entries to {self._path} failed: {exc}"
                ) from exc
            if doc_rows:
                top = max(row[0] for row in doc_rows)
                if top > self._max_ts:
                    self._max_ts = top
        self._local_wake.notify()

    @contextmanager
    def commit_session(self) -> Iterator[_SqliteSession]:
        """``BEGIN IMMEDIATE`` on the writer connection: SQLite's write lock is the commit
        lock of every process using the file (waiting up to ``SQLITE_BUSY_TIMEOUT_MS``)."""
        with self._write_lock:
            conn = self._writable()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StorageFailure(f"taking the write lock of {self._path} failed: {exc}") from exc
            session = _SqliteSession(conn, self._path)
            try:
                yield session
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(conn)
                raise StorageFailure(f"committing to {self._path} failed: {exc}") from exc
            except BaseException:
                _rollback(conn)
                raise
            if session.top > self._max_ts:
                self._max_ts = session.top
            # our own commit bumped data_version for nobody but the other connections
            self._data_version = self._read_data_version(conn)
        self._local_wake.notify()

    def commits_after(self, ts: int) -> list[CommitEntry]:
        return [CommitEntry(t, k) for t, k in self._read_all(_COMMITS_AFTER, (ts,))]

    def others_may_have_committed(self) -> bool:
        self._local_wake.ensure_registered()  # at most once a second
        with self._thread_lock:  # a read of the writer connection: no need to exclude others
            conn = self._writable()
            version = self._read_data_version(conn)
            if version == self._data_version:
                return False
            self._data_version = version
            return True

    def watch_commits(self, wake: Callable[[], None]) -> bool:
        # Other processes on this host send a datagram after they commit (local_wake.py);
        # elsewhere (no abstract sockets) the caller polls data_version.
        return self._local_wake.start(wake)

    @staticmethod
    def _read_data_version(conn: sqlite3.Connection) -> int:
        try:
            return int(conn.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error as exc:
            raise StorageFailure(f"reading PRAGMA data_version failed: {exc}") from exc

    def _writable(self) -> sqlite3.Connection:
        if self._closed:
            raise StorageFailure(f"{self!r} is closed")
        return self._writer

    def set_global(self, key: str, value: Any) -> None:
        text = json.dumps(value, separators=(",", ":"))
        with self._write_lock:
            conn = self._writable()
            try:
                conn.execute(_SET_GLOBAL, (key, text))
            except sqlite3.Error as exc:
                raise StorageFailure(f"storing global {key!r} failed: {exc}") from exc

    def delete_index(self, index_id: int) -> None:
        with self._write_lock:
            conn = self._writable()
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(_DELETE_INDEX, (index_id,))
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(conn)
                raise StorageFailure(f"deleting index {index_id} failed: {exc}") from exc

    # --- reads --------------------------------------------------------------------------

    def max_ts(self) -> int:
        # Read from the file: other processes may have written since this one last did.
        rows = self._read_all(_MAX_TS, ())
        top = int(rows[0][0] or 0) if rows else 0
        self._max_ts = max(self._max_ts, top)
        return self._max_ts

    def get_global(self, key: str) -> Any:
        conn = self._acquire()
        try:
            rows = conn.execute(_GET_GLOBAL, (key,)).fetchall()
        except sqlite3.Error as exc:
            raise StorageFailure(f"reading global {key!r} failed: {exc}") from exc
        finally:
            self._release(conn)
        return json.loads(rows[0][0]) if rows else None

    def get_document(self, table: int, id: bytes, read_ts: int) -> DocumentRevision | None:
        conn = self._acquire()
        try:
            # fetchall steps the statement to its end, so no read transaction stays open.
            rows = conn.execute(_GET_DOCUMENT, (table, id, read_ts)).fetchall()
        except sqlite3.Error as exc:
            raise StorageFailure(f"reading document of table {table} failed: {exc}") from exc
        finally:
            self._release(conn)
        if not rows:
            return None
        ts, value, prev_ts = rows[0]
        return DocumentRevision(ts, table, id, value, prev_ts)

    def index_scan(
        self,
        index_id: int,
        start: bytes,
        end: bytes | None,
        read_ts: int,
        *,
        reverse: bool = False,
        batch_size: int = 128,
    ) -> Iterator[tuple[bytes, DocumentRevision]]:
        if end is None:
            sql = _SCAN_UNBOUNDED_DESC if reverse else _SCAN_UNBOUNDED
            params: tuple[Any, ...] = (index_id, start, read_ts)
        else:
            if end <= start:
                return iter(())
            sql = _SCAN_BOUNDED_DESC if reverse else _SCAN_BOUNDED
            params = (index_id, start, end, read_ts)
        return self._index_scan(sql, params, index_id, max(batch_size, 1))

    def _index_scan(
        self, sql: str, params: tuple[Any, ...], index_id: int, batch_size: int
    ) -> Iterator[tuple[bytes, DocumentRevision]]:
        conn = self._acquire()
        try:
            cursor = conn.execute(sql, params)
            # The first batch is small and later ones grow: ``first()``/``take(10)`` stop after
            # a few rows, and every row fetched costs SQLite a GROUP BY step and a join
            # (fetching 128 made an uncached take-10 ~2x slower; bench/RESULTS.md, R1).
            batch = min(batch_size, _FIRST_SCAN_BATCH)
            try:
                while True:
                    rows = cursor.fetchmany(batch)
                    for key, ts, table, id, value, prev_ts in rows:
                        if value is None:
                            raise _dangling(index_id, key, ts)
                        yield key, DocumentRevision(ts, table, id, value, prev_ts)
                    if len(rows) < batch:
                        return
                    batch = min(batch * 4, batch_size)
            finally:
                cursor.close()
        except sqlite3.Error as exc:
            raise StorageFailure(f"scanning index {index_id} failed: {exc}") from exc
        finally:
            self._release(conn)

    def index_keys(
        self, index_id: int, start: bytes, end: bytes | None, read_ts: int, limit: int
    ) -> list[tuple[bytes, int]]:
        params: tuple[Any, ...]
        if end is None:
            sql, params = _KEYS_UNBOUNDED, (index_id, start, read_ts, limit)
        else:
            if end <= start:
                return []
            sql, params = _KEYS_BOUNDED, (index_id, start, end, read_ts, limit)
        conn = self._acquire()
        try:
            return [(key, ts) for key, ts, _ in conn.execute(sql, params).fetchall()]
        except sqlite3.Error as exc:
            raise StorageFailure(f"scanning index {index_id} failed: {exc}") from exc
        finally:
            self._release(conn)

    def document_log(
        self, after_ts: int, up_to_ts: int, *, table: int | None = None
    ) -> Iterator[DocumentRevision]:
        if table is None:
            return self._stream_revisions(_DOCUMENT_LOG, (after_ts, up_to_ts))
        return self._stream_revisions(_DOCUMENT_LOG_TABLE, (after_ts, up_to_ts, table))

    def _stream_revisions(self, sql: str, params: tuple[Any, ...]) -> Iterator[DocumentRevision]:
        conn = self._acquire()
        try:
            cursor = conn.execute(sql, params)
            try:
                while rows := cursor.fetchmany(256):
                    for ts, table, id, value, prev_ts in rows:
                        yield DocumentRevision(ts, table, id, value, prev_ts)
            finally:
                cursor.close()
        except sqlite3.Error as exc:
            raise StorageFailure(f"reading the document log failed: {exc}") from exc
        finally:
            self._release(conn)

    def table_documents(self, table: int, read_ts: int) -> Iterator[DocumentRevision]:
        return self._table_documents(table, read_ts)

    def _table_documents(self, table: int, read_ts: int) -> Iterator[DocumentRevision]:
        conn = self._acquire()
        try:
            cursor = conn.execute(_TABLE_DOCUMENTS, (table, read_ts))
            try:
                while rows := cursor.fetchmany(256):
                    for ts, id, value, prev_ts in rows:
                        yield DocumentRevision(ts, table, id, value, prev_ts)
            finally:
                cursor.close()
        except sqlite3.Error as exc:
            raise StorageFailure(f"reading table {table} failed: {exc}") from exc
        finally:
            self._release(conn)

    # --- maintenance --------------------------------------------------------------------

    def prune(self, index_before_ts: int, documents_before_ts: int) -> int:
        removed = 0
        batch = SQLITE_PRUNE_BATCH_COUNT
        # Both watermarks live in the file (shared by every process, kept across restarts):
        # every row at or below one was examined. Rows written later get a ts above max_ts
        # (commits), or belong to a new index (backfill: nothing of it is superseded).
        top = self.max_ts()
        # Index entries: candidates come from a read snapshot; entries are only ever added at
        # newer ts (or for a new index), so a candidate stays prunable until deleted.
        after = self._meta(_INDEX_WATERMARK)
        bound = min(index_before_ts, top)
        if bound > after:
            candidates = sorted(set(self._read_all(_PRUNE_INDEX_CANDIDATES, (after, bound))))
            for i in range(0, len(candidates), batch):
                removed += self._write_rows(_DELETE_INDEX_ENTRY, candidates[i : i + batch])
            self._write_rows(_SET_META, [(_INDEX_WATERMARK, bound)])
        # The commit log: other processes only need what they have not caught up on yet.
        removed += self._write_rows(_PRUNE_COMMITS, [(index_before_ts,)])
        # Document revisions: only superseding revisions newer than the last prune matter.
        after = self._meta(_DOCUMENTS_WATERMARK)
        if documents_before_ts > after:
            rowids = [
                (row[0],)
                for row in self._read_all(
                    _PRUNE_DOCUMENT_CANDIDATES, (after, documents_before_ts, top)
                )
            ]
            for i in range(0, len(rowids), batch):
                removed += self._write_rows(_DELETE_DOCUMENT_ROW, rowids[i : i + batch])
            # A deletion at max_ts was kept: look at it again next time.
            self._write_rows(_SET_META, [(_DOCUMENTS_WATERMARK, min(documents_before_ts, top - 1))])
        return removed

    def _meta(self, key: str) -> int:
        rows = self._read_all(_GET_META, (key,))
        return int(rows[0][0]) if rows else 0

    def _read_all(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        conn = self._acquire()
        try:
            rows: list[tuple[Any, ...]] = conn.execute(sql, params).fetchall()
            return rows
        except sqlite3.Error as exc:
            raise StorageFailure(f"pruning {self._path} failed: {exc}") from exc
        finally:
            self._release(conn)

    def _write_rows(self, sql: str, rows: list[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        with self._write_lock:
            conn = self._writable()
            try:
                conn.execute("BEGIN IMMEDIATE")
                cursor = conn.executemany(sql, rows)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(conn)
                raise StorageFailure(f"pruning {self._path} failed: {exc}") from exc
            return max(cursor.rowcount, 0)

    def checkpoint(self) -> None:
        with self._write_lock:
            conn = self._writable()
            try:
                if conn.execute("PRAGMA freelist_count").fetchone()[0]:
                    # incremental_vacuum frees one page per step and its "rows" have no
                    # columns, so Cursor.execute stops after one; executescript steps to the end.
                    conn.executescript(_VACUUM)
                # TRUNCATE waits (busy handler) for readers of older snapshots, e.g. a long
                # scan, while we hold the write lock. Do not wait: with no busy timeout it
                # checkpoints what it can and reports "busy" in its result row; the next
                # checkpoint finishes the job.
                conn.execute("PRAGMA busy_timeout=0")
                try:
                    conn.execute(_CHECKPOINT).fetchall()
                finally:
                    conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            except sqlite3.Error as exc:
                raise StorageFailure(f"checkpointing {self._path} failed: {exc}") from exc

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._local_wake.close()
        with self._thread_lock, self._pool_lock:
            connections, self._connections = self._connections, []
            self._idle.clear()
        self._write_lock.close()
        for conn in connections:
            try:
                conn.close()
            except sqlite3.Error:  # pragma: no cover - closing is best effort
                pass


class _WriteLock:
    """The writer's lock: this process's thread lock, then an exclusive ``flock`` on a file
    beside the database, shared by every process that writes to it (``serve --workers``,
    CLI commands). SQLite's own write lock is still what protects the data; the flock only
    decides who goes next. Without it a process that finds the write lock taken waits in
    SQLite's busy handler, which sleeps 1, 2, 5, 10 ... ms between tries, so under
    contention commits went out in bursts separated by sleeps; a blocked ``flock`` is woken
    by the kernel the moment the holder releases it. The file descriptor is opened per
    process (a descriptor inherited across ``fork`` would share the lock with the parent)."""

    def __init__(self, thread_lock: threading.Lock, path: Path) -> None:
        self._thread_lock = thread_lock
        self._path = path
        self._fd = -1
        self._pid = 0

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        try:
            if self._pid != os.getpid():
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                self._pid = os.getpid()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except OSError:
            # No lock file (a read-only directory): SQLite's busy handler still serializes.
            self._pid = 0
        except BaseException:
            self._thread_lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            if self._pid == os.getpid():
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def close(self) -> None:
        if self._pid == os.getpid() and self._fd >= 0:
            os.close(self._fd)
        self._fd, self._pid = -1, 0


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:  # pragma: no cover - the outcome is already "unknown"
            pass


def _dangling(index_id: int, key: bytes, ts: int) -> StorageFailure:
    return StorageFailure(
        f"index {index_id} entry {key.hex()} at ts {ts} points to a document revision that "
        "is not in the document log; the database is corrupt or was pruned below the read ts"
    )


class _SqliteSession:
    """Rows of one commit session, written on the writer connection inside its transaction."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._path = path
        self.top = 0

    def commits_after(self, ts: int) -> list[CommitEntry]:
        try:
            rows = self._conn.execute(_COMMITS_AFTER, (ts,)).fetchall()
        except sqlite3.Error as exc:
            raise StorageFailure(f"reading the commit log of {self._path} failed: {exc}") from exc
        return [CommitEntry(t, k) for t, k in rows]

    def write(
        self,
        documents: Sequence[DocumentRevision],
        indexes: Sequence[IndexEntry],
        commits: Sequence[CommitEntry],
    ) -> None:
        conn = self._conn
        try:
            if documents:
                conn.executemany(
                    _INSERT_DOCUMENT,
                    [(d.ts, d.table, d.id, d.value, d.value is None, d.prev_ts) for d in documents],
                )
                self.top = max(self.top, max(d.ts for d in documents))
            if indexes:
                rows = [(e.index_id, e.key, e.ts, e.id is None, e.table, e.id) for e in indexes]
                rows.sort(key=_PK)  # B-tree order: a large batch (an import) inserts ~1.4x faster
                conn.executemany(_INSERT_INDEX, rows)
            if commits:
                conn.executemany(_INSERT_COMMIT, [(c.ts, c.keys) for c in commits])
        except sqlite3.Error as exc:
            raise StorageFailure(
                f"writing {len(documents)} document revisions and {len(indexes)} index entries "
                f"to {self._path} failed: {exc}"
            ) from exc
