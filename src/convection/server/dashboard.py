"""The dashboard (docs/dashboard.md): one static page at ``/`` and the few admin routes it
needs beyond ``server/admin_routes.py``.

The page (``static/dashboard.html``, plain JS, no build step) asks for the admin key and then
is a client like any other: there is no private path (docs/internals/overview.md). It subscribes to the
built-in ``_system/frontend:*`` queries (``functions/system.py``) over the sync protocol with
admin auth, so table counts, the data grid and the file list are live; it changes data and
files through the ``_system/frontend:*`` mutations over the public API (``/api/function``),
so every change is an ordinary, schema-validated transaction; and it reads everything else
from the admin HTTP API (``/api/admin/...``, also used by the CLI). The page is served at
``/`` and at one address per page (``/data``, ``/files``, ...; the page picks the tab), with
a Content-Security-Policy that allows exactly its own inline script and style (by hash) and
connections to this origin, so injected markup could neither run nor send the admin key
elsewhere.

Routes added here (all ``Authorization: Convex <admin key>``, 401 ``Unauthorized`` otherwise;
errors are ``{"code", "message"}``):

| route | answers |
|---|---|
| ``GET /api/admin/schema`` | ``{"hasSchema", "schemaValidation", "tables": [{"name", "documents", "validator", "indexes": [{"name", "fields", "state", "progress"?}], "searchIndexes", "vectorIndexes"}]}`` |
| ``GET /api/admin/functions`` | ``{"functions": [{"path", "module", "name", "kind", "visibility", "args", "returns"}]}`` |
| ``GET /api/admin/scheduled_functions?limit=N`` | ``{"jobs": [{"id", "name", "args", "scheduledTime", "completedTime", "state"}]}``, newest first |
| ``POST /api/admin/scheduled_functions/{id}/cancel`` | ``{"id", "canceled"}`` (false: already finished) |
| ``GET /api/admin/cron_jobs?limit=N`` | ``{"crons": [{"name", "udfPath", "args", "schedule", "state", "nextTs", "prevTs"}], "logs": [...]}`` |

``args`` and log documents are Convex encoded JSON.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Awaitable, Callable
from importlib import resources

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from convection import knobs
from convection.application.admin import Admin, AdminError
from convection.application.interface import Identity
from convection.server.admin_routes import admin_guard
from convection.server.http_api import HttpApi, json_response

PAGE = "dashboard.html"
PAGES = ("data", "schema", "files", "functions", "logs", "schedules", "env", "backups")
DEFAULT_LIST_COUNT = 50

Handler = Callable[[Request, Identity], Awaitable[Response]]
_STATUS = {"Unauthorized": 401, "NotFound": 404}


def load_page() -> tuple[str, str]:
    """The page's HTML and its Content-Security-Policy (hashes of its inline blocks)."""
    html = (resources.files("convection.server") / "static" / PAGE).read_text(encoding="utf-8")

    def hashes(tag: str) -> str:
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
        return " ".join(
            "'sha256-" + base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() + "'" for b in blocks
        )

    csp = (
        f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    return html, csp


class DashboardRoutes:
    """The page and the dashboard's admin routes of one deployment: HTTP only; every read and
    action goes through the :class:`Admin` facade (``application/inspection.py``)."""

    def __init__(self, admin: Admin, api: HttpApi) -> None:
        self.admin = admin
        self.api = api
        self._page: tuple[str, str] | None = None

    def routes(self) -> list[Route]:
        g = self._guard
        return [
            Route("/", self.page, methods=["GET"]),
            # Each page of the dashboard has an address of its own (the page picks the tab).
            *(Route(f"/{tab}", self.page, methods=["GET"]) for tab in PAGES),
            Route("/api/admin/schema", g(self.schema), methods=["GET"]),
            Route("/api/admin/functions", g(self.functions), methods=["GET"]),
            Route("/api/admin/scheduled_functions", g(self.scheduled), methods=["GET"]),
            Route("/api/admin/scheduled_functions/{job_id}/cancel", g(self.cancel), methods=["POST"]),
            Route("/api/admin/cron_jobs", g(self.crons), methods=["GET"]),
        ]

    def _guard(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        return admin_guard(self.api, handler, _STATUS)

    # --- the page ------------------------------------------------------------------------------
    async def page(self, request: Request) -> Response:
        if self._page is None:
            self._page = load_page()
        html, csp = self._page
        return HTMLResponse(
            html,
            headers={
                "Content-Security-Policy": csp,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-cache",
            },
        )

    # --- reads and actions (Admin: application/inspection.py) ----------------------------------
    async def functions(self, request: Request, identity: Identity) -> Response:
        return json_response({"functions": self.admin.functions(identity)})

    async def schema(self, request: Request, identity: Identity) -> Response:
        return json_response(await run_in_threadpool(self.admin.schema_overview, identity))

    async def scheduled(self, request: Request, identity: Identity) -> Response:
        limit = _limit(request)
        jobs = await run_in_threadpool(self.admin.scheduled_functions, identity, limit)
        return json_response({"jobs": jobs})

    async def cancel(self, request: Request, identity: Identity) -> Response:
        job_id = request.path_params["job_id"]
        canceled = await run_in_threadpool(self.admin.cancel_scheduled_function, identity, job_id)
        return json_response({"id": job_id, "canceled": canceled})

    async def crons(self, request: Request, identity: Identity) -> Response:
        limit = _limit(request)
        return json_response(await run_in_threadpool(self.admin.cron_jobs, identity, limit))


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit") or str(DEFAULT_LIST_COUNT)
    top = knobs.ADMIN_PAGE_MAX_DOCUMENTS_COUNT
    if not raw.isdigit() or not 1 <= int(raw) <= top:
        raise AdminError(f"limit must be a whole number from 1 to {top}, got {raw!r}", code="InvalidPaginationLimit")
    return int(raw)
