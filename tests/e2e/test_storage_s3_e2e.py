"""File storage on S3, end to end: a real ``convection serve --storage s3://<bucket>/files``
process whose blobs live on moto's standalone S3 server (``tests/s3_moto.py``), with a part
size of 64 KiB so that uploads go up as multipart uploads.

* the official npm client's upload flow (``storage.mjs``: ``generateUploadUrl`` mutation,
  ``fetch`` POST, subscribed query with the URL, whole and ``Range`` downloads, delete);
* from Python: a file of several parts is an object ``files/<storage id>`` in the bucket, a
  ``Range`` across a part boundary is served from it, and deleting the file removes the object;
* ``convection export --path s3://...`` writes the ZIP snapshot (with the file) to the bucket;
* a server pointed at a missing bucket stops at start with a message saying so.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import APP_DIR, NodeRunner, ServerProcess, free_port
from s3_moto import MOTO_MIN_PART_BYTES, S3Bucket

PART = MOTO_MIN_PART_BYTES
SIZE = 3 * PART + 5_000  # four parts
DEADLINE_S = 30.0


def file_bytes(n: int) -> bytes:
    return bytes((i * 7 + 3) % 256 for i in range(n))


@pytest.fixture
def s3_server(s3_bucket: S3Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerProcess]:
    for name, value in s3_bucket.env.items():
        if name != "CONVECTION_STORAGE":  # the flag names the bucket
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("CONVECTION_STORAGE", raising=False)
    monkeypatch.setenv("CONVECTION_S3_PART_SIZE_BYTES", str(PART))
    proc = ServerProcess(tmp_path / "data", extra_args=["--storage", s3_bucket.url])
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def wait_until(check: object, what: str) -> None:
    assert callable(check)
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def blobs(bucket: S3Bucket) -> list[str]:
    return [k for k in bucket.objects() if not k.startswith(".staging/")]


def test_npm_client_upload_flow_on_s3(s3_server: ServerProcess, s3_bucket: S3Bucket, node: NodeRunner) -> None:
    r = node.run("storage.mjs", s3_server.url, size=SIZE)
    data = file_bytes(SIZE)
    assert r["uploadStatus"] == 200
    storage_id = r["storageId"]
    [item] = r["listed"]
    assert item["url"] == f"{s3_server.url}/api/storage/{storage_id}"
    assert item["file"]["size"] == SIZE
    assert item["file"]["sha256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert r["download"] == {
        "status": 200, "contentType": "image/png", "cacheControl": "private, max-age=2592000",
        "length": SIZE, "same": True,
    }
    assert r["range"] == {"status": 206, "contentRange": f"bytes 10-19/{SIZE}", "same": True}
    assert r["digest"]["body"]["code"] == "DigestMismatch"
    assert r["afterDelete"] == []
    assert r["deletedStatus"] == 404
    # The deleted file's object goes right after the commit; nothing staged is left over
    # (the refused Digest upload included).
    wait_until(lambda: blobs(s3_bucket) == [], "the deleted file's object to go")
    assert s3_bucket.objects() == []
    assert s3_bucket.uploads() == []


def test_blobs_are_objects_in_the_bucket(s3_server: ServerProcess, s3_bucket: S3Bucket, tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    url = s3_server.call("mutation", "files:generate_upload_url")
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/pdf"}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        storage_id = json.loads(resp.read())["storageId"]
    assert blobs(s3_bucket) == [storage_id]
    assert s3_bucket.uploads() == []
    stored = s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=f"files/{storage_id}")["Body"].read()
    assert stored == data

    server_url = f"{s3_server.url}/api/storage/{storage_id}"
    ranged = urllib.request.Request(server_url, headers={"Range": f"bytes={PART - 3}-{PART + 2}"})
    with urllib.request.urlopen(ranged, timeout=30) as resp:
        assert resp.status == 206
        assert resp.headers["Content-Range"] == f"bytes {PART - 3}-{PART + 2}/{SIZE}"
        assert resp.read() == data[PART - 3 : PART + 3]
    with urllib.request.urlopen(server_url, timeout=30) as resp:
        assert resp.read() == data
        assert resp.headers["Content-Type"] == "application/pdf"

    # The snapshot export goes to the bucket too (through the CLI entry point).
    s3_server.call("mutation", "files:send_image", {"storageId": storage_id, "author": "s3-e2e"})
    env = {**os.environ, **s3_bucket.env, "CONVECTION_S3_PART_SIZE_BYTES": str(PART)}
    done = subprocess.run(
        [sys.executable, "-m", "convection", "export", "--path", f"s3://{s3_bucket.name}/exports/",
         "--include-file-storage", "--url", s3_server.url, "--admin-key", s3_server.admin_key],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    written = done.stdout.strip()
    assert written.startswith(f"s3://{s3_bucket.name}/exports/snapshot_") and written.endswith(".zip")
    key = written.split("/", 3)[3]
    archive = s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=key)["Body"].read()
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        assert zf.read(f"_storage/{storage_id}") == data
        assert storage_id in zf.read("_storage/documents.jsonl").decode()

    s3_server.call("mutation", "files:delete_image", {"storageId": storage_id})
    wait_until(lambda: blobs(s3_bucket) == [], "the deleted file's object to go")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(server_url, timeout=10)
    assert exc.value.code == 404


def test_serve_refuses_to_start_on_a_missing_bucket(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    env = {**os.environ, **s3_bucket.env}
    env.pop("CONVECTION_STORAGE")
    done = subprocess.run(
        [sys.executable, "-m", "convection", "serve", "--functions", str(APP_DIR), "--data", str(tmp_path / "data"),
         "--host", "127.0.0.1", "--port", str(free_port()), "--site-port", "0",
         "--storage", "s3://no-such-bucket/files"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert done.returncode == 1
    out = done.stdout + done.stderr
    assert "s3://no-such-bucket/files/" in out and "does not exist" in out
