"""Deployed code on disk and in the log, for ``convection deploy`` and the start of a server:
unpacking a deploy bundle safely, the functions folder materialized from ``_modules``
(model/modules.py), and moving a 0.1.0 deployment (``<data>/deployed/<n>/convex``) into the
log. Also :class:`AdminError`, the error of every refused admin operation (application/admin.py).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from convection import knobs
from convection.database.database import Database
from convection.database.transaction import SystemView
from convection.errors import ConvectionError
from convection.functions.loader import LoadedApp
from convection.model import modules

DEPLOYED_DIR = "deployed"
ACTIVE_FILE = "ACTIVE"


class AdminError(ConvectionError):
    """A refused admin operation. ``code`` says which (see docs/cli.md)."""

    code = "AdminError"


def legacy_deployed_folder(data_dir: Path) -> Path | None:
    """The functions folder a 0.1.0 ``convection deploy`` left in ``<data>/deployed/<n>/convex``
    (named by ``<data>/deployed/ACTIVE``), or None. Read once, to move it into ``_modules``."""
    marker = Path(data_dir) / DEPLOYED_DIR / ACTIVE_FILE
    try:
        version = marker.read_text().strip()
    except OSError:
        return None
    folder = marker.parent / version / "convex"
    return folder if version.isdigit() and folder.is_dir() else None


def deployed_folder(db: Database, data_dir: Path) -> Path | None:
    """The deployed functions folder (materialized from ``_modules``), or None when nothing
    was deployed. A 0.1.0 deployment is moved into ``_modules`` first."""
    modules.ensure_tables(db)
    files = modules.read_modules(db)
    if not files:
        legacy = legacy_deployed_folder(data_dir)
        if legacy is None:
            return None
        files = modules.read_folder(legacy)
        db.run_system(lambda txn: modules.write_modules(SystemView(txn), files))
    return modules.materialize(files, data_dir)


def unpack_bundle(bundle: bytes, folder: Path) -> None:
    """Extract a deploy bundle, refusing absolute paths, ``..`` and oversized contents."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(bundle))
    except zipfile.BadZipFile as exc:
        raise AdminError(f"The deploy bundle is not a ZIP file ({exc})", code="InvalidDeployBundle") from None
    folder.mkdir(parents=True)
    total = 0
    with zf:
        for info in zf.infolist():
            name = info.filename
            if name.endswith("/"):
                continue
            path = PurePosixPath(name)
            if path.is_absolute() or ".." in path.parts or "\\" in name or not path.parts:
                raise AdminError(f"The deploy bundle has an unsafe path {name!r}", code="InvalidDeployBundle")
            total += info.file_size
            if total > knobs.ADMIN_UPLOAD_MAX_BYTES:
                raise AdminError(
                    f"The deploy bundle unpacks to more than {knobs.ADMIN_UPLOAD_MAX_BYTES} bytes (ADMIN_UPLOAD_MAX_BYTES)",
                    code="UploadTooLarge",
                )
            dest = folder.joinpath(*path.parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(zf.read(info))


def deploy_summary(loaded: LoadedApp, version: str) -> dict[str, Any]:
    schema = loaded.schema
    return {
        "version": version,
        "functions": [
            {"path": f["path"], "kind": f["kind"], "visibility": f["visibility"]} for f in loaded.function_paths_json()
        ],
        "modules": list(loaded.modules),
        "tables": sorted(schema.tables) if schema is not None else [],
    }
