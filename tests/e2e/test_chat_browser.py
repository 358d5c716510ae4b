"""The chat example in a real browser: its Vite-built page (official ``convex`` React client,
importing the generated ``convex/_generated/api``) against ``python -m convection serve``,
opened twice in headless Chromium (playwright-core); a message sent in one page appears live
in the other.

The example has one package.json at its root (``examples/chat``), as a Convex project does, so
``web/src/main.jsx`` and ``convex/_generated/api.js`` resolve the same ``node_modules``.

Needs node/npm (skips without node) and Debian's Chromium at /usr/bin/chromium: installed with
``apt-get install -y chromium`` when missing and possible, skipped otherwise.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHAT_DIR = ROOT / "examples" / "chat"
WEB_DIR = CHAT_DIR / "web"
HARNESS = Path(__file__).resolve().parent / "browser" / "chat_two_pages.mjs"

SERVER_START_TIMEOUT_S = 30.0
BROWSER_TIMEOUT_S = 90.0




def _node_modules_complete() -> bool:
    package = json.loads((CHAT_DIR / "package.json").read_text())
    names = [*package.get("dependencies", {}), *package.get("devDependencies", {})]
    return all((CHAT_DIR / "node_modules" / name / "package.json").exists() for name in names)


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the browser test builds the page with Vite")
    if not _node_modules_complete():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("node is installed but npm is not: cannot install examples/chat")
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=CHAT_DIR, capture_output=True, text=True, timeout=600, check=False,
        )
        if done.returncode != 0 or not _node_modules_complete():
            pytest.fail(f"npm ci failed in {CHAT_DIR}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return node


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _chat_server(data_dir: Path) -> Iterator[str]:
    """``python -m convection serve`` on the chat example's functions; yields its URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = data_dir.parent / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "convection", "serve",
             "--functions", str(CHAT_DIR / "convex"), "--data", str(data_dir),
             "--host", "127.0.0.1", "--port", str(port), "--site-port", "0"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(url + "/version", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer /version in time:\n{log_path.read_text()}")
            time.sleep(0.05)  # polling a starting subprocess, not waiting for an effect
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _static_server(directory: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def _build(node: str, backend_url: str, out_dir: Path) -> None:
    done = subprocess.run(
        [node, str(CHAT_DIR / "node_modules" / "vite" / "bin" / "vite.js"), "build",
         "--outDir", str(out_dir), "--emptyOutDir", "--logLevel", "warn"],
        cwd=WEB_DIR, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "VITE_CONVEX_URL": backend_url},
    )
    if done.returncode != 0 or not (out_dir / "index.html").exists():
        pytest.fail(f"vite build failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")


def test_the_page_imports_the_generated_api() -> None:
    source = (WEB_DIR / "src" / "main.jsx").read_text()
    assert 'from "../../convex/_generated/api"' in source
    assert "anyApi" not in source


def test_a_message_sent_in_one_page_appears_in_the_other(tmp_path: Path, chromium: str) -> None:
    node = _node()
    with _chat_server(tmp_path / "data") as backend_url:
        dist = tmp_path / "dist"
        _build(node, backend_url, dist)
        assert backend_url in "".join(p.read_text() for p in (dist / "assets").glob("*.js"))
        with _static_server(dist) as page_url:
            done = subprocess.run(
                [node, str(HARNESS), str(CHAT_DIR), page_url, chromium],
                capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=False,
            )
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    server_log = (tmp_path / "server.log").read_text(errors="replace")[-4000:]
    failure = next((e["fatal"] for e in events if "fatal" in e), None)
    assert failure is None and done.returncode == 0, (
        f"browser harness failed ({done.returncode}):\n{failure}\n{done.stderr[-4000:]}\n"
        f"server log:\n{server_log}"
    )
    result = next(e["result"] for e in events if "result" in e)
    expected = ["ann hello from ann", "bob hi ann, bob here"]
    assert result["annSees"] == expected
    assert result["bobSees"] == expected
    assert result["consoleErrors"] == []
