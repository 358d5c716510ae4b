"""File storage (SEMANTICS.md §7): the blob stores, upload tokens, ctx.storage in queries,
mutations, actions and HTTP actions, the ``_storage`` system table, and the HTTP routes
(``POST /api/storage/upload?token=...``, ``GET /api/storage/<id>``) through the Starlette
TestClient against a TestBackend. Time moves on the backend's manual clock: nothing sleeps."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import random
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

from convection import knobs
from convection.errors import ConvexError
from convection.files.blobs import BlobKeyError, BlobStore, LocalBlobStore, MemoryBlobStore
from convection.files.s3 import S3BlobStore, S3Location, S3Settings
from convection.files.tokens import UploadTokens
from convection.model.file_storage import STORAGE_TABLE, FileStorageError
from convection.server.app import build_app
from convection.server.storage_routes import parse_digest, parse_range
from convection.testing import TestBackend
from convection.testing.backend import FunctionError
from convection.values.ids import decode_id, encode_id, new_internal_id

FILES = '''
from convection import ConvexError, action, mutation, query, v


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


@query(args={"storageId": v.id("_storage")})
def url(ctx, storageId):
    return ctx.storage.get_url(storageId)


@query(args={"storageId": v.string()})
def url_of_string(ctx, storageId):
    return ctx.storage.get_url(storageId)


@query(args={"storageId": v.id("_storage")})
def metadata(ctx, storageId):
    return ctx.storage.get_metadata(storageId)


@query(args={"storageId": v.id("_storage")})
def system_get(ctx, storageId):
    return ctx.db.system.get(storageId)


@query
def system_list(ctx):
    return ctx.db.system.query("_storage").collect()


@mutation(args={"storageId": v.id("_storage")})
def remove(ctx, storageId):
    ctx.storage.delete(storageId)
    return ctx.storage.get_url(storageId)


@mutation(args={"storageId": v.id("_storage")})
def remove_then_fail(ctx, storageId):
    ctx.storage.delete(storageId)
    raise ConvexError("rolled back")


@query
def query_upload_url(ctx):
    return ctx.storage.generate_upload_url()


@query(args={"storageId": v.id("_storage")})
def query_delete(ctx, storageId):
    ctx.storage.delete(storageId)


@mutation
def mutation_store(ctx):
    return ctx.storage.store(b"x")


@action(args={"data": v.bytes(), "contentType": v.optional(v.string())})
async def store(ctx, data, contentType=None):
    return await ctx.storage.store(data, content_type=contentType)


@action(args={"text": v.string()})
async def store_text(ctx, text):
    return await ctx.storage.store(text)


@action(args={"storageId": v.id("_storage")})
async def read(ctx, storageId):
    return await ctx.storage.get(storageId)


@action(args={"storageId": v.id("_storage")})
async def info(ctx, storageId):
    return {
        "url": await ctx.storage.get_url(storageId),
        "meta": await ctx.storage.get_metadata(storageId),
    }


@action(args={"storageId": v.id("_storage")})
async def action_delete(ctx, storageId):
    await ctx.storage.delete(storageId)
    return await ctx.storage.get(storageId)


@action
async def action_upload_url(ctx):
    return await ctx.storage.generate_upload_url()
'''

HTTP = '''
from starlette.responses import JSONResponse

from convection import HttpRouter

http = HttpRouter()


@http.route(path="/store", method="POST")
async def store(ctx, request):
    body = await request.body()
    storage_id = await ctx.storage.store(body, content_type=request.headers.get("content-type"))
    return JSONResponse({"storageId": storage_id, "url": await ctx.storage.get_url(storage_id)})
'''

START = 1_704_067_200_000.0
ORIGIN = "http://127.0.0.1:3210"


def write_app(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "files.py").write_text(textwrap.dedent(FILES))
    (folder / "http.py").write_text(textwrap.dedent(HTTP))
    return folder


S3_TEST_PART_BYTES = 128 << 10  # small parts (moto allows them; S3 needs >= 5 MiB)


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestBackend]:
    """A backend whose blobs are in its data directory, or in a bucket of moto's S3 server
    (chosen the way `convection serve` chooses: CONVECTION_STORAGE and CONVECTION_S3_*)."""
    monkeypatch.delenv("CONVECTION_ORIGIN", raising=False)
    monkeypatch.delenv("CONVECTION_STORAGE", raising=False)
    if request.param == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        for name, value in bucket.env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(knobs, "S3_PART_SIZE_BYTES", S3_TEST_PART_BYTES)
    with TestBackend(write_app(tmp_path / "convex"), start_time_ms=START) as b:
        if request.param == "s3":
            assert isinstance(b.app.files.blobs, S3BlobStore)
        yield b


@pytest.fixture
def client(backend: TestBackend) -> TestClient:
    return TestClient(build_app(backend.deployment))


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def upload(
    backend: TestBackend, client: TestClient, data: bytes, content_type: str | None = "text/plain", **headers: str
) -> Any:
    url = backend.mutation("files:generate_upload_url")
    hdrs = dict(headers)
    if content_type is not None:
        hdrs["Content-Type"] = content_type
    return client.post(path_of(url), content=data, headers=hdrs)


def stored(backend: TestBackend, client: TestClient, data: bytes, content_type: str | None = "text/plain") -> str:
    resp = upload(backend, client, data, content_type)
    assert resp.status_code == 200, resp.text
    storage_id = resp.json()["storageId"]
    assert isinstance(storage_id, str)
    return storage_id


def blob_files(backend: TestBackend) -> list[str]:
    """Every blob and staged write of the backend's store (files, or S3 objects and
    multipart uploads in progress)."""
    blobs = backend.app.files.blobs
    if isinstance(blobs, S3BlobStore):
        return s3_objects(blobs)
    root = backend.data_dir / "storage"
    return sorted(p.name for p in root.rglob("*") if p.is_file())


def s3_objects(blobs: S3BlobStore) -> list[str]:
    names = []
    for page in blobs.client.get_paginator("list_objects_v2").paginate(Bucket=blobs.bucket, Prefix=blobs.prefix):
        names.extend(item["Key"][len(blobs.prefix) :] for item in page.get("Contents", []))
    uploads = blobs.client.list_multipart_uploads(Bucket=blobs.bucket, Prefix=blobs.prefix).get("Uploads", [])
    names.extend(f"(upload) {u['Key']}" for u in uploads)
    return sorted(names)


# --- blob stores -------------------------------------------------------------------------------


@pytest.fixture(params=["local", "memory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "storage")
    if request.param == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        settings = S3Settings(endpoint_url=bucket.endpoint_url, path_style=True, part_size_bytes=S3_TEST_PART_BYTES)
        return S3BlobStore(S3Location.parse(bucket.url), settings)
    return MemoryBlobStore()


def read_all(store: BlobStore, key: str, start: int = 0, end: int | None = None) -> bytes | None:
    reader = store.open(key, start, end)
    if reader is None:
        return None
    return b"".join(reader)


def test_blob_store_put_get_open_delete(store: BlobStore) -> None:
    data = os.urandom(700_000)  # several read chunks
    info = store.put("key_1", data)
    assert (info.key, info.size, info.sha256) == ("key_1", len(data), sha(data))
    assert store.get("key_1") == data
    assert store.size("key_1") == len(data)
    assert read_all(store, "key_1") == data
    assert read_all(store, "key_1", 10, 20) == data[10:20]
    assert read_all(store, "key_1", 699_990) == data[699_990:]
    assert read_all(store, "key_1", 5, 10**9) == data[5:]
    assert [k for k, _ in store.list()] == ["key_1"]
    assert store.delete("key_1") is True
    assert store.delete("key_1") is False
    assert store.get("key_1") is None
    assert store.open("key_1") is None
    assert store.size("key_1") is None
    assert list(store.list()) == []


def test_blob_store_puts_streams_and_files(store: BlobStore) -> None:
    assert store.put("a", [b"ab", b"", b"cd"]).sha256 == sha(b"abcd")
    assert store.put("b", io.BytesIO(b"xyz")).size == 3
    assert store.put("c", b"").sha256 == sha(b"")
    assert (store.get("a"), store.get("b"), store.get("c")) == (b"abcd", b"xyz", b"")
    store.put("a", b"new")  # replaces
    assert store.get("a") == b"new"


def test_blob_writer_hashes_while_writing_and_abort_leaves_nothing(store: BlobStore, tmp_path: Path) -> None:
    w = store.writer()
    w.write(b"hello ")
    w.write(b"world")
    assert (w.size, w.sha256()) == (11, sha(b"hello world"))
    w.abort()
    w.abort()  # idempotent
    assert list(store.list()) == []
    if isinstance(store, LocalBlobStore):
        assert list(store.staging_dir.iterdir()) == []
    if isinstance(store, S3BlobStore):
        assert s3_objects(store) == []
    w = store.writer()
    w.write(b"kept")
    assert w.commit("k").size == 4
    w.abort()  # after commit: a no-op
    assert store.get("k") == b"kept"


def test_blob_keys_cannot_escape(store: BlobStore) -> None:
    for key in ["", "../x", "a/b", "a.b", "x" * 129]:
        with pytest.raises(BlobKeyError):
            store.put(key, b"x")
        with pytest.raises(BlobKeyError):
            store.get(key)


def test_local_blob_store_sweeps_abandoned_staging(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "storage")
    w = store.writer()
    w.write(b"half an upload")
    # (the writer is abandoned, as by a crash)
    assert store.sweep_staging(older_than_ms=3_600_000) == 0
    assert store.sweep_staging(older_than_ms=-1) == 1
    assert list(store.staging_dir.iterdir()) == []


# --- tokens ------------------------------------------------------------------------------------


def test_upload_tokens_expire_and_resist_forgery() -> None:
    tokens = UploadTokens(b"secret-1")
    token = tokens.issue(START)
    assert tokens.verify(token, START) == int(START)
    assert tokens.verify(token, START + knobs.STORAGE_UPLOAD_URL_VALIDITY_MS) == int(START)
    with pytest.raises(FileStorageError) as exc:
        tokens.verify(token, START + knobs.STORAGE_UPLOAD_URL_VALIDITY_MS + 1)
    assert exc.value.code == "StorageTokenExpired"
    assert tokens.issue(START) != token  # a nonce in each
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[3] ^= 1  # an altered issue time
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    for bad in [forged, UploadTokens(b"secret-2").issue(START), "garbage", "!!!", token[:-2], None, ""]:
        with pytest.raises(FileStorageError) as exc:
            tokens.verify(bad, START)
        assert exc.value.code == "StorageTokenInvalid", bad


# --- header parsing ----------------------------------------------------------------------------


def test_parse_range() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=0-3", 10) == (0, 4)
    assert parse_range("bytes=2-", 10) == (2, 10)
    assert parse_range("bytes=-3", 10) == (7, 10)
    assert parse_range("bytes=-30", 10) == (0, 10)
    assert parse_range("bytes=5-100", 10) == (5, 10)
    assert parse_range("bytes=10-", 10) is False
    assert parse_range("bytes=-0", 10) is False
    assert parse_range("bytes=0-", 0) is None
    assert parse_range("bytes=0-0", 0) is None
    for ignored in ["bytes=0-1,3-4", "items=0-1", "bytes=a-b", "bytes=5-2", "bytes=-", "bytes"]:
        assert parse_range(ignored, 10) is None, ignored


def test_parse_digest() -> None:
    digest = sha(b"x")
    assert parse_digest(None) is None
    assert parse_digest(f"sha-256={b64(digest)}") == digest
    assert parse_digest(f"md5=abc, SHA-256={b64(digest)}") == digest
    assert parse_digest("md5=abc") is None
    with pytest.raises(FileStorageError) as exc:
        parse_digest("sha-256=nope")
    assert exc.value.code == "InvalidDigest"


# --- the upload flow (what a web app does) -----------------------------------------------------


def test_upload_save_get_url_download(backend: TestBackend, client: TestClient) -> None:
    data = b"hello, file storage\n" * 100
    url = backend.mutation("files:generate_upload_url")
    assert url.startswith(f"{ORIGIN}/api/storage/upload?token=")
    resp = client.post(path_of(url), content=data, headers={"Content-Type": "text/plain"})
    assert resp.status_code == 200, resp.text
    storage_id = resp.json()["storageId"]
    assert backend.db.catalog.table_name(decode_id(storage_id)[0]) == STORAGE_TABLE

    backend.mutation("files:save", {"storageId": storage_id, "name": "greeting"})
    file_url = backend.query("files:file_url", {"name": "greeting"})
    assert file_url == f"{ORIGIN}/api/storage/{storage_id}"

    got = client.get(path_of(file_url))
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["content-type"] == "text/plain"
    assert got.headers["content-length"] == str(len(data))
    assert got.headers["cache-control"] == "private, max-age=2592000"
    assert got.headers["etag"] == f'"{b64(sha(data))}"'
    assert got.headers["digest"] == f"sha-256={b64(sha(data))}"
    assert got.headers["accept-ranges"] == "bytes"

    # The upload URL stays usable until it expires (as in Convex).
    again = client.post(path_of(url), content=b"second", headers={"Content-Type": "text/plain"})
    assert again.status_code == 200
    assert again.json()["storageId"] != storage_id


def test_storage_documents_and_metadata(backend: TestBackend, client: TestClient) -> None:
    data = b"\x89PNG fake image"
    storage_id = stored(backend, client, data, "image/png")
    untyped = stored(backend, client, b"no type", None)

    doc = backend.query("files:system_get", {"storageId": storage_id})
    assert set(doc) == {"_id", "_creationTime", "sha256", "size", "contentType"}
    assert doc["_id"] == storage_id
    assert doc["sha256"] == b64(sha(data))
    assert doc["size"] == len(data)
    assert doc["contentType"] == "image/png"
    assert "contentType" not in backend.query("files:system_get", {"storageId": untyped})

    listed = backend.query("files:system_list")
    assert [d["_id"] for d in listed] == [storage_id, untyped]

    assert backend.query("files:metadata", {"storageId": storage_id}) == {
        "storageId": storage_id,
        "sha256": sha(data).hex(),
        "size": len(data),
        "contentType": "image/png",
    }
    assert backend.query("files:metadata", {"storageId": untyped})["contentType"] is None
    # Downloads without a stored type are application/octet-stream.
    assert client.get(f"/api/storage/{untyped}").headers["content-type"] == "application/octet-stream"


def test_range_requests(backend: TestBackend, client: TestClient) -> None:
    data = bytes(range(256)) * 4
    storage_id = stored(backend, client, data, "application/octet-stream")
    path = f"/api/storage/{storage_id}"

    r = client.get(path, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206
    assert r.content == data[10:20]
    assert r.headers["content-range"] == f"bytes 10-19/{len(data)}"
    assert r.headers["content-length"] == "10"

    r = client.get(path, headers={"Range": "bytes=-5"})
    assert (r.status_code, r.content) == (206, data[-5:])
    assert r.headers["content-range"] == f"bytes {len(data) - 5}-{len(data) - 1}/{len(data)}"

    r = client.get(path, headers={"Range": "bytes=1000-"})
    assert (r.status_code, r.content) == (206, data[1000:])

    r = client.get(path, headers={"Range": f"bytes={len(data)}-"})
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{len(data)}"

    r = client.get(path, headers={"Range": "bytes=0-1,5-6"})  # several ranges: the whole file
    assert (r.status_code, r.content) == (200, data)

    etag = r.headers["etag"]
    r = client.get(path, headers={"Range": "bytes=0-1", "If-Range": '"stale"'})
    assert (r.status_code, r.content) == (200, data)
    r = client.get(path, headers={"Range": "bytes=0-1", "If-Range": etag})
    assert (r.status_code, r.content) == (206, data[:2])

    r = client.get(path, headers={"If-None-Match": etag})
    assert r.status_code == 304
    assert r.content == b""

    r = client.head(path)
    assert r.status_code == 200
    assert r.headers["content-length"] == str(len(data))
    assert r.content == b""


def test_download_unknown_files_is_404(backend: TestBackend, client: TestClient) -> None:
    storage_id = stored(backend, client, b"x")
    doc_id = backend.mutation("files:save", {"storageId": storage_id, "name": "n"})
    for bad in ["nope", doc_id, storage_id[:-1] + ("a" if storage_id[-1] != "a" else "b")]:
        r = client.get(f"/api/storage/{bad}")
        assert r.status_code == 404, bad
        assert r.json()["code"] == "FileNotFound"


def test_delete_in_a_mutation_is_transactional(backend: TestBackend, client: TestClient) -> None:
    data = b"to be deleted"
    storage_id = stored(backend, client, data)
    sub = backend.subscribe("files:url", {"storageId": storage_id})
    assert sub.value == f"{ORIGIN}/api/storage/{storage_id}"

    # A mutation that fails keeps the file.
    with pytest.raises(ConvexError):
        backend.mutation("files:remove_then_fail", {"storageId": storage_id})
    backend.app.files.flush()
    assert client.get(f"/api/storage/{storage_id}").content == data

    # Deleted: the mutation itself already sees it gone; the subscribed query updates; the
    # blob is removed after the commit.
    assert backend.mutation("files:remove", {"storageId": storage_id}) is None
    assert sub.value is None
    assert backend.query("files:system_get", {"storageId": storage_id}) is None
    backend.app.files.flush()
    assert storage_id not in blob_files(backend)
    assert client.get(f"/api/storage/{storage_id}").status_code == 404

    with pytest.raises(FunctionError) as exc:
        backend.mutation("files:remove", {"storageId": storage_id})
    assert "StorageIdNotFound" in exc.value.message or "no file with storage id" in exc.value.message


def test_expired_and_forged_tokens_are_401(backend: TestBackend, client: TestClient) -> None:
    url = backend.mutation("files:generate_upload_url")
    path = path_of(url)
    backend.advance_time(knobs.STORAGE_UPLOAD_URL_VALIDITY_MS + 1)
    r = client.post(path, content=b"late")
    assert r.status_code == 401
    assert r.json()["code"] == "StorageTokenExpired"
    assert "generate_upload_url" in r.json()["message"]

    fresh = path_of(backend.mutation("files:generate_upload_url"))
    token = fresh.split("token=", 1)[1]
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in [f"/api/storage/upload?token={forged}", "/api/storage/upload", "/api/storage/upload?token="]:
        r = client.post(bad, content=b"x")
        assert r.status_code == 401, bad
        assert r.json()["code"] == "StorageTokenInvalid"
    assert backend.query("files:system_list") == []
    assert blob_files(backend) == []


def test_digest_is_verified(backend: TestBackend, client: TestClient) -> None:
    data = b"checked contents"
    r = upload(backend, client, data, Digest=f"sha-256={b64(sha(b'other contents'))}")
    assert r.status_code == 400
    assert r.json()["code"] == "DigestMismatch"
    assert backend.query("files:system_list") == []
    assert blob_files(backend) == []

    r = upload(backend, client, data, Digest="sha-256=not-base64!")
    assert (r.status_code, r.json()["code"]) == (400, "InvalidDigest")

    r = upload(backend, client, data, Digest=f"sha-256={b64(sha(data))}")
    assert r.status_code == 200
    assert client.get(f"/api/storage/{r.json()['storageId']}").content == data


def test_refused_large_upload_leaves_nothing_staged(backend: TestBackend, client: TestClient) -> None:
    data = os.urandom(3 * S3_TEST_PART_BYTES + 10)  # on S3: a multipart upload was under way
    r = upload(backend, client, data, Digest=f"sha-256={b64(sha(b'something else'))}")
    assert (r.status_code, r.json()["code"]) == (400, "DigestMismatch")
    assert blob_files(backend) == []
    r = upload(backend, client, data, Digest=f"sha-256={b64(sha(data))}")
    assert r.status_code == 200
    assert blob_files(backend) == [r.json()["storageId"]]
    assert client.get(f"/api/storage/{r.json()['storageId']}").content == data


def test_upload_size_limit(backend: TestBackend, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(knobs, "STORAGE_UPLOAD_MAX_BYTES", 10)
    r = upload(backend, client, b"x" * 11)
    assert (r.status_code, r.json()["code"]) == (413, "UploadTooLarge")
    assert upload(backend, client, b"x" * 10).status_code == 200

    def body() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        yield b"x" * 6
        yield b"x" * 6

    url = backend.mutation("files:generate_upload_url")
    r = client.post(path_of(url), content=body())
    assert r.status_code == 413
    assert len(backend.query("files:system_list")) == 1
    assert len(blob_files(backend)) == 1


def test_empty_upload(backend: TestBackend, client: TestClient) -> None:
    storage_id = stored(backend, client, b"")
    r = client.get(f"/api/storage/{storage_id}")
    assert (r.status_code, r.content) == (200, b"")
    assert backend.query("files:system_get", {"storageId": storage_id})["size"] == 0
    # Any range of an empty file answers 200 with the empty body, as Convex does (a browser's
    # media element asks for bytes=0-0 or bytes=0- first).
    for ranged in ("bytes=0-0", "bytes=0-", "bytes=-1"):
        r = client.get(f"/api/storage/{storage_id}", headers={"Range": ranged})
        assert (r.status_code, r.content) == (200, b""), ranged
        assert "content-range" not in r.headers


def test_cors_for_uploads_from_a_page(backend: TestBackend, client: TestClient) -> None:
    url = path_of(backend.mutation("files:generate_upload_url"))
    pre = client.options(
        url,
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == "https://app.example.com"
    r = client.post(url, content=b"x", headers={"Origin": "https://app.example.com", "Content-Type": "text/plain"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://app.example.com"


# --- ctx.storage in actions, HTTP actions, and the wrong function kinds -----------------------


def test_action_storage(backend: TestBackend, client: TestClient) -> None:
    data = bytes(range(256))
    storage_id = backend.action("files:store", {"data": data, "contentType": "application/x-test"})
    assert backend.action("files:read", {"storageId": storage_id}) == data
    info = backend.action("files:info", {"storageId": storage_id})
    assert info["url"] == f"{ORIGIN}/api/storage/{storage_id}"
    assert info["meta"] == {
        "storageId": storage_id,
        "sha256": sha(data).hex(),
        "size": 256,
        "contentType": "application/x-test",
    }
    assert client.get(f"/api/storage/{storage_id}").content == data
    assert backend.query("files:system_get", {"storageId": storage_id})["contentType"] == "application/x-test"

    upload_url = backend.action("files:action_upload_url")
    assert client.post(path_of(upload_url), content=b"from an action's url").status_code == 200

    assert backend.action("files:action_delete", {"storageId": storage_id}) is None
    assert backend.action("files:info", {"storageId": storage_id}) == {"url": None, "meta": None}
    backend.app.files.flush()
    assert storage_id not in blob_files(backend)

    with pytest.raises(FunctionError) as exc:
        backend.action("files:store_text", {"text": "hello"})
    assert "data.encode()" in exc.value.message


def test_http_action_storage(backend: TestBackend, client: TestClient) -> None:
    r = client.post("/http/store", content=b"via http action", headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["url"] == f"{ORIGIN}/api/storage/{body['storageId']}"
    got = client.get(path_of(body["url"]))
    assert (got.content, got.headers["content-type"]) == (b"via http action", "text/csv")


def test_methods_outside_their_function_kinds(backend: TestBackend, client: TestClient) -> None:
    storage_id = stored(backend, client, b"x")
    with pytest.raises(FunctionError) as exc:
        backend.query("files:query_upload_url")
    assert "generate_upload_url() is not available in queries" in exc.value.message
    with pytest.raises(FunctionError) as exc:
        backend.query("files:query_delete", {"storageId": storage_id})
    assert "delete() is not available in queries" in exc.value.message
    with pytest.raises(FunctionError) as exc:
        backend.mutation("files:mutation_store")
    assert "store() is not available in mutations" in exc.value.message


def test_invalid_storage_ids(backend: TestBackend, client: TestClient) -> None:
    storage_id = stored(backend, client, b"x")
    doc_id = backend.mutation("files:save", {"storageId": storage_id, "name": "n"})
    with pytest.raises(FunctionError) as exc:
        backend.query("files:url_of_string", {"storageId": "not an id"})
    assert "is not a storage id" in exc.value.message
    with pytest.raises(FunctionError) as exc:
        backend.query("files:url_of_string", {"storageId": doc_id})
    assert "is an id of table 'docs', not a storage id" in exc.value.message
    # v.id("_storage") rejects other tables' ids before the function runs.
    with pytest.raises(FunctionError) as exc:
        backend.query("files:url", {"storageId": doc_id})
    assert exc.value.code == "ArgumentValidationError"


# --- orphans and the sweeper -------------------------------------------------------------------


def test_sweeper_removes_only_orphans(backend: TestBackend, client: TestClient) -> None:
    files = backend.app.files
    kept = stored(backend, client, b"kept")
    orphan = encode_id(files.table_number, new_internal_id(random.Random(1), START))
    files.blobs.put(orphan, b"left by a crash between blob and commit")
    files.blobs.put("not_a_storage_id", b"not ours")
    assert files.sweep() == 0  # younger than STORAGE_ORPHAN_GRACE_MS
    assert files.sweep(grace_ms=0) == 1
    assert sorted(blob_files(backend)) == sorted([kept, "not_a_storage_id"])
    assert client.get(f"/api/storage/{kept}").content == b"kept"


def test_blob_is_removed_when_the_commit_fails(backend: TestBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    files = backend.app.files

    def fail(txn: Any) -> int:
        raise ConvexError("commit refused")

    monkeypatch.setattr(files.db, "commit", fail)
    with pytest.raises(ConvexError):
        files.store_data(b"never committed", "text/plain")
    monkeypatch.undo()
    assert blob_files(backend) == []
    assert backend.query("files:system_list") == []


def test_origin_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVECTION_ORIGIN", "https://files.example.com/")
    with TestBackend(write_app(tmp_path / "convex"), start_time_ms=START) as b:
        assert b.mutation("files:generate_upload_url").startswith("https://files.example.com/api/storage/upload?token=")
        storage_id = b.action("files:store", {"data": b"x"})
        assert b.query("files:url", {"storageId": storage_id}) == f"https://files.example.com/api/storage/{storage_id}"


def test_application_without_a_blob_store_keeps_blobs_in_memory(tmp_path: Path) -> None:
    from convection.database import Database
    from convection.functions.identity import Identity
    from convection.functions.loader import load_app
    from convection.persistence.sqlite import SqlitePersistence
    from convection.server.compose import build_application

    db = Database(SqlitePersistence(str(tmp_path / "db.sqlite3")))
    app = build_application(db, load_app(write_app(tmp_path / "convex")))
    try:
        assert isinstance(app.files.blobs, MemoryBlobStore)
        admin = Identity(kind="admin")

        async def flow() -> Any:
            out = await app.run_action("files:store", {"data": b"in memory"}, admin)
            assert out.success, out.error_message
            read = await app.run_action("files:read", {"storageId": out.value}, admin)
            return read.value

        import asyncio

        assert asyncio.run(flow()) == b"in memory"
    finally:
        app.close()
        db.close()
