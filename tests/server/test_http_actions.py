from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from convection.server.app import build_app, build_site_app, open_deployment

HTTP = '''
from starlette.responses import JSONResponse, PlainTextResponse
from convection import HttpRouter, api

http = HttpRouter()

@http.route(path="/hello", method="POST")
async def hello(ctx, request):
    body = await request.json()
    await ctx.run_mutation(api.notes.add, {"text": body["text"]})
    return JSONResponse({"ok": True, "count": await ctx.run_query(api.notes.count, {})})

@http.route(path_prefix="/files/", method="GET")
async def files(ctx, request):
    print("serving", request.url.path)
    return PlainTextResponse("file " + request.url.path)

@http.route(path="/boom", method="GET")
async def boom(ctx, request):
    raise RuntimeError("broken")
'''

NOTES = '''
from convection import mutation, query

@mutation
def add(ctx, text):
    return ctx.db.insert("notes", {"text": text})

@query
def count(ctx):
    return len(ctx.db.query("notes").collect())
'''


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[object]:
    folder = tmp_path / "convex"
    folder.mkdir()
    (folder / "http.py").write_text(textwrap.dedent(HTTP))
    (folder / "notes.py").write_text(textwrap.dedent(NOTES))
    dep = open_deployment(folder, tmp_path / "data")
    yield dep
    dep.close()


def test_http_actions_on_the_main_port_and_the_site(deployment: object) -> None:
    with TestClient(build_app(deployment)) as client:  # type: ignore[arg-type]
        r = client.post("/http/hello", json={"text": "a"})
        assert r.status_code == 200 and r.json() == {"ok": True, "count": 1}
        r = client.get("/http/files/x/y.txt")
        assert r.status_code == 200 and r.text == "file /http/files/x/y.txt"
        assert client.get("/http/nothing").status_code == 404
        r = client.get("/http/boom")
        assert r.status_code == 500 and "broken" in r.text
        assert client.head("/http/files/a").status_code == 200
    with TestClient(build_site_app(deployment)) as site:  # type: ignore[arg-type]
        r = site.post("/hello", json={"text": "b"})
        assert r.json() == {"ok": True, "count": 2}
        assert site.get("/files/z").text == "file /files/z"


def test_storage_option_selects_the_blob_directory(tmp_path: Path) -> None:
    from convection.errors import ConvectionError
    from convection.server.app import _blob_store

    store = _blob_store(str(tmp_path / "blobs"), tmp_path)
    assert store is not None
    assert _blob_store(f"file://{tmp_path}/b2", tmp_path) is not None
    with pytest.raises(ConvectionError) as e:
        _blob_store("gs://bucket", tmp_path)  # (s3:// is tests/files/test_s3_store.py's)
    assert e.value.code == "UnsupportedStorage"
