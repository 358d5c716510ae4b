"""Issue 12 against the real server (`convection serve` subprocess): production defaults,
HTTP limits and subscription release, slow or silent clients."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ServerProcess


def post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture
def prod_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """`convection serve` with its default flags (production)."""
    proc = ServerProcess(tmp_path / "data", redact=True)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def test_serve_redacts_function_errors_for_non_admin_callers(prod_server: ServerProcess) -> None:
    body = {"path": "messages:fail", "args": {}, "format": "json"}
    status, anonymous = post(prod_server.url + "/api/mutation", body)
    assert status == 200 and anonymous["status"] == "error"
    assert re.fullmatch(r"\[Request ID: [0-9a-f]+\] Server Error", anonymous["errorMessage"]), anonymous
    # An admin (dashboard, CLI) still sees the message and the frames in the app's code.
    _, admin = post(
        prod_server.url + "/api/mutation", body, {"Authorization": f"Convex {prod_server.admin_key}"}
    )
    assert "Uncaught ValueError: nope" in admin["errorMessage"]
    assert "messages.py" in admin["errorMessage"]
    # ConvexError data is the app's message to its users: never redacted.
    _, convex_error = post(prod_server.url + "/api/mutation", {**body, "path": "messages:fail_convex", "args": {"code": 7}})
    assert convex_error["errorData"] == {"code": 7}
    # The operator finds the full text in the server log under the same request id.
    request_id = anonymous["errorMessage"].split("]")[0] + "]"
    assert request_id in prod_server.log() and "Uncaught ValueError: nope" in prod_server.log()
