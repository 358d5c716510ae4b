"""Deployed code, the instance secret and the system tables user code may read: all in the
log (server/app.py open_deployment, model/modules.py, model/deployment.py)."""

from __future__ import annotations

import asyncio
import textwrap
import zipfile
from io import BytesIO
from pathlib import Path

import pytest

from convection.functions.identity import Identity
from convection.model import deployment, modules
from convection.server.app import Deployment, open_deployment


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text))
    return folder


APP = {
    "hello.py": '''
        from convection import query

        @query
        def hi(ctx):
            return "v1"

        @query
        def peek(ctx, table):
            return ctx.db.system.query(table).collect()
    ''',
}


def bundle(files: dict[str, str]) -> bytes:
    buf = BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, textwrap.dedent(text))
    return buf.getvalue()


ADMIN = Identity(kind="admin")


class CallFailed(Exception):
    def __init__(self, code: str | None, message: str) -> None:
        super().__init__(message)
        self.code = code


def call(dep: Deployment, path: str, args: dict[str, object] | None = None) -> object:
    outcome = asyncio.run(dep.app.run_query(path, args or {}, ADMIN))
    if not outcome.success:
        raise CallFailed(outcome.error_code, outcome.error_message)
    return outcome.value


def test_deploy_writes_modules_and_a_restart_serves_them(tmp_path: Path) -> None:
    local = write(tmp_path / "convex", APP)
    data = tmp_path / "data"
    dep = open_deployment(local, data)
    try:
        assert call(dep, "hello:hi") == "v1"
        v2 = {"hello.py": APP["hello.py"].replace('"v1"', '"v2"'), "lib/util.py": "X = 1\n"}
        summary = dep.admin.deploy(ADMIN, bundle(v2))  # type: ignore[union-attr]
        assert call(dep, "hello:hi") == "v2"
        stored = modules.read_modules(dep.db)
        assert sorted(stored) == ["hello.py", "lib/util.py"]
        assert summary["version"] == modules.modules_version(stored)
    finally:
        dep.close()
    # a restart (even with another local folder) serves what was deployed: it is in the log
    dep = open_deployment(write(tmp_path / "other", APP), data)
    try:
        assert call(dep, "hello:hi") == "v2"
    finally:
        dep.close()


def test_a_0_1_0_deployed_folder_moves_into_the_log(tmp_path: Path) -> None:
    data = tmp_path / "data"
    legacy = write(data / "deployed" / "3" / "convex", {"hello.py": APP["hello.py"].replace('"v1"', '"old"')})
    (data / "deployed" / "ACTIVE").write_text("3\n")
    dep = open_deployment(write(tmp_path / "convex", APP), data)
    try:
        assert call(dep, "hello:hi") == "old"
        assert sorted(modules.read_modules(dep.db)) == ["hello.py"]
    finally:
        dep.close()
    assert legacy.is_dir()  # left alone; the log is the source from now on


def test_the_instance_secret_is_in_the_log(tmp_path: Path) -> None:
    data = tmp_path / "data"
    dep = open_deployment(write(tmp_path / "convex", APP), data)
    try:
        secret = deployment.read_secret(dep.db)
        assert secret is not None and secret == dep.secret
        assert (data / "instance_secret").read_text().strip() == secret.hex()
    finally:
        dep.close()
    # the data directory's copy is only a mirror: the log wins
    (data / "instance_secret").write_text("00" * 32)
    dep = open_deployment(tmp_path / "convex", data)
    try:
        assert dep.secret == secret
        assert (data / "instance_secret").read_text().strip() == secret.hex()
    finally:
        dep.close()


@pytest.mark.parametrize("table", ["_deployment", "_tables", "_index", "_modules", "_schemas",
                                   "_mutation_results", "_environment_variables"])
def test_functions_cannot_read_internal_system_tables(tmp_path: Path, table: str) -> None:
    dep = open_deployment(write(tmp_path / "convex", APP), tmp_path / "data")
    try:
        with pytest.raises(Exception) as e:
            call(dep, "hello:peek", {"table": table})
        assert getattr(e.value, "code", None) == "InvalidTable", e.value
        assert call(dep, "hello:peek", {"table": "_storage"}) == []
    finally:
        dep.close()
