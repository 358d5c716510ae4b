"""``convection data | import | export | env`` in-process on a local project (typer's CliRunner
on the real ``cli`` app), and the usage errors of every admin command."""

from __future__ import annotations

import math
import os
import re
import textwrap
import zipfile
from pathlib import Path

import orjson
from cli_support import Project

from convection.cli.main import cli
from convection.values.json import dumps
from convection.values.model import Int64

LOSSLESS = [
    {"key": "a", "big": Int64(2**62 + 1), "neg": Int64(-5), "raw": b"\x00\x01\xff", "nan": math.nan,
     "inf": -math.inf, "negzero": -0.0, "nested": {"list": [Int64(1), b"x", 1.5, {"deep": [True, None]}]}},
    {"key": "b", "text": "héllo", "n": 3.0},
]
DESCRIBED = {
    "a": {
        "key": "str:a", "big": f"int64:{2**62 + 1}", "neg": "int64:-5", "raw": "bytes:0001ff",
        "nan": "float:nan", "inf": "float:-inf", "negzero": "float:-0.0",
        "nested": {"list": ["int64:1", "bytes:78", "float:1.5", {"deep": ["bool:True", "NoneType:None"]}]},
    },
    "b": {"key": "str:b", "text": "str:héllo", "n": "float:3.0"},
}


def write_jsonl(path: Path, docs: list[dict[str, object]]) -> Path:
    path.write_bytes(b"".join(dumps(d) + b"\n" for d in docs))
    return path


def cursor_of(stderr: str) -> str | None:
    m = re.search(r"--cursor (\S+)", stderr)
    return m.group(1) if m else None


def test_data_lists_tables_with_counts_and_pages_documents(project: Project) -> None:
    for i in range(5):
        project.run("items:add", {"table": "notes", "doc": {"i": float(i)}})
    project.run("items:add", {"table": "tags", "doc": {"name": "x"}})
    out = project.ok("data").stdout
    assert re.search(r"notes\s*│\s*5", out) and re.search(r"tags\s*│\s*1", out)

    first = project.ok("data", "notes", "--limit", "2")
    assert "│ 4 " in first.stdout and "│ 3 " in first.stdout and "│ 2 " not in first.stdout  # newest first
    seen = 2
    cursor = cursor_of(first.stderr)
    while cursor is not None:
        page = project.ok("data", "notes", "--limit", "2", "--cursor", cursor)
        seen += page.stdout.count("│ j")
        cursor = cursor_of(page.stderr)
    assert seen == 5

    missing = project.invoke("data", "nope")
    assert missing.exit_code == 1 and "TableNotFound" in missing.output and "notes" in missing.output


def test_import_jsonl_json_csv_with_append_and_replace(project: Project, tmp_path: Path) -> None:
    jsonl = write_jsonl(tmp_path / "people.jsonl", [{"name": "ann"}, {"name": "bob"}])
    assert "2 documents imported" in project.ok("import", str(jsonl)).stderr  # table from the file name
    assert project.run("items:count", {"table": "people"}) == 2

    # without --append/--replace a non-empty table is refused, and nothing is written
    refused = project.invoke("import", str(jsonl))
    assert refused.exit_code == 1 and "ImportTableNotEmpty" in refused.output and "--append" in refused.output
    assert project.run("items:count", {"table": "people"}) == 2

    array = tmp_path / "more.json"
    array.write_text('[{"name": "cy"}, {"name": "di", "age": 40}]')
    project.ok("import", str(array), "--table", "people", "--append")
    assert project.run("items:count", {"table": "people"}) == 4

    csv_file = tmp_path / "people.csv"
    csv_file.write_text("key,age,active,note\nc1,41,true,hello\nc2,2.5e1,false,\n")
    replaced = project.ok("import", str(csv_file), "--replace")
    assert "4 deleted first" in replaced.stderr
    assert project.run("items:described", {"table": "people"}) == {
        "c1": {"key": "str:c1", "age": "float:41.0", "active": "bool:True", "note": "str:hello"},
        "c2": {"key": "str:c2", "age": "float:25.0", "active": "bool:False"},  # empty cell: no field
    }

    both = project.invoke("import", str(csv_file), "--append", "--replace")
    assert both.exit_code == 2 and "exclude" in both.output


def test_a_bad_file_imports_nothing(project: Project, tmp_path: Path) -> None:
    # JSONL streams: the documents before the bad line are written, then removed again
    bad = tmp_path / "things.jsonl"
    bad.write_text('{"ok": 1}\n{"ok": 2}\n{"broken": \n')
    result = project.invoke("import", str(bad))
    assert result.exit_code == 1 and "ImportFormatError" in result.output and "line 3" in result.output
    assert "table is as before" in result.output
    # JSON is checked whole before anything is written
    reserved = tmp_path / "things.json"
    reserved.write_text('[{"ok": 1}, {"_secret": 2}]')
    result = project.invoke("import", str(reserved))
    assert result.exit_code == 1 and "element [1]" in result.output and "_secret" in result.output
    assert not re.search(r"things\s*│\s*[1-9]", project.ok("data").stdout)


def test_export_round_trips_through_import_losslessly(project: Project, tmp_path: Path) -> None:
    project.ok("import", str(write_jsonl(tmp_path / "vals.jsonl", LOSSLESS)))
    project.run("items:add", {"table": "other", "doc": {"key": "o", "n": {"$integer": "AQAAAAAAAAA="}}})
    assert project.run("items:described", {"table": "vals"}) == DESCRIBED

    snap = tmp_path / "snap.zip"
    project.ok("export", "--path", str(snap))
    with zipfile.ZipFile(snap) as zf:
        names = set(zf.namelist())
        assert {"README.md", "vals/documents.jsonl", "other/documents.jsonl"} <= names
        lines = zf.read("vals/documents.jsonl").splitlines()
    assert len(lines) == 2
    first = orjson.loads(lines[0])
    assert first["big"] == {"$integer": "AQAAAAAAAEA="} and first["raw"] == {"$bytes": "AAH/"}
    assert set(first["nan"]) == {"$float"} and "_id" in first and "_creationTime" in first

    # into a fresh deployment: same values, same ids
    fresh = Project(tmp_path / "fresh")
    imported = fresh.ok("import", str(snap))
    assert "kept their ids" in imported.stderr
    assert fresh.run("items:described", {"table": "vals"}) == DESCRIBED
    again = tmp_path / "again.zip"
    fresh.ok("export", "--path", str(again))
    with zipfile.ZipFile(snap) as a, zipfile.ZipFile(again) as b:
        for table in ("vals", "other"):
            assert a.read(f"{table}/documents.jsonl") == b.read(f"{table}/documents.jsonl")

    # a snapshot into a deployment that has the tables: --replace
    fresh.ok("import", str(snap), "--replace")
    assert fresh.run("items:count", {"table": "vals"}) == 2


def test_env_set_get_list_remove_seen_by_functions(project: Project, clean_env: list[str]) -> None:
    clean_env += ["CVT_GREETING", "CVT_OTHER"]
    project.ok("env", "set", "CVT_GREETING", "hello world")
    project.ok("env", "set", "CVT_OTHER", "x")
    assert project.ok("env", "get", "CVT_GREETING").stdout == "hello world\n"
    assert project.ok("env", "list").stdout.splitlines() == ["CVT_GREETING=hello world", "CVT_OTHER=x"]
    # a new process-start of the deployment copies the variables into os.environ
    os.environ.pop("CVT_GREETING", None)
    assert project.run("items:env", {"name": "CVT_GREETING"}) == "hello world"

    project.ok("env", "remove", "CVT_GREETING")
    assert project.run("items:env", {"name": "CVT_GREETING"}) is None
    missing = project.invoke("env", "get", "CVT_GREETING")
    assert missing.exit_code == 1 and "not set" in missing.output

    bad = project.invoke("env", "set", "1BAD-NAME", "v")
    assert bad.exit_code == 1 and "InvalidEnvVarName" in bad.output
    big = project.invoke("env", "set", "CVT_BIG", "x" * (8 * 1024 + 1))
    assert big.exit_code == 1 and "InvalidEnvVarValue" in big.output


def test_usage_errors_say_what_to_do(project: Project, tmp_path: Path) -> None:
    for command in (["logs"], ["deploy"]):
        result = project.invoke(*command, local=False)
        assert result.exit_code == 2 and "--url" in result.output
    no_key = project.invoke("data", "--url", "http://127.0.0.1:9", local=False)
    assert no_key.exit_code == 2 and "--admin-key" in no_key.output
    no_folder = project.runner.invoke(cli, ["data", "--functions", str(tmp_path / "missing")])
    assert no_folder.exit_code == 2 and "No functions folder" in no_folder.output
    unknown = tmp_path / "x.parquet"
    unknown.write_text("")
    result = project.invoke("import", str(unknown))
    assert result.exit_code == 2 and "--format" in result.output


def test_snapshot_with_id_references_imports_into_a_fresh_deployment(tmp_path: Path) -> None:
    schema = '''
        from convection import define_schema, define_table, v

        schema = define_schema({
            "users": define_table({"name": v.string()}),
            "posts": define_table({"author": v.id("users"), "title": v.string()}).index("by_author", ["author"]),
        })
    '''
    source = Project(tmp_path / "source")
    (source.functions / "schema.py").write_text(textwrap.dedent(schema))
    ann = source.run("items:add", {"table": "users", "doc": {"name": "ann"}})
    source.run("items:add", {"table": "posts", "doc": {"author": ann, "title": "hello"}})
    snap = tmp_path / "snap.zip"
    source.ok("export", "--path", str(snap))

    fresh = Project(tmp_path / "fresh")
    (fresh.functions / "schema.py").write_text(textwrap.dedent(schema))
    result = fresh.ok("import", str(snap))
    assert result.stderr.count("kept their ids") == 2
    listing = fresh.ok("data", "posts").stdout
    assert ann in listing and "hello" in listing
