"""End-to-end fixtures: the REAL server as a subprocess, and the official clients against it.

* ``server`` (session): ``python -m convection serve`` on a free loopback port with a temp data
  directory, serving ``tests/e2e/app/convex``; killed at the end of the session.
* ``fresh_server`` (per test): a server of its own, for tests that kill and restart it.
* ``node``: runs a script of ``tests/e2e/js`` (official npm clients) with the server URL and
  collects the JSON lines it prints. Installs the npm packages (``npm ci``) on first use when
  ``node_modules`` is missing or incomplete; skips only when ``node`` is not installed.

Every test in this folder carries the ``e2e`` marker.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
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

E2E_DIR = Path(__file__).resolve().parent
APP_DIR = E2E_DIR / "app" / "convex"
JS_DIR = E2E_DIR / "js"

SERVER_START_TIMEOUT_S = 30.0
NODE_TIMEOUT_S = 90.0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(E2E_DIR):
            item.add_marker(pytest.mark.e2e)


_SERVERS: list[ServerProcess] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On an e2e failure, attach the tail of each running server's log to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and Path(str(item.fspath)).resolve().is_relative_to(E2E_DIR):
        for server in _SERVERS:
            report.sections.append((f"convection server log ({server.url})", server.log()[-6000:]))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """One ``convection serve`` subprocess; can be killed and restarted on the same port and
    data directory (what a crash and a restart look like to connected clients)."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        functions: Path = APP_DIR,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        redact: bool = False,
    ) -> None:
        """``extra_args`` are added to the command line; unless ``redact``, the server runs
        with ``--no-redact-errors`` (the tests read function error messages as a developer
        does); ``env`` is added to the environment."""
        self.env = env or {}
        self.data_dir = data_dir
        self.functions = functions
        self.extra_args = list(extra_args or []) + ([] if redact else ["--no-redact-errors"])
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # HTTP actions' own port (never the default 3211, which a dev server may hold).
        self.site_port = free_port()
        self.site_url = f"http://127.0.0.1:{self.site_port}"
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        _SERVERS.append(self)

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        self.starts += 1
        log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "convection", "serve",
                "--functions", str(self.functions),
                "--data", str(self.data_dir),
                "--host", "127.0.0.1",
                "--port", str(self.port),
                "--site-port", str(self.site_port),
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own process group: kill() takes --workers too
        )
        log.close()
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/version", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"server did not answer /version in time:\n{self.log()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no goodbye to the clients (what a crash looks like)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self in _SERVERS:
            _SERVERS.remove(self)
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def restart(self) -> None:
        self.kill()
        self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-20_000:]
        except OSError:
            return ""

    @property
    def admin_key(self) -> str:
        from convection.application.app import derive_admin_key
        from convection.server.app import instance_secret

        return derive_admin_key(instance_secret(self.data_dir))

    # -- small HTTP helpers (Convex JSON in, Convex JSON out) --------------------------

    def call(self, kind: str, path: str, args: dict[str, Any] | None = None) -> Any:
        """POST /api/<kind>; returns the decoded ``value`` or raises AssertionError."""
        body = json.dumps(
            {"path": path, "args": [args or {}], "format": "convex_encoded_json"}
        ).encode()
        req = urllib.request.Request(
            f"{self.url}/api/{kind}",
            data=body,
            headers={"Content-Type": "application/json", "Convex-Client": "npm-1.48.0"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            out = json.loads(resp.read())
        assert out["status"] == "success", out
        return out["value"]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("e2e-session") / "data")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def server_url(server: ServerProcess) -> str:
    return server.url


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


# ---------------------------------------------------------------------------------------
# Node


def _node_modules_complete() -> bool:
    package = json.loads((JS_DIR / "package.json").read_text())
    deps = {**package.get("dependencies", {}), **package.get("devDependencies", {})}
    return all((JS_DIR / "node_modules" / name / "package.json").exists() for name in deps)


_npm_lock = threading.Lock()


def ensure_node() -> str:
    """The ``node`` executable, with tests/e2e/js/node_modules installed; skip without node."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the npm-client end-to-end tests need it")
    with _npm_lock:
        if not _node_modules_complete():
            npm = shutil.which("npm")
            if npm is None:
                pytest.fail("node is installed but npm is not: cannot install tests/e2e/js")
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=JS_DIR,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if done.returncode != 0 or not _node_modules_complete():
                pytest.fail(f"npm ci failed in {JS_DIR}:\n{done.stdout}\n{done.stderr}")
    return node


class NodeScript:
    """A running node script: JSON lines from its stdout, lines to its stdin."""

    def __init__(self, node: str, script: str, url: str, params: dict[str, Any]) -> None:
        self.script = script
        self.proc = subprocess.Popen(
            [node, str(JS_DIR / script), url, json.dumps(params)],
            cwd=JS_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        self.events: list[dict[str, Any]] = []
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        threading.Thread(target=self._pump_stderr, daemon=True).start()

    def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def _fail(self, why: str) -> None:
        self.kill()
        err = "".join(self.stderr)[-8000:]
        pytest.fail(f"{self.script}: {why}\nstderr:\n{err}\nevents: {self.events[-5:]}")

    def next_event(self, timeout: float = NODE_TIMEOUT_S) -> dict[str, Any]:
        """The next JSON object the script prints (non-JSON lines are kept in stderr)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._fail(f"no output within {timeout}s")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(timeout=10)
                self._fail(f"exited ({self.proc.returncode}) before printing the expected output")
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                self.stderr.append("[stdout] " + line)
                continue
            self.events.append(event)
            if "fatal" in event:
                self._fail(f"script failed:\n{event['fatal']}")
            return event

    def wait_for(self, key: str, timeout: float = NODE_TIMEOUT_S) -> dict[str, Any]:
        """Skip events until one with ``key`` (e.g. ``"phase"`` or ``"result"``)."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.next_event(max(0.1, deadline - time.monotonic()))
            if key in event:
                return event

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = NODE_TIMEOUT_S) -> dict[str, Any]:
        """Wait for the ``{"result": ...}`` line and a clean exit; returns the result."""
        event = self.wait_for("result", timeout)
        try:
            code = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._fail("did not exit after printing its result")
        if code != 0:
            self._fail(f"exited with {code}")
        return dict(event["result"])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)


class NodeRunner:
    def __init__(self, node: str) -> None:
        self.node = node
        self.running: list[NodeScript] = []

    def start(self, script: str, url: str, **params: Any) -> NodeScript:
        proc = NodeScript(self.node, script, url, params)
        self.running.append(proc)
        return proc

    def run(self, script: str, url: str, timeout: float = NODE_TIMEOUT_S, **params: Any) -> dict[str, Any]:
        """Run a script to completion; returns its ``result`` object."""
        return self.start(script, url, **params).finish(timeout)


@pytest.fixture
def node_ready() -> str:
    """Node with tests/e2e/js installed (runs ``npm ci`` on a fresh clone)."""
    return ensure_node()


@pytest.fixture
def node() -> Iterator[NodeRunner]:
    runner = NodeRunner(ensure_node())
    try:
        yield runner
    finally:
        for proc in runner.running:
            proc.kill()


CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def chromium() -> str:
    """/usr/bin/chromium, installing Debian's package if it is missing (skip if impossible)."""
    return _chromium()


def _chromium() -> str:
    """/usr/bin/chromium, installing Debian's package if it is missing (skip if impossible)."""
    if CHROMIUM.exists():
        return str(CHROMIUM)
    apt = shutil.which("apt-get")
    if apt is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip(
            "Chromium is not installed at /usr/bin/chromium and cannot be installed here "
            "(needs apt-get as root): run `apt-get install -y chromium`"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    output = ""
    for command in ([apt, "install", "-y", "-q", "chromium"], [apt, "update", "-q"],
                    [apt, "install", "-y", "-q", "chromium"]):
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, check=False)
        output = done.stdout[-2000:] + done.stderr[-2000:]
        if command[1] == "install" and done.returncode == 0 and CHROMIUM.exists():
            return str(CHROMIUM)
    pytest.skip(f"Chromium could not be installed with apt-get:\n{output}")
