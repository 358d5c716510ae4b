"""Fixtures of the CLI tests (helpers in cli_support.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import Project, Server


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path / "proj")


@pytest.fixture
def clean_env() -> Iterator[list[str]]:
    """Names of process environment variables a test may set (removed afterwards)."""
    names: list[str] = []
    yield names
    for name in names:
        os.environ.pop(name, None)


@pytest.fixture
def server(project: Project) -> Iterator[Server]:
    srv = Server(project.functions, project.data).start()
    try:
        yield srv
    finally:
        srv.stop()
