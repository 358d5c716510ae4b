"""Built-in admin functionality: the system operations behind ``convection data``, ``import``,
``export``, ``env``, ``logs`` and ``deploy`` (docs/cli.md), served over HTTP by
``server/admin_routes.py`` and called in-process by the CLI on a local project. Both go through
:class:`Admin`, so there is one implementation and no private backdoor (docs/internals/overview.md).

Every operation takes the caller's :class:`Identity` and refuses anything but an admin
(``Unauthorized``). Parsing import files and the plan an import writes live in
``application/snapshots.py``. The operations, by their system names:

* ``_system:tables`` / ``_system:documents``: user tables with their document counts (at one
  snapshot); one page of a table's documents, newest first, with a pagination cursor.
* ``_system:export``: a ZIP snapshot of every user table at ONE timestamp, in Convex's layout
  (docs/cli.md): ``README.md`` and ``<table>/documents.jsonl``, one document per line in
  Convex encoded JSON (``convection.values.json``: int64 ``{"$integer"}``, bytes
  ``{"$bytes"}``, NaN/±inf/-0 ``{"$float"}``), which is lossless, so no
  ``generated_schema.jsonl`` type hints are written (nor needed on import; they are ignored).
  With ``include_file_storage`` it also holds ``_storage/documents.jsonl`` (one
  ``{_id, _creationTime, sha256, size, contentType}`` line per stored file, the ``_storage``
  rows at the same ts) and each file's bytes as ``_storage/<id>``; a file deleted after that
  ts whose blob is already gone is left out (row and bytes).
* ``_system:import``: JSONL, a JSON array, CSV, or a ZIP snapshot into tables. JSONL and CSV
  stream (:meth:`Admin.stream_import`, application/bulk_import.py: any size, written as read,
  undone on failure); what follows describes the buffered path of JSON and ZIP. Modes:
  ``create`` (the default: the table must be empty), ``append``, ``replace`` (existing documents
  are deleted). :meth:`Admin.prepare_import` parses and checks every document (field names,
  value limits, the schema in force) *before anything is written*, so a bad file writes
  nothing. :meth:`Admin.run_import` then commits in chunks of ``IMPORT_CHUNK_DOCUMENTS_COUNT``
  operations, deletions (``replace``) first, then insertions, each chunk its own transaction:
  an import that fits in one chunk is atomic; a larger one is not (readers may see a partially
  imported table, and a failure mid-way - a concurrent schema change, a storage error - leaves
  the chunks already committed). Documents keep their ``_id`` and ``_creationTime`` when the
  target table holds no other documents (``create``, ``replace``, or ``append`` into an empty
  table) and the id belongs to that table's number in this deployment; otherwise they get new
  ids (and references to them in other tables are not rewritten). A ZIP snapshot creates its
  missing tables in the order of their original table numbers, so importing a snapshot into a
  fresh deployment keeps every id. A ZIP with ``_storage/`` (imported whole, not with
  ``--table``) also restores its files: every blob is checked against its row's size and
  SHA-256 while preparing (a mismatch writes nothing); then files are written before the
  tables, each chunk's blobs stored before its rows commit. They keep their storage ids when
  the deployment has no stored files and the ids belong to its ``_storage`` table; otherwise
  they get new ids (the result's ``_storage`` entry says how many kept theirs; references in
  documents are not rewritten). Existing files are never deleted, whatever the mode.
* ``_system:env``: deployment environment variables, stored in the system table
  ``_environment_variables`` ``{name, value}``. Names are letters, digits and ``_``, start
  with a letter, at most ``ENV_VAR_NAME_MAX_LENGTH_COUNT`` characters; values at most
  ``ENV_VAR_VALUE_MAX_BYTES``. Functions read them as ``os.environ``: they are copied into the
  process environment when the deployment opens, before its modules are imported
  (:func:`apply_stored_env`, so module-level code sees them), and on every change (a removed variable gets
  back the value the process started with, if any), and every cached query is invalidated.
  ``os.environ`` is per process, so **one process serves one deployment**.
* ``_system:logs``: the call log: one :class:`LogEntry` per function call (kind, path,
  duration, outcome, request id, identity, log lines) in a bounded in-memory ring
  (:class:`LogBuffer`, fed by the runner's ``on_call``) with sequence numbers for tailing
  (long-poll), filterable by path and status.
* ``_system:deploy``: a ZIP of a functions folder is unpacked into
  ``<data dir>/deployed/<n>/convex``, loaded, and pushed (schema check, index backfill, code
  swap: ``application/push.py``). The folder in force is recorded in
  ``<data dir>/deployed/ACTIVE`` so a restarted ``convection serve`` keeps serving it
  (:func:`active_deployed_folder`). A bundle that fails to load or push changes nothing: the
  previous code keeps serving, and the error names the file and line.

Everything here is blocking (call it from a worker thread) except :meth:`LogBuffer.wait`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from convection import knobs
from convection.application.bulk_import import STREAM_FORMATS, StreamingImport, StreamProgress
from convection.application.deployed_code import (
    DEPLOYED_DIR,
    AdminError,
    deploy_summary,
    deployed_folder,
    unpack_bundle,
)
from convection.application.inspection import Inspection
from convection.application.snapshots import (
    IMPORT_FORMATS,
    IMPORT_MODES,
    README,
    ImportDoc,
    ImportFormat,
    ImportMode,
    ImportPlan,
    Progress,
    StorageImport,
    TableImport,
    check_table_name,
    detect_format,
    insert_keeping_id,
    parse_import,
    parse_storage,
    snapshot_number,
    write_table_import,
)
from convection.database.catalog import BY_CREATION_TIME
from convection.database.database import Database
from convection.database.query import Query
from convection.database.retry import run_in_transaction
from convection.database.transaction import SYSTEM_FIELDS, SystemView, Transaction
from convection.errors import (
    ConvectionError,
    ConvexError,
    IdError,
    LimitError,
    StorageFailure,
    ValidationError,
)
from convection.functions.identity import Identity
from convection.functions.loader import load_app
from convection.model import modules
from convection.model.file_storage import STORAGE_TABLE
from convection.values.ids import decode_id, encode_id
from convection.values.json import to_convex_json
from convection.values.model import normalize, value_size

if TYPE_CHECKING:
    from convection.application.app import Application
    from convection.database.database import Database

__all__ = [  # re-exported for server/ and cli/
    "IMPORT_FORMATS",
    "IMPORT_MODES",
    "Admin",
    "AdminError",
    "ImportFormat",
    "ImportMode",
    "LogBuffer",
    "LogEntry",
    "deployed_folder",
    "detect_format",
]

_ENV_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
ENV_TABLE = "_environment_variables"
ENV_INDEX = "by_name"

def _unauthorized() -> AdminError:
    return AdminError(
        "This operation needs an admin key: send 'Authorization: Convex <admin key>' "
        "(print the key with `convection admin-key` where the deployment's data lives)",
        code="Unauthorized",
    )


# The function-log ring buffer lives in its own module; re-exported for this import path.
from convection.application.logbuffer import LogBuffer, LogEntry  # noqa: E402

# --- environment variables -------------------------------------------------------------------

_ORIGINAL_ENV: dict[str, str | None] = {}
_ENV_LOCK = threading.Lock()


def _apply_env(name: str, value: str | None) -> None:
    """Mirror one deployment variable into ``os.environ`` (None: removed)."""
    with _ENV_LOCK:
        if name not in _ORIGINAL_ENV:
            _ORIGINAL_ENV[name] = os.environ.get(name)
        if value is not None:
            os.environ[name] = value
            return
        original = _ORIGINAL_ENV[name]
        if original is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = original


def check_env_name(name: Any) -> str:
    limit = knobs.ENV_VAR_NAME_MAX_LENGTH_COUNT
    if not isinstance(name, str) or not _ENV_NAME_RE.fullmatch(name) or len(name) > limit:
        raise AdminError(
            f"Invalid environment variable name {name!r}: use letters, digits and '_', start "
            f"with a letter, at most {limit} characters (e.g. OPENAI_API_KEY)",
            code="InvalidEnvVarName",
        )
    return name


def check_env_value(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise AdminError(f"The value of {name} must be a string, got {type(value).__name__}", code="InvalidEnvVarValue")
    size = len(value.encode())
    if size > knobs.ENV_VAR_VALUE_MAX_BYTES:
        raise AdminError(
            f"The value of {name} is {size} bytes; the limit is {knobs.ENV_VAR_VALUE_MAX_BYTES} "
            "bytes. Store large data in a table or in file storage instead.",
            code="InvalidEnvVarValue",
        )
    return value


def ensure_env_table(db: Database) -> None:
    """The system table of deployment variables and its ``by_name`` index exist."""
    db.ensure_system_table(ENV_TABLE, {ENV_INDEX: ("name",)})


def stored_env(db: Database) -> dict[str, str]:
    """Every deployment variable in the database, by name (read-only: creates nothing)."""
    if db.catalog.table_number(ENV_TABLE) is None:
        return {}
    txn = db.begin(read_only=True)
    rows = Query(txn, ENV_TABLE).collect()
    return {r["name"]: r["value"] for r in sorted(rows, key=lambda r: str(r["name"]))}


def apply_stored_env(db: Database) -> None:
    """Copy the deployment variables into ``os.environ``. ``open_deployment`` calls this
    before it imports the functions folder, so module-level code (``auth_config.py`` reading
    ``os.environ["AUTH0_DOMAIN"]``) sees them. A variable applied earlier in this process but
    no longer stored gets back its original value (or is removed)."""
    stored = stored_env(db)
    for name in [n for n in _ORIGINAL_ENV if n not in stored]:
        _apply_env(name, None)
    for name, value in stored.items():
        _apply_env(name, value)


def write_env(db: Database, name: str, value: str | None) -> bool:
    """Set (or with None remove) one variable in one commit; True when it existed. Does not
    touch ``os.environ`` (:meth:`Admin.env_set` does, for the serving process)."""
    ensure_env_table(db)

    def fn(txn: Transaction) -> bool:
        system = SystemView(txn)
        row = Query(txn, ENV_TABLE).with_index(ENV_INDEX, lambda q: q.eq("name", name)).first()
        if row is None:
            if value is not None:
                system.insert(ENV_TABLE, {"name": name, "value": value})
            return False
        if value is None:
            system.delete(row["_id"])
        else:
            system.patch(row["_id"], {"value": value})
        return True

    existed, _ = run_in_transaction(db, fn)
    return existed


# --- import parsing --------------------------------------------------------------------------


# --- the admin facade ------------------------------------------------------------------------


class Admin:
    """The admin operations of one deployment (see the module docstring). Thread-safe.

    Created once per :class:`Application` (by ``server/compose.py``'s ``open_deployment``); the
    constructor ensures the system table of environment variables and copies them into
    ``os.environ``."""

    def __init__(self, app: Application, data_dir: Path, logs: LogBuffer | None = None) -> None:
        self.app = app
        self.data_dir = Path(data_dir)
        self.logs = logs if logs is not None else LogBuffer(now_ms=app.db.clock.now_ms)
        self._deploy_lock = threading.Lock()
        self._inspection = Inspection(app)
        ensure_env_table(app.db)
        apply_stored_env(app.db)

    def follow_other_processes(self, *, reload_code: bool) -> None:
        """Apply what other processes of the deployment commit to the state this process
        keeps outside the log: deployment variables (``os.environ``, then every cached query
        is invalidated) and, with ``reload_code``, deployed code (``_modules``: a deploy to any
        node reloads the code on every node, without a restart)."""
        db = self.app.db
        changed = {"env": False, "code": False}

        def durable(batch: list[Any]) -> None:  # committer thread: quick, no I/O but os.environ
            for rec in batch:
                if not rec.remote:
                    continue
                for w in rec.writes:
                    if w.table == ENV_TABLE:
                        doc = w.new if w.new is not None else w.old
                        if doc is not None:
                            _apply_env(doc["name"], None if w.new is None else w.new["value"])
                        changed["env"] = True
                    elif w.table == modules.MODULES_TABLE and reload_code:
                        changed["code"] = True

        def published(batch: list[Any]) -> None:
            if changed["env"]:
                changed["env"] = False
                self.app.cache.invalidate_all(self.app.latest_ts())
            if changed["code"]:
                changed["code"] = False
                threading.Thread(target=self._reload_deployed, name="convection-reload", daemon=True).start()

        db.add_durable_hook(durable)
        db.add_publish_hook(published)

    def _reload_deployed(self) -> None:
        """Serve the code another process deployed (its schema is already in force)."""
        import logging

        with self._deploy_lock:
            try:
                folder = deployed_folder(self.app.db, self.data_dir)
                previous = self.app.loaded
                if folder is None or folder.resolve() == previous.folder.resolve():
                    return
                loaded = load_app(folder)
                self.app.set_app(loaded)
                previous.unload()
                logging.getLogger("convection.admin").info("serving code deployed by another process: %s", folder)
            except Exception:
                logging.getLogger("convection.admin").exception("reloading code deployed by another process failed")

    @staticmethod
    def _require_admin(identity: Identity) -> None:
        if not identity.is_admin:
            raise _unauthorized()

    # --- the dashboard's reads (application/inspection.py) ---------------------------------------
    def schema_overview(self, identity: Identity) -> dict[str, Any]:
        self._require_admin(identity)
        return self._inspection.schema()

    def functions(self, identity: Identity) -> list[dict[str, Any]]:
        self._require_admin(identity)
        return self._inspection.functions()

    def scheduled_functions(self, identity: Identity, limit: int) -> list[dict[str, Any]]:
        self._require_admin(identity)
        return self._inspection.scheduled_functions(limit)

    def cancel_scheduled_function(self, identity: Identity, job_id: str) -> bool:
        self._require_admin(identity)
        return self._inspection.cancel_scheduled_function(job_id)

    def cron_jobs(self, identity: Identity, limit: int) -> dict[str, Any]:
        self._require_admin(identity)
        return self._inspection.cron_jobs(limit)

    # --- tables and documents ------------------------------------------------------------------
    def user_tables(self) -> dict[str, int]:
        """User table names -> table numbers, including schema tables not created yet (0)."""
        tables = {n: num for n, num in self.app.db.catalog.tables().items() if not n.startswith("_")}
        schema = self.app.db.schema
        if schema is not None:
            for name in schema.tables:
                tables.setdefault(name, 0)
        return dict(sorted(tables.items()))

    def _count(self, number: int, ts: int) -> int:
        if number == 0:
            return 0
        return sum(1 for rev in self.app.db.persistence.table_documents(number, ts) if rev.value is not None)

    def list_tables(self, identity: Identity) -> list[dict[str, Any]]:
        """``_system:tables``: ``[{"name", "count"}]`` for every user table, at one snapshot."""
        self._require_admin(identity)
        ts = self.app.db.latest_ts()
        return [{"name": name, "count": self._count(number, ts)} for name, number in self.user_tables().items()]

    def documents(self, identity: Identity, table: str, *, cursor: str | None = None, limit: int = 20) -> dict[str, Any]:
        """``_system:documents``: one page of ``table``, newest first. Documents are Convex
        encoded JSON; ``continueCursor`` continues the listing, ``isDone`` is true at the end."""
        self._require_admin(identity)
        db = self.app.db
        if db.catalog.table_number(table) is None:
            if table in self.user_tables():
                return {"page": [], "continueCursor": "", "isDone": True}
            known = ", ".join(self.user_tables()) or "(none)"
            raise AdminError(f"Table {table!r} not found. Tables: {known}", code="TableNotFound")
        if not 1 <= limit <= knobs.ADMIN_PAGE_MAX_DOCUMENTS_COUNT:
            raise AdminError(
                f"limit must be between 1 and {knobs.ADMIN_PAGE_MAX_DOCUMENTS_COUNT}, got {limit}",
                code="InvalidPaginationLimit",
            )
        txn = db.begin(read_only=True)
        try:
            result = Query(txn, table).order("desc").paginate({"numItems": limit, "cursor": cursor or None})
        except ConvexError:
            raise AdminError(
                "Invalid cursor: it belongs to another table or deployment. Start again without --cursor.",
                code="InvalidCursor",
            ) from None
        return {
            "page": [to_convex_json(doc) for doc in result["page"]],
            "continueCursor": result["continueCursor"],
            "isDone": result["isDone"],
        }

    # --- export --------------------------------------------------------------------------------
    def export_snapshot(self, identity: Identity, out: IO[bytes], *, include_file_storage: bool = False) -> dict[str, Any]:
        """``_system:export``: write a ZIP snapshot of every user table at one ts to ``out``
        (and the stored files, with ``include_file_storage``). Returns
        ``{"ts", "tables": {name: count}, "files": count}``."""
        self._require_admin(identity)
        db = self.app.db
        ts = db.latest_ts()
        counts: dict[str, int] = {}
        stamp = time.gmtime(ts // 1_000_000_000)[:6]

        def entry(name: str) -> zipfile.ZipInfo:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            return info

        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(entry("README.md"), README)
            for table, number in self.user_tables().items():
                count = 0
                with zf.open(entry(f"{table}/documents.jsonl"), "w") as f:
                    index = db.catalog.index(table, BY_CREATION_TIME) if number else None
                    if index is not None:
                        for _, rev in db.persistence.index_scan(index.index_id, b"", None, ts):
                            if rev.value is None:
                                continue
                            # Stored text is `values.json.dumps` of the document: already
                            # Convex encoded JSON, lossless.
                            f.write(rev.value)
                            f.write(b"\n")
                            count += 1
                counts[table] = count
            files = self._export_files(zf, entry, ts) if include_file_storage else 0
        return {"ts": ts, "tables": counts, "files": files}

    def _export_files(self, zf: zipfile.ZipFile, entry: Callable[[str], zipfile.ZipInfo], ts: int) -> int:
        db = self.app.db
        blobs = self.app.files.blobs
        index = db.catalog.index(STORAGE_TABLE, BY_CREATION_TIME)
        rows: list[bytes] = []
        if index is not None:
            for _, rev in db.persistence.index_scan(index.index_id, b"", None, ts):
                if rev.value is None:
                    continue
                storage_id = encode_id(rev.table, rev.id)
                reader = blobs.open(storage_id)
                if reader is None:  # deleted after `ts` and already removed
                    continue
                try:
                    size = blobs.size(storage_id) or 0
                    with zf.open(entry(f"{STORAGE_TABLE}/{storage_id}"), "w", force_zip64=size >= 1 << 31) as f:
                        for chunk in reader:
                            f.write(chunk)
                finally:
                    reader.close()
                rows.append(rev.value)
        with zf.open(entry(f"{STORAGE_TABLE}/documents.jsonl"), "w") as f:
            for value in rows:
                f.write(value)
                f.write(b"\n")
        return len(rows)

    # --- import --------------------------------------------------------------------------------
    def prepare_import(
        self,
        identity: Identity,
        data: bytes,
        *,
        fmt: ImportFormat,
        table: str | None,
        mode: ImportMode = "create",
        source: str = "input",
    ) -> ImportPlan:
        """Parse ``data`` and check every document (names, limits, the schema in force)
        without writing. Raises AdminError/ValidationError naming the file position."""
        self._require_admin(identity)
        if mode not in IMPORT_MODES:
            raise AdminError(f"Unknown import mode {mode!r}: use append or replace (or neither)", code="InvalidImportMode")
        if fmt not in IMPORT_FORMATS:
            raise AdminError(f"Unknown import format {fmt!r}: use one of {', '.join(IMPORT_FORMATS)}", code="ImportFormatError")
        if len(data) > knobs.ADMIN_UPLOAD_MAX_BYTES:
            raise AdminError(
                f"The import is {len(data)} bytes; the limit is {knobs.ADMIN_UPLOAD_MAX_BYTES} (ADMIN_UPLOAD_MAX_BYTES)",
                code="UploadTooLarge",
            )
        parsed = parse_import(data, fmt, table, source)
        storage = parse_storage(data, source) if fmt == "zip" and table is None else None
        db = self.app.db
        ts = db.latest_ts()
        numbers = {name: snapshot_number(rows) for name, rows in parsed.items()}
        # Tables in the order of their original numbers: created in that order, a fresh
        # deployment gives them the same numbers, so ids (and v.id references) stay valid.
        names = sorted(parsed, key=lambda n: (numbers[n] is None, numbers[n] or 0, n))
        for name in names:
            check_table_name(name)
            number = db.catalog.table_number(name)
            if mode == "create" and number is not None:
                existing = self._count(number, ts)
                if existing:
                    raise AdminError(
                        f"Table {name!r} already has {existing} documents: pass --append to add to "
                        "them or --replace to replace them",
                        code="ImportTableNotEmpty",
                    )
        if fmt == "zip":
            # A snapshot's documents refer to each other's tables (v.id fields); those tables
            # must exist for the schema check. (Creating empty tables is the only write made
            # before the check passes.)
            for name in names:
                db.ensure_table(name)
        plan = ImportPlan(mode, storage=storage)
        for name in names:
            plan.tables.append(self._check_rows(name, parsed[name], numbers[name]))
        return plan

    def _check_rows(self, table: str, rows: list[tuple[str, dict[str, Any]]], number: int | None) -> TableImport:
        db = self.app.db
        out = TableImport(table, [], snapshot_number=number)
        for where, raw in rows:
            try:
                doc_id = raw.get("_id")
                ct = raw.get("_creationTime")
                user = {k: v for k, v in raw.items() if k not in SYSTEM_FIELDS}
                for name in user:
                    if isinstance(name, str) and name.startswith("_"):
                        raise ValidationError(
                            f"Field {name!r} starts with '_', which is reserved for system fields; rename it",
                            path=name,
                        )
                checked = db.validate_document(table, user, doc_id if isinstance(doc_id, str) else where)
                if checked is None:
                    checked = normalize(user, max_depth=knobs.MAX_DOCUMENT_NESTING_COUNT)
                size = value_size(checked)
                if size > knobs.MAX_DOCUMENT_SIZE_BYTES:
                    raise LimitError(
                        f"the document is {size} bytes; the limit is {knobs.MAX_DOCUMENT_SIZE_BYTES} bytes",
                        code="DocumentTooLarge",
                    )
            except ConvectionError as exc:
                raise ConvectionError(
                    f"{where}: {exc.message} (table {table!r}). Nothing was imported.", code=exc.code
                ) from None
            keep = doc_id if isinstance(doc_id, str) and number is not None and _id_number(doc_id) == number else None
            creation = float(ct) if keep is not None and isinstance(ct, float) and ct > 0 else None
            out.docs.append(ImportDoc(where, checked, keep, creation))
        return out

    def run_import(self, identity: Identity, plan: ImportPlan, progress: Progress | None = None) -> dict[str, Any]:
        """``_system:import``: write a prepared plan in chunked transactions (module docstring).
        Returns ``{"imported", "tables": [{"table", "imported", "deleted", "keptIds"}]}``."""
        self._require_admin(identity)
        db = self.app.db
        for t in plan.tables:
            db.ensure_table(t.table)
        tables: list[dict[str, Any]] = []
        imported = 0
        if plan.storage is not None:
            self._import_files(plan.storage, progress)
            tables.append(plan.storage.to_json())
            imported += plan.storage.imported
        for t in plan.tables:
            write_table_import(self.app.db, t, plan.mode, progress)
        tables += [t.to_json() for t in plan.tables]
        imported += sum(t.imported for t in plan.tables)
        return {"imported": imported, "tables": tables}

    def _import_files(self, s: StorageImport, progress: Progress | None) -> None:
        """Write the files of a snapshot (module docstring): per chunk, the blobs are stored
        under their ids, then the rows commit; a failed commit removes that chunk's blobs."""
        db = self.app.db
        files = self.app.files
        number = files.table_number
        ts = db.latest_ts()
        occupied = any(rev.value is not None for rev in db.persistence.table_documents(number, ts))
        keep_ids = not occupied and s.snapshot_number == number
        chunk = max(1, knobs.IMPORT_CHUNK_DOCUMENTS_COUNT)
        total = len(s.files)
        for start in range(0, total, chunk):
            batch = s.files[start : start + chunk]
            txn = db.begin()
            txn.source = STORAGE_TABLE
            written: list[str] = []
            kept = 0
            try:
                system = SystemView(txn)
                for f in batch:
                    doc = ImportDoc(f.where, f.fields(), f.id, f.creation_time)
                    if keep_ids and _id_number(f.id) == number and insert_keeping_id(system, STORAGE_TABLE, number, doc):
                        storage_id = f.id
                        kept += 1
                    else:
                        storage_id = system.insert(STORAGE_TABLE, doc.fields)
                    files.hold(storage_id)
                    written.append(storage_id)
                    files.blobs.put(storage_id, s.read(f))
                try:
                    db.commit(txn)
                except StorageFailure:
                    raise  # outcome unknown: the rows may exist, so the blobs stay (sweeper)
                except BaseException:
                    for storage_id in written:
                        files.blobs.delete(storage_id)
                    raise
            except ConvectionError as exc:
                raise ConvectionError(
                    f"Import of stored files failed after {s.imported} files were imported: {exc.message}",
                    code=exc.code,
                ) from None
            finally:
                files.release(written)
            s.imported += len(batch)
            s.kept_ids += kept
            if progress is not None:
                progress(STORAGE_TABLE, min(start + chunk, total), total)

    def import_data(
        self,
        identity: Identity,
        data: bytes,
        *,
        fmt: ImportFormat,
        table: str | None,
        mode: ImportMode = "create",
        source: str = "input",
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """:meth:`prepare_import` then :meth:`run_import`."""
        plan = self.prepare_import(identity, data, fmt=fmt, table=table, mode=mode, source=source)
        return self.run_import(identity, plan, progress)

    def stream_import(
        self, identity: Identity, *, fmt: str, table: str | None, mode: str = "create", source: str = "input",
        progress: StreamProgress | None = None,
    ) -> StreamingImport:
        """``_system:import`` of a JSONL or CSV file fed in chunks (application/bulk_import.py):
        no size limit, written as it arrives, undone on failure."""
        self._require_admin(identity)
        if mode not in IMPORT_MODES:
            raise AdminError(f"Unknown import mode {mode!r}: use append or replace (or neither)", code="InvalidImportMode")
        if fmt not in STREAM_FORMATS:
            raise AdminError(f"Format {fmt!r} cannot be streamed: use one of {', '.join(STREAM_FORMATS)}",
                             code="ImportFormatError")
        if table is None:
            raise AdminError("Importing a single file needs a table name (--table)", code="InvalidTableName")
        return StreamingImport(self.app.db, table, mode, fmt, source, progress)

    # --- environment variables -----------------------------------------------------------------
    def _env_rows(self) -> dict[str, str]:
        return stored_env(self.app.db)

    def env_list(self, identity: Identity) -> dict[str, str]:
        """``_system:env/list``: every variable, by name."""
        self._require_admin(identity)
        return self._env_rows()

    def env_get(self, identity: Identity, name: str) -> str | None:
        self._require_admin(identity)
        check_env_name(name)
        return self._env_rows().get(name)

    def _env_write(self, name: str, value: str | None) -> bool:
        existed = write_env(self.app.db, name, value)
        _apply_env(name, value)
        self.app.cache.invalidate_all(self.app.latest_ts())
        return existed

    def env_set(self, identity: Identity, name: str, value: str) -> bool:
        """``_system:env/set``: set a variable; True when it replaced an existing value."""
        self._require_admin(identity)
        check_env_name(name)
        check_env_value(name, value)
        return self._env_write(name, value)

    def env_remove(self, identity: Identity, name: str) -> bool:
        """``_system:env/remove``: True when the variable existed."""
        self._require_admin(identity)
        check_env_name(name)
        return self._env_write(name, None)

    # --- logs ----------------------------------------------------------------------------------
    async def logs_after(
        self,
        identity: Identity,
        after: int | None,
        history: int,
        timeout_s: float,
        *,
        path: str | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        """``_system:logs``: with ``after`` None, the last ``history`` calls at once; otherwise
        the calls after ``after``, waiting up to ``timeout_s`` for one. ``cursor`` is the
        ``after`` of the next call. ``path`` (a substring) and ``status`` (``success`` or
        ``failure``) filter the entries returned; the cursor moves past filtered-out ones."""
        self._require_admin(identity)
        if status not in (None, "", "success", "failure"):
            raise AdminError(f"status must be 'success' or 'failure', got {status!r}", code="BadRequest")
        if after is None:
            entries = self.logs.tail(history)
            cursor = self.logs.last_seq
        else:
            if after > self.logs.last_seq:  # the server restarted: sequence numbers began again
                after = 0
            entries = await self.logs.wait(after, timeout_s)
            cursor = entries[-1].seq if entries else max(after, 0)
        shown = [e.to_json() for e in entries if e.matches(path, status)]
        return {"entries": shown, "cursor": cursor, "capacity": self.logs.capacity}

    # --- deploy --------------------------------------------------------------------------------
    def deploy(self, identity: Identity, bundle: bytes) -> dict[str, Any]:
        """``_system:deploy``: unpack, load and push a ZIP of a functions folder (module
        docstring). The files become the ``_modules`` documents in the same commit as the
        schema. Raises ModuleLoadError (file and line), SchemaError or AdminError; then
        nothing changed."""
        self._require_admin(identity)
        with self._deploy_lock:
            staging = self.data_dir / DEPLOYED_DIR
            staging.mkdir(parents=True, exist_ok=True)
            unpacked = Path(tempfile.mkdtemp(prefix="bundle-", dir=staging)) / "convex"
            try:
                unpack_bundle(bundle, unpacked)
                files = modules.read_folder(unpacked)
            finally:
                shutil.rmtree(unpacked.parent, ignore_errors=True)
            folder = modules.materialize(files, self.data_dir)
            previous = self.app.loaded
            in_use = previous.folder.resolve() == folder.resolve()
            try:
                loaded = load_app(folder)
            except BaseException:
                if not in_use:
                    shutil.rmtree(folder.parent, ignore_errors=True)
                raise
            try:
                from convection.application.push import push

                push(self.app, loaded, in_commit=lambda system: modules.write_modules(system, files))
            except BaseException:
                loaded.unload()
                if not in_use:
                    shutil.rmtree(folder.parent, ignore_errors=True)
                raise
            if not in_use:
                previous.unload()
            modules.prune_materialized(self.data_dir, keep=folder)
        return deploy_summary(loaded, modules.modules_version(files))


def _id_number(id_str: str) -> int | None:
    try:
        return decode_id(id_str)[0]
    except IdError:
        return None
