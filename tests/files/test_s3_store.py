"""The S3 blob store's own behaviour on moto's S3 server (the shared BlobStore and file-storage
suite in test_storage.py runs on it too): multipart uploads in fixed-size parts through a
staging object, the copy in parts past CopyObject's limit, abort and the staging sweep, ranged
streaming reads, the start-up check's errors, settings from the environment, and boto3 as an
optional dependency."""

from __future__ import annotations

import hashlib
import os
import socket
import sys
from pathlib import Path

import pytest
from s3_moto import MOTO_MIN_PART_BYTES, S3Bucket

from convection import knobs
from convection.errors import ConvectionError
from convection.files import s3
from convection.files.s3 import S3BlobStore, S3Destination, S3Location, S3Settings, S3StorageError
from convection.server.app import _blob_store

PART = MOTO_MIN_PART_BYTES


def make_store(bucket: S3Bucket, part: int = PART, prefix: str | None = None) -> S3BlobStore:
    url = bucket.url if prefix is None else f"s3://{bucket.name}/{prefix}"
    return S3BlobStore(S3Location.parse(url), S3Settings(endpoint_url=bucket.endpoint_url, path_style=True,
                                                         part_size_bytes=part))


def read(store: S3BlobStore, key: str, start: int = 0, end: int | None = None) -> bytes | None:
    reader = store.open(key, start, end)
    return None if reader is None else b"".join(reader)


def test_large_blob_goes_up_in_fixed_size_parts_and_appears_only_at_commit(
    s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(s3_bucket)
    sizes: list[int] = []
    real_upload_part = store.client.upload_part

    def upload_part(**kwargs: object) -> object:
        body = kwargs["Body"]
        assert isinstance(body, bytes)
        sizes.append(len(body))
        return real_upload_part(**kwargs)

    monkeypatch.setattr(store.client, "upload_part", upload_part)
    data = os.urandom(3 * PART + 1234)
    w = store.writer()
    for i in range(0, len(data), 10_000):  # chunks that do not line up with parts
        w.write(data[i : i + 10_000])
    # Streamed while written: three full parts are up, in a staging upload; no blob yet.
    assert sizes == [PART, PART, PART]
    [upload] = s3_bucket.uploads()
    assert upload.startswith("files/.staging/")
    assert s3_bucket.objects() == []
    info = w.commit("big_1")
    assert sizes == [PART, PART, PART, 1234]  # the rest is the last, shorter part
    assert (info.size, info.sha256) == (len(data), hashlib.sha256(data).digest())
    assert s3_bucket.objects() == ["big_1"]  # the staging object is gone
    assert s3_bucket.uploads() == []
    assert store.get("big_1") == data
    assert store.size("big_1") == len(data)
    # Ranges across part boundaries, streamed in READ_CHUNK_BYTES pieces.
    assert read(store, "big_1", PART - 5, PART + 5) == data[PART - 5 : PART + 5]
    assert read(store, "big_1", 2 * PART) == data[2 * PART :]
    assert read(store, "big_1", 0, 10**12) == data
    assert [k for k, _ in store.list()] == ["big_1"]


def test_small_blob_is_one_put_straight_to_its_key(s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    store = make_store(s3_bucket)
    calls: list[str] = []
    for name in ("create_multipart_upload", "copy_object", "put_object"):
        real = getattr(store.client, name)
        monkeypatch.setattr(store.client, name, lambda real=real, name=name, **kw: (calls.append(name), real(**kw))[1])
    w = store.writer()
    w.write(b"x" * (PART - 1))
    w.commit("small")
    assert calls == ["put_object"]
    assert s3_bucket.objects() == ["small"]


def test_copy_in_parts_past_the_single_copy_limit(s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3, "SINGLE_COPY_MAX_BYTES", PART)  # as if the blob were over 5 GiB
    monkeypatch.setattr(s3, "COPY_PART_BYTES", PART)
    store = make_store(s3_bucket)
    copied: list[str] = []
    real = store.client.upload_part_copy

    def upload_part_copy(**kwargs: object) -> object:
        copied.append(str(kwargs["CopySourceRange"]))
        return real(**kwargs)

    monkeypatch.setattr(store.client, "upload_part_copy", upload_part_copy)
    data = os.urandom(2 * PART + 7)
    assert store.put("copied", data).size == len(data)
    assert copied == [f"bytes=0-{PART - 1}", f"bytes={PART}-{2 * PART - 1}", f"bytes={2 * PART}-{2 * PART + 6}"]
    assert store.get("copied") == data
    assert s3_bucket.objects() == ["copied"]
    assert s3_bucket.uploads() == []


def test_abort_and_sweep_of_abandoned_staging(s3_bucket: S3Bucket) -> None:
    store = make_store(s3_bucket)
    w = store.writer()
    w.write(os.urandom(PART + 1))
    assert len(s3_bucket.uploads()) == 1
    w.abort()
    assert s3_bucket.uploads() == []
    assert s3_bucket.objects() == []

    # A crash mid-upload leaves an incomplete upload; one after the staging object completed
    # (before the copy) leaves that object. The sweeper removes both once old enough.
    abandoned = store.writer()
    abandoned.write(os.urandom(PART + 1))
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="files/.staging/left-over", Body=b"staged")
    store.put("kept", b"a real blob")
    assert store.sweep_staging(older_than_ms=3_600_000) == 0
    assert store.sweep_staging(older_than_ms=-1_000) == 2
    assert s3_bucket.uploads() == []
    assert s3_bucket.objects() == ["kept"]
    assert [k for k, _ in store.list()] == ["kept"]


def test_reads_of_empty_blobs_and_ranges_at_the_end(s3_bucket: S3Bucket) -> None:
    store = make_store(s3_bucket)
    store.put("empty", b"")
    store.put("ten", b"0123456789")
    assert read(store, "empty") == b""
    assert read(store, "empty", 0, 5) == b""
    assert read(store, "ten", 10) == b""  # S3 answers 416: an empty read of an existing blob
    assert read(store, "ten", 20, 30) == b""
    assert read(store, "ten", 4, 4) == b""
    assert read(store, "ten", 9) == b"9"
    assert store.open("missing", 3, 4) is None
    assert store.open("missing", 4, 4) is None
    assert store.open("missing") is None
    reader = store.open("ten", 2, 6)
    assert reader is not None
    reader.close()  # closing without reading releases the connection


def test_keys_live_under_the_prefix_and_other_objects_are_ignored(s3_bucket: S3Bucket) -> None:
    store = make_store(s3_bucket, prefix="deep/er/")
    assert store.prefix == "deep/er/"
    store.put("k1", b"1")
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="deep/er/not.a.key", Body=b"x")
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="deep/er/sub/k2", Body=b"x")
    s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="elsewhere", Body=b"x")
    assert [k for k, _ in store.list()] == ["k1"]
    assert s3_bucket.client.get_object(Bucket=s3_bucket.name, Key="deep/er/k1")["Body"].read() == b"1"
    root = make_store(s3_bucket, prefix="")
    assert root.prefix == ""
    assert [k for k, _ in root.list()] == ["elsewhere"]


def test_locations_and_settings() -> None:
    assert S3Location.parse("s3://b") == S3Location("b", "")
    assert S3Location.parse("s3://b/") == S3Location("b", "")
    assert S3Location.parse("s3://b/x/y/") == S3Location("b", "x/y/")
    for bad in ["s3://", "s3:///x", "http://b/x", "s3://b/x?region=1", "s3://b c/x"]:
        with pytest.raises(S3StorageError) as exc:
            S3Location.parse(bad)
        assert exc.value.code == "InvalidStorageUrl", bad
    env = {"CONVECTION_S3_ENDPOINT_URL": "http://minio:9000", "CONVECTION_S3_REGION": "eu-west-1",
           "CONVECTION_S3_PATH_STYLE": "true"}
    assert S3Settings.from_env(env) == S3Settings("http://minio:9000", "eu-west-1", True)
    assert S3Settings.from_env({}) == S3Settings(None, None, None)
    assert S3Settings.from_env({"CONVECTION_S3_PATH_STYLE": "0"}).path_style is False
    with pytest.raises(S3StorageError) as exc:
        S3Settings.from_env({"CONVECTION_S3_PATH_STYLE": "maybe"})
    assert "CONVECTION_S3_PATH_STYLE" in exc.value.message


def test_start_up_check_names_what_is_wrong(
    s3_bucket: S3Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVECTION_S3_ENDPOINT_URL", s3_bucket.endpoint_url)
    monkeypatch.setenv("CONVECTION_S3_PATH_STYLE", "1")
    assert isinstance(_blob_store(s3_bucket.url, tmp_path), S3BlobStore)

    with pytest.raises(S3StorageError) as exc:
        _blob_store("s3://no-such-bucket/files", tmp_path)
    assert exc.value.code == "BlobStoreBucketNotFound"
    assert "s3://no-such-bucket/files/" in exc.value.message

    with monkeypatch.context() as m:
        m.delenv("AWS_ACCESS_KEY_ID")
        m.delenv("AWS_SECRET_ACCESS_KEY")
        with pytest.raises(S3StorageError) as exc:
            _blob_store(s3_bucket.url, tmp_path)
        assert exc.value.code == "BlobStoreCredentialsMissing"
        assert "AWS_ACCESS_KEY_ID" in exc.value.message

    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("CONVECTION_S3_ENDPOINT_URL", dead)
    monkeypatch.setattr(knobs, "S3_MAX_ATTEMPTS_COUNT", 1)
    with pytest.raises(S3StorageError) as exc:
        _blob_store(s3_bucket.url, tmp_path)
    assert exc.value.code == "BlobStoreUnreachable"
    assert dead in exc.value.message and "CONVECTION_S3_ENDPOINT_URL" in exc.value.message

    with pytest.raises(ConvectionError) as other:
        _blob_store("gs://bucket/x", tmp_path)
    assert other.value.code == "UnsupportedStorage"


def test_the_environment_variable_selects_the_store(s3_bucket: S3Bucket, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in s3_bucket.env.items():
        monkeypatch.setenv(name, value)
    store = _blob_store(None, tmp_path)
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix) == (s3_bucket.name, "files/")
    assert store.settings == S3Settings(s3_bucket.endpoint_url, "us-east-1", True)
    # --storage wins over the environment.
    assert not isinstance(_blob_store(str(tmp_path / "blobs"), tmp_path), S3BlobStore)


def test_export_destination_streams_a_file_in_parts(s3_bucket: S3Bucket, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in s3_bucket.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(knobs, "S3_PART_SIZE_BYTES", PART)
    source = tmp_path / "snap.zip"
    data = os.urandom(2 * PART + 3)
    source.write_bytes(data)
    into_folder = S3Destination(f"s3://{s3_bucket.name}/exports/", "snapshot_1.zip")
    assert into_folder.url == f"s3://{s3_bucket.name}/exports/snapshot_1.zip"
    into_folder.upload(source)
    named = S3Destination(f"s3://{s3_bucket.name}/exports/named.zip", "snapshot_1.zip")
    named.upload(source)
    for key in ("exports/snapshot_1.zip", "exports/named.zip"):
        assert s3_bucket.client.get_object(Bucket=s3_bucket.name, Key=key)["Body"].read() == data
    assert s3_bucket.uploads() == []
    with pytest.raises(S3StorageError) as exc:
        S3Destination("s3://no-such-bucket/x.zip", "x.zip")
    assert exc.value.code == "BlobStoreBucketNotFound"


def test_boto3_is_an_optional_dependency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if not installed
    with pytest.raises(S3StorageError) as exc:
        S3BlobStore(S3Location("bucket"))
    assert exc.value.code == "BlobStoreSupportMissing"
    assert "pip install 'convection[s3]'" in exc.value.message


def test_routes_answer_503_when_the_bucket_fails(s3_bucket: S3Bucket, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from starlette.testclient import TestClient
    from test_storage import START, path_of, write_app

    from convection.server.app import build_app
    from convection.testing import TestBackend

    for name, value in s3_bucket.env.items():
        monkeypatch.setenv(name, value)
    with TestBackend(write_app(tmp_path / "convex"), start_time_ms=START) as backend:
        client = TestClient(build_app(backend.deployment))
        url = path_of(backend.mutation("files:generate_upload_url"))
        stored = client.post(url, content=b"before").json()["storageId"]
        # The bucket goes away under the running server (emptied and deleted).
        s3_bucket.client.delete_object(Bucket=s3_bucket.name, Key=f"files/{stored}")
        s3_bucket.client.delete_bucket(Bucket=s3_bucket.name)
        r = client.post(url, content=b"after")
        assert r.status_code == 503
        assert r.json()["code"] == "BlobStoreRequestFailed"
        assert f"s3://{s3_bucket.name}/files/" in r.json()["message"]
        assert backend.query("files:system_list") == [backend.query("files:system_get", {"storageId": stored})]
        r = client.get(f"/api/storage/{stored}")
        assert (r.status_code, r.json()["code"]) == (503, "BlobStoreRequestFailed")
