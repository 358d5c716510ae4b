"""``ctx.storage`` (API.md §2, SEMANTICS.md §7), one class per function kind.

| method | query | mutation | action (awaitable) |
|---|---|---|---|
| ``get_url(id)`` -> str or None | ✓ | ✓ | ✓ |
| ``get_metadata(id)`` -> dict or None | ✓ | ✓ | ✓ |
| ``generate_upload_url()`` -> str | — | ✓ | ✓ |
| ``delete(id)`` | — | ✓ | ✓ |
| ``store(data, content_type=None)`` -> id | — | — | ✓ |
| ``get(id)`` -> bytes or None | — | — | ✓ |

In queries and mutations every call works in the function's transaction: ``get_url`` reads
the ``_storage`` row (so a subscribed query updates when the file is deleted) and a mutation's
``delete`` takes effect only if the mutation commits. In actions each call is its own
transaction, committed at once. A method not available in a function kind raises
``StorageNotAvailable`` saying where it is. ``ctx.db.system.get(id)`` /
``ctx.db.system.query("_storage")`` read the same rows as documents.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from convection.database.transaction import SystemView
from convection.model.file_storage import FileEntry, FileStorageError, FileStorageTable


class FileStorage(Protocol):
    """What ``ctx.storage`` needs from the file storage service (``files/service.py``
    implements it; this module does not import it)."""

    run_blocking: Callable[[Callable[[], Any]], Awaitable[Any]]

    def url_for(self, storage_id: str) -> str: ...

    def upload_url(self) -> str: ...

    def entry(self, storage_id: Any, where: str = ...) -> FileEntry | None: ...

    def read(self, storage_id: Any, where: str = ...) -> bytes | None: ...

    def delete(self, storage_id: Any, where: str = ...) -> None: ...

    def store_data(self, data: Any, content_type: str | None = ...) -> str: ...


def _unavailable(method: str, kind: str, where: str) -> FileStorageError:
    return FileStorageError(
        f"ctx.storage.{method} is not available in {kind}; it works in {where}",
        code="StorageNotAvailable",
    )


def _content_type(content_type: Any) -> str | None:
    if content_type is None or isinstance(content_type, str):
        return content_type or None
    raise FileStorageError(
        f"ctx.storage.store(): content_type must be a string like 'image/png' or None, got "
        f"{type(content_type).__name__}",
        code="InvalidContentType",
    )


def _data(data: Any) -> Any:
    if isinstance(data, bytes | bytearray | memoryview):
        return data
    if hasattr(data, "read") and not isinstance(data, str):
        return data
    hint = " (encode text first: data.encode())" if isinstance(data, str) else ""
    raise FileStorageError(
        f"ctx.storage.store() takes bytes or a binary file object, got {type(data).__name__}{hint}",
        code="InvalidStorageData",
    )


class QueryStorage:
    """``ctx.storage`` in queries: read-only."""

    _kind = "queries"

    def __init__(self, files: FileStorage, system: SystemView) -> None:
        self._files = files
        self._table = FileStorageTable(system)

    def get_url(self, storage_id: Any) -> str | None:
        """``{origin}/api/storage/<id>``, or None if the file does not exist."""
        entry = self._table.get(storage_id, "ctx.storage.get_url()")
        return None if entry is None else self._files.url_for(entry.id)

    def get_metadata(self, storage_id: Any) -> dict[str, Any] | None:
        """``{storageId, sha256 (hex), size, contentType}``, or None (deprecated in Convex in
        favor of ``ctx.db.system.get(id)``)."""
        entry = self._table.get(storage_id, "ctx.storage.get_metadata()")
        return None if entry is None else entry.metadata()

    def generate_upload_url(self) -> str:
        raise _unavailable("generate_upload_url()", self._kind, "mutations and actions")

    def delete(self, storage_id: Any) -> None:
        raise _unavailable("delete()", self._kind, "mutations and actions")

    def store(self, data: Any, content_type: str | None = None) -> str:
        raise _unavailable("store()", self._kind, "actions (await ctx.storage.store(data))")

    def get(self, storage_id: Any) -> bytes | None:
        raise _unavailable("get()", self._kind, "actions (await ctx.storage.get(id))")


class MutationStorage(QueryStorage):
    """``ctx.storage`` in mutations: the query methods plus upload URLs and ``delete``."""

    _kind = "mutations"

    def generate_upload_url(self) -> str:
        """A URL to POST a file to, valid for ``STORAGE_UPLOAD_URL_VALIDITY_MS`` (1 hour)."""
        return self._files.upload_url()

    def delete(self, storage_id: Any) -> None:
        """Delete the file when this mutation commits (its blob is removed after the commit)."""
        self._table.delete(storage_id, "ctx.storage.delete()")


class ActionStorage:
    """``ctx.storage`` in actions and HTTP actions: every method is awaitable and runs in a
    transaction of its own."""

    def __init__(self, files: FileStorage) -> None:
        self._files = files

    async def get_url(self, storage_id: Any) -> str | None:
        files = self._files
        entry = await files.run_blocking(lambda: files.entry(storage_id, "ctx.storage.get_url()"))
        return None if entry is None else files.url_for(entry.id)

    async def get_metadata(self, storage_id: Any) -> dict[str, Any] | None:
        files = self._files
        entry = await files.run_blocking(lambda: files.entry(storage_id, "ctx.storage.get_metadata()"))
        return None if entry is None else entry.metadata()

    async def generate_upload_url(self) -> str:
        return self._files.upload_url()

    async def delete(self, storage_id: Any) -> None:
        files = self._files
        await files.run_blocking(lambda: files.delete(storage_id))

    async def store(self, data: Any, content_type: str | None = None) -> str:
        """Store ``data`` (bytes or a binary file object); returns the new storage id."""
        files = self._files
        payload = _data(data)
        ctype = _content_type(content_type)
        return await files.run_blocking(lambda: files.store_data(payload, ctype))  # type: ignore[no-any-return]

    async def get(self, storage_id: Any) -> bytes | None:
        """The file's contents, or None if it does not exist."""
        files = self._files
        return await files.run_blocking(lambda: files.read(storage_id))  # type: ignore[no-any-return]
