"""The composition root: the ONE place where the concrete pieces of a deployment are
constructed and wired (docs/internals/overview.md).

* :func:`open_database`: the store (``open_persistence``: SQLite, PostgreSQL or memory) and
  the :class:`Database` on it (which starts its committer: the write path and the log tailer,
  woken by the store's commit notifications, ``Persistence.watch_commits``), with the
  deployment's secret from the log;
* :func:`blob_store`: where file contents live (a directory or S3), from ``--storage``;
* :func:`build_application`: the :class:`Application` and its services: the function worker
  pool, the query cache, the per-path lanes, the inline-call policy, the JWKS cache (passed in), then the services
  built on the application (installed with ``Application.install``): the scheduler and cron
  executor with its lease (``LeaseKeeper`` on ``_leases``), file storage over the blob store,
  the full-text and vector index kinds;
* :func:`open_deployment`: all of the above for a functions folder and a data directory, plus
  the loaded code (or the deployed code from the log), the call log (``LogBuffer``) and the
  :class:`Admin` facade (which follows other processes' env and code changes), as a
  :class:`Deployment`.

``server/app.py`` turns a :class:`Deployment` into the Starlette app; the CLI, ``testing/``
and the tests open deployments here. Nothing else constructs these classes.

Deployed code: ``convection deploy`` stores the functions folder in the ``_modules`` system
table (``model/modules.py``), in the commit that makes its schema take effect;
``open_deployment`` serves that code (materialized under ``<data dir>/modules/``) instead of
``functions_dir`` when something was deployed (except in ``dev``, which always serves the
local folder it watches), so a restarted ``convection serve`` keeps serving what was deployed.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convection import knobs
from convection.application.admin import Admin, LogBuffer, apply_stored_env, deployed_folder
from convection.application.app import Application
from convection.application.cache import QueryCache
from convection.application.inline import InlinePolicy
from convection.application.lanes import Lanes
from convection.application.lease import LeaseKeeper
from convection.application.scheduler import SCHEDULER_LEASE, SchedulerExecutor
from convection.auth.jwks import JwksCache
from convection.clock import Clock, SystemClock
from convection.database.database import Database
from convection.files.blobs import BlobStore, LocalBlobStore, MemoryBlobStore
from convection.files.service import FileStorage
from convection.functions.calllog import CallSink
from convection.functions.loader import LoadedApp, load_app
from convection.model import deployment
from convection.persistence import open_persistence
from convection.search.service import SearchKind
from convection.vector.service import VectorKind


def build_application(
    db: Database,
    loaded: LoadedApp,
    *,
    secret: bytes | None = None,
    redact_errors: bool = False,
    on_log: Callable[[str, str, list[str]], None] | None = None,
    on_call: CallSink | None = None,
    workers: int | None = None,
    blobs: BlobStore | None = None,
    origin: str | None = None,
    index_dir: Path | None = None,
    lease_ms: float | None = None,
    holder: str | None = None,
) -> Application:
    """The application serving ``loaded`` on ``db`` with every service it uses.

    ``workers``: function worker threads (default ``FUNCTION_WORKER_THREADS_COUNT``);
    ``blobs``: the file blob store (default: in memory); ``origin``: the URL file URLs start
    with; ``index_dir``: where vector graphs are saved (none: rebuilt from the log at start);
    ``lease_ms`` / ``holder``: the scheduler lease's period and this process's holder id."""
    pool = workers or knobs.FUNCTION_WORKER_THREADS_COUNT
    application = Application(
        db, loaded,
        executor=ThreadPoolExecutor(max_workers=pool, thread_name_prefix="convection-fn"),
        cache=QueryCache(),
        # One function path may hold only part of the pool (application/lanes.py).
        lanes=Lanes(min(knobs.FUNCTION_MAX_THREADS_PER_PATH_COUNT, max(1, pool // 2))),
        # Short queries and mutations run on the event loop (application/inline.py), when
        # the store's reads are local (not over the network: PostgreSQL).
        inline=InlinePolicy(knobs.INLINE_CALL_MAX_US if db.persistence.local_reads else 0),
        jwks=JwksCache(),
        secret=secret, redact_errors=redact_errors, on_log=on_log, on_call=on_call,
    )
    # The services built on the application, in this order (each ensures its system tables:
    # the order fixes their table numbers in a new store).
    lease = LeaseKeeper(db, SCHEDULER_LEASE, period_ms=lease_ms or knobs.SCHEDULER_LEASE_MS, holder=holder)
    scheduler = SchedulerExecutor(application, lease=lease)
    files = FileStorage(
        db, blobs if blobs is not None else MemoryBlobStore(), secret=application.secret,
        origin=origin, run_blocking=application.run_blocking,
    )
    application.install(
        scheduler=scheduler,
        files=files,
        text_search=SearchKind.attach(db),
        vector_search=VectorKind.attach(db, index_dir),
    )
    return application


@dataclass
class Deployment:
    """Everything a running backend owns. ``close()`` stops it."""

    functions_dir: Path
    data_dir: Path
    db: Database
    app: Application
    secret: bytes
    dev: bool = False
    extras: dict[str, Any] = field(default_factory=dict)
    admin: Admin | None = None  # data, import/export, env, logs, deploy (admin_routes.py)

    def close(self) -> None:
        self.app.close()
        self.db.close()


def instance_secret(data_dir: Path) -> bytes:
    """The deployment's secret as mirrored in ``<data dir>/instance_secret`` (for the CLI's
    ``admin-key`` without opening the database), created when missing. The secret in force is
    the one in the log (:func:`deployment_secret`)."""
    path = data_dir / "instance_secret"
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    _write_secret_file(path, secret)
    return secret


def _write_secret_file(path: Path, secret: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret.hex())
    os.replace(tmp, path)


def deployment_secret(db: Database, data_dir: Path) -> bytes:
    """The secret in the log (``_deployment``); a store without one adopts the data
    directory's (so admin keys of a 0.1.0 deployment stay valid) or a new one. The data
    directory's mirror is brought in line, so ``convection admin-key --data`` prints a key
    every process of the deployment accepts."""
    path = data_dir / "instance_secret"
    stored = deployment.read_secret(db)
    if stored is None:
        stored = deployment.init_secret(db, instance_secret(data_dir))
    try:
        current = bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        current = None
    if current != stored:
        _write_secret_file(path, stored)
    return stored


def blob_store(url: str | None, data_dir: Path) -> BlobStore:
    """The file blob store named by ``--storage`` (else ``CONVECTION_STORAGE``): a directory
    path, ``file:///path``, or ``s3://bucket/prefix`` (settings from ``CONVECTION_S3_*`` and
    the AWS chain, checked now: a bad bucket or missing credentials fail at start).
    Default: ``<data dir>/storage``."""
    url = url or os.environ.get("CONVECTION_STORAGE") or None
    if not url:
        return LocalBlobStore(data_dir / "storage")
    if url.startswith("file://"):
        return LocalBlobStore(Path(url[len("file://"):]))
    if url.startswith("s3://"):
        from convection.files.s3 import S3BlobStore, S3Location, S3Settings

        store = S3BlobStore(S3Location.parse(url), S3Settings.from_env())
        store.check()
        return store
    if "://" in url:
        from convection.errors import ConvectionError

        raise ConvectionError(
            f"--storage {url!r}: use a directory (a path or file:///path) or an S3 bucket "
            "(s3://bucket/prefix)",
            code="UnsupportedStorage",
        )
    return LocalBlobStore(Path(url))


def open_database(data_dir: Path, *, db_url: str | None = None, clock: Clock | None = None) -> Database:
    """The deployment's database alone, without loading its code (``open_deployment`` starts
    here; ``convection env`` uses it in-process, so a variable that a module needs at import
    can be set while that module cannot load yet). Its cursors are signed with the
    deployment's secret from the log (:func:`deployment_secret`; the data directory's
    ``instance_secret`` mirrors it)."""
    persistence = open_persistence(db_url or str(Path(data_dir) / "db.sqlite3"))
    db = Database(persistence, clock=clock or SystemClock())
    try:
        db.set_cursor_secret(deployment_secret(db, Path(data_dir)))
    except BaseException:
        db.close()
        raise
    return db


def db_secret(db: Database) -> bytes:
    """The secret an open database's deployment uses (set by :func:`open_database`)."""
    secret = deployment.read_secret(db)
    assert secret is not None, "open_database stores the secret"
    return secret


def open_deployment(
    functions_dir: str | Path,
    data_dir: str | Path | None = None,
    *,
    db_url: str | None = None,
    clock: Clock | None = None,
    redact_errors: bool = False,
    dev: bool = False,
    on_log: Callable[[str, str, list[str]], None] | None = None,
    origin: str | None = None,
    storage_url: str | None = None,
) -> Deployment:
    """``storage_url`` selects the file blob store (a directory path, ``file://`` URL or
    ``s3://bucket/prefix``; else ``CONVECTION_STORAGE``; default ``<data dir>/storage/``). ``origin`` is the public URL file URLs start with (``ctx.storage.get_url``,
    ``generate_upload_url``): the argument, else ``CONVECTION_ORIGIN``, else
    ``http://127.0.0.1:3210``; the CLI passes ``--origin`` or ``http://<host>:<port>``.
    With no store named, file blobs live in ``<data dir>/storage/``."""
    fdir = Path(functions_dir).resolve()
    ddir = Path(data_dir).resolve() if data_dir is not None else fdir.parent / ".convection"
    ddir.mkdir(parents=True, exist_ok=True)
    clock = clock or SystemClock()
    db = open_database(ddir, db_url=db_url, clock=clock)
    try:
        secret = db_secret(db)
        deployed = None if dev else deployed_folder(db, ddir)
        if deployed is not None:
            fdir = deployed
        apply_stored_env(db)  # before the import: module-level code reads os.environ
        loaded = load_app(fdir)
    except BaseException:
        db.close()
        raise
    logs = LogBuffer(now_ms=clock.now_ms)

    try:
        application = build_application(
            db, loaded, secret=secret, redact_errors=redact_errors, on_log=on_log, on_call=logs.record_call,
            blobs=blob_store(storage_url, ddir), origin=origin or os.environ.get("CONVECTION_ORIGIN") or None,
            index_dir=ddir / "indexes",
        )
        admin = Admin(application, ddir, logs)
        admin.follow_other_processes(reload_code=not dev)
    except BaseException:
        db.close()
        raise
    return Deployment(fdir, ddir, db, application, secret, dev=dev, admin=admin)
