"""The admin HTTP API: the CLI's ``data``, ``import``, ``export``, ``env``, ``logs`` and
``deploy`` against a running backend (docs/cli.md). Thin: authenticate, call
:class:`convection.application.admin.Admin` in a worker thread, serialize.

Every route requires ``Authorization: Convex <admin key>`` (401 ``Unauthorized`` otherwise).
Errors are ``{"code", "message"}`` (plus ``file``/``line`` for a deploy that fails to load)
with status 400, 401, 404 or 413.

| route | answers |
|---|---|
| ``GET /api/admin/tables`` | ``{"tables": [{"name", "count"}]}`` |
| ``GET /api/admin/tables/{table}/documents?cursor=&limit=`` | ``{"page", "continueCursor", "isDone"}`` (Convex encoded JSON) |
| ``POST /api/admin/export[?includeFileStorage=1]`` | the ZIP snapshot (``application/zip``), with the stored files when asked |
| ``POST /api/admin/import?table=&mode=create|append|replace&format=jsonl|json|csv|zip[&stream=1]`` | body = the file; ``{"imported", "tables"}``; with ``stream=1`` NDJSON lines ``{"progress": {...}}`` then ``{"result": ...}`` or ``{"error": ...}`` |
| ``POST /api/admin/import/stream?table=&mode=&format=jsonl|csv&filename=`` | opens a streaming import: ``{"importId"}`` |
| ``POST /api/admin/import/stream/{id}?part=N`` | body = the next part of the file (from 0, in order; a repeated last part is answered again): ``{"documents", "bytes"}``; an error undoes the import |
| ``POST /api/admin/import/stream/{id}/finish``, ``DELETE /api/admin/import/stream/{id}`` | ``{"imported", "tables"}``; ``{"aborted", "removed"}`` (undone) |
| ``GET /api/admin/env``, ``POST /api/admin/env`` ``{"name", "value"}`` | ``{"env": {...}}``, ``{"name", "updated"}`` |
| ``GET|POST|DELETE /api/admin/env/{name}`` (POST body ``{"value"}``) | ``{"name", "value"}``, ``{"name", "updated"}``, ``{"name", "removed"}`` |
| ``GET /api/admin/logs?history=N`` / ``?after=SEQ`` ``[&path=&status=success|failure]`` | the call log: ``{"entries", "cursor", "capacity"}``; ``after`` long-polls up to ``ADMIN_LOGS_POLL_TIMEOUT_MS`` |
| ``POST /api/admin/deploy`` | body = ZIP of the functions folder; ``{"version", "functions", "modules", "tables"}`` |

A file is checked completely before an import writes anything, so those errors are a 400 even
with ``stream=1``; once streaming has started, a failure arrives as the ``{"error"}`` line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route

from convection import knobs
from convection.application.admin import IMPORT_FORMATS, IMPORT_MODES, Admin, AdminError
from convection.application.bulk_import import ImportSessions
from convection.application.interface import AuthFailure, Identity
from convection.errors import ConvectionError, ModuleLoadError
from convection.server.http_api import HttpApi, error_response, json_response

_STATUS = {
    "Unauthorized": 401, "TableNotFound": 404, "EnvVarNotFound": 404, "UploadTooLarge": 413,
    "ImportSessionNotFound": 404, "ImportPartOutOfOrder": 409,
}

Handler = Callable[[Request, Identity], Awaitable[Response]]


def admin_guard(
    api: HttpApi, handler: Handler, statuses: dict[str, int]
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap an admin route: 401 unless the caller presents the admin key; ConvectionErrors
    become JSON errors with the status ``statuses`` gives their code (default 400)."""

    async def endpoint(request: Request) -> Response:
        try:
            identity = await api.identity(request)
            if not identity.is_admin:
                raise AuthFailure(
                    "The admin API needs 'Authorization: Convex <admin key>' (print the key "
                    "with `convection admin-key` where the deployment's data lives)",
                    code="Unauthorized",
                )
            return await handler(request, identity)
        except AuthFailure as exc:
            return error_response(401, exc.code, exc.message)
        except ConvectionError as exc:
            return json_response(error_body(exc), statuses.get(exc.code, 400))

    return endpoint


def error_body(exc: ConvectionError) -> dict[str, Any]:
    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if isinstance(exc, ModuleLoadError):
        body["file"] = exc.file
        body["line"] = exc.line
    return body


class AdminRoutes:
    """Route handlers bound to one deployment's :class:`Admin`."""

    def __init__(self, admin: Admin, api: HttpApi) -> None:
        self.admin = admin
        self.api = api
        self.imports = ImportSessions()

    def routes(self) -> list[Route]:
        g = self._guard
        return [
            Route("/api/admin/tables", g(self.tables), methods=["GET"]),
            Route("/api/admin/tables/{table}/documents", g(self.documents), methods=["GET"]),
            Route("/api/admin/export", g(self.export), methods=["POST"]),
            Route("/api/admin/import", g(self.import_), methods=["POST"]),
            Route("/api/admin/import/stream", g(self.stream_open), methods=["POST"]),
            Route("/api/admin/import/stream/{id}", g(self.stream_part), methods=["POST", "DELETE"]),
            Route("/api/admin/import/stream/{id}/finish", g(self.stream_finish), methods=["POST"]),
            Route("/api/admin/env", g(self.env), methods=["GET", "POST"]),
            Route("/api/admin/env/{name}", g(self.env_one), methods=["GET", "POST", "PUT", "DELETE"]),
            Route("/api/admin/logs", g(self.logs), methods=["GET"]),
            Route("/api/admin/deploy", g(self.deploy), methods=["POST"]),
        ]

    def _guard(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        return admin_guard(self.api, handler, _STATUS)

    # --- data ----------------------------------------------------------------------------------
    async def tables(self, request: Request, identity: Identity) -> Response:
        tables = await run_in_threadpool(self.admin.list_tables, identity)
        return json_response({"tables": tables})

    async def documents(self, request: Request, identity: Identity) -> Response:
        q = request.query_params
        try:
            limit = int(q.get("limit") or 20)
        except ValueError:
            raise AdminError(f"limit must be a whole number, got {q.get('limit')!r}", code="InvalidPaginationLimit") from None
        table = request.path_params["table"]
        page = await run_in_threadpool(
            lambda: self.admin.documents(identity, table, cursor=q.get("cursor") or None, limit=limit)
        )
        return json_response(page)

    # --- export / import -----------------------------------------------------------------------
    async def export(self, request: Request, identity: Identity) -> Response:
        files = request.query_params.get("includeFileStorage") in ("1", "true")
        fd, path = tempfile.mkstemp(prefix="convection-export-", suffix=".zip")

        def write() -> dict[str, Any]:
            with os.fdopen(fd, "wb") as f:
                return self.admin.export_snapshot(identity, f, include_file_storage=files)

        try:
            summary = await run_in_threadpool(write)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        return FileResponse(
            path,
            media_type="application/zip",
            filename=f"snapshot_{summary['ts']}.zip",
            headers={"Convection-Snapshot-Ts": str(summary["ts"])},
            background=BackgroundTask(os.unlink, path),
        )

    async def import_(self, request: Request, identity: Identity) -> Response:
        q = request.query_params
        fmt = q.get("format") or ""
        mode = q.get("mode") or "create"
        if fmt not in IMPORT_FORMATS:
            raise AdminError(f"format must be one of {', '.join(IMPORT_FORMATS)}, got {fmt!r}", code="ImportFormatError")
        if mode not in IMPORT_MODES:
            raise AdminError(f"mode must be one of {', '.join(IMPORT_MODES)}, got {mode!r}", code="InvalidImportMode")
        data = await _read_body(request)
        table = q.get("table") or None
        source = q.get("filename") or f"input.{fmt}"
        plan = await run_in_threadpool(
            lambda: self.admin.prepare_import(
                identity, data, fmt=fmt, table=table, mode=mode, source=source
            )
        )
        if q.get("stream") not in ("1", "true"):
            result = await run_in_threadpool(self.admin.run_import, identity, plan, None)
            return json_response(result)

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

        def progress(label: str, done: int, total: int) -> None:
            item = {"progress": {"table": label, "done": done, "total": total}}
            loop.call_soon_threadsafe(queue.put_nowait, item)

        async def work() -> None:
            try:
                result = await run_in_threadpool(self.admin.run_import, identity, plan, progress)
                await queue.put({"result": result})
            except ConvectionError as exc:
                await queue.put({"error": error_body(exc)})
            finally:
                await queue.put(None)

        task = asyncio.ensure_future(work())

        async def lines() -> AsyncIterator[bytes]:
            yield orjson.dumps({"progress": {"table": "", "done": 0, "total": plan.total}}) + b"\n"
            while (item := await queue.get()) is not None:
                yield orjson.dumps(item) + b"\n"
            await task

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    # --- streaming import (application/bulk_import.py) ----------------------------------------
    async def stream_open(self, request: Request, identity: Identity) -> Response:
        q = request.query_params
        fmt = q.get("format") or ""
        stream = await run_in_threadpool(
            lambda: self.admin.stream_import(
                identity, fmt=fmt, table=q.get("table") or None, mode=q.get("mode") or "create",
                source=q.get("filename") or f"input.{fmt}",
            )
        )
        return json_response({"importId": self.imports.open(stream).id})

    async def stream_part(self, request: Request, identity: Identity) -> Response:
        session_id = request.path_params["id"]
        if request.method == "DELETE":
            removed = await run_in_threadpool(self.imports.abort, session_id)
            return json_response({"aborted": True, "removed": removed})
        part = request.query_params.get("part") or ""
        if not part.isdigit():
            raise AdminError(f"part must be a whole number, got {part!r}", code="ImportPartOutOfOrder")
        data = await _read_body(request)  # one part: bounded by ADMIN_UPLOAD_MAX_BYTES
        reply = await run_in_threadpool(self.imports.part, session_id, int(part), data)
        return json_response(reply)

    async def stream_finish(self, request: Request, identity: Identity) -> Response:
        result = await run_in_threadpool(self.imports.finish, request.path_params["id"])
        return json_response(result)

    # --- environment variables -----------------------------------------------------------------
    async def env(self, request: Request, identity: Identity) -> Response:
        if request.method == "GET":
            return json_response({"env": await run_in_threadpool(self.admin.env_list, identity)})
        body = await _json_body(request)
        return await self._set(identity, body.get("name"), body.get("value"))

    async def env_one(self, request: Request, identity: Identity) -> Response:
        name = request.path_params["name"]
        if request.method == "GET":
            value = await run_in_threadpool(self.admin.env_get, identity, name)
            if value is None:
                raise AdminError(f"Environment variable {name} is not set", code="EnvVarNotFound")
            return json_response({"name": name, "value": value})
        if request.method == "DELETE":
            removed = await run_in_threadpool(self.admin.env_remove, identity, name)
            return json_response({"name": name, "removed": removed})
        body = await _json_body(request)
        return await self._set(identity, name, body.get("value"))

    async def _set(self, identity: Identity, name: Any, value: Any) -> Response:
        updated = await run_in_threadpool(self.admin.env_set, identity, name, value)
        return json_response({"name": name, "updated": updated})

    # --- logs and deploy -----------------------------------------------------------------------
    async def logs(self, request: Request, identity: Identity) -> Response:
        q = request.query_params
        try:
            after = None if q.get("after") in (None, "") else int(q["after"])
            history = int(q.get("history") or 0)
        except ValueError:
            raise AdminError("after and history must be whole numbers", code="BadRequest") from None
        timeout = knobs.ADMIN_LOGS_POLL_TIMEOUT_MS / 1000
        poll = asyncio.ensure_future(
            self.admin.logs_after(
                identity, after, history, timeout, path=q.get("path") or None, status=q.get("status") or None
            )
        )
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({poll, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not poll.done():  # the client went away (or we were cancelled): stop waiting
                poll.cancel()
        # A task is only *marked* cancelled once the loop runs it again, so ask done(), not
        # cancelled(): result() on a task that was just told to cancel raises InvalidStateError.
        if not poll.done() or poll.cancelled():
            return Response(status_code=204)
        return json_response(poll.result())

    async def deploy(self, request: Request, identity: Identity) -> Response:
        bundle = await _read_body(request)
        summary = await run_in_threadpool(self.admin.deploy, identity, bundle)
        return json_response(summary)


async def _disconnected(request: Request) -> None:
    """Returns when the client closes the connection (a long-poll then ends early)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _read_body(request: Request) -> bytes:
    limit = knobs.ADMIN_UPLOAD_MAX_BYTES
    too_large = AdminError(
        f"The upload is larger than {limit} bytes (ADMIN_UPLOAD_MAX_BYTES); raise the knob "
        "CONVECTION_ADMIN_UPLOAD_MAX_BYTES on the server or split the file",
        code="UploadTooLarge",
    )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise AdminError(f"The request body is not valid JSON: {exc}", code="BadJsonBody") from None
    if not isinstance(body, dict):
        raise AdminError("The request body must be a JSON object", code="BadJsonBody")
    return body
