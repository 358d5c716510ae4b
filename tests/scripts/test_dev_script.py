"""scripts/dev installs only the runtime dependencies (scripts/test, which CI runs, installs
the ``dev`` extra), shows progress, and says how to get ``convection`` on PATH.

The virtualenv is a stand-in (``CONVECTION_VENV``): its ``bin/python`` records the pip command
it is given and its ``bin/convection`` records that it was started, so the scripts' logic runs
for real without installing anything."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FAKE_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$(dirname "$0")/../calls.log"
echo "Collecting something"
echo "Requirement already satisfied: orjson"
"""
FAKE_CONVECTION = """#!/usr/bin/env bash
echo "convection $* in $PWD" >> "$(dirname "$0")/../calls.log"
"""


def _venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for name, text in (("python", FAKE_PYTHON), ("convection", FAKE_CONVECTION)):
        path = venv / "bin" / name
        path.write_text(text)
        path.chmod(0o755)
    return venv


def _source_env(venv: Path, extras: str | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONVECTION_VENV": str(venv)}
    env.pop("CONVECTION_EXTRAS", None)
    prefix = "" if extras is None else f'CONVECTION_EXTRAS="{extras}" '
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail; {prefix}. scripts/_env.sh"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )


def _pip_calls(venv: Path) -> list[str]:
    log = venv / "calls.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line for line in lines if line.startswith("-m pip install")]


def test_dev_installs_runtime_only_and_says_how_to_reach_convection(tmp_path: Path) -> None:
    venv = _venv(tmp_path)
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "dev"), "--once"],
        env={**os.environ, "CONVECTION_VENV": str(venv)},
        capture_output=True, text=True, timeout=60, check=True,
    )
    calls = _pip_calls(venv)
    assert calls == ["-m pip install --disable-pip-version-check -e ."], calls
    # progress: pip's lines come through, minus the "already satisfied" noise
    assert "runtime dependencies" in done.stdout
    assert "Collecting something" in done.stdout
    assert "Requirement already satisfied" not in done.stdout
    assert f". {venv}/bin/activate" in done.stdout
    log = (venv / "calls.log").read_text()
    assert f"convection dev --once in {ROOT / 'examples' / 'chat'}" in log


def test_test_script_environment_installs_the_dev_extra(tmp_path: Path) -> None:
    venv = _venv(tmp_path)
    _source_env(venv, None)
    assert _pip_calls(venv) == ["-m pip install --disable-pip-version-check -e .[dev]"]
    # the dev install covers what scripts/dev needs: nothing more to install
    _source_env(venv, "")
    assert len(_pip_calls(venv)) == 1


def test_a_runtime_only_venv_is_completed_for_the_tests(tmp_path: Path) -> None:
    venv = _venv(tmp_path)
    _source_env(venv, "")
    _source_env(venv, "")
    _source_env(venv, "dev")
    assert _pip_calls(venv) == [
        "-m pip install --disable-pip-version-check -e .",
        "-m pip install --disable-pip-version-check -e .[dev]",
    ]
