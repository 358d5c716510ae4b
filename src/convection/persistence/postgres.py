"""PostgreSQL implementation of the Persistence protocol (``--db postgres://...``).

Same logical layout as the SQLite store (docs/internals/transactions.md), created on first use:

* ``documents(ts, table_id, id, json, deleted, prev_ts)``: the document log, PK
  ``(ts, table_id, id)`` plus the unique index ``documents_by_id (table_id, id, ts DESC)`` for
  point reads and per-table snapshots.
* ``indexes(index_id, key_prefix, key_sha256, key_suffix, ts, deleted, table_id, document_id)``:
  the MVCC index log, unique index ``indexes_by_key (index_id, key_prefix, key_sha256,
  ts DESC)`` and ``indexes_by_ts (ts)`` (incremental retention).
* ``globals(key, json)``: small JSON values (read once, to migrate a 0.1.0 store);
* ``commits(ts, keys)``: the commit log (``persistence/base.py``);
  ``persistence_meta``: schema version and retention watermarks.

**Long keys.** A B-tree entry must fit in a third of a page (~2.7 KB), so a key is stored as
``key_prefix`` (its first :data:`KEY_PREFIX_BYTES` bytes) + ``key_suffix`` (the rest, NULL when
the key fits) + ``key_sha256`` (empty when the key fits, else the SHA-256 of the whole key).
Rows are ordered by ``(key_prefix, key_sha256)``, which is exactly the key order for every key
of at most :data:`KEY_PREFIX_BYTES` bytes (bytea compares like memcmp, shorter first; the empty
digest puts a key that fits before the longer keys extending it). The one approximation: keys
*longer* than that which share their first :data:`KEY_PREFIX_BYTES` bytes are ordered among
themselves by digest, not by their suffix. Range membership is always exact (bounds longer than
the prefix are rechecked against the suffix).

**Snapshot reads.** A scan takes, per key, the newest entry with ts <= read_ts: ascending scans
with ``DISTINCT ON (key_prefix, key_sha256) ... ORDER BY key_prefix, key_sha256, ts DESC`` (a
forward walk of ``indexes_by_key``), descending ones with the backward walk and ``lead()`` to
keep the last (newest) entry of each key (PostgreSQL 15 cannot add an incremental sort under
DISTINCT). Each batch is one statement with a LIMIT (tombstones included, dropped here; the
first batch has at most 16 rows, the next ones double up to ``batch_size``) and the next batch
resumes after the last ``(key_prefix, key_sha256)``; the documents are joined per row through
the ``documents`` PK. ``tests/persistence/test_postgres.py`` pins the plans with EXPLAIN.

Batches are separate autocommit statements, so a scan holds no connection between batches (an
abandoned scan costs nothing). They still form one snapshot: the read ts is clamped to the
largest ts written so far (documents or index entries) when the scan starts; every write at or
below it has committed and every later one has a larger ts (the protocol's invariant), so
later batches cannot see anything new. (The clamp is a valid linearization: a write still in
flight when the read started may be ordered after it.)
Retention below the read ts and ``delete_index`` of the scanned index are the caller's
business, as with every store.

**Writes.** ``write`` is ONE statement on a dedicated writer connection in autocommit mode, so
atomic and one round trip whatever the number of rows: one ``INSERT ... SELECT FROM
unnest(column arrays)`` per table as data-modifying CTEs (about half the time of a pipelined
BEGIN/INSERT/INSERT/COMMIT through psycopg). Commits go through ``commit_session``: a
transaction on the writer connection that first takes the store's commit lock
(``pg_advisory_xact_lock`` on a key derived from the schema name), so every process and node
using the store commits in turn; it reads the commit log, writes the rows and the commit-log
entries, and ends (COMMIT releases the lock). Durability is the
server's: with the default ``synchronous_commit=on`` a returned write is flushed to the
server's WAL. Any error is a :class:`StorageFailure` (outcome unknown).

**Several processes.** Any number of processes (nodes) may open the same store and commit:
the commit lock serializes them, and each commit session also sends ``pg_notify`` on the
store's channel, which ``watch_commits`` LISTENs on (``postgres_notify.py``). (Convection
0.1.0 used a single-writer lease instead; its ``leases`` table is left alone.)

**Connections.** One writer connection (guarded by a lock) plus a bounded pool of autocommit
connections opened on demand (by default as many as function worker threads, plus 4) for
reads and the other writes; a call checks one out per statement. Statements are prepared by psycopg after a few uses; ints are always sent as
int8 so each statement has one prepared form.

**Planner settings.** Every statement is meant to walk an index in order and stop at its
LIMIT; the only alternative PostgreSQL has is "fetch the whole range, then sort", which it
picks whenever it believes the range is small: on young tables (no statistics yet, estimates
of a handful of rows), for generic plans of prepared statements (a range with unknown bounds
is guessed at 0.5% of the table) and for keys past the histogram. Once cached, such a plan
would sort a whole million-row range to return 128 rows. So the connections run with
``enable_seqscan``, ``enable_bitmapscan``, ``enable_sort``, ``enable_hashjoin`` and
``enable_mergejoin`` off (the planner then only considers these plans if nothing else works;
the job pg_hint_plan does for Convex), which makes every plan an index walk whatever the
statistics, and generic plans safe to cache. ``prune`` turns them back on for its
transaction. JIT is off too: it never pays for statements this short, and the penalty cost of
the one sort left (ordering the <= LIMIT rows of a descending batch) would trigger it.

**Retention** deletes, in one transaction per call, index entries superseded by an entry with
ts in (watermark, bound] plus tombstones in that range, and document revisions likewise (never
the revisions at ``max_ts``); the watermarks live in ``persistence_meta``, so each row is
examined about once however often ``prune`` runs. ``checkpoint`` is a no-op: autovacuum
reclaims the space.

**Several stores in one database**: ``schema=`` (or ``?schema=name`` in the URL) puts the tables
in that PostgreSQL schema (created if missing) via the connections' ``search_path``.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, urlencode

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.types.numeric import Int8BinaryDumper, Int8Dumper

from convection import knobs
from convection.errors import ConvectionError, StorageFailure
from convection.persistence.base import CommitEntry, DocumentRevision, IndexEntry
from convection.persistence.postgres_notify import CommitListener, channel_name
from convection.persistence.postgres_sql import (  # noqa: F401 (KEY_PREFIX_BYTES, split_key: public)
    _COMMIT_LOCK,
    _COMMITS_AFTER,
    _CREATE_COMMITS,
    _DELETE_INDEX,
    _DOCUMENT_LOG,
    _DOCUMENTS_WATERMARK,
    _GET_DOCUMENT,
    _GET_GLOBAL,
    _GET_WATERMARK,
    _INDEX_WATERMARK,
    _INSERT_COMMITS,
    _MAX_TS,
    _PRUNE_COMMITS,
    _PRUNE_DOCUMENTS,
    _PRUNE_INDEXES,
    _SCHEMA,
    _SCHEMA_VERSION,
    _SET_GLOBAL,
    _SET_SCHEMA_VERSION,
    _SET_WATERMARK,
    _TABLE_DOCUMENTS,
    _WRITE,
    KEY_PREFIX_BYTES,
    _keys_sql,
    _range_bounds,
    _scan_sql,
    split_key,
)

SCHEMA_VERSION: Final = 2  # 2: the commit log, no writer lease (1: convection 0.1.0)

#: Seconds to wait for a connection to the server.
DEFAULT_CONNECT_TIMEOUT_S: Final = 10
#: Rows in the first batch of an index scan (later ones double, up to ``batch_size``).
_FIRST_BATCH_COUNT: Final = 16
#: Rows per batch of ``document_log`` and ``table_documents``.
_LOG_BATCH_COUNT: Final = 512

# Planner methods switched off on our connections (module docstring, "Planner settings").
_PLANNER_OFF: Final = (
    "jit",
    "enable_seqscan",
    "enable_bitmapscan",
    "enable_sort",
    "enable_hashjoin",
    "enable_mergejoin",
)

_SCHEMA_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Serializes schema creation among processes opening the same database at once.
_SCHEMA_LOCK_KEY: Final = 0x636F6E76  # "conv"

_T = TypeVar("_T")
_Connection = psycopg.Connection[tuple[Any, ...]]


class PostgresPersistence:
    """The Persistence protocol over a PostgreSQL database (tables created on first open).

    ``url`` is a libpq URL (``postgres://user:password@host:port/dbname?sslmode=...``);
    an extra ``schema=name`` query parameter, or the ``schema`` argument, selects a
    PostgreSQL schema for the tables. ``max_connections`` bounds the pooled connections (the
    writer's comes on top).
    """

    local_reads = False  # see Persistence.local_reads

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        max_connections: int | None = None,
        connect_timeout_s: int = DEFAULT_CONNECT_TIMEOUT_S,
    ) -> None:
        url, url_schema = _split_schema(url)
        schema = schema or url_schema
        if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
            raise ConvectionError(
                f"schema {schema!r} is not a plain PostgreSQL name; use lowercase letters, "
                "digits and underscores, starting with a letter or underscore",
                code="InvalidArgument",
            )
        try:
            params: dict[str, Any] = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise ConvectionError(
                f"cannot parse the PostgreSQL URL: {exc}; write "
                "postgres://user:password@host:port/dbname",
                code="InvalidArgument",
            ) from exc
        params.setdefault("application_name", "convection")
        params.setdefault("connect_timeout", str(connect_timeout_s))
        # Index walks only, no JIT (see the module docstring), and our schema if any.
        options = [params.get("options", ""), *(f"-c {name}=off" for name in _PLANNER_OFF)]
        if schema is not None:
            options.append(f"-c search_path={schema}")
        params["options"] = " ".join(o for o in options if o)
        self._params = params
        self._schema = schema
        self._where = _describe(params, schema)
        self._closed = False
        if max_connections is None:
            max_connections = knobs.FUNCTION_WORKER_THREADS_COUNT + 4
        self._max_connections = max(max_connections, 1)
        self._write_lock = threading.Lock()
        self._pool = threading.Condition()
        self._idle: list[_Connection] = []
        self._open_readers = 0
        self._writer: _Connection | None = None
        self._writer_pid: int | None = None
        self._listener: CommitListener | None = None
        try:
            self._writer = self._connect()
            self._writer_pid = self._writer.info.backend_pid
            self._create_schema(self._writer)
            row = self._writer.execute(_MAX_TS).fetchone()
            current = self._writer.execute("SELECT current_schema()").fetchone()
        except psycopg.Error as exc:
            self.close()
            raise StorageFailure(f"cannot open PostgreSQL store {self._where}: {exc}") from exc
        except BaseException:
            self.close()
            raise
        # The largest ts in the document log (max_ts) and in either log (the snapshot clamp:
        # index-only writes, e.g. backfills, do not move max_ts but must be visible).
        self._max_ts: int = (row[0] if row else None) or 0
        self._written_ts: int = max(self._max_ts, (row[1] if row else None) or 0)
        # Commit notifications (postgres_notify.py) are per schema the tables live in.
        self._channel = channel_name(str(current[0]) if current and current[0] else "public")

    def __repr__(self) -> str:
        return f"PostgresPersistence({self._where!r})"

    # --- connections --------------------------------------------------------------------

    def _connect(self) -> _Connection:
        conn: _Connection = psycopg.connect(autocommit=True, **self._params)
        # Always int8, so each statement has a single prepared form whatever the values.
        conn.adapters.register_dumper(int, Int8Dumper)
        conn.adapters.register_dumper(int, Int8BinaryDumper)
        return conn

    def _create_schema(self, conn: _Connection) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
            if self._schema is not None:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self._schema}")
            exists = conn.execute("SELECT to_regclass('persistence_meta')").fetchone()
            if exists is not None and exists[0] is not None:
                row = conn.execute(_SCHEMA_VERSION).fetchone()
                version = row[0] if row else 0
                if version == 1:  # 0.1.0: add the commit log (the writer lease is unused)
                    conn.execute(_CREATE_COMMITS)
                    conn.execute(
                        "UPDATE persistence_meta SET value = %s WHERE key = 'schema_version'",
                        (SCHEMA_VERSION,),
                    )
                    return
                if version == SCHEMA_VERSION:
                    return
                raise ConvectionError(
                    f"{self._where} has storage schema version {version}, this convection "
                    f"understands version {SCHEMA_VERSION}; upgrade convection",
                    code="StorageVersionMismatch",
                )
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(_SET_SCHEMA_VERSION, (SCHEMA_VERSION,))

    def _check_open(self) -> None:
        if self._closed:
            raise StorageFailure(f"{self!r} is closed")

    def _acquire(self) -> _Connection:
        with self._pool:
            while True:
                self._check_open()
                if self._idle:
                    return self._idle.pop()
                if self._open_readers < self._max_connections:
                    self._open_readers += 1
                    break
                self._pool.wait()
        try:
            return self._connect()
        except BaseException as exc:
            with self._pool:
                self._open_readers -= 1
                self._pool.notify()
            if isinstance(exc, psycopg.Error):
                raise StorageFailure(f"cannot connect to {self._where}: {exc}") from exc
            raise

    def _release(self, conn: _Connection) -> None:
        reusable = (
            not conn.closed
            and not conn.broken
            and conn.info.transaction_status == TransactionStatus.IDLE
        )
        with self._pool:
            if reusable and not self._closed:
                self._idle.append(conn)
            else:
                self._open_readers -= 1
                conn.close()
            self._pool.notify()

    def _read(self, what: str, fn: Callable[[_Connection], _T]) -> _T:
        """Run ``fn`` on a pooled connection. A read is retried once on a fresh connection
        when the pooled one turns out broken (e.g. the server restarted meanwhile)."""
        for attempt in (1, 2):
            conn = self._acquire()
            try:
                return fn(conn)
            except psycopg.Error as exc:
                if attempt == 1 and conn.broken:
                    continue
                raise StorageFailure(f"{what} failed on {self._where}: {exc}") from exc
            finally:
                self._release(conn)
        raise AssertionError("unreachable")  # pragma: no cover

    def _fetch(self, what: str, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self._read(what, lambda conn: conn.execute(sql, params, binary=True).fetchall())

    def _writable(self) -> _Connection:
        """The writer connection (call with ``_write_lock`` held), reconnected if broken."""
        self._check_open()
        conn = self._writer
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                conn.close()
            self._writer = None
            try:
                self._writer = conn = self._connect()
                self._writer_pid = conn.info.backend_pid
            except psycopg.Error as exc:
                raise StorageFailure(f"cannot connect to {self._where}: {exc}") from exc
        return conn

    # --- writes -------------------------------------------------------------------------

    def write(
        self, documents: Sequence[DocumentRevision], indexes: Sequence[IndexEntry]
    ) -> None:
        doc_columns, index_columns = _columns(documents, indexes)
        with self._write_lock:
            try:
                self._writable().execute(
                    _WRITE, (*doc_columns, *index_columns)
                )
            except psycopg.Error as exc:
                raise self._write_failure(
                    f"writing {len(documents)} document revisions and {len(indexes)} index "
                    "entries",
                    exc,
                ) from exc
            if documents:
                self._max_ts = max(self._max_ts, *doc_columns[0])
            if documents or indexes:
                self._written_ts = max(self._written_ts, *doc_columns[0], *index_columns[4])

    @contextmanager
    def commit_session(self) -> Iterator[_PostgresSession]:
        """A transaction on the writer connection holding the commit lock (an advisory lock of
        this schema): every process and node using the store commits through it in turn."""
        with self._write_lock:
            conn = self._writable()
            session = _PostgresSession(self, conn)
            try:
                with conn.transaction():
                    conn.execute(_COMMIT_LOCK)
                    yield session
            except psycopg.Error as exc:
                raise self._write_failure("committing", exc) from exc
            if session.top:
                self._max_ts = max(self._max_ts, session.top)
                self._written_ts = max(self._written_ts, session.top)

    def commits_after(self, ts: int) -> list[CommitEntry]:
        rows = self._fetch("reading the commit log", _COMMITS_AFTER, (ts,))
        return self._observed([CommitEntry(t, bytes(k)) for t, k in rows])

    def _observed(self, commits: list[CommitEntry]) -> list[CommitEntry]:
        # Reads clamp their ts to what is known written (module docstring): commits made by
        # other processes are written too.
        if commits:
            self._written_ts = max(self._written_ts, commits[-1].ts)
            self._max_ts = max(self._max_ts, commits[-1].ts)
        return commits

    def others_may_have_committed(self) -> bool:
        return True  # no cheap local signal: the caller reads commits_after

    def watch_commits(self, wake: Callable[[], None]) -> bool:
        """LISTEN for other processes' commits on a dedicated connection
        (persistence/postgres_notify.py); ``wake`` runs in the listener's thread."""
        self._check_open()
        if self._listener is not None:
            self._listener.close()
        self._listener = CommitListener(
            self._connect, self._channel, wake, lambda: self._writer_pid, self._where
        )
        return True

    def _write_failure(self, what: str, exc: psycopg.Error) -> StorageFailure:
        return StorageFailure(f"{what} to {self._where} failed: {exc}")

    def _transaction(self, what: str, fn: Callable[[_Connection], _T]) -> _T:
        """Run ``fn`` in a transaction on a pooled connection."""

        def run(conn: _Connection) -> _T:
            with conn.transaction():
                return fn(conn)

        conn = self._acquire()
        try:
            return run(conn)
        except psycopg.Error as exc:
            raise self._write_failure(what, exc) from exc
        finally:
            self._release(conn)

    def set_global(self, key: str, value: Any) -> None:
        text = json.dumps(value, separators=(",", ":"))
        self._statement(f"storing global {key!r}", _SET_GLOBAL, (key, text))

    def delete_index(self, index_id: int) -> None:
        self._statement(f"deleting index {index_id}", _DELETE_INDEX, (index_id,))

    def _statement(self, what: str, sql: str, params: Sequence[Any]) -> None:
        """Run one write statement on a pooled connection."""
        conn = self._acquire()
        try:
            conn.execute(sql, params)
        except psycopg.Error as exc:
            raise self._write_failure(what, exc) from exc
        finally:
            self._release(conn)

    # --- reads --------------------------------------------------------------------------

    def max_ts(self) -> int:
        # Read from the server: other processes may have written since this one last did.
        rows = self._fetch("reading the largest ts", _MAX_TS, ())
        if rows:
            self._max_ts = max(self._max_ts, rows[0][0] or 0)
            self._written_ts = max(self._written_ts, self._max_ts, rows[0][1] or 0)
        return self._max_ts

    def get_global(self, key: str) -> Any:
        rows = self._fetch(f"reading global {key!r}", _GET_GLOBAL, (key,))
        return json.loads(rows[0][0]) if rows else None

    def get_document(self, table: int, id: bytes, read_ts: int) -> DocumentRevision | None:
        read_ts = min(read_ts, self._written_ts)
        rows = self._fetch(
            f"reading a document of table {table}", _GET_DOCUMENT, (table, id, read_ts)
        )
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
        if end is not None and end <= start:
            return iter(())
        return self._index_scan(index_id, start, end, read_ts, reverse, max(batch_size, 1))

    # The first batch of a scan is small and the next ones double up to batch_size: queries
    # that stop early (first(), take(10), a page) are the common case, and every row of a
    # batch costs a document probe and its transfer.

    def _index_scan(
        self,
        index_id: int,
        start: bytes,
        end: bytes | None,
        read_ts: int,
        reverse: bool,
        limit: int,
    ) -> Iterator[tuple[bytes, DocumentRevision]]:
        self._check_open()
        read_ts = min(read_ts, self._written_ts)  # one snapshot for all batches (see module doc)
        bounds, long_start, end_kind = _range_bounds(index_id, start, end)
        bounds.append(read_ts)
        what = f"scanning index {index_id}"
        resume: tuple[bytes, bytes] | None = None
        limit, batch_size = min(limit, _FIRST_BATCH_COUNT), limit
        while True:
            if resume is None:
                sql = _scan_sql(reverse, long_start, end_kind, False, limit)
                rows = self._fetch(what, sql, bounds)
            else:
                sql = _scan_sql(reverse, long_start, end_kind, True, limit)
                rows = self._fetch(what, sql, (*bounds, *resume))
            for prefix, _, suffix, ts, deleted, table, id, value, prev_ts in rows:
                if deleted:
                    continue
                key = prefix if suffix is None else prefix + suffix
                if value is None:
                    raise StorageFailure(
                        f"index {index_id} entry {key.hex()} at ts {ts} points to a document "
                        "revision that is not in the document log; the database is corrupt or "
                        "was pruned below the read ts"
                    )
                yield key, DocumentRevision(ts, table, id, value, prev_ts)
            if len(rows) < limit:
                return
            resume = (rows[-1][0], rows[-1][1])
            limit = min(limit * 2, batch_size)

    def index_keys(
        self, index_id: int, start: bytes, end: bytes | None, read_ts: int, limit: int
    ) -> list[tuple[bytes, int]]:
        if end is not None and end <= start:
            return []
        self._check_open()
        read_ts = min(read_ts, self._written_ts)
        bounds, long_start, end_kind = _range_bounds(index_id, start, end)
        bounds += [read_ts, limit]
        rows = self._fetch(f"scanning index {index_id}", _keys_sql(long_start, end_kind), bounds)
        return [(bytes(p) if s is None else bytes(p) + bytes(s), ts) for p, s, ts in rows]

    def document_log(
        self, after_ts: int, up_to_ts: int, *, table: int | None = None
    ) -> Iterator[DocumentRevision]:
        return self._document_log(after_ts, up_to_ts, table)

    def _document_log(
        self, after_ts: int, up_to_ts: int, table: int | None
    ) -> Iterator[DocumentRevision]:
        self._check_open()
        up_to_ts = min(up_to_ts, self._written_ts)
        by_table = "" if table is None else " AND table_id = %s"
        first = _DOCUMENT_LOG.format(table=by_table, after="")
        more = _DOCUMENT_LOG.format(table=by_table, after=" AND (ts, table_id, id) > (%s, %s, %s)")
        head: tuple[Any, ...] = (after_ts, up_to_ts) if table is None else (after_ts, up_to_ts, table)
        resume: tuple[Any, ...] = ()
        while True:
            rows = self._fetch(
                "reading the document log",
                more if resume else first,
                (*head, *resume, _LOG_BATCH_COUNT),
            )
            for ts, table_id, id, value, prev_ts in rows:
                yield DocumentRevision(ts, table_id, id, value, prev_ts)
            if len(rows) < _LOG_BATCH_COUNT:
                return
            resume = rows[-1][:3]

    def table_documents(self, table: int, read_ts: int) -> Iterator[DocumentRevision]:
        return self._table_documents(table, read_ts)

    def _table_documents(self, table: int, read_ts: int) -> Iterator[DocumentRevision]:
        self._check_open()
        read_ts = min(read_ts, self._written_ts)
        first = _TABLE_DOCUMENTS.format(after="")
        more = _TABLE_DOCUMENTS.format(after=" AND id > %s")
        resume: bytes | None = None
        while True:
            if resume is None:
                params: tuple[Any, ...] = (table, read_ts, _LOG_BATCH_COUNT)
            else:
                params = (table, read_ts, resume, _LOG_BATCH_COUNT)
            rows = self._fetch(
                f"reading table {table}", first if resume is None else more, params
            )
            for id, ts, value, prev_ts, deleted in rows:
                if not deleted:
                    yield DocumentRevision(ts, table, id, value, prev_ts)
            if len(rows) < _LOG_BATCH_COUNT:
                return
            resume = rows[-1][0]

    # --- maintenance --------------------------------------------------------------------

    def prune(self, index_before_ts: int, documents_before_ts: int) -> int:
        # Every write with ts <= top has committed and later ones get larger ts, so rows at or
        # below the new watermarks are never examined again.
        top = self._max_ts

        def run(conn: _Connection) -> int:
            removed = 0
            for name in _PLANNER_OFF[1:]:  # set-based deletes: let the planner choose
                conn.execute(f"SET LOCAL {name} = on")
            after = _watermark(conn, _INDEX_WATERMARK)
            if index_before_ts > after:
                params = {"after": after, "bound": index_before_ts}
                removed += max(conn.execute(_PRUNE_INDEXES, params).rowcount, 0)
                conn.execute(_SET_WATERMARK, (_INDEX_WATERMARK, min(index_before_ts, top)))
            # The commit log: other processes only need what they have not caught up on.
            removed += max(conn.execute(_PRUNE_COMMITS, (index_before_ts,)).rowcount, 0)
            after = _watermark(conn, _DOCUMENTS_WATERMARK)
            if documents_before_ts > after:
                params = {"after": after, "bound": documents_before_ts, "top": top}
                removed += max(conn.execute(_PRUNE_DOCUMENTS, params).rowcount, 0)
                # A deletion at max_ts stays (max_ts never goes backwards): look at it again.
                bound = max(after, min(documents_before_ts, top - 1))
                conn.execute(_SET_WATERMARK, (_DOCUMENTS_WATERMARK, bound))
            return removed

        return self._transaction("pruning", run)

    def checkpoint(self) -> None:
        # Nothing to compact by hand: autovacuum reclaims what prune deleted.
        self._check_open()

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._pool:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
            self._open_readers -= len(idle)
            self._pool.notify_all()
        for conn in idle:
            conn.close()
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None


def _watermark(conn: _Connection, key: str) -> int:
    row = conn.execute(_GET_WATERMARK, (key,)).fetchone()
    return int(row[0]) if row else 0


def _split_schema(url: str) -> tuple[str, str | None]:
    """Remove a ``schema=`` query parameter (ours, not libpq's) from a URL."""
    base, sep, query = url.partition("?")
    if not sep:
        return url, None
    pairs = parse_qsl(query, keep_blank_values=True)
    schema = None
    kept = []
    for name, value in pairs:
        if name == "schema":
            schema = value
        else:
            kept.append((name, value))
    if schema is None:
        return url, None
    return (f"{base}?{urlencode(kept)}" if kept else base), schema


def _describe(params: dict[str, Any], schema: str | None) -> str:
    """user@host:port/dbname[/schema], without the password, for messages."""
    host = params.get("host") or "localhost"
    user = params.get("user")
    where = f"{user + '@' if user else ''}{host}"
    if params.get("port"):
        where += f":{params['port']}"
    where += f"/{params.get('dbname') or user or ''}"
    if schema:
        where += f" schema {schema}"
    return f"postgres://{where}"


class _PostgresSession:
    def __init__(self, store: PostgresPersistence, conn: _Connection) -> None:
        self._store = store
        self._conn = conn
        self.top = 0

    def commits_after(self, ts: int) -> list[CommitEntry]:
        rows = self._conn.execute(_COMMITS_AFTER, (ts,), binary=True).fetchall()
        return self._store._observed([CommitEntry(t, bytes(k)) for t, k in rows])

    def write(
        self,
        documents: Sequence[DocumentRevision],
        indexes: Sequence[IndexEntry],
        commits: Sequence[CommitEntry],
    ) -> None:
        doc_columns, index_columns = _columns(documents, indexes)
        if documents or indexes:
            self._conn.execute(_WRITE, (*doc_columns, *index_columns))
        if commits:
            self._conn.execute(_INSERT_COMMITS, (
                [c.ts for c in commits], [c.keys for c in commits],
                self._store._channel, str(commits[-1].ts),
            ))
        if documents:
            self.top = max(self.top, *doc_columns[0])
        if commits:
            self.top = max(self.top, commits[-1].ts)


def _columns(
    documents: Sequence[DocumentRevision], indexes: Sequence[IndexEntry]
) -> tuple[list[list[Any]], list[list[Any]]]:
    """Column arrays for unnest(): one list per column."""
    doc_columns: list[list[Any]] = [[], [], [], [], [], []]
    for d in documents:
        row = (d.ts, d.table, d.id, d.value, d.value is None, d.prev_ts)
        for column, value in zip(doc_columns, row, strict=True):
            column.append(value)
    index_columns: list[list[Any]] = [[], [], [], [], [], [], [], []]
    for e in indexes:
        prefix, digest, suffix = split_key(e.key)
        entry = (e.index_id, prefix, digest, suffix, e.ts, e.id is None, e.table, e.id)
        for column, value in zip(index_columns, entry, strict=True):
            column.append(value)
    return doc_columns, index_columns
