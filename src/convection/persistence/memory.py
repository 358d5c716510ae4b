"""In-memory implementation of the Persistence protocol: fast tests and the reference model.

Written to be obviously correct rather than fast: sorted lists searched with ``bisect`` and
one lock around everything. A read computes its whole answer under the lock (so it is a
consistent snapshot), then yields it; scans are still generators, so nothing is computed until
the first ``next()``. The conformance suite (tests/persistence) checks every other
implementation against this one on random histories.

Like the SQLite store, ``write`` rejects a (ts, table, id) or (index_id, key, ts) that is
already stored (StorageFailure, nothing applied), and ``prune`` never removes the revisions
at ``max_ts()``, so ``max_ts`` never goes backwards.
"""

from __future__ import annotations

import bisect
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from convection.errors import StorageFailure
from convection.persistence.base import CommitEntry, DocumentRevision, IndexEntry

# An index log entry as stored: (ts, table, id or None for a deleted key).
_Entry = tuple[int, int, bytes | None]


class MemoryPersistence:
    """The Persistence protocol over plain Python containers; lost when the process ends."""

    local_reads = True  # see Persistence.local_reads

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False
        # The document log: revision by (ts, table, id), plus those keys in sorted order.
        self._documents: dict[tuple[int, int, bytes], DocumentRevision] = {}
        self._log: list[tuple[int, int, bytes]] = []
        # Timestamps of each document's revisions, ascending.
        self._versions: dict[tuple[int, bytes], list[int]] = {}
        # The index log: per index, the sorted distinct keys and each key's entries by ts.
        self._keys: dict[int, list[bytes]] = {}
        self._entries: dict[int, dict[bytes, list[_Entry]]] = {}
        self._globals: dict[str, str] = {}
        self._commits: list[CommitEntry] = []
        self._commit_lock = threading.Lock()

    def __repr__(self) -> str:
        return "MemoryPersistence()"

    def _check_open(self) -> None:
        if self._closed:
            raise StorageFailure(f"{self!r} is closed")

    # --- writes -------------------------------------------------------------------------

    def write(self, documents: Sequence[DocumentRevision], indexes: Sequence[IndexEntry]) -> None:
        with self._lock:
            self._check_open()
            doc_keys = [(d.ts, d.table, d.id) for d in documents]
            index_keys = [(e.index_id, e.key, e.ts) for e in indexes]
            if len(set(doc_keys)) != len(doc_keys) or any(k in self._documents for k in doc_keys):
                raise StorageFailure("a document revision (ts, table, id) is already stored")
            if len(set(index_keys)) != len(index_keys) or any(
                self._has_entry(*k) for k in index_keys
            ):
                raise StorageFailure("an index entry (index_id, key, ts) is already stored")
            for key, revision in zip(doc_keys, documents, strict=True):
                self._documents[key] = revision
                bisect.insort(self._log, key)
                bisect.insort(self._versions.setdefault((revision.table, revision.id), []), key[0])
            for entry in indexes:
                keys = self._keys.setdefault(entry.index_id, [])
                by_key = self._entries.setdefault(entry.index_id, {})
                if entry.key not in by_key:
                    bisect.insort(keys, entry.key)
                    by_key[entry.key] = []
                bisect.insort(by_key[entry.key], (entry.ts, entry.table, entry.id), key=_entry_ts)

    @contextmanager
    def commit_session(self) -> Iterator[_MemorySession]:
        with self._commit_lock:
            session = _MemorySession(self)
            yield session
            self.write(session.documents, session.indexes)
            with self._lock:
                self._commits.extend(session.commits)

    def commits_after(self, ts: int) -> list[CommitEntry]:
        with self._lock:
            self._check_open()
            i = bisect.bisect_right(self._commits, ts, key=lambda c: c.ts)
            return self._commits[i:]

    def others_may_have_committed(self) -> bool:
        return False  # a memory store belongs to one process

    def watch_commits(self, wake: Callable[[], None]) -> bool:
        return False

    def _has_entry(self, index_id: int, key: bytes, ts: int) -> bool:
        entries = self._entries.get(index_id, {}).get(key, [])
        return any(entry[0] == ts for entry in entries)

    def set_global(self, key: str, value: Any) -> None:
        text = json.dumps(value, separators=(",", ":"))
        with self._lock:
            self._check_open()
            self._globals[key] = text

    def delete_index(self, index_id: int) -> None:
        with self._lock:
            self._check_open()
            self._keys.pop(index_id, None)
            self._entries.pop(index_id, None)

    # --- reads --------------------------------------------------------------------------

    def max_ts(self) -> int:
        with self._lock:
            self._check_open()
            return self._log[-1][0] if self._log else 0

    def get_global(self, key: str) -> Any:
        with self._lock:
            self._check_open()
            text = self._globals.get(key)
        return None if text is None else json.loads(text)

    def get_document(self, table: int, id: bytes, read_ts: int) -> DocumentRevision | None:
        with self._lock:
            self._check_open()
            versions = self._versions.get((table, id), [])
            i = bisect.bisect_right(versions, read_ts)
            return self._documents[(versions[i - 1], table, id)] if i else None

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
        with self._lock:
            self._check_open()
            keys = self._keys.get(index_id, [])
            by_key = self._entries.get(index_id, {})
            lo = bisect.bisect_left(keys, start)
            hi = len(keys) if end is None else bisect.bisect_left(keys, end)
            # (key, revision, ts); revision None = a dangling entry, reported when reached.
            result: list[tuple[bytes, DocumentRevision | None, int]] = []
            for key in keys[lo:hi]:
                entries = by_key[key]
                i = bisect.bisect_right(entries, read_ts, key=_entry_ts)
                if i == 0:
                    continue
                ts, table, id = entries[i - 1]
                if id is None:
                    continue
                revision = self._documents.get((ts, table, id))
                if revision is not None and revision.value is None:
                    revision = None
                result.append((key, revision, ts))
        if reverse:
            result.reverse()
        for key, revision, ts in result:
            if revision is None:
                raise StorageFailure(
                    f"index {index_id} entry {key.hex()} at ts {ts} points to a document "
                    "revision that is not in the document log"
                )
            yield key, revision

    def index_keys(
        self, index_id: int, start: bytes, end: bytes | None, read_ts: int, limit: int
    ) -> list[tuple[bytes, int]]:
        with self._lock:
            self._check_open()
            keys = self._keys.get(index_id, [])
            by_key = self._entries.get(index_id, {})
            lo = bisect.bisect_left(keys, start)
            hi = len(keys) if end is None else bisect.bisect_left(keys, end)
            out: list[tuple[bytes, int]] = []
            for key in keys[lo:hi]:
                if len(out) >= limit:
                    break
                entries = by_key[key]
                i = bisect.bisect_right(entries, read_ts, key=_entry_ts)
                if i and entries[i - 1][2] is not None:
                    out.append((key, entries[i - 1][0]))
            return out

    def document_log(
        self, after_ts: int, up_to_ts: int, *, table: int | None = None
    ) -> Iterator[DocumentRevision]:
        with self._lock:
            self._check_open()
            lo = bisect.bisect_left(self._log, (after_ts + 1,))
            hi = bisect.bisect_left(self._log, (up_to_ts + 1,))
            result = [
                self._documents[key] for key in self._log[lo:hi] if table is None or key[1] == table
            ]
        yield from result

    def table_documents(self, table: int, read_ts: int) -> Iterator[DocumentRevision]:
        with self._lock:
            self._check_open()
            result = []
            for (doc_table, id), versions in self._versions.items():
                if doc_table != table:
                    continue
                i = bisect.bisect_right(versions, read_ts)
                if i:
                    revision = self._documents[(versions[i - 1], table, id)]
                    if revision.value is not None:
                        result.append(revision)
        yield from result

    # --- maintenance --------------------------------------------------------------------

    def prune(self, index_before_ts: int, documents_before_ts: int) -> int:
        removed = 0
        with self._lock:
            self._check_open()
            for index_id, by_key in self._entries.items():
                for key, entries in list(by_key.items()):
                    kept = [
                        entry
                        for i, entry in enumerate(entries)
                        if not _superseded(entries, i, index_before_ts)
                        and not (entry[2] is None and entry[0] <= index_before_ts)
                    ]
                    removed += len(entries) - len(kept)
                    if kept:
                        by_key[key] = kept
                    else:
                        del by_key[key]
                        keys = self._keys[index_id]
                        del keys[bisect.bisect_left(keys, key)]
            kept_commits = [c for c in self._commits[:-1] if c.ts > index_before_ts]
            removed += len(self._commits) - len(kept_commits) - (1 if self._commits else 0)
            self._commits = kept_commits + self._commits[-1:]
            top = self._log[-1][0] if self._log else 0
            for (table, id), versions in list(self._versions.items()):
                kept_ts = []
                for i, ts in enumerate(versions):
                    deleted = self._documents[(ts, table, id)].value is None
                    superseded = i + 1 < len(versions) and versions[i + 1] <= documents_before_ts
                    if superseded or (deleted and ts <= documents_before_ts and ts < top):
                        del self._documents[(ts, table, id)]
                        removed += 1
                    else:
                        kept_ts.append(ts)
                if kept_ts:
                    self._versions[(table, id)] = kept_ts
                else:
                    del self._versions[(table, id)]
            self._log = sorted(self._documents)
        return removed

    def checkpoint(self) -> None:
        with self._lock:
            self._check_open()

    def close(self) -> None:
        with self._lock:
            self._closed = True


def _superseded(entries: list[_Entry], i: int, before_ts: int) -> bool:
    """Whether entries[i] has a newer entry (entries are sorted by ts) with ts <= before_ts."""
    return i + 1 < len(entries) and entries[i + 1][0] <= before_ts


def _entry_ts(entry: _Entry) -> int:
    return entry[0]


class _MemorySession:
    def __init__(self, store: MemoryPersistence) -> None:
        self._store = store
        self.documents: list[DocumentRevision] = []
        self.indexes: list[IndexEntry] = []
        self.commits: list[CommitEntry] = []

    def commits_after(self, ts: int) -> list[CommitEntry]:
        return self._store.commits_after(ts)

    def write(
        self,
        documents: Sequence[DocumentRevision],
        indexes: Sequence[IndexEntry],
        commits: Sequence[CommitEntry],
    ) -> None:
        self.documents.extend(documents)
        self.indexes.extend(indexes)
        self.commits.extend(commits)
