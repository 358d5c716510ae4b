"""The admin commands against a running backend (``python -m convection serve`` in a
subprocess): remote data/import/export/env, ``logs`` tailing, and ``deploy``."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from typing import IO

import httpx
from cli_support import Project, Server, write_project

LINE_TIMEOUT_S = 30.0


def convection(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real entry point: ``python -m convection <args>``."""
    return subprocess.run(
        [sys.executable, "-m", "convection", *args],
        capture_output=True, text=True, cwd=cwd, timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def lines_of(stream: IO[str]) -> queue.Queue[str]:
    """Lines of a subprocess stream, read by a thread (so reads can have a deadline)."""
    q: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            q.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return q


def wait_for(q: queue.Queue[str], text: str) -> str:
    while True:
        line = q.get(timeout=LINE_TIMEOUT_S)
        if text in line:
            return line


def test_remote_data_import_export_and_auth(project: Project, server: Server, tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(f'{{"i": {i}}}\n' for i in range(2500)))  # several import chunks
    imported = project.invoke("import", str(rows), *server.remote, local=False)
    assert imported.exit_code == 0, imported.output
    assert "2500 documents imported" in imported.stderr
    assert project.run("items:count", {"table": "rows"}, remote=server.remote) == 2500
    listing = project.invoke("data", *server.remote, local=False)
    assert listing.exit_code == 0 and "rows" in listing.stdout and "2500" in listing.stdout

    snap = tmp_path / "remote.zip"
    assert project.invoke("export", "--path", str(snap), *server.remote, local=False).exit_code == 0
    with zipfile.ZipFile(snap) as zf:
        assert zf.read("rows/documents.jsonl").count(b"\n") == 2500
    replaced = project.invoke("import", str(snap), "--replace", *server.remote, local=False)
    assert replaced.exit_code == 0 and "2500 deleted first" in replaced.stderr, replaced.output

    wrong = project.invoke("data", "--url", server.url, "--admin-key", "convection|nope", local=False)
    assert wrong.exit_code == 1 and "BadAdminKey" in wrong.output and "admin-key" in wrong.output
    assert httpx.get(server.url + "/api/admin/tables").status_code == 401
    down = project.invoke("data", "--url", "http://127.0.0.1:9", "--admin-key", "k", local=False)
    assert down.exit_code == 1 and "convection serve" in down.output


def test_remote_env_changes_are_seen_by_running_functions(project: Project, server: Server) -> None:
    assert convection("env", "set", "CVT_REMOTE", "v1", *server.remote).returncode == 0
    assert project.run("items:env", {"name": "CVT_REMOTE"}, remote=server.remote) == "v1"
    assert convection("env", "set", "CVT_REMOTE", "v2", *server.remote).returncode == 0
    assert project.run("items:env", {"name": "CVT_REMOTE"}, remote=server.remote) == "v2"  # not a stale cache
    listed = convection("env", "list", *server.remote)
    assert listed.stdout.splitlines() == ["CVT_REMOTE=v2"]
    assert convection("env", "remove", "CVT_REMOTE", *server.remote).returncode == 0
    assert project.run("items:env", {"name": "CVT_REMOTE"}, remote=server.remote) is None


def test_logs_shows_history_then_tails_new_calls(project: Project, server: Server) -> None:
    project.run("items:add", {"table": "t", "doc": {"n": 1}}, remote=server.remote)
    proc = subprocess.Popen(
        [sys.executable, "-m", "convection", "logs", "--history", "5", *server.remote],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        out, err = lines_of(proc.stdout), lines_of(proc.stderr)
        first = wait_for(out, "inserting into t")
        assert " M items:add [LOG] inserting into t" in first
        wait_for(err, "Watching logs")
        project.run("items:add", {"table": "later", "doc": {"n": 2}}, remote=server.remote)
        assert "inserting into later" in wait_for(out, "inserting into")
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=LINE_TIMEOUT_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_deploy_serves_new_code_and_a_broken_deploy_changes_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "server" / "convex"
    empty.mkdir(parents=True)
    server = Server(empty, tmp_path / "server" / ".convection").start()
    try:
        source = write_project(tmp_path / "app", {
            "hello.py": '''
                from convection import query

                @query
                def hi(ctx, name):
                    return "hi " + name
            ''',
        })
        (source / "_generated").mkdir()
        (source / "_generated" / "api.py").write_text("raise RuntimeError('never deployed')\n")
        (source / ".hidden.py").write_text("raise RuntimeError('never deployed')\n")
        deployed = convection("deploy", "--functions", str(source), *server.remote)
        assert deployed.returncode == 0, deployed.stderr
        assert "hello:hi" in deployed.stdout and "deployed 1 functions" in deployed.stderr
        call = convection("run", "hello:hi", '{"name": "ann"}', *server.remote)
        assert call.stdout.strip() == '"hi ann"'

        (source / "broken.py").write_text("from convection import query\n\n@query\ndef f(ctx:\n    return 1\n")
        failed = convection("deploy", "--functions", str(source), *server.remote)
        assert failed.returncode == 1
        assert "broken.py:4" in failed.stderr and "SyntaxError" in failed.stderr
        assert "previous code keeps serving" in failed.stderr
        assert convection("run", "hello:hi", '{"name": "bo"}', *server.remote).stdout.strip() == '"hi bo"'

        # a restarted server keeps serving the deployed code
        server.stop()
        server.start()
        assert convection("run", "hello:hi", '{"name": "cy"}', *server.remote).stdout.strip() == '"hi cy"'
    finally:
        server.stop()
