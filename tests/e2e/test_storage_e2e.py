"""File storage end to end: the upload flow of a Convex web app with the official npm client
(ConvexClient + fetch under Node) against a real ``convection serve``: a mutation returns
``ctx.storage.generate_upload_url()``, the script POSTs the bytes, saves the storage id with a
mutation, reads the URL from a subscribed query, downloads it (whole and a Range), and deletes
it. Also checked from Python: the file is served at the URL the query gave."""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.error
import urllib.request

import pytest
from conftest import NodeRunner, ServerProcess

SIZE = 100_000


def file_bytes(n: int) -> bytes:
    return bytes((i * 7 + 3) % 256 for i in range(n))


def test_upload_flow_from_the_npm_client(server: ServerProcess, node: NodeRunner) -> None:
    r = node.run("storage.mjs", server.url, size=SIZE)
    data = file_bytes(SIZE)

    assert r["postUrl"].startswith(f"{server.url}/api/storage/upload?token=")
    assert r["uploadStatus"] == 200
    storage_id = r["storageId"]
    [item] = r["listed"]
    assert item["storageId"] == storage_id
    assert item["url"] == f"{server.url}/api/storage/{storage_id}"
    assert r["httpClientUrl"] == item["url"]
    file_doc = item["file"]
    assert file_doc["_id"] == storage_id
    assert file_doc["size"] == SIZE
    assert file_doc["contentType"] == "image/png"
    assert file_doc["sha256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()

    assert r["download"] == {
        "status": 200,
        "contentType": "image/png",
        "cacheControl": "private, max-age=2592000",
        "length": SIZE,
        "same": True,
    }
    assert r["range"] == {"status": 206, "contentRange": f"bytes 10-19/{SIZE}", "same": True}

    assert r["forged"]["status"] == 401
    assert r["forged"]["body"]["code"] == "StorageTokenInvalid"
    assert r["digest"]["status"] == 400
    assert r["digest"]["body"]["code"] == "DigestMismatch"

    assert r["afterDelete"] == []
    assert r["deletedStatus"] == 404
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(item["url"], timeout=10)
    assert exc.value.code == 404


def test_file_stored_by_upload_is_served_to_python(server: ServerProcess) -> None:
    url = server.call("mutation", "files:generate_upload_url")
    data = b"plain bytes from python"
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "text/plain"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        storage_id = json.loads(resp.read())["storageId"]
    server.call("mutation", "files:send_image", {"storageId": storage_id, "author": "python-e2e"})
    [item] = server.call("query", "files:list_images", {"author": "python-e2e"})
    with urllib.request.urlopen(item["url"], timeout=10) as resp:
        assert resp.read() == data
        assert resp.headers["Content-Type"] == "text/plain"
    server.call("mutation", "files:delete_image", {"storageId": storage_id})
