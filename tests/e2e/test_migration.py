"""Stores written by convection 0.1.0 (catalog in globals, no by_id entries) open and migrate
on start with nothing lost: a SQLite data directory and a PostgreSQL dump made by that release
(tests/fixtures/legacy_v1/make.py says how), served by today's `convection serve`."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from conftest import ServerProcess

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_v1"


def check_served(server: ServerProcess, ids: list[str]) -> None:
    every = server.call("query", "tasks:all")
    tasks = {t["text"]: t for t in every["tasks"]}
    assert sorted(tasks) == ["t0", "t1", "t2", "t4", "t5", "t6", "t7", "t8", "t9"]
    assert tasks["t4"]["done"] is True and tasks["t4"]["_id"] == ids[4]
    assert [n["text"] for n in every["notes"]] == ["hello"]
    # the declared index survived and is readable
    done = server.call("query", "tasks:by_done", {"done": True})
    assert sorted(t["text"] for t in done) == ["t0", "t2", "t4", "t6", "t8"]
    assert server.call("query", "tasks:env") == "bonjour"
    # writes go on: an existing table, the unvalidated one, and a patch by an old id
    new_id = server.call("mutation", "tasks:add", {"text": "t10", "done": False, "n": 10})
    server.call("mutation", "tasks:set_done", {"id": ids[5], "done": True})
    server.call("mutation", "tasks:note", {"text": "again"})
    done = server.call("query", "tasks:by_done", {"done": True})
    assert sorted(t["text"] for t in done) == ["t0", "t2", "t4", "t5", "t6", "t8"]
    assert new_id not in ids


def run_twice(server: ServerProcess, ids: list[str]) -> None:
    server.start()
    try:
        check_served(server, ids)
        server.stop()
        server.start()  # a migrated store opens again as it is
        every = server.call("query", "tasks:all")
        assert len(every["tasks"]) == 10 and len(every["notes"]) == 2
    finally:
        server.stop()


def test_sqlite_data_directory_of_0_1_0(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("db.sqlite3", "instance_secret"):
        shutil.copy(FIXTURES / "sqlite" / name, data / name)
    ids = json.loads((FIXTURES / "sqlite" / "ids.json").read_text())
    run_twice(ServerProcess(data, functions=FIXTURES / "convex"), ids)


def test_postgres_database_of_0_1_0(tmp_path: Path, postgres_url: str) -> None:
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql is not installed")
    schema = "legacy_" + uuid.uuid4().hex[:8]
    dump = (FIXTURES / "postgres" / "dump.sql").read_text()
    dump = dump.replace("public.", f"{schema}.")
    base_url = postgres_url
    subprocess.run(
        [psql, "-v", "ON_ERROR_STOP=1", "-q", base_url],
        input=f"CREATE SCHEMA {schema};\n{dump}", text=True, check=True, capture_output=True,
    )
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(FIXTURES / "postgres" / "instance_secret", data / "instance_secret")
    ids = json.loads((FIXTURES / "postgres" / "ids.json").read_text())
    url = f"{base_url}{'&' if '?' in base_url else '?'}schema={schema}"
    run_twice(ServerProcess(data, functions=FIXTURES / "convex", extra_args=["--db", url]), ids)
