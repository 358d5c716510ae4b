"""The SQL of the PostgreSQL store (persistence/postgres.py): the schema, every statement
(constant text, so psycopg prepares each once per connection), the range-scan builders, and
how long keys are split into prefix + digest + suffix. See postgres.py's docstring for the
layout and the planner settings these statements rely on.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any, Final

#: Bytes of a key kept in ``key_prefix`` (part of the on-disk format: do not change). With the
#: other columns the ``indexes_by_key`` entry stays under PostgreSQL's B-tree item limit
#: (2704 bytes with 8 KiB pages).
KEY_PREFIX_BYTES: Final = 2500

_CREATE_COMMITS: Final = (
    "CREATE TABLE IF NOT EXISTS commits (ts BIGINT PRIMARY KEY, keys BYTEA NOT NULL)"
)
# The commit lock: a transaction-scoped advisory lock, per schema (several stores can share
# a database), taken by every commit session of every process.
_COMMIT_LOCK: Final = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.convection_commit'))"
_COMMITS_AFTER: Final = "SELECT ts, keys FROM commits WHERE ts > %s ORDER BY ts"
# The commit-log rows and the notification of the newest ts on the store's channel
# (persistence/postgres_notify.py), in one statement; PostgreSQL delivers it at COMMIT.
_INSERT_COMMITS: Final = (
    "WITH c AS (INSERT INTO commits (ts, keys) SELECT * FROM unnest(%s::bigint[], %s::bytea[]))"
    " SELECT pg_notify(%s, %s)"
)
_PRUNE_COMMITS: Final = (
    "DELETE FROM commits WHERE ts <= %s AND ts < (SELECT max(ts) FROM commits)"
)
_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS documents ("
    " ts BIGINT NOT NULL, table_id BIGINT NOT NULL, id BYTEA NOT NULL, json BYTEA,"
    " deleted BOOLEAN NOT NULL, prev_ts BIGINT, PRIMARY KEY (ts, table_id, id))",
    "CREATE UNIQUE INDEX IF NOT EXISTS documents_by_id ON documents (table_id, id, ts DESC)",
    "CREATE TABLE IF NOT EXISTS indexes ("
    " index_id BIGINT NOT NULL, key_prefix BYTEA NOT NULL, key_sha256 BYTEA NOT NULL,"
    " key_suffix BYTEA, ts BIGINT NOT NULL, deleted BOOLEAN NOT NULL, table_id BIGINT NOT NULL,"
    " document_id BYTEA)",
    "CREATE UNIQUE INDEX IF NOT EXISTS indexes_by_key"
    " ON indexes (index_id, key_prefix, key_sha256, ts DESC)",
    "CREATE INDEX IF NOT EXISTS indexes_by_ts ON indexes (ts)",
    "CREATE TABLE IF NOT EXISTS globals (key TEXT PRIMARY KEY, json TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS persistence_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)",
    _CREATE_COMMITS,
)

# --- statements (constant text, so psycopg prepares each once per connection) --------------

_SCHEMA_VERSION: Final = "SELECT value FROM persistence_meta WHERE key = 'schema_version'"
_SET_SCHEMA_VERSION: Final = (
    "INSERT INTO persistence_meta (key, value) VALUES ('schema_version', %s)"
)
_MAX_TS: Final = (
    "SELECT (SELECT max(ts) FROM documents), (SELECT max(ts) FROM indexes)"
)

# Writes are single statements (atomic in autocommit mode, one round trip): the changes in
# data-modifying CTEs, which PostgreSQL runs exactly once whether or not the query reads them.
def _batched(*changes: str) -> str:
    ctes = ", ".join(f"c{i} AS ({change})" for i, change in enumerate(changes))
    return f"WITH {ctes} SELECT 1"


_WRITE: Final = _batched(
    "INSERT INTO documents (ts, table_id, id, json, deleted, prev_ts)"
    " SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bytea[], %s::bytea[],"
    " %s::boolean[], %s::bigint[])",
    "INSERT INTO indexes"
    " (index_id, key_prefix, key_sha256, key_suffix, ts, deleted, table_id, document_id)"
    " SELECT * FROM unnest(%s::bigint[], %s::bytea[], %s::bytea[], %s::bytea[], %s::bigint[],"
    " %s::boolean[], %s::bigint[], %s::bytea[])",
)

_GET_DOCUMENT: Final = (
    "SELECT ts, json, prev_ts FROM documents"
    " WHERE table_id = %s AND id = %s AND ts <= %s ORDER BY ts DESC LIMIT 1"
)
_DOCUMENT_LOG: Final = (
    "SELECT ts, table_id, id, json, prev_ts FROM documents"
    " WHERE ts > %s AND ts <= %s{table}{after} ORDER BY ts, table_id, id LIMIT %s"
)
_TABLE_DOCUMENTS: Final = (
    "SELECT DISTINCT ON (id) id, ts, json, prev_ts, deleted FROM documents"
    " WHERE table_id = %s AND ts <= %s{after} ORDER BY id, ts DESC LIMIT %s"
)

_GET_GLOBAL: Final = "SELECT json FROM globals WHERE key = %s"
_SET_GLOBAL: Final = _batched(
    "INSERT INTO globals (key, json) VALUES (%s, %s)"
    " ON CONFLICT (key) DO UPDATE SET json = excluded.json"
)
_DELETE_INDEX: Final = _batched("DELETE FROM indexes WHERE index_id = %s")

# Retention: everything an entry/revision with ts in (after, bound] supersedes, plus
# tombstones/deletions in that range. See ``prune``.
_GET_WATERMARK: Final = "SELECT value FROM persistence_meta WHERE key = %s FOR UPDATE"
_SET_WATERMARK: Final = (
    "INSERT INTO persistence_meta (key, value) VALUES (%s, %s)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
_PRUNE_INDEXES: Final = (
    "DELETE FROM indexes AS o USING ("
    "SELECT s.index_id, s.key_prefix, s.key_sha256, s.ts FROM indexes AS n JOIN indexes AS s"
    " ON s.index_id = n.index_id AND s.key_prefix = n.key_prefix"
    " AND s.key_sha256 = n.key_sha256 AND s.ts < n.ts"
    " WHERE n.ts > %(after)s AND n.ts <= %(bound)s"
    " UNION SELECT index_id, key_prefix, key_sha256, ts FROM indexes"
    " WHERE deleted AND ts > %(after)s AND ts <= %(bound)s"
    ") AS c WHERE o.index_id = c.index_id AND o.key_prefix = c.key_prefix"
    " AND o.key_sha256 = c.key_sha256 AND o.ts = c.ts"
)
_PRUNE_DOCUMENTS: Final = (
    "DELETE FROM documents AS o USING ("
    "SELECT s.ts, s.table_id, s.id FROM documents AS n JOIN documents AS s"
    " ON s.table_id = n.table_id AND s.id = n.id AND s.ts < n.ts"
    " WHERE n.ts > %(after)s AND n.ts <= %(bound)s"
    " UNION SELECT ts, table_id, id FROM documents"
    " WHERE deleted AND ts > %(after)s AND ts <= %(bound)s AND ts < %(top)s"
    ") AS c WHERE o.ts = c.ts AND o.table_id = c.table_id AND o.id = c.id"
)

_INDEX_WATERMARK: Final = "index_pruned_ts"
_DOCUMENTS_WATERMARK: Final = "documents_pruned_ts"


@functools.lru_cache(maxsize=256)
def _scan_sql(reverse: bool, long_start: bool, end: str, resume: bool, limit: int) -> str:
    """The batch statement of an index scan. ``end`` is "none", "short" or "long".

    Parameters, in order: index_id, the start bound (1 or 3), the end bound (0, 1 or 3),
    read_ts, the resume position (0 or 2). The limit is part of the text, so that a generic
    plan cached for the prepared statement knows how small it is.
    """
    where = ["index_id = %s"]
    if long_start:  # key >= start, start longer than the prefix
        where.append("key_prefix >= %s AND (key_prefix > %s OR key_suffix >= %s)")
    else:
        where.append("key_prefix >= %s")
    if end == "short":
        where.append("key_prefix < %s")
    elif end == "long":  # key < end, end longer than the prefix
        where.append(
            "key_prefix <= %s AND (key_prefix < %s OR key_suffix IS NULL OR key_suffix < %s)"
        )
    where.append("ts <= %s")
    if resume:
        where.append(f"(key_prefix, key_sha256) {'<' if reverse else '>'} (%s, %s)")
    condition = " AND ".join(where)
    columns = "key_prefix, key_sha256, key_suffix, ts, deleted, table_id, document_id"
    if not reverse:
        # Forward walk of indexes_by_key: per key the newest entry <= read_ts comes first.
        entries = (
            f"SELECT DISTINCT ON (key_prefix, key_sha256) {columns} FROM indexes"
            f" WHERE {condition} ORDER BY key_prefix, key_sha256, ts DESC LIMIT {int(limit)}"
        )
        order = "i.key_prefix, i.key_sha256"
    else:
        # Backward walk: per key the entries come oldest first; keep each key's last one.
        entries = (
            f"SELECT {columns} FROM (SELECT {columns},"
            " lead(key_prefix) OVER w IS DISTINCT FROM key_prefix"
            " OR lead(key_sha256) OVER w IS DISTINCT FROM key_sha256 AS newest"
            f" FROM indexes WHERE {condition}"
            " WINDOW w AS (ORDER BY key_prefix DESC, key_sha256 DESC, ts)) AS e"
            f" WHERE newest LIMIT {int(limit)}"
        )
        order = "i.key_prefix DESC, i.key_sha256 DESC"
    # The LATERAL ... LIMIT 1 keeps the document lookups a nested loop of PK probes in batch
    # order (as a plain join, a small documents table would rather be hashed).
    return (
        "SELECT i.key_prefix, i.key_sha256, i.key_suffix, i.ts, i.deleted, i.table_id,"
        f" i.document_id, d.json, d.prev_ts FROM ({entries}) AS i"
        " LEFT JOIN LATERAL (SELECT json, prev_ts FROM documents"
        " WHERE ts = i.ts AND table_id = i.table_id AND id = i.document_id LIMIT 1) AS d"
        f" ON true ORDER BY {order}"
    )


@functools.lru_cache(maxsize=16)
def _keys_sql(long_start: bool, end: str) -> str:
    """A bounded key-only scan (``index_keys``): the forward walk of :func:`_scan_sql`
    without the documents. Parameters: index_id, start (1 or 3), end (0, 1 or 3), read_ts,
    limit."""
    where = _scan_sql(False, long_start, end, False, 1).split(" WHERE ", 1)[1].split(" ORDER BY", 1)[0]
    return (
        "SELECT key_prefix, key_suffix, ts FROM (SELECT DISTINCT ON (key_prefix, key_sha256)"
        f" key_prefix, key_sha256, key_suffix, ts, deleted FROM indexes WHERE {where}"
        " ORDER BY key_prefix, key_sha256, ts DESC) AS e WHERE NOT deleted"
        " ORDER BY key_prefix, key_sha256 LIMIT %s"
    )


def _range_bounds(index_id: int, start: bytes, end: bytes | None) -> tuple[list[Any], bool, str]:
    """Statement parameters for the key range [start, end) of an index (keys longer than
    ``KEY_PREFIX_BYTES`` compare as prefix, then suffix), whether the start is long, and the
    kind of end ("none", "short", "long") for :func:`_scan_sql` / :func:`_keys_sql`."""
    bounds: list[Any] = [index_id]
    long_start = len(start) > KEY_PREFIX_BYTES
    if long_start:
        sp, ss = start[:KEY_PREFIX_BYTES], start[KEY_PREFIX_BYTES:]
        bounds += [sp, sp, ss]
    else:
        bounds.append(start)
    if end is None:
        end_kind = "none"
    elif len(end) > KEY_PREFIX_BYTES:
        end_kind = "long"
        ep, es = end[:KEY_PREFIX_BYTES], end[KEY_PREFIX_BYTES:]
        bounds += [ep, ep, es]
    else:
        end_kind = "short"
        bounds.append(end)
    return bounds, long_start, end_kind


def split_key(key: bytes) -> tuple[bytes, bytes, bytes | None]:
    """(key_prefix, key_sha256, key_suffix) as stored for ``key``."""
    if len(key) <= KEY_PREFIX_BYTES:
        return key, b"", None
    return key[:KEY_PREFIX_BYTES], hashlib.sha256(key).digest(), key[KEY_PREFIX_BYTES:]
