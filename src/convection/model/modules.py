"""The ``_modules`` system table: the deployed functions folder, one document per file.

``{path, content: bytes, sha256}``; ``path`` is the file's path inside the functions folder
(``messages.py``, ``lib/util.py``). The set of documents *is* the deployed code: ``convection
deploy`` replaces it in the same commit that makes the new schema take effect
(``application/push.py``), so code and schema change together, and every process serving the
deployment learns of a deploy by reading the log. An empty table means nothing was deployed:
``serve`` then serves its ``--functions`` folder.

Python imports modules from files, so a process *materializes* the documents into
``<data dir>/modules/<version>/convex`` (content-addressed by :func:`modules_version`, written
to a temporary folder and renamed, so a half-written folder is never used) and loads that.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from convection import knobs
from convection.database.database import Database
from convection.database.query import Query
from convection.database.transaction import SystemView
from convection.errors import ConvectionError
from convection.values.json import loads_stored

MODULES_TABLE = "_modules"
BY_PATH = "by_path"
MODULES_DIR = "modules"


def ensure_tables(db: Database) -> None:
    db.ensure_system_table(MODULES_TABLE, {BY_PATH: ("path",)})


def read_modules(db: Database) -> dict[str, bytes]:
    """The deployed files at the latest commit (empty: nothing deployed)."""
    number = db.catalog.table_number(MODULES_TABLE)
    if number is None:
        return {}
    out: dict[str, bytes] = {}
    for rev in db.persistence.table_documents(number, db.latest_ts()):
        if rev.value is not None:
            doc = loads_stored(rev.value)
            out[doc["path"]] = bytes(doc["content"])
    return out


def write_modules(system: SystemView, files: dict[str, bytes]) -> None:
    """Make ``files`` the deployed code in ``system``'s transaction (documents of removed
    files are deleted, changed ones replaced, new ones inserted)."""
    for path in files:
        check_path(path)
    current = {d["path"]: d for d in Query(system.txn, MODULES_TABLE).collect()}
    for path, doc in current.items():
        if path not in files:
            system.delete(doc["_id"])
    for path, content in files.items():
        digest = hashlib.sha256(content).hexdigest()
        fields = {"path": path, "content": content, "sha256": digest}
        old = current.get(path)
        if old is None:
            system.insert(MODULES_TABLE, fields)
        elif old["sha256"] != digest:
            system.replace(old["_id"], fields)


def check_path(path: str) -> None:
    p = PurePosixPath(path)
    if not path or p.is_absolute() or ".." in p.parts or "\\" in path:
        raise ConvectionError(f"unsafe module path {path!r}", code="InvalidDeployBundle")


def modules_version(files: dict[str, bytes]) -> str:
    """A content hash of a set of files (same files, same version)."""
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
    return h.hexdigest()[:16]


def read_folder(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (what a deploy of that folder stores)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            out[path.relative_to(folder).as_posix()] = path.read_bytes()
    return out


def prune_materialized(data_dir: Path, *, keep: Path) -> None:
    """Remove materialized versions other than the newest few (``DEPLOY_KEEP_VERSIONS_COUNT``)
    and ``keep``'s."""
    root = Path(data_dir) / MODULES_DIR
    if not root.is_dir():
        return
    versions = sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime, reverse=True,
    )
    for old in versions[max(1, knobs.DEPLOY_KEEP_VERSIONS_COUNT):]:
        if old.resolve() != keep.parent.resolve():
            shutil.rmtree(old, ignore_errors=True)


def materialize(files: dict[str, bytes], data_dir: Path) -> Path:
    """The functions folder holding ``files``: ``<data_dir>/modules/<version>/convex``, written
    once (to a temporary folder, then renamed into place)."""
    root = Path(data_dir) / MODULES_DIR
    final = root / modules_version(files)
    folder = final / "convex"
    if folder.is_dir():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=root))
    try:
        for path, content in files.items():
            check_path(path)
            dest = tmp.joinpath("convex", *PurePosixPath(path).parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(content)
        (tmp / "convex").mkdir(exist_ok=True)
        try:
            os.rename(tmp, final)
        except OSError:  # another process materialized the same version meanwhile
            if not folder.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
