"""End to end on PostgreSQL: ``python -m convection serve --db postgres://...`` serves the e2e
app; a mutation's write is answered by a query, also after a restart on the same database."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

APP_DIR = Path(__file__).resolve().parents[1] / "e2e" / "app" / "convex"
START_TIMEOUT_S = 30.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _call(url: str, kind: str, path: str, args: dict[str, Any]) -> Any:
    body = json.dumps({"path": path, "args": [args], "format": "convex_encoded_json"}).encode()
    request = urllib.request.Request(
        f"{url}/api/{kind}", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        out = json.loads(response.read())
    assert out["status"] == "success", out
    return out["value"]


class Server:
    def __init__(self, db_url: str, data_dir: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / "server.log"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "convection", "serve",
                "--functions", str(APP_DIR),
                "--db", db_url,
                "--data", str(data_dir),
                "--host", "127.0.0.1",
                "--port", str(self.port),
                "--site-port", str(_free_port()),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert self.proc.poll() is None, f"server exited:\n{self.log()}"
            try:
                with urllib.request.urlopen(self.url + "/version", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"server did not answer /version in time:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def test_serve_on_postgres_answers_queries_and_keeps_data(
    postgres_server: Any, tmp_path: Path
) -> None:
    # The form users write: postgres://user@host:port/dbname (plus a schema of our own).
    db_url = f"{postgres_server.tcp_url}?schema=serve_{uuid.uuid4().hex[:12]}"
    data_dir = tmp_path / "data"
    server = Server(db_url, data_dir)
    try:
        assert _call(server.url, "query", "messages:list", {}) == []
        _call(server.url, "mutation", "messages:send", {"body": "hello postgres"})
        [message] = _call(server.url, "query", "messages:list", {})
        assert message["body"] == "hello postgres"
    finally:
        server.stop()
    assert not (data_dir / "db.sqlite3").exists()  # the data went to PostgreSQL
    again = Server(db_url, data_dir)
    try:
        [message] = _call(again.url, "query", "messages:list", {})
        assert message["body"] == "hello postgres"
        assert _call(again.url, "action", "messages:act", {"x": 1}) == {"x": 1, "count": 1}
    finally:
        again.stop()
