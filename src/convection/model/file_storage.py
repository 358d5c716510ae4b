"""The ``_storage`` system table: one document per stored file (SEMANTICS.md §7).

Documents are exactly what Convex's ``_storage`` virtual table shows, readable with
``ctx.db.system.get(id)`` / ``ctx.db.system.query("_storage")``::

    {_id, _creationTime, sha256: <base64 of the SHA-256 digest>, size: <bytes>, contentType?}

``contentType`` is absent when the upload named none. ``sha256`` is base64, as Convex serves it
to current npm clients (its docs still say base16; :meth:`FileEntry.metadata` gives base16
for ``ctx.storage.get_metadata``, as Convex's ``getMetadata`` does).

The storage id a client sees *is* the document id, and it is also the blob's key in the blob
store (``convection.files``): the key is derived from the id instead of being stored in the
document, so documents carry no internal field.

Every method works inside the caller's :class:`Transaction`: a file deleted by a mutation is
gone only if that mutation commits (its blob is removed after the commit, see
``convection.files.service``).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from convection.database.catalog import Catalog
from convection.database.database import Database
from convection.database.query import Query
from convection.database.transaction import SystemView
from convection.errors import ConvectionError
from convection.values.ids import decode_id

STORAGE_TABLE = "_storage"


class FileStorageError(ConvectionError):
    """A file storage call with a bad id, token, digest or in the wrong kind of function."""

    code = "FileStorageError"


@dataclass(frozen=True)
class FileEntry:
    """One row of ``_storage``, typed."""

    id: str
    creation_time: float
    sha256: bytes
    size: int
    content_type: str | None

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> FileEntry:
        return cls(
            id=doc["_id"],
            creation_time=float(doc["_creationTime"]),
            sha256=base64.b64decode(doc["sha256"]),
            size=int(doc["size"]),
            content_type=doc.get("contentType"),
        )

    @property
    def sha256_base64(self) -> str:
        return base64.b64encode(self.sha256).decode()

    def metadata(self) -> dict[str, Any]:
        """What ``ctx.storage.get_metadata`` returns (Convex's ``FileMetadata``: sha256 in
        base16, contentType None when unknown)."""
        return {
            "storageId": self.id,
            "sha256": self.sha256.hex(),
            "size": float(self.size),
            "contentType": self.content_type,
        }


def ensure_tables(db: Database) -> int:
    """Create ``_storage`` (idempotent; called at application start). Returns its number."""
    return db.ensure_table(STORAGE_TABLE)


def check_storage_id(catalog: Catalog, storage_id: Any, where: str) -> tuple[int, bytes]:
    """``(table number, internal id)`` of a storage id; raises ``InvalidStorageId`` for
    anything else (a malformed string, an id of another table)."""
    if not isinstance(storage_id, str):
        raise FileStorageError(
            f"{where}: expected a storage id (a string returned by an upload or "
            f"ctx.storage.store()), got {type(storage_id).__name__}: {storage_id!r}",
            code="InvalidStorageId",
        )
    try:
        number, internal = decode_id(storage_id)
    except ConvectionError:
        raise FileStorageError(
            f"{where}: {storage_id!r} is not a storage id of this deployment", code="InvalidStorageId"
        ) from None
    table = catalog.table_name(number)
    if table != STORAGE_TABLE:
        what = f"an id of table {table!r}" if table is not None else "an id of an unknown table"
        raise FileStorageError(
            f"{where}: {storage_id!r} is {what}, not a storage id (Id<'_storage'>)",
            code="InvalidStorageId",
        )
    return number, internal


class FileStorageTable:
    """Typed access to ``_storage`` inside one transaction, through its system view."""

    def __init__(self, system: SystemView) -> None:
        self.system = system
        self.txn = system.txn

    def get(self, storage_id: Any, where: str = "ctx.storage") -> FileEntry | None:
        """The entry (None if it does not exist at the snapshot). The read is recorded, so a
        query that called it is invalidated when the file is deleted."""
        check_storage_id(self.txn.db.catalog, storage_id, where)
        doc = self.txn.get(storage_id)
        return None if doc is None else FileEntry.from_doc(doc)

    def entries(self) -> Query:
        return Query(self.txn, STORAGE_TABLE)

    def insert(self, sha256: bytes, size: int, content_type: str | None) -> str:
        doc: dict[str, Any] = {"sha256": base64.b64encode(sha256).decode(), "size": float(size)}
        if content_type:
            doc["contentType"] = content_type
        return self.system.insert(STORAGE_TABLE, doc)

    def delete(self, storage_id: Any, where: str = "ctx.storage.delete()") -> None:
        """Delete the entry; raises ``StorageIdNotFound`` when there is none."""
        if self.get(storage_id, where) is None:
            raise FileStorageError(
                f"{where}: no file with storage id {storage_id!r} (it was never stored or is "
                "already deleted)",
                code="StorageIdNotFound",
            )
        self.system.delete(storage_id)
