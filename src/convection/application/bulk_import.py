"""Streaming import of line-based files (JSONL, CSV) into one table (docs/cli.md, "Import").

A :class:`StreamingImport` takes the file as byte chunks in order (:meth:`feed`, any split
points) and writes documents as they come, so the file is never held whole in memory and has
no size limit: the CLI feeds it from the file in-process, or sends the chunks as numbered
parts of one import session to a running backend (``server/admin_routes.py``; the sessions
live in :class:`ImportSessions`).

* **Parsing** (:class:`JsonlLines`, :class:`CsvRecords`): complete lines (a CSV record: lines
  up to an even number of ``"``) are parsed as soon as they are complete; a partial line waits
  for the next chunk. Every document is labelled with its line number.
* **Writing**: each document is validated once, when inserted (field names, value limits,
  the schema in force). Documents are committed in chunks of at most
  ``IMPORT_CHUNK_DOCUMENTS_COUNT`` documents and ``IMPORT_CHUNK_MAX_BYTES`` bytes. While one
  chunk commits (tokenizing, index rows, the store's write, on a worker thread) the next one
  is built: building (Python) overlaps the store's write (which releases the GIL).
* **Ids**: as the buffered import (application/admin.py): documents keep their ``_id`` and
  ``_creationTime`` when the table holds no other documents (``create``, ``replace``, or
  ``append`` into an empty table) and the id belongs to this table's number; which number the
  file's ids belong to is decided by the first line with a valid ``_id``.
* **Failure** (a bad line, the client gone, a storage error, :meth:`abort`): the import stops
  at that line, and the documents it had already committed are deleted again (compensating
  commits, in chunks), so in ``create`` and ``append`` mode the table holds what it held
  before; in ``replace`` mode the old documents were deleted first, so the table is left
  empty. The error says which line failed and what was undone. Readers may briefly see the
  documents of a failed import. If the writing process itself dies (killed, crashed), the
  documents committed so far stay: import again with ``--replace``.

Invariants: chunks commit in file order; a document's id is recorded as imported only
after its chunk committed; ``feed`` / ``finish`` / ``abort`` are called by one thread at a time
(a session's lock).
"""

from __future__ import annotations

import codecs
import csv
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from convection import knobs
from convection.application.snapshots import (
    ImportMode,
    SnapshotError,
    _as_document,
    _csv_value,
    _format_error,
    check_table_name,
)
from convection.database.database import Database
from convection.database.retry import run_in_transaction
from convection.database.transaction import SYSTEM_FIELDS, Transaction
from convection.errors import ConvectionError, IdError, OccConflict
from convection.values.ids import decode_id
from convection.values.json import loads

STREAM_FORMATS = ("jsonl", "csv")

# (table, documents committed or queued, bytes of the file consumed)
StreamProgress = Callable[[str, int, int], None]


# --- parsing ---------------------------------------------------------------------------------
class JsonlLines:
    """JSON Lines, fed in chunks: one document per non-blank line."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.line = 0
        self.consumed = 0
        self._rest = b""

    def feed(self, chunk: bytes) -> list[tuple[str, dict[str, Any]]]:
        if not chunk:
            return []
        parts = (self._rest + chunk).split(b"\n")
        self._rest = parts.pop()
        return self._parse(parts)

    def finish(self) -> list[tuple[str, dict[str, Any]]]:
        rest, self._rest = self._rest, b""
        return self._parse([rest]) if rest else []

    def _parse(self, lines: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for line in lines:
            self.line += 1
            self.consumed += len(line) + 1
            if not line.strip():
                continue
            where = f"{self.source} line {self.line}"
            try:
                value = loads(line)
            except ConvectionError as exc:
                raise _format_error(where, exc.message) from None
            out.append((where, _as_document(value, where)))
        return out


class CsvRecords:
    """CSV (a header row, then one document per row, as the buffered import), fed in chunks:
    a record is complete at the end of a line when it holds an even number of ``"``."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.line = 0
        self.consumed = 0
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self._text = ""
        self._record: list[str] = []
        self._quotes = 0
        self._first_line = 1
        self.header: list[str] | None = None

    def feed(self, chunk: bytes, final: bool = False) -> list[tuple[str, dict[str, Any]]]:
        try:
            text = self._text + self._decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            raise _format_error(f"{self.source} line {self.line + 1}", f"not UTF-8 text ({exc})") from None
        self.consumed += len(chunk)
        lines = [line + "\n" for line in text.split("\n")]
        last = lines.pop()[:-1]  # after the last newline: a partial line (or nothing)
        if final and last:
            lines.append(last)
            last = ""
        self._text = last
        out = []
        for line in lines:
            self.line += 1
            if not self._record:
                self._first_line = self.line
            self._record.append(line)
            self._quotes += line.count('"')
            if self._quotes % 2 == 0:
                doc = self._row("".join(self._record))
                self._record, self._quotes = [], 0
                if doc is not None:
                    out.append(doc)
        if final and self._record:
            raise _format_error(f"{self.source} line {self._first_line}", "unexpected end of file in a quoted field")
        return out

    def finish(self) -> list[tuple[str, dict[str, Any]]]:
        return self.feed(b"", final=True)

    def _row(self, text: str) -> tuple[str, dict[str, Any]] | None:
        where = f"{self.source} line {self._first_line}"
        try:
            rows = list(csv.reader([text]))
        except csv.Error as exc:
            raise _format_error(where, str(exc)) from None
        row = rows[0] if rows else []
        if self.header is None:
            self.header = row
            return None
        if not any(cell for cell in row):
            return None
        if len(row) > len(self.header):
            raise _format_error(where, f"{len(row)} cells but the header has {len(self.header)} columns")
        return where, {name: _csv_value(cell) for name, cell in zip(self.header, row, strict=False) if cell != ""}


def parser_for(fmt: str, source: str) -> JsonlLines | CsvRecords:
    if fmt == "jsonl":
        return JsonlLines(source)
    if fmt == "csv":
        return CsvRecords(source)
    raise SnapshotError(f"Format {fmt!r} cannot be streamed: use one of {', '.join(STREAM_FORMATS)}", code="ImportFormatError")


# --- writing ---------------------------------------------------------------------------------
@dataclass
class _Chunk:
    txn: Transaction
    docs: list[tuple[str, dict[str, Any], str | None, float | None]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    reads: int = 0


def _id_number(id_str: str) -> int | None:
    try:
        return decode_id(id_str)[0]
    except IdError:
        return None


class StreamingImport:
    """One streaming import into ``table`` (module docstring)."""

    def __init__(self, db: Database, table: str, mode: ImportMode, fmt: str, source: str,
                 progress: StreamProgress | None = None) -> None:
        self.db = db
        self.table = check_table_name(table)
        self.mode = mode
        self.parser = parser_for(fmt, source)
        self.progress = progress
        self.imported = 0
        self.deleted = 0
        self.kept_ids = 0
        self.written: list[str] = []  # ids of the committed documents (undone on failure)
        self.closed = False
        self.result: dict[str, Any] | None = None
        self._snapshot_number: int | None = None
        self._decided = False
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="convection-import")
        self._pending: Future[None] | None = None
        self._pending_chunk: _Chunk | None = None
        self._queued = 0
        number = db.catalog.table_number(self.table)
        ts = db.latest_ts()
        occupied = number is not None and any(
            rev.value is not None for rev in db.persistence.table_documents(number, ts)
        )
        if mode == "create" and occupied:
            assert number is not None
            existing = sum(1 for rev in db.persistence.table_documents(number, ts) if rev.value is not None)
            raise ConvectionError(
                f"Table {self.table!r} already has {existing} documents: pass --append to add to "
                "them or --replace to replace them",
                code="ImportTableNotEmpty",
            )
        self.number = db.ensure_table(self.table)
        self._keep_candidate = mode == "replace" or not occupied
        if mode == "replace" and occupied:
            self._delete_existing()
        self._chunk = _Chunk(db.begin())

    # --- the public steps -------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Parse and write the complete lines of ``data`` (plus the partial line kept from
        the previous chunk). On any failure the import is undone (module docstring)."""
        self._guard(lambda: self._write(self.parser.feed(data)))

    def finish(self) -> dict[str, Any]:
        """The last line, the last chunk; returns ``{"imported", "tables": [...]}``."""
        def last() -> None:
            self._write(self.parser.finish())
            self._submit()
            self._wait()

        self._guard(last)
        self.closed = True
        self._pool.shutdown()
        self.result = {"imported": self.imported, "tables": [self.to_json()]}
        return self.result

    def abort(self, reason: str = "the import was cancelled") -> int:
        """Stop and undo (module docstring). Returns how many documents were removed."""
        if self.closed:
            return 0
        return self._undo()

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "imported": self.imported, "deleted": self.deleted, "keptIds": self.kept_ids}

    def pending(self) -> int:
        """Documents parsed and inserted but not committed yet."""
        return self._queued + len(self._chunk.docs)

    # --- internals ------------------------------------------------------------------------
    def _guard(self, step: Callable[[], None]) -> None:
        if self.closed:
            raise ConvectionError("This import already ended", code="ImportSessionNotFound")
        try:
            step()
        except ConvectionError as exc:
            removed = self._undo()
            message = exc.message.removesuffix(" Fix the file and import it again.").rstrip(".")
            raise ConvectionError(f"{message}. {self._undone(removed)}", code=exc.code) from None
        except BaseException:
            self._undo()
            raise

    def _undone(self, removed: int) -> str:
        what = f"the {removed} documents it had written were removed again" if removed else "nothing had been written"
        if self.mode == "replace" and self.deleted:
            return (f"The import stopped there and {what}; the table's {self.deleted} previous documents "
                    "had been deleted first (--replace), so it is empty now. Fix the file and import it again.")
        return f"The import stopped there and {what}: the table is as before. Fix the file and import it again."

    def _write(self, docs: list[tuple[str, dict[str, Any]]]) -> None:
        chunk_docs = max(1, knobs.IMPORT_CHUNK_DOCUMENTS_COUNT)
        chunk_bytes = knobs.IMPORT_CHUNK_MAX_BYTES
        chunk_reads = max(1, knobs.TRANSACTION_MAX_READ_INTERVALS_COUNT // 2)  # a kept id reads it
        table, number = self.table, self.number
        for where, raw in docs:
            doc_id = raw.get("_id")
            ct = raw.get("_creationTime")
            user = {k: v for k, v in raw.items() if k not in SYSTEM_FIELDS}
            keep = None
            if isinstance(doc_id, str) and self._keep_candidate:
                if not self._decided:
                    self._snapshot_number = _id_number(doc_id)
                    self._decided = self._snapshot_number is not None
                if self._snapshot_number == number and _id_number(doc_id) == number:
                    keep = doc_id
            creation = float(ct) if keep is not None and isinstance(ct, float) and ct > 0 else None
            chunk = self._chunk
            try:
                chunk.ids.append(self._insert(chunk.txn, user, keep, creation))
            except ConvectionError as exc:
                raise ConvectionError(f"{where}: {exc.message} (table {table!r})", code=exc.code) from None
            chunk.docs.append((where, user, keep, creation))
            chunk.reads += keep is not None
            if len(chunk.docs) >= chunk_docs or chunk.txn.bytes_written >= chunk_bytes or chunk.reads >= chunk_reads:
                self._submit()
        if self.progress is not None:
            self.progress(table, self.imported + self.pending(), self.parser.consumed)

    def _insert(self, txn: Transaction, user: dict[str, Any], keep: str | None, creation: float | None) -> str:
        if keep is not None and txn.insert_with_id(self.table, self.number, keep, creation, user):
            return keep
        return txn.insert(self.table, user)

    def _submit(self) -> None:
        """Commit the current chunk on the worker (after the previous one) and start another."""
        chunk = self._chunk
        if not chunk.docs:
            return
        self._wait()
        self._pending_chunk = chunk
        self._queued = len(chunk.docs)
        self._pending = self._pool.submit(self._commit, chunk)
        self._chunk = _Chunk(self.db.begin())
        if self.progress is not None:
            self.progress(self.table, self.imported + self._queued, self.parser.consumed)

    def _wait(self) -> None:
        if self._pending is None:
            return
        pending, chunk = self._pending, self._pending_chunk
        self._pending = self._pending_chunk = None
        self._queued = 0
        pending.result()
        assert chunk is not None
        self.written.extend(chunk.ids)
        self.imported += len(chunk.ids)
        self.kept_ids += sum(1 for (_, _, keep, _), i in zip(chunk.docs, chunk.ids, strict=True) if keep == i)

    def _commit(self, chunk: _Chunk) -> None:
        try:
            self.db.commit(chunk.txn)
            return
        except OccConflict:
            pass  # an id kept from the file was taken meanwhile: build the chunk again

        def rebuild(txn: Transaction) -> list[str]:
            return [self._insert(txn, user, keep, creation) for _, user, keep, creation in chunk.docs]

        chunk.ids, _ = run_in_transaction(self.db, rebuild)

    def _delete_existing(self) -> None:
        ts = self.db.latest_ts()
        ids = [rev.id for rev in self.db.persistence.table_documents(self.number, ts) if rev.value is not None]
        self.deleted = self._delete_all(ids)

    def _delete_all(self, internal_or_ids: list[Any]) -> int:
        from convection.values.ids import encode_id

        chunk = max(1, min(knobs.IMPORT_CHUNK_DOCUMENTS_COUNT, knobs.TRANSACTION_MAX_READ_INTERVALS_COUNT // 2))
        removed = 0
        for start in range(0, len(internal_or_ids), chunk):
            part = [i if isinstance(i, str) else encode_id(self.number, i) for i in internal_or_ids[start : start + chunk]]

            def apply(txn: Transaction, part: list[str] = part) -> int:
                n = 0
                for i in part:
                    if txn.get(i) is not None:
                        txn.delete(i)
                        n += 1
                return n

            removed += run_in_transaction(self.db, apply)[0]
        return removed

    def _undo(self) -> int:
        if self.closed:
            return 0
        self.closed = True
        try:
            self._wait()
        except BaseException:  # the chunk in flight failed: nothing of it to undo
            pass
        self._pool.shutdown()
        written, self.written = self.written, []
        self.imported = 0
        return self._delete_all(written)


# --- sessions (a running backend) ------------------------------------------------------------
@dataclass
class ImportSession:
    id: str
    stream: StreamingImport
    lock: threading.Lock = field(default_factory=threading.Lock)
    parts: int = 0  # parts accepted so far
    last_reply: dict[str, Any] = field(default_factory=dict)
    touched: float = field(default_factory=time.monotonic)


class ImportSessions:
    """The streaming imports in progress on a backend, by id. A session idle for longer than
    ``IMPORT_SESSION_IDLE_MS`` (the client is gone) is aborted and undone by a janitor thread."""

    def __init__(self) -> None:
        self._sessions: dict[str, ImportSession] = {}
        self._lock = threading.Lock()
        self._janitor: threading.Thread | None = None
        self._stop = threading.Event()

    def open(self, stream: StreamingImport) -> ImportSession:
        import secrets

        session = ImportSession(secrets.token_hex(12), stream)
        with self._lock:
            self._sessions[session.id] = session
            if self._janitor is None:
                self._janitor = threading.Thread(target=self._sweep, name="convection-import-janitor", daemon=True)
                self._janitor.start()
        return session

    def get(self, session_id: str) -> ImportSession:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            raise ConvectionError(
                f"No import {session_id!r} in progress (it finished, failed, or was idle for longer than "
                "IMPORT_SESSION_IDLE_MS and was undone)",
                code="ImportSessionNotFound",
            )
        return session

    def part(self, session_id: str, number: int, data: bytes) -> dict[str, Any]:
        """Part ``number`` (from 0) of the file. A repeat of the last accepted part (a client
        retrying after a lost answer) is answered again without writing."""
        session = self.get(session_id)
        with session.lock:
            session.touched = time.monotonic()
            if number == session.parts - 1:
                return session.last_reply
            if number != session.parts:
                raise ConvectionError(
                    f"Import part {number} arrived but part {session.parts} was expected; parts are sent in order",
                    code="ImportPartOutOfOrder",
                )
            try:
                session.stream.feed(data)
            except BaseException:
                self._forget(session_id)
                raise
            session.parts += 1
            stream = session.stream
            session.last_reply = {"documents": stream.imported + stream.pending(), "bytes": stream.parser.consumed}
            session.touched = time.monotonic()
            return session.last_reply

    def finish(self, session_id: str) -> dict[str, Any]:
        session = self.get(session_id)
        with session.lock:
            try:
                return session.stream.finish()
            finally:
                self._forget(session_id)

    def abort(self, session_id: str) -> int:
        session = self.get(session_id)
        self._forget(session_id)
        with session.lock:
            return session.stream.abort()

    def _forget(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def close(self) -> None:
        self._stop.set()

    def _sweep(self) -> None:
        while not self._stop.wait(min(1.0, knobs.IMPORT_SESSION_IDLE_MS / 4000)):
            idle = knobs.IMPORT_SESSION_IDLE_MS / 1000
            now = time.monotonic()
            with self._lock:
                stale = [s for s in self._sessions.values() if now - s.touched > idle and not s.lock.locked()]
            for s in stale:
                try:
                    self.abort(s.id)
                except ConvectionError:
                    pass
