from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_support import MakeDeployment
from starlette.testclient import TestClient

from convection.server.app import Deployment, build_app, build_site_app, open_deployment

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
def deployment(make_deployment: MakeDeployment) -> Deployment:
    return make_deployment(http=HTTP, notes=NOTES)


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


AUTH_HTTP = '''
from starlette.responses import JSONResponse
from convection import HttpRouter

http = HttpRouter()

@http.route(path="/webhook", method="POST")
async def webhook(ctx, request):
    # A webhook authenticates with its own scheme; the action sees the header unchanged.
    return JSONResponse({"authorization": request.headers.get("authorization")})

@http.route(path="/whoami", method="GET")
async def whoami(ctx, request):
    try:
        user = ctx.auth.get_user_identity()
    except Exception as exc:
        return JSONResponse({"error": getattr(exc, "code", None), "message": str(exc)}, status_code=401)
    return JSONResponse({"user": None if user is None else user.subject})
'''


@pytest.fixture
def auth_deployment(tmp_path: Path) -> Iterator[object]:
    folder = tmp_path / "convex"
    folder.mkdir()
    (folder / "http.py").write_text(textwrap.dedent(AUTH_HTTP))
    dep = open_deployment(folder, tmp_path / "data")
    yield dep
    dep.close()


@pytest.mark.parametrize(
    "header",
    ["Bearer whsec_not_a_jwt", "Basic dXNlcjpwYXNz", "t=1700000000,v1=5257a869e7ec", "Convex not-a-key"],
)
def test_http_actions_receive_any_authorization_header(auth_deployment: object, header: str) -> None:
    """As in Convex, an HTTP action runs whatever Authorization header comes (webhooks use
    their own schemes); only ctx.auth.get_user_identity() fails for a header that is not a
    valid token."""
    for build, prefix in ((build_app, "/http"), (build_site_app, "")):
        with TestClient(build(auth_deployment)) as client:  # type: ignore[arg-type]
            r = client.post(f"{prefix}/webhook", headers={"Authorization": header})
            assert (r.status_code, r.json()) == (200, {"authorization": header})
            r = client.get(f"{prefix}/whoami", headers={"Authorization": header})
            assert r.status_code == 401
            assert r.json()["error"] in ("InvalidAuthHeader", "BadAdminKey")
            r = client.get(f"{prefix}/whoami")
            assert (r.status_code, r.json()) == (200, {"user": None})
