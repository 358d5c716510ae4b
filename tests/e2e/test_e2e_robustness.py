"""Issue 12 against the real server (`convection serve` subprocess): production defaults,
HTTP limits and subscription release, slow or silent clients."""

from __future__ import annotations

import json
import re
import socket
import urllib.error
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


@pytest.fixture
def impatient_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server with short stall timeouts (1.5 s), so the tests need not wait 30 s."""
    proc = ServerProcess(
        tmp_path / "data",
        env={"CONVECTION_HTTP_REQUEST_IDLE_TIMEOUT_MS": "1500", "CONVECTION_SYNC_CONNECT_TIMEOUT_MS": "1500"},
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def wait_closed_by_server(sock: socket.socket, deadline_s: float = 60) -> bytes:
    """Read until the server closes the connection (within a generous deadline); returns what
    it sent first."""
    sock.settimeout(deadline_s)
    received = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return received
        received += chunk


@pytest.mark.parametrize(
    "partial",
    [
        b"",  # connected, sent nothing
        b"POST /api/query HTTP/1.1\r\nHost: x\r\nContent-Ty",  # half a head
        b"POST /api/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{\"path\": ",  # half a body
    ],
    ids=["nothing", "half-head", "half-body"],
)
def test_half_sent_http_requests_are_closed(impatient_server: ServerProcess, partial: bytes) -> None:
    socks = []
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", impatient_server.port), timeout=10)
        sock.sendall(partial)
        socks.append(sock)
    try:
        for sock in socks:
            answer = wait_closed_by_server(sock)
            assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:200]
    finally:
        for sock in socks:
            sock.close()
    # The server still serves complete requests.
    status, body = post(impatient_server.url + "/api/query", {"path": "messages:default", "args": {}})
    assert (status, body["status"]) == (200, "success")


def test_websocket_that_never_sends_connect_is_closed(impatient_server: ServerProcess) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    url = impatient_server.url.replace("http://", "ws://") + "/api/1.48.0/sync"
    with connect(url, open_timeout=10) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=60)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1000, "ConnectTimeout")


def test_oversized_http_arguments_are_refused_before_the_body_arrives(impatient_server: ServerProcess) -> None:
    """Content-Length says 100 MiB: the answer is 413 after a few bytes, nothing buffered."""
    with socket.create_connection(("127.0.0.1", impatient_server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/mutation HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {100 << 20}\r\n\r\n".encode()
            + b'{"path": "messages:blob_len", "args": {"blob": "xxxx'
        )
        sock.settimeout(60)
        head = sock.recv(65536)
        assert head.startswith(b"HTTP/1.1 413"), head[:200]
        assert b"ArgumentsTooLarge" in head or b"ArgumentsTooLarge" in sock.recv(65536)
