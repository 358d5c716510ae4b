"""An S3-compatible blob store (AWS S3, MinIO, Ceph, R2, moto...) through boto3.

``S3BlobStore(S3Location.parse("s3://bucket/prefix"), S3Settings.from_env())`` keeps blob
``<key>`` as the object ``<prefix>/<key>`` of the bucket. It implements the
:class:`~convection.files.blobs.BlobStore` protocol with the same guarantees as the local
directory:

* **A key names a complete blob or nothing.** A writer hashes and counts what it is given
  and holds at most one part (``S3_PART_SIZE_BYTES``) in memory. A blob that stays within
  one part is sent with one ``PutObject`` to its key at commit. A larger one is streamed,
  while it arrives, as a multipart upload of fixed-size parts to a staging object
  ``<prefix>/.staging/<random>`` (its final key, the storage id, is only known once the
  ``_storage`` row is inserted). The commit completes that upload, copies the staging object to
  its key inside S3 (``CopyObject``, or ``UploadPartCopy`` parts past 5 GiB; no bytes pass
  through this process), and deletes the staging object. Each of those S3 calls is atomic,
  so readers never see part of a blob.
* ``abort()`` aborts the multipart upload; a crash leaves an incomplete upload or a staging
  object that :meth:`S3BlobStore.sweep_staging` removes once it is older than the grace period.
* Reads stream: ``open(key, start, end)`` is one ranged ``GetObject`` whose body is read in
  ``READ_CHUNK_BYTES`` chunks; nothing holds a whole file in memory (except ``get``, which is
  asked for the bytes).

boto3 is blocking. Like the local store's file I/O, every call runs in worker threads: the
HTTP routes use ``run_in_threadpool``, ``ctx.storage`` uses ``FileStorage.run_blocking``. The
boto3 client is thread-safe and shared (a connection pool of ``S3_MAX_CONNECTIONS_COUNT``).

Settings: the endpoint URL, region and addressing style come from ``CONVECTION_S3_ENDPOINT_URL``,
``CONVECTION_S3_REGION``, ``CONVECTION_S3_PATH_STYLE`` (else boto3's own ``AWS_ENDPOINT_URL``,
``AWS_REGION``...); credentials always come from the standard AWS chain (environment,
``~/.aws``, instance roles). :meth:`S3BlobStore.check` is called at start so a missing bucket,
missing credentials or an unreachable endpoint fail there, with a message saying what to fix.

boto3 is an optional dependency (``pip install 'convection[s3]'``), imported when an S3 store
is built.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convection import knobs
from convection.errors import ConvectionError
from convection.files.blobs import (
    _KEY,
    READ_CHUNK_BYTES,
    BlobData,
    BlobInfo,
    BlobReader,
    BlobStoreError,
    BlobWriter,
    _clamp,
    _put,
    check_key,
    chunks_of,
)

log = logging.getLogger("convection.files")

MIN_PART_BYTES = 5 << 20  # S3's smallest part (all but the last one)
MAX_PARTS_COUNT = 10_000  # S3's most parts of one multipart upload
SINGLE_COPY_MAX_BYTES = 5 << 30  # CopyObject's limit; larger objects are copied in parts
COPY_PART_BYTES = 1 << 30  # parts of such a copy (S3 copies them itself; fewer calls is faster)
STAGING = ".staging/"


class S3StorageError(BlobStoreError):
    """The S3 blob store cannot be used (``code`` says why) or an S3 call failed."""


def _s3_modules() -> tuple[Any, Any, Any]:
    try:
        import boto3
        import botocore.config
        import botocore.exceptions
    except ImportError:
        raise S3StorageError(
            "S3 storage needs boto3, which is not installed: pip install 'convection[s3]'",
            code="BlobStoreSupportMissing",
        ) from None
    return boto3, botocore.config, botocore.exceptions


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix (``""`` or ending in ``/``)."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """``s3://bucket`` or ``s3://bucket/some/prefix``; raises ``InvalidStorageUrl``."""
        if not url.startswith("s3://"):
            raise S3StorageError(f"{url!r} is not an s3:// URL: use s3://bucket/prefix", code="InvalidStorageUrl")
        bucket, _, prefix = url[len("s3://"):].partition("/")
        if not bucket or "?" in url or any(c.isspace() for c in url):
            raise S3StorageError(
                f"Invalid storage URL {url!r}: use s3://<bucket>/<optional key prefix>", code="InvalidStorageUrl"
            )
        prefix = prefix.strip("/")
        return cls(bucket, prefix + "/" if prefix else "")

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def _flag(name: str, raw: str | None) -> bool | None:
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on", "path"):
        return True
    if value in ("0", "false", "no", "off", "virtual"):
        return False
    raise S3StorageError(f"{name}={raw!r}: use 1/true (path-style URLs) or 0/false (virtual-hosted)", code="InvalidStorageSettings")


@dataclass(frozen=True)
class S3Settings:
    """How to reach the S3 service. ``None`` fields fall back to boto3's configuration chain."""

    endpoint_url: str | None = None
    region: str | None = None
    path_style: bool | None = None  # None: boto3 decides (virtual-hosted on AWS)
    part_size_bytes: int = 0  # 0: the S3_PART_SIZE_BYTES knob

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> S3Settings:
        env = os.environ if environ is None else environ
        return cls(
            endpoint_url=env.get("CONVECTION_S3_ENDPOINT_URL") or None,
            region=env.get("CONVECTION_S3_REGION") or None,
            path_style=_flag("CONVECTION_S3_PATH_STYLE", env.get("CONVECTION_S3_PATH_STYLE")),
        )


def _error_code(exc: Any) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _status(exc: Any) -> int:
    response = getattr(exc, "response", None) or {}
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _is_missing(exc: Any) -> bool:
    """No such object (a missing bucket is an error, not a missing blob; HEAD answers say
    only "404")."""
    return _error_code(exc) in ("NoSuchKey", "404", "NotFound")


class S3BlobStore:
    """Blobs as objects ``<prefix><key>`` of one bucket. Thread-safe."""

    def __init__(self, location: S3Location, settings: S3Settings | None = None) -> None:
        boto3, config, exceptions = _s3_modules()
        self._exc = exceptions
        # What an S3 call raises: an error answer, or no answer (connection, timeout, credentials).
        self._errors: tuple[type[BaseException], ...] = (exceptions.ClientError, exceptions.BotoCoreError)
        self.location = location
        self.settings = settings or S3Settings()
        self.bucket = location.bucket
        self.prefix = location.prefix
        part = self.settings.part_size_bytes or knobs.S3_PART_SIZE_BYTES
        if part <= 0:
            raise S3StorageError(f"S3 part size must be positive, got {part}", code="InvalidStorageSettings")
        self.part_size = part
        s3_config: dict[str, Any] = {}
        if self.settings.path_style is not None:
            s3_config["addressing_style"] = "path" if self.settings.path_style else "virtual"
        options: dict[str, Any] = {
            "s3": s3_config or None,
            "connect_timeout": knobs.S3_CONNECT_TIMEOUT_MS / 1000,
            "read_timeout": knobs.S3_READ_TIMEOUT_MS / 1000,
            "retries": {"max_attempts": knobs.S3_MAX_ATTEMPTS_COUNT, "mode": "standard"},
            "max_pool_connections": knobs.S3_MAX_CONNECTIONS_COUNT,
        }
        if self.settings.endpoint_url and "request_checksum_calculation" in config.Config.OPTION_DEFAULTS:
            # Not AWS: many S3-compatible services refuse the CRC checksums boto3 >= 1.36 adds
            # to every upload by default; send them only where the API requires them.
            options["request_checksum_calculation"] = "when_required"
            options["response_checksum_validation"] = "when_required"
        self.client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=self.settings.endpoint_url,
            region_name=self.settings.region,
            config=config.Config(**options),
        )

    def __repr__(self) -> str:
        return f"S3BlobStore({self.location.url!r}, endpoint={self.settings.endpoint_url!r})"

    # --- start-up check --------------------------------------------------------------------
    def check(self) -> None:
        """Fail now, with what to do, when the bucket cannot be used (no credentials, no such
        bucket, access denied, endpoint unreachable)."""
        where = f"{self.location.url} (endpoint {self.settings.endpoint_url or 'AWS default'})"
        if self.part_size < MIN_PART_BYTES:
            log.warning(
                "S3_PART_SIZE_BYTES=%d is below S3's 5 MiB minimum part: uploads larger than one part "
                "will fail on AWS S3 and MinIO (EntityTooSmall)", self.part_size,
            )
        exc_mod = self._exc
        try:
            self.client.head_bucket(Bucket=self.bucket)
            self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
        except exc_mod.NoCredentialsError:
            raise S3StorageError(
                f"No AWS credentials for {where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(or AWS_PROFILE, ~/.aws/credentials, an instance role)",
                code="BlobStoreCredentialsMissing",
            ) from None
        except (exc_mod.EndpointConnectionError, exc_mod.ConnectTimeoutError, exc_mod.ReadTimeoutError) as exc:
            raise S3StorageError(
                f"Cannot reach the S3 endpoint for {where}: {exc}. Check CONVECTION_S3_ENDPOINT_URL "
                "and that the service is running",
                code="BlobStoreUnreachable",
            ) from None
        except exc_mod.ClientError as exc:
            status = _status(exc)
            if status == 404 or _error_code(exc) in ("NoSuchBucket", "404"):
                raise S3StorageError(
                    f"The bucket of {where} does not exist: create it (e.g. `aws s3 mb s3://{self.bucket}`) "
                    "or fix --storage / CONVECTION_STORAGE",
                    code="BlobStoreBucketNotFound",
                ) from None
            if status in (401, 403):
                raise S3StorageError(
                    f"Access to {where} was denied ({_error_code(exc) or status}): check the credentials "
                    "and that they may read, write, list and delete objects under the prefix",
                    code="BlobStoreAccessDenied",
                ) from None
            raise S3StorageError(f"Checking {where} failed: {exc}", code="BlobStoreUnreachable") from None
        except exc_mod.BotoCoreError as exc:
            raise S3StorageError(f"Checking {where} failed: {exc}", code="BlobStoreUnreachable") from None

    # --- keys ------------------------------------------------------------------------------
    def object_key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _failure(self, what: str, key: str, exc: BaseException) -> S3StorageError:
        return S3StorageError(f"S3 {what} of s3://{self.bucket}/{key} failed: {exc}", code="BlobStoreRequestFailed")

    # --- BlobStore -------------------------------------------------------------------------
    def writer(self) -> BlobWriter:
        return _S3Writer(self)

    def put(self, key: str, data: BlobData) -> BlobInfo:
        return _put(self, key, data)

    def get(self, key: str) -> bytes | None:
        name = self.object_key(key)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=name)["Body"]
        except self._errors as exc:
            if _is_missing(exc):
                return None
            raise self._failure("GetObject", name, exc) from None
        try:
            data: bytes = body.read()
        finally:
            body.close()
        return data

    def open(self, key: str, start: int = 0, end: int | None = None) -> BlobReader | None:
        name = self.object_key(key)
        start = max(start, 0)
        if end is not None and end <= start:
            return None if self.size(key) is None else _EmptyReader()
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": name}
        if start or end is not None:
            args["Range"] = f"bytes={start}-" + ("" if end is None else str(end - 1))
        try:
            response = self.client.get_object(**args)
        except self._errors as exc:
            if _is_missing(exc):
                return None
            if _status(exc) == 416 or _error_code(exc) == "InvalidRange":  # start at or past the end
                return None if self.size(key) is None else _EmptyReader()
            raise self._failure("GetObject", name, exc) from None
        body = response["Body"]
        if "Range" in args and "ContentRange" not in response:
            # A server that ignored the Range header sent the whole object: cut it here.
            length = int(response.get("ContentLength", 0))
            begin, stop = _clamp(length, start, end)
            return _S3Reader(body, skip=begin, left=stop - begin)
        return _S3Reader(body)

    def size(self, key: str) -> int | None:
        name = self.object_key(key)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=name)
        except self._errors as exc:
            if _is_missing(exc):
                return None
            raise self._failure("HeadObject", name, exc) from None
        return int(head["ContentLength"])

    def delete(self, key: str) -> bool:
        name = self.object_key(key)
        if self.size(key) is None:
            return False
        try:
            self.client.delete_object(Bucket=self.bucket, Key=name)
        except self._errors as exc:
            raise self._failure("DeleteObject", name, exc) from None
        return True

    def list(self) -> Iterator[tuple[str, float]]:
        paginator = self.client.get_paginator("list_objects_v2")
        # Delimiter "/": only the blobs directly under the prefix (not .staging/).
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix, Delimiter="/"):
            for item in page.get("Contents", []):
                key = item["Key"][len(self.prefix):]
                if _KEY.fullmatch(key) is None:
                    continue
                yield key, item["LastModified"].timestamp() * 1000

    def sweep_staging(self, older_than_ms: float) -> int:
        cutoff = time.time() * 1000 - older_than_ms
        staging = self.prefix + STAGING
        removed = 0
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=staging):
            for upload in page.get("Uploads", []):
                if _staged_at_ms(upload["Key"], upload["Initiated"]) < cutoff:
                    self._quietly(self.client.abort_multipart_upload, Bucket=self.bucket, Key=upload["Key"],
                                  UploadId=upload["UploadId"])
                    removed += 1
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=staging):
            for item in page.get("Contents", []):
                if _staged_at_ms(item["Key"], item["LastModified"]) < cutoff:
                    self._quietly(self.client.delete_object, Bucket=self.bucket, Key=item["Key"])
                    removed += 1
        return removed

    def _quietly(self, fn: Any, **kwargs: Any) -> None:
        try:
            fn(**kwargs)
        except self._errors:
            pass

    # --- objects of any name (exports) -----------------------------------------------------
    def object_writer(self, name: str) -> S3ObjectWriter:
        """A streaming writer of the object ``name`` (no prefix, any key S3 accepts): a
        multipart upload once more than one part is written."""
        return S3ObjectWriter(self, name)

    def copy(self, source: str, target: str, size: int) -> None:
        """Copy object ``source`` to ``target`` inside the bucket (in parts past 5 GiB)."""
        src = {"Bucket": self.bucket, "Key": source}
        if size <= SINGLE_COPY_MAX_BYTES:
            self.client.copy_object(Bucket=self.bucket, Key=target, CopySource=src)
            return
        part = max(COPY_PART_BYTES, -(-size // MAX_PARTS_COUNT))
        upload = _Multipart(self, target)
        try:
            for number, offset in enumerate(range(0, size, part), start=1):
                last = min(offset + part, size) - 1
                got = self.client.upload_part_copy(
                    Bucket=self.bucket, Key=target, UploadId=upload.upload_id, PartNumber=number,
                    CopySource=src, CopySourceRange=f"bytes={offset}-{last}",
                )
                upload.parts.append({"PartNumber": number, "ETag": got["CopyPartResult"]["ETag"]})
            upload.complete()
        except BaseException:
            upload.abort()
            raise


def _ms(when: datetime.datetime) -> float:
    return when.timestamp() * 1000


def _staged_at_ms(name: str, listed: datetime.datetime) -> float:
    """When a staged write began: from its name (``<ms since the epoch>-<random>``, written by
    this module; not every S3 implementation reports an upload's real initiation time), else
    the time S3 lists."""
    stamp = name.rsplit("/", 1)[-1].split("-", 1)[0]
    return float(stamp) if stamp.isdigit() else _ms(listed)


class _EmptyReader:
    def __iter__(self) -> Iterator[bytes]:
        return iter(())

    def close(self) -> None:
        pass


class _S3Reader:
    """A GetObject body, read in chunks (``skip``/``left``: cut a range out of it)."""

    def __init__(self, body: Any, skip: int = 0, left: int | None = None) -> None:
        self._body = body
        self._skip = skip
        self._left = left

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._body.iter_chunks(READ_CHUNK_BYTES):
                if self._skip:
                    cut = min(self._skip, len(chunk))
                    chunk, self._skip = chunk[cut:], self._skip - cut
                if self._left is not None:
                    chunk = chunk[: self._left]
                    self._left -= len(chunk)
                if chunk:
                    yield chunk
                if self._left == 0:
                    return
        finally:
            self.close()

    def close(self) -> None:
        self._body.close()


class _Multipart:
    """One multipart upload to ``name``: parts in order, then complete or abort."""

    def __init__(self, store: S3BlobStore, name: str) -> None:
        self.store = store
        self.name = name
        self.parts: list[dict[str, Any]] = []
        try:
            got = store.client.create_multipart_upload(Bucket=store.bucket, Key=name)
        except store._errors as exc:
            raise store._failure("CreateMultipartUpload", name, exc) from None
        self.upload_id: str = got["UploadId"]

    def put(self, data: bytes) -> None:
        number = len(self.parts) + 1
        if number > MAX_PARTS_COUNT:
            raise S3StorageError(
                f"s3://{self.store.bucket}/{self.name} would need more than {MAX_PARTS_COUNT} parts of "
                f"{self.store.part_size} bytes: raise S3_PART_SIZE_BYTES",
                code="BlobStoreRequestFailed",
            )
        try:
            got = self.store.client.upload_part(
                Bucket=self.store.bucket, Key=self.name, UploadId=self.upload_id, PartNumber=number, Body=data
            )
        except self.store._errors as exc:
            raise self.store._failure("UploadPart", self.name, exc) from None
        self.parts.append({"PartNumber": number, "ETag": got["ETag"]})

    def complete(self) -> None:
        try:
            self.store.client.complete_multipart_upload(
                Bucket=self.store.bucket, Key=self.name, UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts},
            )
        except self.store._errors as exc:
            raise self.store._failure("CompleteMultipartUpload", self.name, exc) from None

    def abort(self) -> None:
        self.store._quietly(
            self.store.client.abort_multipart_upload, Bucket=self.store.bucket, Key=self.name, UploadId=self.upload_id
        )


class S3ObjectWriter:
    """Streams one object: bytes are buffered up to one part; past that, each full part is
    uploaded as it fills. ``close()`` publishes the object (one PutObject, or completing the
    multipart upload); ``abort()`` drops it. Also a minimal binary file (``write``)."""

    def __init__(self, store: S3BlobStore, name: str) -> None:
        self.store = store
        self.name = name
        self._buf = bytearray()
        self._upload: _Multipart | None = None
        self._hash = hashlib.sha256()
        self._size = 0
        self._open = True

    @property
    def size(self) -> int:
        return self._size

    @property
    def multipart(self) -> bool:
        return self._upload is not None

    def sha256(self) -> bytes:
        return self._hash.digest()

    def write(self, chunk: bytes | bytearray | memoryview) -> int:
        if not self._open:
            raise ConvectionError("write to a finished blob writer", code="BlobWriterClosed")
        data = bytes(chunk)
        self._hash.update(data)
        self._size += len(data)
        self._buf += data
        part = self.store.part_size
        while len(self._buf) >= part:
            if self._upload is None:
                self._upload = _Multipart(self.store, self.name)
            piece = bytes(self._buf[:part])
            del self._buf[:part]
            self._upload.put(piece)
        return len(data)

    def close(self) -> None:
        """Publish the object (after this, the writer is finished)."""
        if not self._open:
            raise ConvectionError("commit of a finished blob writer", code="BlobWriterClosed")
        self._open = False
        upload, self._upload = self._upload, None
        try:
            if upload is None:
                self.store.client.put_object(Bucket=self.store.bucket, Key=self.name, Body=bytes(self._buf))
            else:
                if self._buf:
                    upload.put(bytes(self._buf))
                upload.complete()
        except BaseException as exc:
            if upload is not None:
                upload.abort()
            if isinstance(exc, self.store._errors):
                raise self.store._failure("PutObject", self.name, exc) from None
            raise
        finally:
            self._buf = bytearray()

    def abort(self) -> None:
        if not self._open:
            return
        self._open = False
        self._buf = bytearray()
        upload, self._upload = self._upload, None
        if upload is not None:
            upload.abort()

    # file-object shape, for zipfile and shutil
    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        pass


class _S3Writer:
    """A blob writer: an :class:`S3ObjectWriter` to a staging object, published under its key
    at commit (see the module docstring)."""

    def __init__(self, store: S3BlobStore) -> None:
        self._store = store
        staging = f"{store.prefix}{STAGING}{int(time.time() * 1000)}-{secrets.token_hex(8)}"
        self._out = S3ObjectWriter(store, staging)
        self._done = False

    @property
    def size(self) -> int:
        return self._out.size

    def sha256(self) -> bytes:
        return self._out.sha256()

    def write(self, chunk: bytes) -> None:
        if self._done:
            raise ConvectionError("write to a finished blob writer", code="BlobWriterClosed")
        self._out.write(chunk)

    def commit(self, key: str) -> BlobInfo:
        store = self._store
        target = store.object_key(key)
        if self._done:
            raise ConvectionError("commit of a finished blob writer", code="BlobWriterClosed")
        self._done = True
        out = self._out
        if not out.multipart:  # one part at most: straight to its key
            out.name = target
            out.close()
            return BlobInfo(key, out.size, out.sha256())
        out.close()  # the staging object is complete
        try:
            store.copy(out.name, target, out.size)
        except store._errors as exc:
            raise store._failure("CopyObject", target, exc) from None
        finally:
            store._quietly(store.client.delete_object, Bucket=store.bucket, Key=out.name)
        return BlobInfo(key, out.size, out.sha256())

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._out.abort()


# --- exports -------------------------------------------------------------------------------


class S3Destination:
    """Where an export goes: ``s3://bucket/key`` (a URL without a key, or ending in ``/``,
    gets ``default_name`` appended). Building one checks the bucket, so a bad URL or missing
    credentials fail before the export is made."""

    def __init__(self, url: str, default_name: str, settings: S3Settings | None = None) -> None:
        location = S3Location.parse(url)
        name = url[len("s3://"):].partition("/")[2]
        if not name or name.endswith("/"):
            name += default_name
        self.name = name
        self.url = f"s3://{location.bucket}/{name}"
        self.store = S3BlobStore(S3Location(location.bucket), settings or S3Settings.from_env())
        self.store.check()

    def upload(self, source: Path) -> None:
        """Stream the local file ``source`` to the object, in parts. Blocking."""
        out = self.store.object_writer(self.name)
        try:
            with source.open("rb") as f:
                for chunk in chunks_of(f):
                    out.write(chunk)
            out.close()
        except BaseException:
            out.abort()
            raise
