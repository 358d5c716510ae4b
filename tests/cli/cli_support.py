"""Helpers of the CLI tests: a small project on disk, the ``convection`` command in-process
(typer's CliRunner on ``convection.cli.main.cli``) and a real ``convection serve`` subprocess
on free loopback ports. (A module of its own: test modules do not import conftest.)"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from click.testing import Result
from typer.testing import CliRunner

from convection.cli.main import cli

SERVER_START_TIMEOUT_S = 30.0

APP = '''
import math
import os

from convection import mutation, query


@mutation
def add(ctx, table, doc):
    print(f"inserting into {table}")
    return ctx.db.insert(table, doc)


@query
def count(ctx, table):
    return len(ctx.db.query(table).collect())


@query
def env(ctx, name):
    return os.environ.get(name)


def describe(value):
    from convection import Int64
    if isinstance(value, bool):
        return f"bool:{value}"
    if isinstance(value, Int64):
        return f"int64:{int(value)}"
    if isinstance(value, float):
        return "float:nan" if math.isnan(value) else f"float:{value!r}"
    if isinstance(value, bytes):
        return f"bytes:{value.hex()}"
    if isinstance(value, list):
        return [describe(v) for v in value]
    if isinstance(value, dict):
        return {k: describe(v) for k, v in value.items()}
    return f"{type(value).__name__}:{value}"


@query
def described(ctx, table):
    """Every document of ``table`` by its ``key`` field, values described with their types."""
    out = {}
    for doc in ctx.db.query(table).collect():
        out[str(doc.get("key"))] = {k: describe(v) for k, v in doc.items() if not k.startswith("_")}
    return out
'''


def write_project(root: Path, modules: dict[str, str] | None = None) -> Path:
    """A project folder with ``convex/`` (the functions above) and return the functions dir."""
    folder = root / "convex"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (modules or {"items.py": APP}).items():
        (folder / name).write_text(textwrap.dedent(text))
    return folder


class Project:
    """A local project and the ``convection`` command run in-process against it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.functions = write_project(root)
        self.data = root / ".convection"
        self.runner = CliRunner()

    @property
    def local(self) -> list[str]:
        return ["--functions", str(self.functions), "--data", str(self.data)]

    def invoke(self, *args: str, local: bool = True) -> Result:
        """``convection <args>``; on a subcommand group the local flags go at the end."""
        argv = [*args, *(self.local if local else [])]
        return self.runner.invoke(cli, argv, catch_exceptions=False)

    def ok(self, *args: str, local: bool = True) -> Result:
        result = self.invoke(*args, local=local)
        assert result.exit_code == 0, f"{args} exited {result.exit_code}:\n{result.output}"
        return result

    def run(self, path: str, args: dict[str, Any] | None = None, remote: list[str] | None = None) -> Any:
        """Call a function with ``convection run`` (in-process, or on ``remote`` =
        ``["--url", ..., "--admin-key", ...]``) and return its (clean JSON) result."""
        argv = ["run", path, orjson.dumps(args or {}).decode(), *(remote or [])]
        result = self.invoke(*argv, local=remote is None)
        assert result.exit_code == 0, result.output
        return orjson.loads(result.stdout)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``python -m convection serve`` as a subprocess (stopped by :meth:`stop`)."""

    def __init__(self, functions: Path, data: Path) -> None:
        self.functions = functions
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data.parent / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "convection", "serve",
                    "--functions", str(self.functions), "--data", str(self.data),
                    "--port", str(self.port), "--site-port", str(free_port()),
                ],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:  # readiness poll (not a timing assertion)
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/version", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not start:\n{self.log()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-20_000:] if self.log_path.exists() else ""

    @property
    def admin_key(self) -> str:
        from convection.application.app import derive_admin_key
        from convection.server.app import instance_secret

        return derive_admin_key(instance_secret(self.data))

    @property
    def remote(self) -> list[str]:
        return ["--url", self.url, "--admin-key", self.admin_key]


