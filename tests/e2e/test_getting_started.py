"""docs/getting-started.md, followed step by step (issue 17.1).

The tutorial's files come from the page itself: every fenced block preceded by
``<!-- file: PATH -->`` is written to PATH in a fresh app folder (``(append)`` appends), in the
page's order, so the page and this test cannot drift. Its commands (``<!-- step: NAME -->``)
are run as written, with the test's ports: ``convection dev`` in the folder, the ``curl`` calls
over the HTTP API, ``npm install`` and ``npm run build`` (the Vite + React page importing the
generated ``convex/_generated/api``), ``convection deploy``. The built page is driven in
headless Chromium: live updates across two pages, the action, then sign-in with
``ConvexProviderWithAuth``.

Needs node/npm and network access for ``npm install`` (skips without node).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import re
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

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "getting-started.md"
CHAT_DIR = ROOT / "examples" / "chat"  # its devDependencies include playwright-core
HARNESS = Path(__file__).resolve().parent / "browser" / "tutorial_page.mjs"
BLOCK = re.compile(r"<!-- (file|step): ([^>]+?) -->\n```[a-z]*\n(.*?)```", re.S)
START_TIMEOUT_S = 60.0
PUSH_TIMEOUT_S = 60.0


def _blocks() -> list[tuple[str, str, str]]:
    found = [(m.group(1), m.group(2).strip(), m.group(3)) for m in BLOCK.finditer(DOC.read_text())]
    assert found, "docs/getting-started.md has no marked blocks"
    return found


def _until(step: str) -> list[tuple[str, str]]:
    """The files of the blocks after the previous step and before ``step`` (in page order)."""
    blocks = _blocks()
    names = [name for kind, name, _ in blocks if kind == "step"]
    assert step in names, f"no '<!-- step: {step} -->' in docs/getting-started.md"
    start = names.index(step) - 1
    out: list[tuple[str, str]] = []
    seen_previous = start < 0
    for kind, name, text in blocks:
        if kind == "step":
            if start >= 0 and name == names[start]:
                seen_previous = True
            if name == step:
                return out
        elif seen_previous:
            out.append((name, text))
    raise AssertionError(step)


def _step(name: str) -> str:
    return next(text for kind, n, text in _blocks() if kind == "step" and n == name)


def _write(app: Path, files: list[tuple[str, str]]) -> None:
    for name, text in files:
        append = name.endswith("(append)")
        path = app / name.removesuffix("(append)").strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        if append:
            with path.open("a") as f:
                f.write(text)
        else:
            path.write_text(text)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(what: str, check: Any, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc.poll() is not None:
            pytest.fail(f"convection dev exited with {proc.returncode} waiting for {what}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-4000:]}")
        time.sleep(0.1)  # polling a subprocess's progress, not waiting for an effect


def _post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/version", timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def _dev(app: Path, port: int, site_port: int) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    assert _step("dev").strip() == "convection dev"
    log_path = app.parent / "dev.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "convection", "dev", "--port", str(port), "--site-port", str(site_port)],
            cwd=app, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "SITE_URL": f"http://127.0.0.1:{site_port}"},
        )
    try:
        yield proc, log_path
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
def _static(directory: Path) -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(directory))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def _npm() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None:
        pytest.skip("node is not installed: the tutorial builds its page with Vite")
    if npm is None:
        pytest.fail("node is installed but npm is not")
    if not (CHAT_DIR / "node_modules" / "playwright-core" / "package.json").exists():
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=CHAT_DIR, capture_output=True,
                              text=True, timeout=600, check=False)
        if done.returncode != 0:
            pytest.fail(f"npm ci failed in {CHAT_DIR}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return node, npm


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, **(env or {})})
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def _build(npm: str, app: Path, url: str, site_url: str) -> Path:
    build = _step("build")
    assert "VITE_CONVEX_URL=" in build and "npm run build" in build
    _run([npm, "run", "build"], app, {"VITE_CONVEX_URL": url, "VITE_CONVEX_SITE_URL": site_url}, timeout=300)
    dist = app / "web" / "dist"
    assert (dist / "index.html").exists()
    assert url in "".join(p.read_text() for p in (dist / "assets").glob("*.js"))
    return dist


def _browser(node: str, dist: Path, chromium: str, phase: str, log: Path) -> dict[str, Any]:
    with _static(dist) as page_url:
        done = subprocess.run([node, str(HARNESS), str(CHAT_DIR), page_url, chromium, phase],
                              capture_output=True, text=True, timeout=120, check=False)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    failure = next((e["fatal"] for e in events if "fatal" in e), None)
    assert failure is None and done.returncode == 0, (
        f"{phase}: {failure}\n{done.stderr[-3000:]}\nserver log:\n{log.read_text()[-4000:]}"
    )
    result: dict[str, Any] = next(e["result"] for e in events if "result" in e)
    assert result["consoleErrors"] == []
    return result


@pytest.mark.timeout(900)
def test_the_tutorial_step_by_step(tmp_path: Path, chromium: str) -> None:
    node, npm = _npm()
    app = tmp_path / "todo"
    app.mkdir()
    (app / "convex").mkdir()
    port, site_port = _free_port(), _free_port()
    url, site_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{site_port}"

    # 3-5: the schema, a query and a mutation, an action; 6: convection dev.
    _write(app, _until("dev"))
    with _dev(app, port, site_port) as (proc, log):
        generated = app / "convex" / "_generated"
        _wait("the server", lambda: _answers(url), proc, log, START_TIMEOUT_S)
        _wait("codegen", lambda: "add_samples" in _text(generated / "api.d.ts"), proc, log, PUSH_TIMEOUT_S)
        assert "tasks" in _text(generated / "data_model.py")

        # The curl calls, as written (with this test's port).
        for line in _step("curl").strip().splitlines():
            endpoint = re.search(r"localhost:3210(/api/\w+)", line)
            body = re.search(r"-d '(.*)'", line)
            assert endpoint and body, line
            answer = _post(url + endpoint.group(1), json.loads(body.group(1)))
            assert answer["status"] == "success", answer
        assert [t["text"] for t in answer["value"]] == ["Buy milk"]

        # 7: the React page with the generated api.
        _write(app, _until("npm"))
        assert 'from "../../convex/_generated/api"' in (app / "web" / "src" / "main.jsx").read_text()
        assert _step("npm").strip().splitlines()[0] == "npm install"
        _run([npm, "install", "--no-audit", "--no-fund", "--prefer-offline"], app)
        dist = _build(npm, app, url, site_url)
        result = _browser(node, dist, chromium, "tasks", log)
        expected = {"Buy milk", "Write the tutorial", "Sample task 3", "Sample task 4", "Sample task 5"}
        assert set(result["one"]) == expected and set(result["two"]) == expected

        # 8: sign-in with ConvexProviderWithAuth: dev picks the new files up and pushes them.
        _write(app, _until("deploy"))
        _wait("the auth push", lambda: "whoami" in _text(generated / "api.d.ts"), proc, log, PUSH_TIMEOUT_S)
        dist = _build(npm, app, url, site_url)
        result = _browser(node, dist, chromium, "auth", log)
        assert "Signed task (ann)" in result["tasks"]

        # 9: deploy to a running backend with its admin key.
        deploy = _step("deploy").strip()
        assert deploy.startswith("convection deploy --url")
        key = _run([sys.executable, "-m", "convection", "admin-key", "--data", ".convection"], app).strip().splitlines()[-1]
        _run([sys.executable, "-m", "convection", "deploy", "--url", url, "--admin-key", key], app, timeout=120)
        answer = _post(url + "/api/query", {"path": "tasks:whoami", "args": {}})
        assert (answer["status"], answer["value"]) == ("success", None), answer


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""
