"""The dashboard (docs/dashboard.md): one static page at ``/`` and the few admin routes it
needs beyond ``server/admin_routes.py``.

The page (``static/dashboard.html``, plain JS, no build step) asks for the admin key and then
is a client like any other: there is no private path (STYLE.md §12). It subscribes to the
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
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from convection import knobs
from convection.application.admin import AdminError
from convection.application.app import Application
from convection.application.interface import Identity
from convection.database.query import Query
from convection.database.transaction import SystemView
from convection.errors import ConvectionError
from convection.model.cron_jobs import CronJobs
from convection.model.scheduled_jobs import SCHEDULED_FUNCTIONS_TABLE, ScheduledJob, ScheduledJobs
from convection.server.admin_routes import admin_guard
from convection.server.http_api import HttpApi, json_response
from convection.values.json import to_convex_json

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
    """The page and the dashboard's admin routes of one application."""

    def __init__(self, app: Application, api: HttpApi) -> None:
        self.app = app
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

    # --- functions -----------------------------------------------------------------------------
    async def functions(self, request: Request, identity: Identity) -> Response:
        return json_response({"functions": self.app.loaded.function_paths_json()})

    # --- schema and indexes ---------------------------------------------------------------------
    async def schema(self, request: Request, identity: Identity) -> Response:
        return json_response(await run_in_threadpool(self._schema))

    def _schema(self) -> dict[str, Any]:
        db = self.app.db
        schema = db.schema
        ts = db.latest_ts()
        names = {n for n in db.catalog.tables() if not n.startswith("_")}
        if schema is not None:
            names.update(schema.tables)
        tables = []
        for name in sorted(names):
            tdef = schema.tables.get(name) if schema is not None else None
            number = db.catalog.table_number(name)
            count = _count(db.persistence.table_documents(number, ts)) if number is not None else 0
            live = db.catalog.indexes_of(name) if number is not None else {}
            indexes = []
            for ix in live.values():
                entry: dict[str, Any] = {"name": ix.name, "fields": list(ix.fields), "state": ix.state}
                if ix.state != "enabled":
                    # Backfill progress: the index entries written so far against the documents.
                    entry["progress"] = {"done": _count(db.persistence.index_scan(ix.index_id, b"", None, ts)), "total": count}
                indexes.append(entry)
            declared = {ix["name"] for ix in indexes}
            if tdef is not None:
                for d in tdef.indexes:
                    if d.name not in declared:
                        indexes.append({"name": d.name, "fields": list(d.fields), "state": "staged" if d.staged else "pending"})
            tables.append({
                "name": name,
                "documents": count,
                "validator": tdef.document_validator.to_json() if tdef is not None else None,
                "indexes": sorted(indexes, key=lambda i: (i["name"] != "by_creation_time", i["name"] != "by_id", i["name"])),
                "searchIndexes": [ix.to_json() for ix in tdef.search_indexes] if tdef is not None else [],
                "vectorIndexes": [ix.to_json() for ix in tdef.vector_indexes] if tdef is not None else [],
            })
        return {
            "hasSchema": schema is not None,
            "schemaValidation": bool(schema is not None and schema.schema_validation),
            "tables": tables,
        }

    # --- scheduled functions and crons ---------------------------------------------------------
    def _read(self) -> SystemView:
        return SystemView(self.app.db.begin(read_only=True))

    async def scheduled(self, request: Request, identity: Identity) -> Response:
        limit = _limit(request)

        def read() -> list[dict[str, Any]]:
            system = self._read()
            model = ScheduledJobs(system)
            docs = Query(system.txn, SCHEDULED_FUNCTIONS_TABLE).order("desc").take(limit)
            return [_job_json(model, ScheduledJob.from_doc(d)) for d in docs]

        return json_response({"jobs": await run_in_threadpool(read)})

    async def cancel(self, request: Request, identity: Identity) -> Response:
        job_id = request.path_params["job_id"]
        scheduler = self.app.scheduler
        now_ms = self.app.db.clock.now_ms

        def cancel(system: SystemView) -> bool:
            model = ScheduledJobs(system)
            if model.get(job_id) is None:
                raise AdminError(f"No scheduled function with id {job_id!r}", code="NotFound")
            return model.cancel(job_id, now_ms())

        canceled = await run_in_threadpool(scheduler.transact, cancel)
        scheduler.wake()
        return json_response({"id": job_id, "canceled": canceled})

    async def crons(self, request: Request, identity: Identity) -> Response:
        limit = _limit(request)

        def read() -> dict[str, Any]:
            jobs = CronJobs(self._read()).all()
            crons = [
                {
                    "name": c.name,
                    "udfPath": c.udf_path,
                    "args": to_convex_json(c.args),
                    "schedule": to_convex_json(c.schedule),
                    "state": c.state,
                    "nextTs": c.next_ts,
                    "prevTs": c.prev_ts,
                }
                for c in jobs
            ]
            logs = [to_convex_json(doc) for doc in self.app.cron_logs(None, limit)]
            return {"crons": crons, "logs": logs}

        return json_response(await run_in_threadpool(read))


def _count(rows: Any) -> int:
    n = 0
    for row in rows:
        rev = row[1] if isinstance(row, tuple) else row
        if rev.value is not None:
            n += 1
    return n


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit") or str(DEFAULT_LIST_COUNT)
    top = knobs.ADMIN_PAGE_MAX_DOCUMENTS_COUNT
    if not raw.isdigit() or not 1 <= int(raw) <= top:
        raise AdminError(f"limit must be a whole number from 1 to {top}, got {raw!r}", code="InvalidPaginationLimit")
    return int(raw)


def _job_json(model: ScheduledJobs, job: ScheduledJob) -> dict[str, Any]:
    try:
        args: Any = to_convex_json(model.args_of(job))
    except ConvectionError:
        args = None
    state: dict[str, Any] = {"kind": job.state.value}
    if job.error is not None:
        state["error"] = job.error
    return {
        "id": job.id,
        "name": job.name,
        "args": args,
        "scheduledTime": job.scheduled_time,
        "completedTime": job.completed_time,
        "state": state,
    }
