"""Streaming ``convection import`` of JSONL and CSV (application/bulk_import.py): files larger
than the upload limit, in-process and to a running backend, into an existing table with a
search index and a database index; a bad line in the middle undoes the import; an abandoned
session is undone by the backend; CSV records spanning parts."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cli_support import Project, Server

from convection import knobs
from convection.values.json import dumps

SCHEMA = '''
from convection import define_schema, define_table, v

schema = define_schema({
    "posts": define_table({"body": v.string(), "channel": v.string(), "n": v.float64()})
    .index("by_channel", ["channel"])
    .search_index("search_body", search_field="body", filter_fields=["channel"]),
})
'''

POSTS = '''
from convection import query, v


@query(args={"text": v.string()})
def search(ctx, text):
    return [d["n"] for d in ctx.db.query("posts")
            .with_search_index("search_body", lambda q: q.search("body", text)).take(10)]


@query(args={"channel": v.string()})
def by_channel(ctx, channel):
    return len(ctx.db.query("posts").with_index("by_channel", lambda q: q.eq("channel", channel)).collect())
'''

DOCS = 1200
LIMIT_BYTES = 16_000  # ADMIN_UPLOAD_MAX_BYTES in these tests: the files are ~5x larger


def search_project(root: Path) -> Project:
    project = Project(root)
    (project.functions / "schema.py").write_text(textwrap.dedent(SCHEMA))
    (project.functions / "posts.py").write_text(textwrap.dedent(POSTS))
    return project


def posts_file(path: Path, count: int = DOCS, bad_line: int | None = None, start: int = 0) -> Path:
    lines = []
    for i in range(start, start + count):
        doc = {"body": f"word{i % 7} common text{i}", "channel": f"c{i % 3}", "n": float(i)}
        if bad_line is not None and i - start + 1 == bad_line:
            doc["n"] = "not a number"
        lines.append(dumps(doc) + b"\n")
    path.write_bytes(b"".join(lines))
    return path


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Upload limit far below the file sizes; small parts and chunks, so a file is many parts
    and many commits (for this process and a server started after it)."""
    for name, value in (("ADMIN_UPLOAD_MAX_BYTES", LIMIT_BYTES), ("IMPORT_PART_MAX_BYTES", 4000),
                        ("IMPORT_CHUNK_DOCUMENTS_COUNT", 100)):
        monkeypatch.setattr(knobs, name, value)
        monkeypatch.setenv(f"CONVECTION_{name}", str(value))


@pytest.fixture
def project(tmp_path: Path, small_limits: None) -> Project:
    return search_project(tmp_path / "proj")


@pytest.fixture
def server(project: Project) -> Iterator[Server]:
    project.ok("data")  # create the data directory (and the table's indexes) in-process first
    srv = Server(project.functions, project.data).start()
    try:
        yield srv
    finally:
        srv.stop()


def _count(project: Project, remote: list[str] | None) -> int:
    return int(project.run("posts:by_channel", {"channel": "c0"}, remote=remote)) + int(
        project.run("posts:by_channel", {"channel": "c1"}, remote=remote)
    ) + int(project.run("posts:by_channel", {"channel": "c2"}, remote=remote))


def _check_stream_and_failure(project: Project, tmp_path: Path, remote: list[str] | None) -> None:
    extra = remote or []
    local = remote is None
    big = posts_file(tmp_path / "posts.jsonl")
    assert big.stat().st_size > 4 * LIMIT_BYTES
    # the buffered path (a JSON array) is refused by the upload limit; JSONL streams
    array = tmp_path / "array.json"
    array.write_bytes(b"[" + b",".join(dumps({"body": "x" * 100, "channel": "c", "n": 1.0}) for _ in range(200)) + b"]")
    refused = project.invoke("import", str(array), "--table", "posts", *extra, local=local)
    assert refused.exit_code == 1 and "UploadTooLarge" in refused.output

    done = project.invoke("import", str(big), "--append", *extra, local=local)
    assert done.exit_code == 0, done.output
    assert f"{DOCS} documents imported" in done.stderr
    assert "docs/s" in done.stderr and "ETA" in done.stderr  # progress lines (not a terminal)
    assert _count(project, remote) == DOCS
    assert project.run("posts:search", {"text": "text777"}, remote=remote) == [777.0]
    assert len(project.run("posts:search", {"text": "word3"}, remote=remote)) == 10

    # a bad line after many committed chunks: the error names it, the table is as before
    bad = posts_file(tmp_path / "bad.jsonl", bad_line=900, start=10_000)
    failed = project.invoke("import", str(bad), "--table", "posts", "--append", *extra, local=local)
    assert failed.exit_code == 1
    assert "bad.jsonl line 900" in failed.output and "ValidationError" in failed.output
    assert "removed again" in failed.output and "as before" in failed.output
    assert _count(project, remote) == DOCS
    assert project.run("posts:search", {"text": "text10005"}, remote=remote) == []

    # replace: the old documents go first; the file's documents are all there
    again = project.invoke("import", str(posts_file(tmp_path / "p2.jsonl", start=5000)), "--table", "posts",
                           "--replace", *extra, local=local)
    assert again.exit_code == 0 and f"{DOCS} deleted first" in again.stderr, again.output
    assert _count(project, remote) == DOCS
    assert project.run("posts:search", {"text": "text777"}, remote=remote) == []
    assert project.run("posts:search", {"text": "text5777"}, remote=remote) == [5777.0]


def test_stream_import_in_process(project: Project, tmp_path: Path) -> None:
    _check_stream_and_failure(project, tmp_path, None)


def test_stream_import_to_a_running_server(project: Project, server: Server, tmp_path: Path) -> None:
    _check_stream_and_failure(project, tmp_path, server.remote)


def test_create_mode_failure_leaves_the_table_empty_and_csv_records_span_parts(
    project: Project, tmp_path: Path
) -> None:
    rows = ["body,channel,n"]
    for i in range(600):
        body = f'"line one {i}\nline ""two"" {i}"' if i % 5 == 0 else f"plain {i}"
        rows.append(f"{body},c{i % 3},{i}")
    csv_file = tmp_path / "posts.csv"
    csv_file.write_text("\n".join(rows) + "\n")
    assert csv_file.stat().st_size > 4000 * 3  # several parts, records cut at part edges
    ok = project.invoke("import", str(csv_file))
    assert ok.exit_code == 0, ok.output
    assert "600 documents imported" in ok.stderr
    assert project.run("posts:search", {"text": "two"}, remote=None)  # the quoted newline survived
    assert _count(project, None) == 600

    bad = posts_file(tmp_path / "fresh.jsonl", bad_line=1100)
    project2 = search_project(tmp_path / "other")
    failed = project2.invoke("import", str(bad), "--table", "posts")
    assert failed.exit_code == 1 and "fresh.jsonl line 1100" in failed.output
    assert _count(project2, None) == 0
    assert project2.invoke("import", str(posts_file(tmp_path / "fixed.jsonl")), "--table", "posts").exit_code == 0
    assert _count(project2, None) == DOCS


def test_an_abandoned_session_is_undone(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVECTION_IMPORT_SESSION_IDLE_MS", "500")
    project.ok("data")
    srv = Server(project.functions, project.data).start()
    try:
        headers = {"Authorization": f"Convex {srv.admin_key}"}
        with httpx.Client(base_url=srv.url, headers=headers) as client:
            params = {"format": "jsonl", "mode": "append", "table": "posts"}
            session = client.post("/api/admin/import/stream", params=params).json()["importId"]
            data = posts_file(tmp_path / "part.jsonl", count=250).read_bytes()[:12_000]
            reply = client.post(f"/api/admin/import/stream/{session}", params={"part": 0}, content=data)
            assert reply.status_code == 200 and reply.json()["documents"] >= 150
            # out of order is refused; the client then goes away without finishing
            skipped = client.post(f"/api/admin/import/stream/{session}", params={"part": 2}, content=b"")
            assert skipped.status_code == 409 and skipped.json()["code"] == "ImportPartOutOfOrder"
            assert _count(project, srv.remote) >= 100  # committed chunks
            deadline = time.monotonic() + 60
            while _count(project, srv.remote):  # the janitor undoes the session (poll, deadline)
                assert time.monotonic() < deadline
                time.sleep(0.1)
            gone = client.delete(f"/api/admin/import/stream/{session}")
            assert gone.status_code == 404 and gone.json()["code"] == "ImportSessionNotFound"
    finally:
        srv.stop()
