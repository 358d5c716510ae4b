"""File storage for one deployment: blobs (``files/blobs.py``) + the ``_storage`` table
(``model/file_storage.py``) + upload tokens (``files/tokens.py``) + URLs (SEMANTICS.md §7).

Invariants:

* **A committed ``_storage`` row always has its blob.** A new file's blob is written to the
  blob store's staging area, its ``_storage`` row is inserted (which gives the storage id),
  the blob is published under that id, and only then is the row committed. If the commit
  fails the blob is deleted; if the process dies in between, the blob is an *orphan* (a blob
  with no row) that :meth:`FileStorage.sweep` removes.
* **A deleted row's blob goes after the commit.** ``ctx.storage.delete`` deletes the row in
  the caller's transaction; a publish hook on the database sees every committed write to
  ``_storage`` and removes the blob of each id whose row no longer exists at that commit's ts
  (on a background thread: never in the committer's path). A crash before that leaves an
  orphan for the sweeper. A reader that looked the row up in an older snapshot may find the
  blob gone: downloads answer 404 then, as Convex's do.
* The sweeper deletes a blob only when it is older than ``STORAGE_ORPHAN_GRACE_MS``, is not
  being stored right now (``_pending``) and has no row at the latest ts read *after* that
  check (a store removes its id from ``_pending`` only once its commit is published).

URLs are ``{origin}/api/storage/<storage id>`` (downloads) and
``{origin}/api/storage/upload?token=...`` (uploads); ``origin`` is the server's public URL
(``--origin`` / ``CONVECTION_ORIGIN``, by default ``http://<host>:<port>``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from convection import knobs
from convection.database.catalog import BY_ID
from convection.database.retry import run_in_transaction
from convection.database.transaction import SystemView, Transaction
from convection.errors import ConvectionError, StorageFailure
from convection.files.blobs import BlobData, BlobReader, BlobStore, BlobWriter, chunks_of
from convection.files.context import ActionStorage, MutationStorage, QueryStorage
from convection.files.tokens import UploadTokens
from convection.indexing.keys import decode_key
from convection.model.file_storage import (
    STORAGE_TABLE,
    FileEntry,
    FileStorageError,
    FileStorageTable,
    ensure_tables,
)
from convection.values.ids import decode_id

if TYPE_CHECKING:
    from convection.database.committer import CommitRecord
    from convection.database.database import Database

log = logging.getLogger("convection.files")

T = TypeVar("T")

DEFAULT_ORIGIN = "http://127.0.0.1:3210"
UPLOAD_PATH = "/api/storage/upload"
DOWNLOAD_PATH = "/api/storage/"


def check_origin(origin: str) -> str:
    """``origin`` without a trailing ``/``; raises ``InvalidOrigin`` unless it is an
    ``http(s)://`` URL."""
    if not isinstance(origin, str) or not origin.startswith(("http://", "https://")) or "?" in origin:
        raise ConvectionError(
            f"Invalid origin {origin!r}: give the server's public URL, like https://files.example.com "
            "(--origin or CONVECTION_ORIGIN)",
            code="InvalidOrigin",
        )
    return origin.rstrip("/")


async def _to_thread(fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(fn)


class FileStorage:
    """The file storage service of one database. Thread-safe; ``close()`` when done."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        *,
        secret: bytes,
        origin: str | None = None,
        run_blocking: Callable[[Callable[[], Any]], Awaitable[Any]] | None = None,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.tokens = UploadTokens(secret)
        self.origin = check_origin(origin or DEFAULT_ORIGIN)
        self.run_blocking: Callable[[Callable[[], Any]], Awaitable[Any]] = run_blocking or _to_thread
        self.table_number = ensure_tables(db)
        by_id = db.catalog.index(STORAGE_TABLE, BY_ID)
        assert by_id is not None
        self._by_id_index = by_id.index_id
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._deleter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="convection-files")
        self._sweeper: asyncio.Task[None] | None = None
        db.add_publish_hook(self._on_publish)

    # --- URLs and tokens -----------------------------------------------------------------------
    def url_for(self, storage_id: str) -> str:
        return f"{self.origin}{DOWNLOAD_PATH}{storage_id}"

    def upload_url(self) -> str:
        return f"{self.origin}{UPLOAD_PATH}?token={self.tokens.issue(self.db.clock.now_ms())}"

    def check_upload_token(self, token: str | None) -> None:
        """Raise ``InvalidUploadToken`` / ``UploadTokenExpired`` unless ``token`` may upload."""
        self.tokens.verify(token, self.db.clock.now_ms())

    # --- storing -------------------------------------------------------------------------------
    def hold(self, storage_id: str) -> None:
        """Protect ``storage_id`` 's blob from the sweeper while its row is not committed yet
        (a store or an import in flight); :meth:`release` once the commit is published."""
        with self._lock:
            self._pending.add(storage_id)

    def release(self, storage_ids: list[str]) -> None:
        with self._lock:
            self._pending.difference_update(storage_ids)

    def store(self, writer: BlobWriter, content_type: str | None) -> str:
        """Turn a fully written ``writer`` into a stored file; returns its storage id.
        Blocking (file I/O and a commit)."""
        storage_id: str | None = None
        try:
            txn = self.db.begin()
            txn.source = STORAGE_TABLE
            storage_id = FileStorageTable(SystemView(txn)).insert(writer.sha256(), writer.size, content_type or None)
            with self._lock:
                self._pending.add(storage_id)
            writer.commit(storage_id)
            try:
                self.db.commit(txn)
            except StorageFailure:
                raise  # outcome unknown: the row may exist, so the blob stays (sweeper)
            except BaseException:
                self.blobs.delete(storage_id)
                raise
            return storage_id
        finally:
            writer.abort()
            if storage_id is not None:
                with self._lock:
                    self._pending.discard(storage_id)

    def store_data(self, data: BlobData, content_type: str | None = None) -> str:
        """Store bytes (or a binary file object, or an iterable of chunks). Blocking."""
        writer = self.blobs.writer()
        try:
            for chunk in chunks_of(data):
                writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        return self.store(writer, content_type)

    # --- reading -------------------------------------------------------------------------------
    def entry(self, storage_id: Any, where: str = "ctx.storage") -> FileEntry | None:
        """The file's entry at the latest snapshot (None if it does not exist); raises
        ``InvalidStorageId`` for something that is not a storage id."""
        txn = self.db.begin(read_only=True)
        return FileStorageTable(SystemView(txn)).get(storage_id, where)

    def lookup(self, storage_id: str) -> FileEntry | None:
        """Like :meth:`entry`, but None for anything that is not a storage id (downloads)."""
        try:
            return self.entry(storage_id)
        except FileStorageError:
            return None

    def read(self, storage_id: Any, where: str = "ctx.storage.get()") -> bytes | None:
        entry = self.entry(storage_id, where)
        if entry is None:
            return None
        return self.blobs.get(entry.id)

    def open(self, entry: FileEntry, start: int = 0, end: int | None = None) -> BlobReader | None:
        return self.blobs.open(entry.id, start, end)

    # --- deleting ------------------------------------------------------------------------------
    def delete(self, storage_id: Any, where: str = "ctx.storage.delete()") -> None:
        """Delete the file in a transaction of its own (actions). Blocking."""

        def fn(txn: Transaction) -> None:
            txn.source = STORAGE_TABLE
            FileStorageTable(SystemView(txn)).delete(storage_id, where)

        run_in_transaction(self.db, fn)

    def _on_publish(self, batch: list[CommitRecord]) -> None:
        # In the committer thread: only pick out the commits that wrote _storage.
        index = self._by_id_index
        found = [(rec.ts, keys) for rec in batch if (keys := rec.index_keys.get(index))]
        if not found or self._closed:
            return
        try:
            self._deleter.submit(self._remove_deleted, found)
        except RuntimeError:  # shut down meanwhile: the sweeper catches what is left
            pass

    def _remove_deleted(self, found: list[tuple[int, list[bytes]]]) -> None:
        persistence = self.db.persistence
        for ts, keys in found:
            for key in keys:
                try:
                    (storage_id,) = decode_key(key)
                    number, internal = decode_id(storage_id)
                    rev = persistence.get_document(number, internal, ts)
                    if rev is None or rev.value is None:
                        self.blobs.delete(storage_id)
                except Exception:
                    log.exception("removing the blob of a deleted file failed (the sweeper will retry)")

    def flush(self) -> None:
        """Wait until the blobs of files deleted by commits published so far are removed."""
        if not self._closed:
            self._deleter.submit(lambda: None).result()

    # --- sweeping ------------------------------------------------------------------------------
    def sweep(self, grace_ms: float | None = None) -> int:
        """Delete orphaned blobs (no ``_storage`` row) older than ``grace_ms`` (default
        ``STORAGE_ORPHAN_GRACE_MS``) and abandoned staged uploads. Returns blobs deleted.
        Blocking."""
        grace = knobs.STORAGE_ORPHAN_GRACE_MS if grace_ms is None else grace_ms
        self.blobs.sweep_staging(grace)
        now = time.time() * 1000
        removed = 0
        persistence = self.db.persistence
        for key, modified_ms in self.blobs.list():
            if now - modified_ms < grace:
                continue
            with self._lock:
                if key in self._pending:
                    continue
            try:
                number, internal = decode_id(key)
            except ConvectionError:
                continue  # not a storage id: not ours to delete
            if number != self.table_number:
                continue
            rev = persistence.get_document(number, internal, self.db.latest_ts())
            if rev is not None and rev.value is not None:
                continue
            if self.blobs.delete(key):
                removed += 1
        if removed:
            log.info("file storage sweep removed %d orphaned blobs", removed)
        return removed

    async def start(self) -> None:
        """Start the background sweeper (once now, then every ``STORAGE_SWEEP_INTERVAL_MS``)."""
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_loop())

    async def _sweep_loop(self) -> None:
        while True:
            try:
                await self.run_blocking(self.sweep)
            except Exception:
                log.exception("file storage sweep failed")
            if knobs.STORAGE_SWEEP_INTERVAL_MS <= 0:
                return
            await asyncio.sleep(knobs.STORAGE_SWEEP_INTERVAL_MS / 1000)

    async def stop(self) -> None:
        task, self._sweeper = self._sweeper, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def close(self) -> None:
        self._closed = True
        self._deleter.shutdown(wait=True)

    # --- ctx.storage ---------------------------------------------------------------------------
    def decorate_ctx(self, ctx: Any, system: SystemView | None) -> None:
        """Install ``ctx.storage`` (the runner's ``decorate_ctx`` hook, with the system view of
        the call's transaction): a read-only transaction is a query, another transaction a
        mutation, none an action."""
        if system is None:
            ctx.storage = ActionStorage(self)
        elif system.txn.read_only:
            ctx.storage = QueryStorage(self, system)
        else:
            ctx.storage = MutationStorage(self, system)
