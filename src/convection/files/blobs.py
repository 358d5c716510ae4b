"""Blob stores: where file contents live (the ``_storage`` table holds their metadata).

:class:`BlobStore` is the protocol; :class:`LocalBlobStore` keeps blobs as files under a
directory (``<data dir>/storage/``), :class:`MemoryBlobStore` in a dict (tests, an
:class:`~convection.application.app.Application` built without a data directory).

Writes go through a :class:`BlobWriter`: chunks are appended to a staging area while their
SHA-256 and size are computed, then :meth:`BlobWriter.commit` publishes the blob under its key
in one atomic step (a rename, for local files, after an ``fsync``), so a key either names a
complete blob or nothing. A writer that is never committed leaves nothing behind once
:meth:`BlobWriter.abort` runs (stale staging files are also removed by :meth:`BlobStore.sweep_staging`).

Keys are ASCII letters, digits, ``_`` and ``-`` (storage ids), 1..128 characters; anything
else raises :class:`BlobKeyError` (no path can escape the directory). Thread-safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from convection.errors import ConvectionError

READ_CHUNK_BYTES = 256 << 10
_KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")


class BlobStoreError(ConvectionError):
    """The blob store failed (a remote store's request, or it cannot be used at all); the
    ``code`` says how. The HTTP routes answer 503 with it."""

    code = "BlobStoreError"


class BlobKeyError(ConvectionError):
    """A blob key with characters outside ``[A-Za-z0-9_-]`` (or empty, or too long)."""

    code = "InvalidBlobKey"


def check_key(key: str) -> str:
    if not isinstance(key, str) or _KEY.fullmatch(key) is None:
        raise BlobKeyError(f"Invalid blob key {key!r}: use 1-128 characters of [A-Za-z0-9_-]")
    return key


@dataclass(frozen=True)
class BlobInfo:
    """What a committed write produced."""

    key: str
    size: int
    sha256: bytes


class BlobWriter(Protocol):
    """An open write: ``write`` chunks, then ``commit(key)`` or ``abort()``."""

    @property
    def size(self) -> int: ...

    def sha256(self) -> bytes:
        """The digest of everything written so far."""

    def write(self, chunk: bytes) -> None: ...

    def commit(self, key: str) -> BlobInfo:
        """Publish the blob under ``key`` (replacing a blob of that key)."""

    def abort(self) -> None:
        """Drop the staged data (a no-op after commit)."""


class BlobReader(Protocol):
    """An opened byte range of a blob: iterate for chunks, then ``close``. The data stays
    readable until closed even if the blob is deleted meanwhile."""

    def __iter__(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


BlobData = bytes | bytearray | memoryview | BinaryIO | Iterable[bytes]


class BlobStore(Protocol):
    def writer(self) -> BlobWriter: ...

    def put(self, key: str, data: BlobData) -> BlobInfo:
        """Write a whole blob (bytes, a binary file object or an iterable of chunks)."""

    def get(self, key: str) -> bytes | None: ...

    def open(self, key: str, start: int = 0, end: int | None = None) -> BlobReader | None:
        """Bytes ``[start, end)`` of the blob (``end`` None: to the end), or None if absent."""

    def size(self, key: str) -> int | None: ...

    def delete(self, key: str) -> bool:
        """Remove the blob; False if there was none."""

    def list(self) -> Iterator[tuple[str, float]]:
        """Every committed blob as ``(key, modified time in ms since the epoch)``."""

    def sweep_staging(self, older_than_ms: float) -> int:
        """Remove staged writes abandoned more than ``older_than_ms`` ago (a crash mid-upload)."""


def chunks_of(data: BlobData) -> Iterator[bytes]:
    """``data`` as a sequence of byte chunks."""
    if isinstance(data, bytes | bytearray | memoryview):
        view = memoryview(data)
        for i in range(0, len(view), READ_CHUNK_BYTES):
            yield bytes(view[i : i + READ_CHUNK_BYTES])
        return
    read = getattr(data, "read", None)
    if read is not None:
        while True:
            chunk = read(READ_CHUNK_BYTES)
            if not chunk:
                return
            yield bytes(chunk)
    for chunk in data:
        yield bytes(chunk)


def _put(store: BlobStore, key: str, data: BlobData) -> BlobInfo:
    check_key(key)
    w = store.writer()
    try:
        for chunk in chunks_of(data):
            w.write(chunk)
        return w.commit(key)
    except BaseException:
        w.abort()
        raise


def _clamp(size: int, start: int, end: int | None) -> tuple[int, int]:
    stop = size if end is None else min(end, size)
    begin = min(max(start, 0), stop)
    return begin, stop


# --- local files -------------------------------------------------------------------------------


class _FileWriter:
    def __init__(self, store: LocalBlobStore) -> None:
        self._store = store
        fd, name = tempfile.mkstemp(dir=store.staging_dir, prefix="upload-")
        self._path = Path(name)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    def sha256(self) -> bytes:
        return self._hash.digest()

    def write(self, chunk: bytes) -> None:
        if self._file is None:
            raise ConvectionError("write to a finished blob writer", code="BlobWriterClosed")
        self._file.write(chunk)
        self._hash.update(chunk)
        self._size += len(chunk)

    def commit(self, key: str) -> BlobInfo:
        target = self._store.path_of(key)
        f = self._file
        if f is None:
            raise ConvectionError("commit of a finished blob writer", code="BlobWriterClosed")
        self._file = None
        try:
            f.flush()
            os.fsync(f.fileno())
            f.close()
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._path, target)
            _fsync_dir(target.parent)
        except BaseException:
            f.close()
            with contextlib.suppress(OSError):
                self._path.unlink()
            raise
        return BlobInfo(key, self._size, self._hash.digest())

    def abort(self) -> None:
        f = self._file
        if f is None:
            return
        self._file = None
        f.close()
        with contextlib.suppress(OSError):
            self._path.unlink()


class _FileReader:
    def __init__(self, f: BinaryIO, start: int, stop: int) -> None:
        self._f = f
        self._left = stop - start
        f.seek(start)

    def __iter__(self) -> Iterator[bytes]:
        try:
            while self._left > 0:
                chunk = self._f.read(min(READ_CHUNK_BYTES, self._left))
                if not chunk:
                    return
                self._left -= len(chunk)
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        self._f.close()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class LocalBlobStore:
    """Blobs as files: ``<root>/<first two characters of the key>/<key>``; writes are staged
    in ``<root>/.staging/``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.staging_dir = self.root / ".staging"
        self.staging_dir.mkdir(parents=True, exist_ok=True)

    def path_of(self, key: str) -> Path:
        check_key(key)
        return self.root / key[:2].lower() / key

    def writer(self) -> BlobWriter:
        return _FileWriter(self)

    def put(self, key: str, data: BlobData) -> BlobInfo:
        return _put(self, key, data)

    def get(self, key: str) -> bytes | None:
        try:
            return self.path_of(key).read_bytes()
        except FileNotFoundError:
            return None

    def open(self, key: str, start: int = 0, end: int | None = None) -> BlobReader | None:
        try:
            f = self.path_of(key).open("rb")
        except FileNotFoundError:
            return None
        try:
            size = os.fstat(f.fileno()).st_size
            begin, stop = _clamp(size, start, end)
            return _FileReader(f, begin, stop)
        except BaseException:
            f.close()
            raise

    def size(self, key: str) -> int | None:
        try:
            return self.path_of(key).stat().st_size
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> bool:
        try:
            self.path_of(key).unlink()
            return True
        except FileNotFoundError:
            return False

    def list(self) -> Iterator[tuple[str, float]]:
        for shard in sorted(self.root.iterdir()):
            if not shard.is_dir() or shard == self.staging_dir:
                continue
            for entry in sorted(shard.iterdir()):
                if _KEY.fullmatch(entry.name) is None:
                    continue
                try:
                    mtime = entry.stat().st_mtime_ns / 1e6
                except FileNotFoundError:
                    continue
                yield entry.name, mtime

    def sweep_staging(self, older_than_ms: float) -> int:
        cutoff = time.time() * 1000 - older_than_ms
        removed = 0
        for entry in self.staging_dir.iterdir():
            try:
                if entry.stat().st_mtime_ns / 1e6 < cutoff:
                    entry.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


# --- memory ------------------------------------------------------------------------------------


class _MemoryWriter:
    def __init__(self, store: MemoryBlobStore) -> None:
        self._store = store
        self._buf: bytearray | None = bytearray()
        self._hash = hashlib.sha256()

    @property
    def size(self) -> int:
        return len(self._buf or b"")

    def sha256(self) -> bytes:
        return self._hash.digest()

    def write(self, chunk: bytes) -> None:
        if self._buf is None:
            raise ConvectionError("write to a finished blob writer", code="BlobWriterClosed")
        self._buf += chunk
        self._hash.update(chunk)

    def commit(self, key: str) -> BlobInfo:
        check_key(key)
        buf = self._buf
        if buf is None:
            raise ConvectionError("commit of a finished blob writer", code="BlobWriterClosed")
        self._buf = None
        data = bytes(buf)
        self._store._set(key, data)
        return BlobInfo(key, len(data), self._hash.digest())

    def abort(self) -> None:
        self._buf = None


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def __iter__(self) -> Iterator[bytes]:
        view = memoryview(self._data)
        for i in range(0, len(view), READ_CHUNK_BYTES):
            yield bytes(view[i : i + READ_CHUNK_BYTES])

    def close(self) -> None:
        pass


class MemoryBlobStore:
    """Blobs in a dict (nothing survives the process)."""

    def __init__(self) -> None:
        self._blobs: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()

    def _set(self, key: str, data: bytes) -> None:
        with self._lock:
            self._blobs[key] = (data, time.time() * 1000)

    def writer(self) -> BlobWriter:
        return _MemoryWriter(self)

    def put(self, key: str, data: BlobData) -> BlobInfo:
        return _put(self, key, data)

    def get(self, key: str) -> bytes | None:
        check_key(key)
        with self._lock:
            got = self._blobs.get(key)
        return None if got is None else got[0]

    def open(self, key: str, start: int = 0, end: int | None = None) -> BlobReader | None:
        data = self.get(key)
        if data is None:
            return None
        begin, stop = _clamp(len(data), start, end)
        return _BytesReader(data[begin:stop])

    def size(self, key: str) -> int | None:
        data = self.get(key)
        return None if data is None else len(data)

    def delete(self, key: str) -> bool:
        check_key(key)
        with self._lock:
            return self._blobs.pop(key, None) is not None

    def list(self) -> Iterator[tuple[str, float]]:
        with self._lock:
            items = sorted((k, t) for k, (_d, t) in self._blobs.items())
        yield from items

    def sweep_staging(self, older_than_ms: float) -> int:
        return 0
