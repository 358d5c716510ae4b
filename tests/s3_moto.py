"""Fixtures for the S3 blob store: moto's standalone S3 server on loopback (a pytest plugin,
loaded by ``tests/conftest.py``).

* ``moto_s3`` (session): ``python -m moto.server`` on a free 127.0.0.1 port, started and
  stopped here (CI needs nothing but the ``dev`` extra: boto3 and ``moto[server]``). Its
  smallest multipart part is lowered to :data:`MOTO_MIN_PART_BYTES` so tests can use small
  ``S3_PART_SIZE_BYTES`` (real S3 requires 5 MiB). Skipped, saying why, when boto3 or moto are
  not installed.
* ``s3_bucket``: a fresh bucket on it for one test, with the process environment pointing at
  it (throwaway credentials, no ``~/.aws`` files); ``s3_bucket.env`` is the environment a
  ``convection serve`` subprocess needs.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

MOTO_MIN_PART_BYTES = 64 << 10
START_TIMEOUT_S = 60.0

# Throwaway credentials and no shared config: nothing on the machine can leak in.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "convection-test",
    "AWS_SECRET_ACCESS_KEY": "convection-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/nonexistent/convection-test-aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/convection-test-aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}
AWS_UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION")


@dataclass
class MotoServer:
    endpoint_url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""


@dataclass
class S3Bucket:
    """A bucket on the moto server; ``url`` is ``s3://<bucket>/<prefix>``."""

    name: str
    prefix: str
    endpoint_url: str
    client: Any
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"s3://{self.name}/{self.prefix}"

    def objects(self) -> list[str]:
        """Every object under the prefix (blobs and staging objects), prefix removed."""
        out: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=self.prefix + "/"):
            out.extend(item["Key"][len(self.prefix) + 1 :] for item in page.get("Contents", []))
        return sorted(out)

    def uploads(self) -> list[str]:
        """Keys of multipart uploads in progress."""
        got = self.client.list_multipart_uploads(Bucket=self.name)
        return sorted(u["Key"] for u in got.get("Uploads", []))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    for module in ("boto3", "moto.server"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            pytest.skip(f"{module} is not installed: install the dev extra (pip install -e '.[dev]')")
    port = _free_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    env = {**os.environ, **AWS_ENV, "S3_UPLOAD_PART_MIN_SIZE": str(MOTO_MIN_PART_BYTES)}
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        )
    server = MotoServer(f"http://127.0.0.1:{port}", proc, log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"moto's server exited with {proc.returncode}:\n{server.log()}")
            try:
                with urllib.request.urlopen(server.endpoint_url + "/moto-api/", timeout=1):
                    break
            except urllib.error.HTTPError:
                break  # it answers
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"moto's server did not answer within {START_TIMEOUT_S} s:\n{server.log()}")
            time.sleep(0.05)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def s3_bucket(moto_s3: MotoServer, monkeypatch: pytest.MonkeyPatch) -> S3Bucket:
    import boto3

    for name in AWS_UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    bucket = f"convection-{uuid.uuid4().hex[:12]}"
    client = boto3.session.Session().client("s3", endpoint_url=moto_s3.endpoint_url, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    env = {
        **AWS_ENV,
        "CONVECTION_STORAGE": f"s3://{bucket}/files",
        "CONVECTION_S3_ENDPOINT_URL": moto_s3.endpoint_url,
        "CONVECTION_S3_REGION": "us-east-1",
        "CONVECTION_S3_PATH_STYLE": "1",
    }
    return S3Bucket(bucket, "files", moto_s3.endpoint_url, client, env)
