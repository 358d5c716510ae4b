"""File storage over HTTP (API.md §7, SEMANTICS.md §7): the upload target of
``ctx.storage.generate_upload_url()`` and the download URL of ``ctx.storage.get_url()``.

| route | answers |
|---|---|
| ``POST /api/storage/upload?token=...`` | body = the file's bytes; ``Content-Type`` is stored with it; an optional ``Digest: sha-256=<base64>`` is verified. ``{"storageId": "<id>"}`` |
| ``GET /api/storage/<id>`` (and HEAD) | the file with its content type; one ``Range`` (206, or 416 when unsatisfiable); ``ETag``, ``If-None-Match`` (304), ``Cache-Control: private, max-age=2592000`` (files never change) |

Errors are ``{"code", "message"}``: 401 for a missing, forged or expired token
(``InvalidUploadToken``, ``UploadTokenExpired``), 400 for a bad ``Digest`` header or a body
that does not match it (``InvalidDigest``, ``DigestMismatch``), 413 past
``STORAGE_UPLOAD_MAX_BYTES`` (``UploadTooLarge``), 404 for an unknown file (``FileNotFound``),
503 when the blob store fails (``BlobStoreRequestFailed``...: S3 unreachable, say).
CORS is the server's middleware (any origin), so a browser can upload straight from a page.

The body is streamed to the blob store in chunks (never held whole in memory) while its
SHA-256 is computed; file I/O runs in worker threads.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from convection import knobs
from convection.files.blobs import BlobStoreError
from convection.files.service import FileStorage
from convection.model.file_storage import FileStorageError
from convection.server.http_api import error_response, json_response

CACHE_CONTROL = "private, max-age=2592000"
WRITE_BUFFER_BYTES = 1 << 20


def parse_digest(header: str | None) -> bytes | None:
    """The SHA-256 named by a ``Digest`` header (RFC 3230: ``sha-256=<base64>``, possibly
    among other algorithms), or None when there is none. Raises ``InvalidDigest``."""
    if not header:
        return None
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or name.strip().lower() != "sha-256":
            continue
        try:
            digest = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            digest = b""
        if len(digest) != 32:
            raise FileStorageError(
                f"Invalid Digest header {header!r}: sha-256 must be the base64 of a 32-byte SHA-256 digest",
                code="InvalidDigest",
            )
        return digest
    return None


def parse_range(header: str | None, size: int) -> tuple[int, int] | bool | None:
    """The byte range ``[start, stop)`` of a single-range ``Range`` header; None to serve the
    whole file (no header, several ranges, another unit, a malformed header: RFC 9110 lets a
    server ignore those); False when the range is unsatisfiable (416)."""
    if not header:
        return None
    unit, sep, spec = header.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or (first and not first.isdigit()) or (last and not last.isdigit()) or not (first or last):
        return None
    if not first:  # suffix: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            return False
        return max(0, size - n), size
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        return False
    stop = size if not last else min(int(last) + 1, size)
    return start, stop


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


class StorageRoutes:
    """Route handlers bound to one deployment's :class:`FileStorage`."""

    def __init__(self, files: FileStorage) -> None:
        self.files = files

    def routes(self) -> list[Route]:
        return [
            Route("/api/storage/upload", self.upload, methods=["POST"]),
            Route("/api/storage/{storage_id}", self.download, methods=["GET"]),
        ]

    async def upload(self, request: Request) -> Response:
        files = self.files
        try:
            files.check_upload_token(request.query_params.get("token"))
            expected = parse_digest(request.headers.get("digest"))
        except FileStorageError as exc:
            return error_response(400 if exc.code == "InvalidDigest" else 401, exc.code, exc.message)
        limit = knobs.STORAGE_UPLOAD_MAX_BYTES
        declared = request.headers.get("content-length", "")
        if limit and declared.isdigit() and int(declared) > limit:
            return _too_large(limit)
        writer = await run_in_threadpool(files.blobs.writer)
        try:
            buf = bytearray()
            written = 0
            async for chunk in request.stream():
                buf += chunk
                if limit and written + len(buf) > limit:
                    return _too_large(limit)
                if len(buf) >= WRITE_BUFFER_BYTES:
                    data = bytes(buf)
                    buf.clear()
                    written += len(data)
                    await run_in_threadpool(writer.write, data)
            if buf:
                await run_in_threadpool(writer.write, bytes(buf))
            if expected is not None and writer.sha256() != expected:
                return error_response(
                    400,
                    "DigestMismatch",
                    "The uploaded body does not match its Digest header (sha-256): it was "
                    f"{writer.size} bytes with sha-256={base64.b64encode(writer.sha256()).decode()}. "
                    "Nothing was stored; upload again.",
                )
            content_type = request.headers.get("content-type") or None
            storage_id = await run_in_threadpool(files.store, writer, content_type)
        except ClientDisconnect:
            return Response(status_code=400)
        except BlobStoreError as exc:  # e.g. S3 unreachable: nothing was stored
            return _store_failed(exc)
        finally:
            # Drops a staged upload that was not stored (a no-op once stored); in a thread, as
            # it may be a network call (the S3 store aborts its multipart upload).
            await run_in_threadpool(writer.abort)
        return json_response({"storageId": storage_id})

    async def download(self, request: Request) -> Response:
        files = self.files
        storage_id = request.path_params["storage_id"]
        entry = await run_in_threadpool(files.lookup, storage_id)
        if entry is None:
            return _not_found(storage_id)
        etag = f'"{entry.sha256_base64}"'
        headers = {
            "Cache-Control": CACHE_CONTROL,
            "ETag": etag,
            "Accept-Ranges": "bytes",
        }
        if _etag_matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        size = entry.size
        range_header = request.headers.get("range")
        if_range = request.headers.get("if-range")
        if if_range is not None and if_range.strip() != etag:
            range_header = None  # the client's copy is stale: send the whole file
        span = parse_range(range_header, size)
        if span is False:
            headers["Content-Range"] = f"bytes */{size}"
            body = orjson.dumps(
                {"code": "RangeNotSatisfiable", "message": f"Range {range_header!r} is outside the file ({size} bytes)"}
            )
            return Response(body, status_code=416, headers=headers, media_type="application/json")
        status = 200
        start, stop = 0, size
        if isinstance(span, tuple):
            start, stop = span
            status = 206
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        else:
            headers["Digest"] = f"sha-256={entry.sha256_base64}"
        headers["Content-Type"] = entry.content_type or "application/octet-stream"
        headers["Content-Length"] = str(stop - start)
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers)
        try:
            reader = await run_in_threadpool(files.open, entry, start, stop)
        except BlobStoreError as exc:
            return _store_failed(exc)
        if reader is None:  # deleted after the lookup
            return _not_found(storage_id)
        return StreamingResponse(
            iter(reader), status_code=status, headers=headers, background=BackgroundTask(reader.close)
        )


def _not_found(storage_id: Any) -> Response:
    return error_response(404, "FileNotFound", f"No file with storage id {storage_id!r} (it was deleted or never existed)")


def _store_failed(exc: BlobStoreError) -> Response:
    return error_response(503, exc.code, f"{exc.message}. Try again later.")


def _too_large(limit: int) -> Response:
    return error_response(
        413, "UploadTooLarge", f"The file is larger than this server accepts ({limit} bytes, STORAGE_UPLOAD_MAX_BYTES)"
    )

