"""The HTTP side of a deployment: :func:`build_app` turns a :class:`Deployment` (built by the
composition root, ``server/compose.py``) into the Starlette app serving HTTP and WebSocket on
one port, and :func:`build_site_app` into the HTTP-actions site.

The wiring (``open_deployment``, ``open_database``, the secrets, the blob store) lives in
``server/compose.py`` and is re-exported here for existing callers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from convection.application.interface import AuthFailure
from convection.errors import StorageFailure
from convection.functions.identity import Identity
from convection.server.admin_routes import AdminRoutes
from convection.server.compose import (  # re-exported (__all__): older callers, tests, bench
    Deployment,
    blob_store,
    build_application,
    db_secret,
    deployment_secret,
    instance_secret,
    open_database,
    open_deployment,
)
from convection.server.dashboard import DashboardRoutes
from convection.server.http_api import HttpApi
from convection.server.metrics import metrics_routes
from convection.server.storage_routes import StorageRoutes
from convection.server.websocket import SyncConnections, sync_endpoint

log = logging.getLogger("convection.server")

VERSION = "0.1.0"

_blob_store = blob_store  # the old private name (tests)

__all__ = [
    "VERSION",
    "Deployment",
    "blob_store",
    "build_app",
    "build_application",
    "build_site_app",
    "db_secret",
    "deployment_secret",
    "instance_secret",
    "open_database",
    "open_deployment",
]


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

FastHandler = Callable[[Request], Awaitable[Response]]


class _App(Starlette):
    """The Starlette app, with a short lane for the calls that carry the load: ``POST
    /api/query`` and ``POST /api/mutation`` without an ``Origin`` header (the official
    clients outside a browser, servers, load tests) go straight to their handler, skipping
    the middleware chain and the router (about a fifth of the server's CPU for a cached query,
    bench/PROFILES.md). That is only a shortcut: for such a request CORS adds nothing, the
    path is exact (nothing to collapse) and the route is known; a storage failure gets the
    same JSON 503 as through the exception handler. Everything else, and any request with an
    ``Origin``, takes the full stack."""

    fast: dict[str, FastHandler]
    on_storage_failure: Callable[[Request, Exception], Awaitable[Response]]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            handler = self.fast.get(scope["path"])
            if handler is not None and not any(k == b"origin" for k, _ in scope["headers"]):
                request = Request(scope, receive)
                try:
                    response = await handler(request)
                except StorageFailure as exc:
                    response = await self.on_storage_failure(request, exc)
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


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
    if deployment.admin is not None:  # / and its admin routes (docs/dashboard.md)
        routes.extend(DashboardRoutes(deployment.admin, api).routes())
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
    starlette = _App(routes=routes, middleware=middleware,
                     exception_handlers={StorageFailure: storage_failed})
    starlette.fast = {"/api/query": api.query, "/api/mutation": api.mutation}
    starlette.on_storage_failure = storage_failed
    starlette.state.deployment = deployment
    return starlette
