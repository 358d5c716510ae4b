"""One owner per data directory, and CLI commands that reach the running server (issue 11.3).

Driven through the real entry points: ``python -m convection serve`` subprocesses, signals
(``kill -9``), and ``convection run``/``data``/``env`` via typer's CliRunner on the real app.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import orjson
from cli_support import Project, Server, free_port

from convection.server.owner import acquire, read_info

DEADLINE_S = 30.0


def _serve_argv(project: Project, port: int) -> list[str]:
    return [
        sys.executable, "-m", "convection", "serve", "--functions", str(project.functions),
        "--data", str(project.data), "--port", str(port), "--site-port", "0",
    ]


def test_second_serve_on_the_same_data_dir_names_the_first_and_kill9_frees_it(project: Project) -> None:
    first = Server(project.functions, project.data).start()
    try:
        assert first.proc is not None
        second = subprocess.run(
            _serve_argv(project, free_port()), capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )
        assert second.returncode == 1, second.stderr
        message = " ".join(second.stderr.split())  # rich may wrap the line
        assert "DataDirectoryInUse" in message
        assert f"pid {first.proc.pid}" in message
        assert first.url in message
        assert "convection serve" in message
        # kill -9: no clean-up runs, yet the kernel drops the lock with the process
        first.proc.kill()
        first.proc.wait(timeout=30)
        third = Server(project.functions, project.data).start()
        try:
            info = read_info(project.data)
            assert info is not None and info.pid == third.proc.pid and info.url == third.url  # type: ignore[union-attr]
        finally:
            third.stop()
    finally:
        first.stop()
    assert read_info(project.data) is None  # a clean stop removes the owner file


def _subscribe(url: str, admin_key: str, path: str, args: dict[str, Any]) -> queue.Queue[Any]:
    """Watch a query on the server in a thread; every result goes into the returned queue."""
    from convection.client.watch import watch

    results: queue.Queue[Any] = queue.Queue()

    def loop() -> None:
        try:
            for update in watch(url, path, args, admin_key=admin_key):
                results.put(update.value if update.success else ("error", update.error_message))
        except Exception as exc:  # the server stopped at the end of the test
            results.put(("closed", repr(exc)))

    threading.Thread(target=loop, daemon=True).start()
    return results


def _next(results: queue.Queue[Any]) -> Any:
    return results.get(timeout=DEADLINE_S)


def test_cli_run_goes_to_the_running_server_and_its_subscribers_see_it(project: Project, server: Server) -> None:
    results = _subscribe(server.url, server.admin_key, "items:count", {"table": "notes"})
    assert _next(results) == 0
    # no --url: the CLI finds the server that owns the project's data directory
    result = project.invoke("run", "items:add", orjson.dumps({"table": "notes", "doc": {"n": 1}}).decode())
    assert result.exit_code == 0, result.output
    assert _next(results) == 1  # at once, not after a cache expiry
    assert server.url in result.stderr
    # the other commands go there too
    assert project.ok("data").stdout.count("notes") == 1
    project.ok("env", "set", "GREETING", "hi")
    assert project.run("items:env", {"name": "GREETING"}) == "hi"
    assert "GREETING" not in os.environ  # set in the server's process, not in this one


def test_an_in_process_command_holds_the_data_dir(project: Project) -> None:
    project.ok("run", "items:add", orjson.dumps({"table": "t", "doc": {}}).decode())  # creates the data dir
    with acquire(project.data, command="convection import big.jsonl"):
        # a server cannot start while a CLI command works on the directory in-process ...
        refused = subprocess.run(
            _serve_argv(project, free_port()), capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )
        assert refused.returncode == 1
        assert f"pid {os.getpid()}" in " ".join(refused.stderr.split())
        # ... and no second in-process command runs beside it
        result = project.invoke("data")
        assert result.exit_code == 1
        assert "DataDirectoryInUse" in result.stderr and "convection import big.jsonl" in result.stderr
    assert project.ok("data").exit_code == 0  # released


def test_explicit_url_wins_over_the_owner_file(project: Project, server: Server, tmp_path: Path) -> None:
    other = Project(tmp_path / "other")
    other.ok("run", "items:add", orjson.dumps({"table": "elsewhere", "doc": {}}).decode())
    # the project's own server owns project.data, but --url sends the call to that server explicitly
    assert other.run("items:count", {"table": "elsewhere"}, remote=server.remote) == 0
    assert other.run("items:count", {"table": "elsewhere"}) == 1


def _stream_lines(stream: Any) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in iter(stream.readline, ""):
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _wait_line(lines: queue.Queue[str], needle: str) -> str:
    while True:
        line = lines.get(timeout=DEADLINE_S)
        if needle in line:
            return line


def test_watch_and_logs_find_the_running_server(project: Project, server: Server) -> None:
    """``run --watch`` and ``logs`` without --url use the server that owns the data dir."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    watch = subprocess.Popen(
        [sys.executable, "-m", "convection", "run", "items:count", '{"table": "w"}', "--watch", *project.local],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )
    logs = subprocess.Popen(
        [sys.executable, "-m", "convection", "logs", *project.local],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert watch.stdout is not None and logs.stdout is not None and logs.stderr is not None
        watched, logged = _stream_lines(watch.stdout), _stream_lines(logs.stdout)
        assert float(_wait_line(watched, "0")) == 0
        assert server.url in _wait_line(_stream_lines(logs.stderr), "Watching logs")
        project.run("items:add", {"table": "w", "doc": {}})
        assert float(_wait_line(watched, "1")) == 1
        assert "inserting into w" in _wait_line(logged, "items:add")
    finally:
        for proc in (watch, logs):
            proc.kill()
            proc.wait(timeout=30)
