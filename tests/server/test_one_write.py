"""A response with a content-length goes out in one transport write (server/http_timeouts.py
``_OneWrite``), and the cases where holding the head would be wrong pass straight through:
chunked (streaming) responses, HEAD, ``100 Continue``. Also end to end on a real server."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from convection.server.http_timeouts import _OneWrite


class Recorder:
    """A transport that records what is written (the real transport's stand-in)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def _cycle(method: str = "POST", chunked: bool | None = False) -> Any:
    return SimpleNamespace(response_started=False, response_complete=False, chunked_encoding=chunked,
                           scope={"method": method})


def test_head_and_body_in_one_write() -> None:
    t, c = Recorder(), _cycle()
    w = _OneWrite(t, c)
    c.response_started = True
    w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    assert t.writes == []
    w.write(b"{}")
    assert t.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    assert w.is_closing() is False  # everything else is the transport's


def test_continue_chunked_and_head_are_not_held() -> None:
    t, c = Recorder(), _cycle()
    w = _OneWrite(t, c)
    w.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # before the response started
    assert t.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    t2, c2 = Recorder(), _cycle(chunked=True)
    w2 = _OneWrite(t2, c2)
    c2.response_started = True
    w2.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    assert len(t2.writes) == 1  # a stream's head is not held back
    t3, c3 = Recorder(), _cycle(method="HEAD")
    w3 = _OneWrite(t3, c3)
    c3.response_started = True
    w3.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
    assert len(t3.writes) == 1  # no body write follows a HEAD response


def test_close_flushes_a_held_head() -> None:
    t, c = Recorder(), _cycle()
    w = _OneWrite(t, c)
    c.response_started = True
    w.write(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 21\r\n\r\n")
    w.close()
    assert t.writes == [b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 21\r\n\r\n"] and t.closed


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    import subprocess
    import sys
    import time
    import urllib.request

    tmp = tmp_path_factory.mktemp("one-write")
    app = tmp / "convex"
    app.mkdir()
    (app / "m.py").write_text("from convection import query\n\n@query\ndef hi(ctx):\n    return 'hi'\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "convection", "serve", "--functions", str(app), "--data", str(tmp / "data"),
         "--host", "127.0.0.1", "--port", str(port), "--site-port", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=1).read()
                break
            except OSError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(30)


def _read_response(f: Any) -> tuple[bytes, dict[bytes, bytes], bytes]:
    status = f.readline()
    headers: dict[bytes, bytes] = {}
    while (line := f.readline()) not in (b"\r\n", b""):
        k, _, v = line.partition(b":")
        headers[k.strip().lower()] = v.strip()
    body = f.read(int(headers.get(b"content-length", b"0")))
    return status, headers, body


def test_keep_alive_head_and_continue_on_a_real_server(served: int) -> None:
    body = b'{"path":"m:hi","args":{},"format":"json"}'
    with socket.create_connection(("127.0.0.1", served), timeout=30) as s:
        f = s.makefile("rb")
        for _ in range(3):  # several responses on one keep-alive connection
            s.sendall(b"POST /api/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body)
            status, _headers, got = _read_response(f)
            assert status.startswith(b"HTTP/1.1 200") and b'"value":"hi"' in got
        s.sendall(b"HEAD /version HTTP/1.1\r\nHost: x\r\n\r\n")
        status = f.readline()
        assert status.startswith(b"HTTP/1.1 ")
        while f.readline() not in (b"\r\n", b""):
            pass
        s.sendall(b"POST /api/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
        assert f.readline().startswith(b"HTTP/1.1 100")
        assert f.readline() == b"\r\n"
        s.sendall(body)
        status, _headers, got = _read_response(f)
        assert status.startswith(b"HTTP/1.1 200") and b'"value":"hi"' in got
