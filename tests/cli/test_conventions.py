"""CLI conventions (issue 17.4), through the real entry point: ``python -m convection``
subprocesses and typer's CliRunner on ``convection.cli.main.cli``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from cli_support import Project, Server, free_port, write_project

from convection.cli.main import cli

WIDE = {"COLUMNS": "140"}

FAILING = '''
from convection import mutation


@mutation
def fail(ctx):
    raise RuntimeError("bad [x] value in [red]markup[/red] here")
'''

BROKEN = '''
from convection import query

VALUE = 1
raise RuntimeError("cannot start: [missing] setting")
'''


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_version_and_short_help(project: Project) -> None:
    out = subprocess.run([sys.executable, "-m", "convection", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and re.fullmatch(r"convection \d+\.\d+\.\d+\S*\n", out.stdout), out
    for argv in (["-h"], ["import", "-h"], ["env", "-h"], ["env", "set", "-h"]):
        result = project.runner.invoke(cli, argv, env=WIDE)
        assert result.exit_code == 0, (argv, result.output)
        assert "Usage: convection" in result.output


def test_help_shows_flags_as_flags_and_a_plain_usage_line(project: Project) -> None:
    text = project.runner.invoke(cli, ["import", "--help"], env=WIDE).output
    assert "Usage: convection import [OPTIONS] PATH" in text
    assert "{" not in text.split("\n\n")[0] and "{path}" not in text
    assert "<bool>" not in text
    assert re.search(r"--append\s+Add to the documents", text), text
    run_help = project.runner.invoke(cli, ["run", "--help"], env=WIDE).output
    assert "Usage: convection run [OPTIONS] PATH [ARGS]" in run_help
    assert re.search(r"--watch\s+Subscribe", run_help) and "<bool>" not in run_help
    assert "CONVECTION_URL" in run_help and "CONVECTION_ADMIN_KEY" in run_help


def test_run_prints_errors_without_markup(project: Project) -> None:
    write_project(project.root, {"failing.py": FAILING})
    result = project.invoke("run", "failing:fail")
    assert result.exit_code == 1
    assert "bad [x] value in [red]markup[/red] here" in result.stderr  # the message as it is
    assert not result.stderr.startswith("[red]") and not result.stderr.rstrip().endswith("[/red]")
    assert result.stderr.startswith("error: ")


def test_run_honours_convection_url_and_admin_key(project: Project, server: Server, tmp_path: Path) -> None:
    project.run("items:add", {"table": "remote_only", "doc": {}})  # goes to the server
    other = Project(tmp_path / "other")  # another project, no server of its own
    env = {"CONVECTION_URL": server.url, "CONVECTION_ADMIN_KEY": server.admin_key}
    result = other.runner.invoke(cli, ["run", "items:count", '{"table": "remote_only"}', *other.local], env=env)
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == 1
    bad_key = other.runner.invoke(cli, ["run", "items:count", '{"table": "x"}', *other.local],
                                  env={**env, "CONVECTION_ADMIN_KEY": "convection|00"})
    assert bad_key.exit_code == 1 and "[red]" not in bad_key.stderr


def test_a_module_that_fails_to_load_gives_one_clean_line(project: Project) -> None:
    write_project(project.root, {"broken.py": BROKEN})
    for argv in (["run", "items:count", '{"table": "t"}'], ["data"], ["export"]):
        result = project.invoke(*argv)
        assert result.exit_code == 1, (argv, result.output)
        lines = _lines(result.stderr)
        assert len(lines) == 1, (argv, result.stderr)
        assert "broken.py:5" in lines[0] and "RuntimeError: cannot start: [missing] setting" in lines[0]
        assert "Traceback" not in result.output
    served = subprocess.run(
        [sys.executable, "-m", "convection", "serve", *project.local, "--port", str(free_port()), "--site-port", "0"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert served.returncode == 1
    lines = _lines(served.stderr)
    assert len(lines) == 1 and "broken.py:5" in lines[0] and "ModuleLoadError" in lines[0], served.stderr
    assert "Traceback" not in served.stderr


def test_start_banner_does_not_wrap_and_names_the_dashboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = Project(tmp_path / ("a-rather-long-project-folder-name-" * 2))
    monkeypatch.setenv("COLUMNS", "40")
    server = Server(project.functions, project.data).start()
    try:
        log = server.log()
    finally:
        server.stop()
    lines = log.splitlines()
    assert any(line.endswith(f"convection admin-key --data {project.data.resolve()}") for line in lines), log
    assert any(re.fullmatch(rf"\s*dashboard:\s+{re.escape(server.url)}/", line) for line in lines), log


def test_import_shows_rate_and_eta_and_export_shows_progress(project: Project, tmp_path: Path) -> None:
    people = tmp_path / "people.jsonl"
    people.write_bytes(b"".join(orjson.dumps({"n": i}) + b"\n" for i in range(2500)))  # three chunks
    terminal = {**WIDE, "TTY_COMPATIBLE": "1"}
    imported = project.runner.invoke(cli, ["import", str(people), *project.local], env=terminal)
    assert imported.exit_code == 0, imported.output
    assert "2,500 docs" in imported.stderr and "docs/s" in imported.stderr and "ETA" in imported.stderr
    assert re.search(r"2500 documents in [\d.]+ s, [\d,]+ docs/s", imported.stderr)
    exported = project.runner.invoke(cli, ["export", "--path", str(tmp_path / "s.zip"), *project.local], env=terminal)
    assert exported.exit_code == 0, exported.output
    assert "exporting s.zip" in exported.stderr and "/s" in exported.stderr
    assert re.search(r"[\d.]+ kB in [\d.]+ s, [\d.]+ \S+/s", exported.stderr)
