"""The Persistence protocol: a dumb, ordered, durable store with no concurrency control.

Two logs (docs/internals/transactions.md):

* the **document log**: one :class:`DocumentRevision` per (table, id, ts); ``value`` is the
  stored JSON text of the whole document (``convection.values.json.dumps``) or None for a
  deletion; ``prev_ts`` links to the previous revision of the same document.
* the **index log**: one :class:`IndexEntry` per (index_id, key, ts); ``id`` None marks the key
  as deleted at ``ts``. An entry's ts is the ts of the document revision it points to.

A third, small log, the **commit log** (:class:`CommitEntry`), is how processes sharing a
store learn of each other's commits: it is written in the same transaction as the
commit's rows, under the store's commit lock (:meth:`Persistence.commit_session`), so commits
become visible in ts order.

Invariants the caller (the committer, the only writer) guarantees: timestamps of a ``write``
of *document revisions* are strictly greater than every ts already written; within one
``write`` a (table, id, ts) or (index_id, key, ts) appears at most once. The one exception is
index backfill (``Database.backfill_index``), which writes entries of a new, not yet readable
index at the ts of the revisions they point to (older than the latest); implementations
accept any ts there and only reject a repeated (index_id, key, ts).

After ``prune``, reads at ts >= the bounds are unchanged except that a point read may return
None where it used to return a deletion (callers treat both the same); rows at ``max_ts`` are
never pruned, so ``max_ts`` never goes backwards. The engine keeps the document bound at or
below the index bound. Implementations guarantee: ``write`` is atomic and
durable when it returns; on any error it raises :class:`convection.errors.StorageFailure` and
the outcome is unknown (the engine then stops). Reads at ``read_ts`` see exactly the writes
with ts <= read_ts (snapshot reads). Implementations are safe to call from many threads.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class DocumentRevision:
    ts: int
    table: int
    id: bytes
    value: bytes | None
    prev_ts: int | None = None

    @property
    def deleted(self) -> bool:
        return self.value is None


@dataclass(frozen=True, slots=True)
class IndexEntry:
    index_id: int
    key: bytes
    ts: int
    table: int
    id: bytes | None

    @property
    def deleted(self) -> bool:
        return self.id is None


@dataclass(frozen=True, slots=True)
class CommitEntry:
    """One commit in the **commit log**: its ts and the keys it wrote (old and new key of
    every written document in every index, plus derived-index keys), encoded with
    :func:`encode_written_keys`. Other processes read it to validate their transactions
    against this commit and to invalidate their subscriptions."""

    ts: int
    keys: bytes


_INDEX_HEADER = struct.Struct(">qI")
_KEY_LEN = struct.Struct(">I")


def encode_written_keys(index_keys: dict[int, list[bytes]]) -> bytes:
    parts: list[bytes] = []
    for index_id, keys in index_keys.items():
        parts.append(_INDEX_HEADER.pack(index_id, len(keys)))
        for key in keys:
            parts.append(_KEY_LEN.pack(len(key)))
            parts.append(key)
    return b"".join(parts)


def decode_written_keys(blob: bytes) -> dict[int, list[bytes]]:
    out: dict[int, list[bytes]] = {}
    i, n = 0, len(blob)
    while i < n:
        index_id, count = _INDEX_HEADER.unpack_from(blob, i)
        i += _INDEX_HEADER.size
        keys = out.setdefault(index_id, [])
        for _ in range(count):
            (length,) = _KEY_LEN.unpack_from(blob, i)
            i += _KEY_LEN.size
            keys.append(blob[i : i + length])
            i += length
    return out


class CommitSession(Protocol):
    """The persistence's commit lock, held (``Persistence.commit_session``): one process at a
    time, across every process and node using the store. Inside, the caller reads the commits
    made since it last looked and writes its own, in one atomic, durable transaction."""

    def commits_after(self, ts: int) -> list[CommitEntry]:
        """Commit-log entries with ts > ``ts``, in ts order (everything committed)."""

    def write(
        self,
        documents: Sequence[DocumentRevision],
        indexes: Sequence[IndexEntry],
        commits: Sequence[CommitEntry],
    ) -> None:
        """Stage rows; they become durable, atomically, when the session ends without error."""


class Persistence(Protocol):
    """See the module docstring for the contract."""

    # Reads are served from this host (a file, memory) rather than over the network: a short
    # function may then run on the event loop (application/inline.py); over the network each
    # read would hold the loop for a round trip that worker threads overlap.
    local_reads: bool

    def commit_session(self) -> AbstractContextManager[CommitSession]:
        """Take the store's commit lock (waiting for other processes) for one group of commits;
        leaving the block without an error makes the session's writes durable and releases
        the lock; an error rolls them back. Raises StorageFailure (outcome unknown when it
        happens while ending the session)."""

    def commits_after(self, ts: int) -> list[CommitEntry]:
        """Committed commit-log entries with ts > ``ts``, in ts order (tailing, no lock)."""

    def others_may_have_committed(self) -> bool:
        """A cheap hint for tailing: False only when certainly no other process committed
        since the last call (SQLite: ``PRAGMA data_version``)."""

    def watch_commits(self, wake: Callable[[], None]) -> bool:
        """Ask the store to call ``wake`` (from any thread, at any time) soon after another
        process commits. True when it will (PostgreSQL: LISTEN/NOTIFY); the caller then only
        polls now and then, for a lost notification. False when the store has no such signal
        (SQLite, memory): the caller polls. At most one ``wake`` per store; ``close`` ends it."""

    def write(
        self, documents: Sequence[DocumentRevision], indexes: Sequence[IndexEntry]
    ) -> None:
        """Append revisions and index entries of one or more commits in one durable
        transaction. Raises StorageFailure (outcome unknown) on any failure."""

    def max_ts(self) -> int:
        """The largest ts in the document log, or 0 when empty."""

    def get_global(self, key: str) -> Any:
        """A small JSON value stored under ``key`` (None when absent)."""

    def set_global(self, key: str, value: Any) -> None:
        """Durably store a small JSON value (table/index registries, clock floor, ...)."""

    def get_document(self, table: int, id: bytes, read_ts: int) -> DocumentRevision | None:
        """The newest revision of (table, id) with ts <= read_ts (possibly a deletion), or None."""

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
        """Live documents of an index at ``read_ts``: for every key k with start <= k < end
        (end None = unbounded) take the newest entry with ts <= read_ts, skip it if deleted,
        and yield (k, the document revision it points to), in key order (descending when
        ``reverse``). Lazily fetched in batches, so a consumer that stops early pays little."""

    def index_keys(
        self, index_id: int, start: bytes, end: bytes | None, read_ts: int, limit: int
    ) -> list[tuple[bytes, int]]:
        """Live keys of an index at ``read_ts`` without their documents: the first ``limit``
        keys k with start <= k < end (newest entry <= read_ts not deleted), ascending, each
        with the ts of that entry. For derived indexes (search postings, statistics) whose
        entries need not point at a document revision; callers page with ``start``."""

    def document_log(
        self, after_ts: int, up_to_ts: int, *, table: int | None = None
    ) -> Iterator[DocumentRevision]:
        """Revisions with after_ts < ts <= up_to_ts (optionally of one table), in ts order."""

    def table_documents(self, table: int, read_ts: int) -> Iterator[DocumentRevision]:
        """Every live document of ``table`` at ``read_ts`` (newest non-deleted revision per id),
        in no particular order. Used by schema checks, index backfill and export."""

    def delete_index(self, index_id: int) -> None:
        """Remove every entry of an index (the index was dropped)."""

    def prune(self, index_before_ts: int, documents_before_ts: int) -> int:
        """Retention. Remove index entries that were superseded by a newer entry of the same
        (index_id, key) with ts <= index_before_ts, and deleted-key tombstones with ts <=
        index_before_ts; remove document revisions superseded by a newer revision with ts <=
        documents_before_ts (and deletion revisions older than that). Reads at any ts >= the
        given bounds are unaffected. Returns the number of rows removed."""

    def checkpoint(self) -> None:
        """Compact on-disk state (e.g. SQLite WAL checkpoint); safe to call any time."""

    def close(self) -> None:
        """Release connections; further calls are errors."""
