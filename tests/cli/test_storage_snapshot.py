"""File storage in ZIP snapshots (SEMANTICS.md §12): ``convection export
--include-file-storage`` writes ``_storage/documents.jsonl`` and the blobs, and importing the
ZIP restores the files (same ids in a fresh deployment, blobs verified before anything is
written)."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import httpx
import orjson
from cli_support import Project, Server

FILES = '''
from convection import mutation, query, v


@mutation
def generate_upload_url(ctx):
    return ctx.storage.generate_upload_url()


@mutation(args={"storageId": v.id("_storage"), "name": v.string()})
def save(ctx, storageId, name):
    return ctx.db.insert("docs", {"storageId": storageId, "name": name})


@query(args={"name": v.string()})
def file_url(ctx, name):
    doc = ctx.db.query("docs").filter(lambda q: q.eq(q.field("name"), name)).first()
    return None if doc is None else ctx.storage.get_url(doc["storageId"])


@query
def files(ctx):
    return len(ctx.db.system.query("_storage").collect())
'''

DATA = bytes(range(256)) * 40 + b"the end"


def files_project(root: Path) -> Project:
    project = Project(root)
    (project.functions / "files.py").write_text(FILES)
    return project


def upload(project: Project, server: Server, data: bytes, content_type: str) -> str:
    url = project.run("files:generate_upload_url", remote=server.remote)
    r = httpx.post(url, content=data, headers={"Content-Type": content_type})
    assert r.status_code == 200, r.text
    storage_id = r.json()["storageId"]
    assert isinstance(storage_id, str)
    return storage_id


def source_snapshots(tmp_path: Path) -> tuple[str, Path, Path]:
    """Upload a file through the real flow, export with and without the files."""
    project = files_project(tmp_path / "src")
    server = Server(project.functions, project.data).start()
    try:
        sid = upload(project, server, DATA, "image/png")
        project.run("files:save", {"storageId": sid, "name": "pic"}, remote=server.remote)
        with_files, without = tmp_path / "with.zip", tmp_path / "without.zip"
        out = project.ok("export", "--path", str(with_files), "--include-file-storage", *server.remote, local=False)
        assert "1 files" in out.stderr
        project.ok("export", "--path", str(without), *server.remote, local=False)
    finally:
        server.stop()
    return sid, with_files, without


def test_export_import_round_trips_files(tmp_path: Path) -> None:
    sid, with_files, without = source_snapshots(tmp_path)
    with zipfile.ZipFile(without) as zf:
        assert not [n for n in zf.namelist() if n.startswith("_storage/")]
        assert "docs/documents.jsonl" in zf.namelist()
    with zipfile.ZipFile(with_files) as zf:
        assert zf.read(f"_storage/{sid}") == DATA
        (row,) = [orjson.loads(line) for line in zf.read("_storage/documents.jsonl").splitlines()]
    assert row["_id"] == sid and row["size"] == len(DATA) and row["contentType"] == "image/png"
    assert base64.b64decode(row["sha256"]) == hashlib.sha256(DATA).digest()
    assert set(row) == {"_id", "_creationTime", "sha256", "size", "contentType"}

    fresh = files_project(tmp_path / "fresh")
    imported = fresh.ok("import", str(with_files)).stderr
    assert "_storage: 1 documents imported (kept their ids)" in imported
    assert "docs: 1 documents imported (kept their ids)" in imported
    assert fresh.run("files:files") == 1

    # A local (in-process) export of the restored deployment has the same file.
    again = tmp_path / "again.zip"
    fresh.ok("export", "--path", str(again), "--include-file-storage")
    with zipfile.ZipFile(again) as zf:
        assert zf.read(f"_storage/{sid}") == DATA

    # Into a deployment that already has the file: a second copy under a new id.
    appended = fresh.ok("import", str(with_files), "--append").stderr
    assert "_storage: 1 documents imported (new ids)" in appended
    assert fresh.run("files:files") == 2

    server = Server(fresh.functions, fresh.data).start()
    try:
        url = fresh.run("files:file_url", {"name": "pic"}, remote=server.remote)
        assert url.endswith(f"/api/storage/{sid}")
        r = httpx.get(f"{server.url}/api/storage/{sid}")
        assert r.status_code == 200
        assert r.content == DATA
        assert r.headers["content-type"] == "image/png"
    finally:
        server.stop()


def test_import_refuses_a_corrupted_blob(tmp_path: Path) -> None:
    sid, with_files, _ = source_snapshots(tmp_path)
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(with_files) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == f"_storage/{sid}":
                data = data[:-7] + b"THE END"
            dst.writestr(info.filename, data)
    target = files_project(tmp_path / "target")
    result = target.invoke("import", str(bad))
    assert result.exit_code == 1
    assert "StorageBlobMismatch" in result.output and f"_storage/{sid}" in result.output
    assert target.run("items:count", {"table": "docs"}) == 0
    assert target.run("files:files") == 0

    # A row without its blob is refused the same way (before anything is written).
    missing = tmp_path / "missing.zip"
    with zipfile.ZipFile(with_files) as src, zipfile.ZipFile(missing, "w") as dst:
        for info in src.infolist():
            if info.filename != f"_storage/{sid}":
                dst.writestr(info.filename, src.read(info))
    result = target.invoke("import", str(missing))
    assert result.exit_code == 1 and "InvalidStorageSnapshot" in result.output
    assert target.run("files:files") == 0
