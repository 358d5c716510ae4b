"""Snapshot files: parsing what ``convection import`` reads (JSONL, a JSON array, CSV, a ZIP
snapshot), the checked import plan, the export README, and the one database write an import
needs beyond ``Transaction.insert``: inserting a document under its original ``_id`` and
``_creationTime`` (:func:`insert_keeping_id`). The operations themselves (modes, chunking,
atomicity, when ids are kept) are :class:`convection.application.admin.Admin`'s; see that
module's docstring.

Parsing is pure: bytes in, ``(where, document)`` pairs out, where ``where`` names the position
(``people.jsonl line 3``, ``more.json element [2]``, ``snap.zip:users/documents.jsonl line 7``)
for error messages. Values are Convex JSON (``convection.values.json``): ``{"$integer"}``,
``{"$bytes"}`` and ``{"$float"}`` decode losslessly; every other number is a float64.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from convection import knobs
from convection.database.database import Database
from convection.database.retry import run_in_transaction
from convection.database.transaction import SystemView, Transaction
from convection.errors import ConvectionError, IdError
from convection.schema.schema import MAX_TABLE_NAME_LENGTH
from convection.values.ids import decode_id, encode_id
from convection.values.json import loads


class SnapshotError(ConvectionError):
    """A file to import is malformed or does not fit (``code`` says how)."""

    code = "ImportFormatError"


ImportMode = Literal["create", "append", "replace"]
ImportFormat = Literal["jsonl", "json", "csv", "zip"]
IMPORT_MODES: tuple[ImportMode, ...] = ("create", "append", "replace")
IMPORT_FORMATS: tuple[ImportFormat, ...] = ("jsonl", "json", "csv", "zip")
Progress = Callable[[str, int, int], None]
"""``progress(label, done, total)``: ``label`` is a table name (or ``"<table> (deleting)"``)."""

_TABLE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_CSV_NUMBER_RE = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")

README = """\
# Convection snapshot export

This ZIP file is a consistent snapshot of every user table of a convection deployment, all
read at one timestamp.

* `<table>/documents.jsonl`: one document per line, system fields (`_id`, `_creationTime`)
  included, oldest first. Values are Convex encoded JSON, which is lossless: int64 values are
  `{"$integer": "<base64 of 8 little-endian bytes>"}`, bytes are `{"$bytes": "<base64>"}`,
  NaN, infinities and -0.0 are `{"$float": "<base64 of 8 little-endian bytes>"}`; every other
  number is a float64.

* `_storage/documents.jsonl` and `_storage/<id>` (only with `--include-file-storage`): one
  line per stored file `{_id, _creationTime, sha256 (base64), size, contentType}`, and each
  file's bytes.

Import it with `convection import snapshot.zip` (add `--replace` to overwrite tables that
already have documents). Documents keep their ids when imported into a fresh deployment.
"""


def detect_format(filename: str) -> ImportFormat | None:
    """The import format implied by a file name's extension, or None."""
    lower = filename.lower()
    for ext, fmt in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "json"), (".csv", "csv"), (".zip", "zip")):
        if lower.endswith(ext):
            return fmt  # type: ignore[return-value]
    return None


def _format_error(where: str, what: str) -> SnapshotError:
    return SnapshotError(f"{where}: {what}. Fix the file and import it again.", code="ImportFormatError")


def _as_document(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _format_error(where, f"expected a JSON object (one document), got {type(value).__name__}")
    return value


def _parse_jsonl(data: bytes, source: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{source} line {number}"
        try:
            value = loads(line)
        except ConvectionError as exc:
            raise _format_error(where, exc.message) from None
        out.append((where, _as_document(value, where)))
    return out


def _parse_json(data: bytes, source: str) -> list[tuple[str, dict[str, Any]]]:
    try:
        value = loads(data)
    except ConvectionError as exc:
        raise _format_error(source, exc.message) from None
    if not isinstance(value, list):
        raise _format_error(source, "expected a JSON array of documents (use .jsonl for one document per line)")
    return [(f"{source} element [{i}]", _as_document(v, f"{source} element [{i}]")) for i, v in enumerate(value)]


def _csv_value(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    if _CSV_NUMBER_RE.fullmatch(text):
        return float(text)
    return text


def _parse_csv(data: bytes, source: str) -> list[tuple[str, dict[str, Any]]]:
    """A header row, then one document per row: an empty cell leaves the field out,
    ``true``/``false`` are booleans, numbers are float64, anything else is a string."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _format_error(source, f"not UTF-8 text ({exc})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return []
    except csv.Error as exc:
        raise _format_error(f"{source} line 1", str(exc)) from None
    out = []
    try:
        for row in reader:
            where = f"{source} line {reader.line_num}"
            if not any(cell for cell in row):
                continue
            if len(row) > len(header):
                raise _format_error(where, f"{len(row)} cells but the header has {len(header)} columns")
            out.append((where, {name: _csv_value(cell) for name, cell in zip(header, row, strict=False) if cell != ""}))
    except csv.Error as exc:
        raise _format_error(f"{source} line {reader.line_num}", str(exc)) from None
    return out


def parse_snapshot(data: bytes, source: str = "snapshot.zip") -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """The tables of a ZIP snapshot: ``<table>/documents.jsonl`` for every table whose name
    does not start with ``_`` (system tables, ``_storage`` and ``_components`` are skipped)."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise _format_error(source, f"not a ZIP file ({exc})") from None
    tables: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    with zf:
        has_files = STORAGE_DOCUMENTS in zf.namelist()
        for info in zf.infolist():
            parts = info.filename.split("/")
            if len(parts) != 2 or parts[1] != "documents.jsonl" or parts[0].startswith("_"):
                continue
            tables[parts[0]] = _parse_jsonl(zf.read(info), f"{source}:{info.filename}")
    if not tables and not has_files:
        raise _format_error(source, "no <table>/documents.jsonl entries (is it a snapshot made by `convection export`?)")
    return tables


def parse_import(
    data: bytes, fmt: ImportFormat, table: str | None, source: str = "input"
) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Documents by table (each with a label saying where it came from)."""
    if fmt == "zip":
        tables = parse_snapshot(data, source)
        if table is not None:
            if table not in tables:
                raise SnapshotError(
                    f"The snapshot has no table {table!r} (it has {', '.join(sorted(tables))})",
                    code="TableNotFound",
                )
            tables = {table: tables[table]}
        return tables
    if table is None:
        raise SnapshotError("Importing a single file needs a table name (--table)", code="InvalidTableName")
    parsers = {"jsonl": _parse_jsonl, "json": _parse_json, "csv": _parse_csv}
    if fmt not in parsers:
        raise SnapshotError(f"Unknown import format {fmt!r}: use one of {', '.join(IMPORT_FORMATS)}", code="ImportFormatError")
    return {table: parsers[fmt](data, source)}


def check_table_name(name: Any) -> str:
    if not isinstance(name, str) or not _TABLE_RE.fullmatch(name) or len(name) > MAX_TABLE_NAME_LENGTH:
        raise SnapshotError(
            f"Invalid table name {name!r}: use letters, digits and '_', starting with a letter "
            "(tables starting with '_' are system tables and cannot be imported into)",
            code="InvalidTableName",
        )
    return name


@dataclass
class ImportDoc:
    where: str
    fields: dict[str, Any]  # user fields, normalized
    id: str | None  # the original _id, when it could be kept
    creation_time: float | None


@dataclass
class TableImport:
    table: str
    docs: list[ImportDoc]
    snapshot_number: int | None = None  # the table number the ids were made for
    imported: int = 0
    deleted: int = 0
    kept_ids: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "imported": self.imported, "deleted": self.deleted, "keptIds": self.kept_ids}


@dataclass
class StorageFile:
    """One stored file of a snapshot (a line of ``_storage/documents.jsonl``), verified."""

    where: str
    id: str
    creation_time: float | None
    sha256: bytes
    size: int
    content_type: str | None
    member: str  # the ZIP entry holding its bytes

    def fields(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"sha256": base64.b64encode(self.sha256).decode(), "size": float(self.size)}
        if self.content_type:
            doc["contentType"] = self.content_type
        return doc


@dataclass
class StorageImport:
    """The files of a ZIP snapshot (``_storage/``), every blob checked against its row."""

    data: bytes  # the ZIP itself: blobs are read from it when written
    files: list[StorageFile]
    snapshot_number: int | None
    imported: int = 0
    kept_ids: int = 0

    def read(self, f: StorageFile) -> bytes:
        with zipfile.ZipFile(io.BytesIO(self.data)) as zf:
            return zf.read(f.member)

    def to_json(self) -> dict[str, Any]:
        return {"table": STORAGE_DIR, "imported": self.imported, "deleted": 0, "keptIds": self.kept_ids}


@dataclass
class ImportPlan:
    """Parsed and checked documents, ready for :meth:`Admin.run_import`."""

    mode: ImportMode
    tables: list[TableImport] = field(default_factory=list)
    storage: StorageImport | None = None

    @property
    def total(self) -> int:
        return sum(len(t.docs) for t in self.tables) + (len(self.storage.files) if self.storage else 0)


STORAGE_DIR = "_storage"
STORAGE_DOCUMENTS = f"{STORAGE_DIR}/documents.jsonl"


def _storage_error(where: str, what: str) -> SnapshotError:
    return SnapshotError(f"{where}: {what}. Nothing was imported.", code="InvalidStorageSnapshot")


def _verify_blob(zf: zipfile.ZipFile, member: str, size: int, digest: bytes, where: str, source: str) -> None:
    h = hashlib.sha256()
    n = 0
    try:
        with zf.open(member) as f:
            while n <= size and (chunk := f.read(1 << 16)):
                h.update(chunk)
                n += len(chunk)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SnapshotError(
            f"{source}:{member}: the file's bytes are damaged ({exc}). Nothing was imported.",
            code="StorageBlobMismatch",
        ) from None
    if n != size or h.digest() != digest:
        got = f"more than {size}" if n > size else str(n)
        raise SnapshotError(
            f"{source}:{member}: the file has {got} bytes with SHA-256 {base64.b64encode(h.digest()).decode()}, "
            f"but {where} says {size} bytes with SHA-256 {base64.b64encode(digest).decode()}: the snapshot "
            "is corrupted. Nothing was imported; export it again.",
            code="StorageBlobMismatch",
        )


def parse_storage(data: bytes, source: str = "snapshot.zip") -> StorageImport | None:
    """The stored files of a ZIP snapshot (None when it has no ``_storage/documents.jsonl``).
    Every row is checked and every blob's size and SHA-256 verified against it."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise _format_error(source, f"not a ZIP file ({exc})") from None
    with zf:
        names = zf.namelist()
        if STORAGE_DOCUMENTS not in names:
            return None
        blobs: dict[str, str] = {}
        for name in names:
            rest = name[len(STORAGE_DIR) + 1 :] if name.startswith(STORAGE_DIR + "/") else ""
            if rest and "/" not in rest and name != STORAGE_DOCUMENTS:
                blobs[rest.split(".", 1)[0]] = name  # `<id>` or Convex's `<id>.<ext>`
        rows = _parse_jsonl(zf.read(STORAGE_DOCUMENTS), f"{source}:{STORAGE_DOCUMENTS}")
        files: list[StorageFile] = []
        seen: set[str] = set()
        for where, row in rows:
            sid = row.get("_id")
            if not isinstance(sid, str) or not sid:
                raise _storage_error(where, "missing _id (the storage id)")
            if sid in seen:
                raise _storage_error(where, f"storage id {sid!r} appears twice")
            seen.add(sid)
            try:
                digest = base64.b64decode(str(row.get("sha256")), validate=True)
            except (binascii.Error, ValueError):
                digest = b""
            if len(digest) != 32:
                raise _storage_error(where, f"sha256 must be the base64 SHA-256 digest, got {row.get('sha256')!r}")
            size = row.get("size")
            if isinstance(size, bool) or not isinstance(size, int | float) or size < 0 or size != int(size):
                raise _storage_error(where, f"size must be a non-negative whole number of bytes, got {size!r}")
            ct = row.get("contentType")
            if ct is not None and not isinstance(ct, str):
                raise _storage_error(where, f"contentType must be a string, got {ct!r}")
            member = blobs.get(sid)
            if member is None:
                raise _storage_error(where, f"the snapshot has no {STORAGE_DIR}/{sid} entry with this file's bytes")
            _verify_blob(zf, member, int(size), digest, where, source)
            created = row.get("_creationTime")
            files.append(StorageFile(
                where, sid, float(created) if isinstance(created, int | float) and created > 0 else None,
                digest, int(size), ct or None, member,
            ))
    return StorageImport(data, files, snapshot_number(rows))


def snapshot_number(rows: list[tuple[str, dict[str, Any]]]) -> int | None:
    """The table number the documents' ``_id`` s were made for (from the first valid one)."""
    for _, doc in rows:
        raw = doc.get("_id")
        if isinstance(raw, str):
            try:
                return decode_id(raw)[0]
            except IdError:
                continue
    return None


def insert_keeping_id(writer: Transaction | SystemView, table: str, number: int, doc: ImportDoc) -> bool:
    """Insert ``doc`` under its original ``_id`` and ``_creationTime`` through ``writer`` (a
    transaction for user tables, its system view for ``_storage``). False (nothing written)
    when that id is live in the transaction's view."""
    assert doc.id is not None
    return writer.insert_with_id(table, number, doc.id, doc.creation_time, doc.fields)


def write_table_import(db: Database, t: TableImport, mode: ImportMode, progress: Progress | None) -> None:
    """Write one table of a checked import in chunked transactions (``replace`` deletes the
    old documents first; ids are kept when the table was empty or replaced)."""
    number = db.ensure_table(t.table)
    ts = db.latest_ts()
    old = [
        encode_id(number, rev.id)
        for rev in db.persistence.table_documents(number, ts)
        if rev.value is not None
    ]
    keep_ids = (mode == "replace" or not old) and t.snapshot_number == number
    deletes = old if mode == "replace" else []
    ops: list[tuple[str, Any]] = [("delete", i) for i in deletes] + [("insert", d) for d in t.docs]
    # each delete and each insert keeping its id reads the id: stay under the read limit
    chunk = max(1, min(knobs.IMPORT_CHUNK_DOCUMENTS_COUNT, knobs.TRANSACTION_MAX_READ_INTERVALS_COUNT // 2))
    byte_budget = knobs.TRANSACTION_MAX_WRITE_BYTES // 2
    pos = 0
    total = len(ops)

    def apply(txn: Transaction) -> tuple[int, int, int, int]:
        done = deleted = inserted = kept = 0
        for kind, item in ops[pos : pos + chunk]:
            if done and txn.bytes_written >= byte_budget:
                break
            done += 1
            if kind == "delete":
                if txn.get(item) is not None:
                    txn.delete(item)
                    deleted += 1
                continue
            doc: ImportDoc = item
            if keep_ids and doc.id is not None and insert_keeping_id(txn, t.table, number, doc):
                kept += 1
            else:
                txn.insert(t.table, doc.fields)
            inserted += 1
        return done, deleted, inserted, kept

    while pos < total:
        try:
            (done, deleted, inserted, kept), _ = run_in_transaction(db, apply)
        except ConvectionError as exc:
            raise ConvectionError(
                f"Import into {t.table!r} failed after {t.imported} documents were imported: "
                f"{exc.message}",
                code=exc.code,
            ) from None
        pos += done
        t.deleted += deleted
        t.imported += inserted
        t.kept_ids += kept
        if progress is not None:
            progress(t.table, pos, total)
    if progress is not None and total == 0:
        progress(t.table, 0, 0)
