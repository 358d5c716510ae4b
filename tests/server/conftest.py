"""Shared fixtures of the server tests: a deployment built from module sources in a temporary
folder (``make_deployment``), a Starlette test client of its app and admin headers. A test
module defines its own ``deployment`` fixture (usually one ``make_deployment`` call); the
``client`` and ``admin`` fixtures here use it."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from server_support import MakeDeployment
from starlette.testclient import TestClient

from convection.server.app import Deployment, build_app, open_deployment


@pytest.fixture
def make_deployment(tmp_path: Path) -> Iterator[MakeDeployment]:
    """``make_deployment(module=source, ..., **open_kwargs)``: writes each ``<module>.py``
    into ``tmp_path/convex`` and opens the deployment (closed after the test). Keyword
    arguments whose value is not a string go to ``open_deployment`` (e.g. ``clock``)."""
    made: list[Deployment] = []

    def make(**parts: Any) -> Deployment:
        folder = tmp_path / "convex"
        folder.mkdir(exist_ok=True)
        options = {}
        for name, value in parts.items():
            if isinstance(value, str):
                (folder / f"{name}.py").write_text(textwrap.dedent(value))
            else:
                options[name] = value
        dep = open_deployment(folder, tmp_path / "data", **options)
        made.append(dep)
        return dep

    yield make
    for dep in reversed(made):
        dep.close()


@pytest.fixture
def client(deployment: Deployment) -> Iterator[TestClient]:
    with TestClient(build_app(deployment)) as c:
        yield c


@pytest.fixture
def admin(deployment: Deployment) -> dict[str, str]:
    return {"Authorization": f"Convex {deployment.app.admin_key}"}
