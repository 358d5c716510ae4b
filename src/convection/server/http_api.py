"""The one-shot HTTP API (docs/http-api.md): ``/api/query``, ``/api/mutation``, ``/api/action``,
``/api/function``, ``/api/run/<module>/<fn>``, ``/api/query_ts``, ``/api/query_at_ts``.

Function failures are HTTP 200 with ``status: "error"`` (the PyPI client treats any non-2xx
as a transport error); transport failures (bad JSON, bad format, bad auth) are 4xx/5xx with
``{"code", "message"}``.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import unquote

import orjson
from starlette.requests import Request
from starlette.responses import Response

from convection import knobs
from convection.application.interface import (
    ANONYMOUS,
    ApplicationInterface,
    AuthFailure,
    FunctionOutcome,
    Identity,
)
from convection.errors import ConvectionError
from convection.protocol.timestamps import decode_ts, encode_ts
from convection.values.json import from_convex_json, to_clean_json

ENCODED = "convex_encoded_json"
CLEAN = "json"
_FORMATS = {
    "convex_encoded_json": ENCODED,
    "convex_json": ENCODED,
    "json": CLEAN,
    "convex_clean_json": CLEAN,
    "export_json": ENCODED,
}


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> Response:
    return Response(orjson.dumps({"code": code, "message": message}), status_code=status, media_type="application/json")


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def pick_format(raw: Any, request: Request, default_clean: bool) -> str:
    if raw is None:
        return CLEAN if default_clean else ENCODED
    fmt = _FORMATS.get(raw) if isinstance(raw, str) else None
    if fmt is None:
        raise HttpError(400, "BadFormat", f"Unknown value format {raw!r}: use convex_encoded_json or json")
    return fmt


def parse_args(raw: Any) -> Any:
    """Args arrive as ``[obj]`` (npm) or ``obj`` (PyPI, /api/function)."""
    if raw is None:
        return {}
    if isinstance(raw, list):
        if len(raw) != 1:
            raise HttpError(400, "InvalidArgs", "args must be an object or a one-element array of an object")
        raw = raw[0]
    try:
        return from_convex_json(raw)
    except ConvectionError as exc:
        raise HttpError(400, "InvalidArgs", f"Invalid argument value: {exc}") from None


def outcome_body(outcome: FunctionOutcome, fmt: str) -> dict[str, Any]:
    if outcome.success:
        value: Any = orjson.Fragment(outcome.value_json) if fmt == ENCODED else to_clean_json(outcome.value)
        body: dict[str, Any] = {"status": "success", "value": value}
    else:
        body = {"status": "error", "errorMessage": outcome.error_message}
        if outcome.has_error_data:
            body["errorData"] = (
                orjson.Fragment(outcome.error_data_json) if fmt == ENCODED else to_clean_json(outcome.error_data)
            )
    if outcome.log_lines:
        body["logLines"] = outcome.log_lines
    return body


def body_limit_bytes() -> int:
    return knobs.MAX_FUNCTION_ARGS_SIZE_BYTES + knobs.HTTP_MAX_BODY_OVERHEAD_BYTES


async def read_limited_body(request: Request) -> bytes:
    """The body of a function call, refused (413 ``ArgumentsTooLarge``) as soon as it is known
    to exceed ``MAX_FUNCTION_ARGS_SIZE_BYTES`` (plus the envelope's allowance): from
    Content-Length before reading anything, else while streaming, so an oversized body is
    never buffered whole."""
    limit = body_limit_bytes()
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> HttpError:
    return HttpError(
        413,
        "ArgumentsTooLarge",
        f"The request body is over {limit} bytes: function arguments are limited to "
        f"{knobs.MAX_FUNCTION_ARGS_SIZE_BYTES} bytes (knob MAX_FUNCTION_ARGS_SIZE_BYTES). Pass "
        "large data through file storage instead.",
    )


class HttpApi:
    """Route handlers bound to an application."""

    def __init__(self, app: ApplicationInterface) -> None:
        self.app = app

    async def identity(self, request: Request) -> Identity:
        header = request.headers.get("authorization")
        if header is None:
            key = request.query_params.get("adminKey")
            if key:
                return await self.app.authenticate("Admin", key, None)
            return ANONYMOUS
        if header[:7].lower() == "bearer ":
            return await self.app.authenticate("User", header[7:].strip(), None)
        if header[:7].lower() == "convex ":
            rest = header[7:].strip()
            acting: dict[str, Any] | None = None
            if ":" in rest:
                rest, encoded = rest.rsplit(":", 1)
                try:
                    acting = orjson.loads(base64.b64decode(encoded + "=" * (-len(encoded) % 4)))
                except Exception:
                    raise AuthFailure("The acting-as identity in the Authorization header is not base64 JSON") from None
            return await self.app.authenticate("Admin", rest, acting)
        raise AuthFailure("Authorization header must be 'Bearer <token>' or 'Convex <admin key>'")

    async def _body(self, request: Request) -> dict[str, Any]:
        raw = await read_limited_body(request)
        if not raw:
            return {}
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise HttpError(400, "BadJsonBody", f"The request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise HttpError(400, "BadJsonBody", "The request body must be a JSON object")
        return body

    async def _call(self, request: Request, kind: str | None, *, body: dict[str, Any] | None = None,
                    path: str | None = None, default_clean: bool = False) -> Response:
        try:
            if body is None:
                body = await self._body(request)
            fmt = pick_format(body.get("format"), request, default_clean)
            fn_path = path if path is not None else body.get("path")
            if not isinstance(fn_path, str) or not fn_path:
                raise HttpError(400, "BadRequest", "Missing function 'path' in the request body")
            args = parse_args(body.get("args"))
            identity = await self.identity(request)
            if kind == "query":
                outcome = await self.app.run_query(fn_path, args, identity)
            elif kind == "mutation":
                outcome = await self.app.run_mutation(fn_path, args, identity)
            elif kind == "action":
                outcome = await self.app.run_action(fn_path, args, identity)
            elif kind == "query_at_ts":
                ts_raw = body.get("ts")
                try:
                    ts = decode_ts(ts_raw) if isinstance(ts_raw, str) else int(ts_raw)  # type: ignore[arg-type]
                except Exception:
                    raise HttpError(400, "BadRequest", f"Invalid ts {ts_raw!r}: expected a base64 timestamp") from None
                outcome = await self.app.run_query(fn_path, args, identity, ts=ts)
            else:
                outcome = await self.app.run_function(fn_path, args, identity)
            return json_response(outcome_body(outcome, fmt))
        except HttpError as exc:
            return error_response(exc.status, exc.code, exc.message)
        except AuthFailure as exc:
            return error_response(401, exc.code, exc.message)

    async def query(self, request: Request) -> Response:
        if request.method == "GET":
            q = request.query_params
            try:
                args_raw = orjson.loads(q.get("args") or "{}")
            except orjson.JSONDecodeError:
                return error_response(400, "BadRequest", "The 'args' query parameter is not valid JSON")
            body = {"path": q.get("path"), "args": args_raw, "format": q.get("format")}
            return await self._call(request, "query", body=body)
        return await self._call(request, "query")

    async def mutation(self, request: Request) -> Response:
        return await self._call(request, "mutation")

    async def action(self, request: Request) -> Response:
        return await self._call(request, "action")

    async def function(self, request: Request) -> Response:
        return await self._call(request, None)

    async def query_at_ts(self, request: Request) -> Response:
        return await self._call(request, "query_at_ts")

    async def query_ts(self, request: Request) -> Response:
        return json_response({"ts": encode_ts(self.app.latest_ts())})

    async def run(self, request: Request) -> Response:
        raw = request.path_params["fn_path"]
        parts = [unquote(p) for p in raw.split("/") if p]
        if len(parts) < 2:
            return error_response(400, "BadRequest", "Use /api/run/<module path>/<function name>")
        path = "/".join(parts[:-1]) + ":" + parts[-1]
        try:
            body = await self._body(request)
        except HttpError as exc:
            return error_response(exc.status, exc.code, exc.message)
        if "args" not in body and body and "format" not in body:
            body = {"args": body}
        return await self._call(request, None, body=body, path=path, default_clean=True)

    async def query_batch(self, request: Request) -> Response:
        try:
            body = await self._body(request)
            identity = await self.identity(request)
        except HttpError as exc:
            return error_response(exc.status, exc.code, exc.message)
        except AuthFailure as exc:
            return error_response(401, exc.code, exc.message)
        ts = self.app.latest_ts()
        results = []
        for q in body.get("queries") or []:
            try:
                fmt = pick_format(q.get("format"), request, False)
                outcome = await self.app.run_query(q.get("path", ""), parse_args(q.get("args")), identity, ts=ts)
                results.append(outcome_body(outcome, fmt))
            except HttpError as exc:
                results.append({"status": "error", "errorMessage": exc.message})
        return json_response({"results": results})
