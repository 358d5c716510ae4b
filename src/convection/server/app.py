"""Wiring: the ONE place where concretes are constructed (docs/internals/overview.md).

:func:`open_deployment` turns options (functions folder, data directory, database URL) into a
running :class:`Deployment` (persistence, database, loaded code, application);
:func:`build_app` turns a deployment into the Starlette app serving HTTP and WebSocket on one
port.

Deployed code: ``convection deploy`` stores the functions folder in the ``_modules`` system
table (``model/modules.py``), in the commit that makes its schema take effect;
``open_deployment`` serves that code (materialized under ``<data dir>/modules/``) instead of
``functions_dir`` when something was deployed (except in ``dev``, which always serves the
local folder it watches), so a restarted ``convection serve`` keeps serving what was deployed.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from convection.application.admin import Admin, LogBuffer, apply_stored_env, deployed_folder
from convection.application.app import Application
from convection.application.interface import AuthFailure
from convection.clock import Clock, SystemClock
from convection.database.database import Database
from convection.errors import StorageFailure
from convection.files.blobs import BlobStore, LocalBlobStore
from convection.functions.identity import Identity
from convection.functions.loader import load_app
from convection.model import deployment
from convection.persistence import open_persistence
from convection.server.admin_routes import AdminRoutes
from convection.server.dashboard import DashboardRoutes
from convection.server.http_api import HttpApi
from convection.server.metrics import metrics_routes
from convection.server.storage_routes import StorageRoutes
from convection.server.websocket import SyncConnections, sync_endpoint

log = logging.getLogger("convection.server")

VERSION = "0.1.0"


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


def _blob_store(url: str | None, data_dir: Path) -> BlobStore:
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
        application = Application(
            db, loaded, secret=secret, redact_errors=redact_errors, on_log=on_log, on_call=logs.record_call,
            blobs=_blob_store(storage_url, ddir), origin=origin or os.environ.get("CONVECTION_ORIGIN") or None,
            index_dir=ddir / "indexes",
        )
        admin = Admin(application, ddir, logs)
        admin.follow_other_processes(reload_code=not dev)
    except BaseException:
        db.close()
        raise
    return Deployment(fdir, ddir, db, application, secret, dev=dev, admin=admin)


class _CollapseSlashes:
    """The JS client builds ``<url>/api/...``; a configured URL ending in ``/`` gives
    ``//api/...``. Collapse repeated slashes so both work."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path: str = scope.get("path", "")
            if "//" in path:
                while "//" in path:
                    path = path.replace("//", "/")
                scope = dict(scope)
                scope["path"] = path
                scope["raw_path"] = path.encode()
        await self.app(scope, receive, send)


_HTTP_METHODS = ["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "HEAD"]


async def _http_action_identity(api: HttpApi, request: Request) -> Identity:
    """The caller of an HTTP action. Any Authorization header is accepted (webhooks send
    their own schemes, as in Convex): one that is not a valid token makes an anonymous caller
    whose ``ctx.auth.get_user_identity()`` raises that token's error."""
    try:
        return await api.identity(request)
    except AuthFailure as exc:
        return Identity(auth_error=(exc.code, exc.message))


def build_site_app(deployment: Deployment) -> Starlette:
    """The HTTP-actions site (default port 3211): every path goes to ``http.py``."""
    app = deployment.app
    api = HttpApi(app)

    async def http_action(request: Request) -> Response:
        identity = await _http_action_identity(api, request)
        result: Response = await app.run_http_action(request, request.url.path, identity)
        return result

    return Starlette(routes=[Route("/{p:path}", http_action, methods=_HTTP_METHODS)])


def build_app(deployment: Deployment) -> Starlette:
    app = deployment.app
    api = HttpApi(app)

    async def version(request: Request) -> Response:
        return JSONResponse({"version": VERSION, "name": "convection"})

    async def health(request: Request) -> Response:
        """Whether writes are possible (docs/http-api.md): 200 when they are, else 503."""
        committer = deployment.db.committer
        state = committer.health.to_json()
        if committer.failed is not None:
            state.update(writes=False, state="failed", reason=str(committer.failed))
        return JSONResponse({"status": "ok" if state["writes"] else "unavailable", **state},
                            status_code=200 if state["writes"] else 503)

    async def storage_failed(request: Request, exc: Exception) -> Response:
        # The committer logs one line per state change; a request gets a JSON 503.
        code = exc.code if isinstance(exc, StorageFailure) else "StorageFailure"
        return JSONResponse({"code": code, "message": str(exc)}, status_code=503)

    async def debug_event(request: Request) -> Response:
        return Response(status_code=200)

    connections = SyncConnections()  # live sockets, for /metrics

    async def ws(websocket: Any) -> None:
        await sync_endpoint(websocket, app, connections)

    async def http_action(request: Request) -> Response:
        identity = await _http_action_identity(api, request)
        path = "/" + request.path_params.get("action_path", "")
        result: Response = await app.run_http_action(request, path, identity)
        return result

    routes = [
        Route("/version", version, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/api/query", api.query, methods=["GET", "POST"]),
        Route("/api/query_ts", api.query_ts, methods=["POST"]),
        Route("/api/query_at_ts", api.query_at_ts, methods=["POST"]),
        Route("/api/query_batch", api.query_batch, methods=["POST"]),
        Route("/api/mutation", api.mutation, methods=["POST"]),
        Route("/api/action", api.action, methods=["POST"]),
        Route("/api/function", api.function, methods=["POST"]),
        Route("/api/run/{fn_path:path}", api.run, methods=["POST"]),
        Route("/api/debug_event", debug_event, methods=["POST"]),
        Route("/http/{action_path:path}", http_action, methods=_HTTP_METHODS),
        WebSocketRoute("/api/sync", ws),
        WebSocketRoute("/api/{client_version}/sync", ws),
    ]
    if deployment.admin is not None:
        routes.extend(AdminRoutes(deployment.admin, api).routes())
    routes.extend(StorageRoutes(app.files).routes())
    routes.extend(DashboardRoutes(app, api).routes())  # / and its admin routes (docs/dashboard.md)
    routes.extend(metrics_routes(app, connections, VERSION))  # /metrics (docs/metrics.md)
    middleware = [
        Middleware(_CollapseSlashes),
        Middleware(
            CORSMiddleware,
            allow_origin_regex=".*",
            allow_credentials=True,
            allow_methods=["GET", "POST", "OPTIONS", "PATCH", "DELETE", "PUT"],
            allow_headers=["*"],
            max_age=86400,
        ),
    ]
    starlette = Starlette(routes=routes, middleware=middleware,
                          exception_handlers={StorageFailure: storage_failed})
    starlette.state.deployment = deployment
    return starlette
