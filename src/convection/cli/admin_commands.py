"""``convection data | import | export | env | logs | deploy`` (docs/cli.md).

Every command talks to a deployment through a :class:`Target`: :class:`RemoteTarget` calls
the admin HTTP API of a running backend (``--url URL --admin-key KEY``, also read from
``CONVECTION_URL`` / ``CONVECTION_ADMIN_KEY``, or found as the server that owns the project's
data directory); :class:`LocalTarget` opens the local project's deployment in-process
(``--functions convex --data .convection``) while this process holds the data directory's
lock (``cli/connect.py``), and calls the same :class:`~convection.application.admin.Admin`
operations with an admin identity. ``logs`` and ``deploy`` need a running backend.

Results go to stdout, messages and errors to stderr; every failure says what went wrong and
what to do, and exits non-zero (1: the operation failed, 2: bad usage).
"""

from __future__ import annotations

import contextlib
import datetime
import io
import os
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Protocol

import orjson
import typer
from rich.console import Console
from rich.table import Table

from convection.cli.connect import CliFailure, connect, err, reporting
from convection.cli.progress import ExportProgress, ImportProgress, StreamImportProgress, rate, size
from convection.cli.style import Command, Group

UrlOpt = Annotated[
    str | None,
    typer.Option("--url", envvar="CONVECTION_URL", help="A running backend (else: the local project in-process)."),
]
KeyOpt = Annotated[
    str | None,
    typer.Option("--admin-key", envvar="CONVECTION_ADMIN_KEY", help="Admin key for --url (`convection admin-key`)."),
]
FunctionsOpt = Annotated[Path, typer.Option("--functions", help="The local functions folder.")]
DataOpt = Annotated[
    Path | None, typer.Option("--data", help="Local data directory (default: .convection beside the functions folder).")
]

Progress = Callable[[str, int, int], None]


_reporting = reporting

# --- targets -------------------------------------------------------------------------------------


class Target(Protocol):
    def tables(self) -> list[dict[str, Any]]: ...
    def documents(self, table: str, cursor: str | None, limit: int) -> dict[str, Any]: ...
    def export(self, out: Path, include_file_storage: bool, progress: ExportProgress) -> dict[str, Any]: ...
    def import_(self, data: bytes, *, fmt: str, table: str | None, mode: str, source: str,
                progress: Progress) -> dict[str, Any]: ...
    def stream_import(self, path: Path, *, fmt: str, table: str, mode: str,
                      progress: StreamImportProgress) -> dict[str, Any]: ...
    def env_list(self) -> dict[str, str]: ...
    def env_get(self, name: str) -> str | None: ...
    def env_set(self, name: str, value: str) -> bool: ...
    def env_remove(self, name: str) -> bool: ...


def _parts(path: Path) -> Iterator[bytes]:
    from convection import knobs

    with path.open("rb") as f:
        while part := f.read(max(1, knobs.IMPORT_PART_MAX_BYTES)):
            yield part


class RemoteTarget:
    """The admin HTTP API of a running backend."""

    def __init__(self, url: str, admin_key: str) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.client = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Convex {admin_key}"},
            timeout=httpx.Timeout(60.0, read=None),
        )

    def close(self) -> None:
        self.client.close()

    def _fail(self, status: int, body: bytes) -> CliFailure:
        try:
            data = orjson.loads(body)
            code, message = data.get("code", "Error"), data.get("message", "")
        except (orjson.JSONDecodeError, AttributeError):
            code, message = "HttpError", body.decode(errors="replace")[:500]
        hint = ""
        if status == 401:
            hint = "Check --admin-key: print the deployment's key with `convection admin-key --data <its data dir>`."
        elif status == 404 and code not in ("TableNotFound", "EnvVarNotFound"):
            hint = f"Is {self.url} a convection backend? (`GET {self.url}/version` should answer)"
        return CliFailure(f"{message} ({code}, HTTP {status})", hint)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            r = self.client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise CliFailure(
                f"Could not reach {self.url}: {exc}",
                "Is the backend running? Start it with `convection serve` (or `convection dev`) and check --url.",
            ) from None
        if r.status_code != 200:
            raise self._fail(r.status_code, r.content)
        return r

    def tables(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/api/admin/tables").json()["tables"])

    def documents(self, table: str, cursor: str | None, limit: int) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        return dict(self.request("GET", f"/api/admin/tables/{_q(table)}/documents", params=params).json())

    def export(self, out: Path, include_file_storage: bool, progress: ExportProgress) -> dict[str, Any]:
        import httpx

        tmp = out.with_name(out.name + ".part")
        try:
            params = {"includeFileStorage": "1"} if include_file_storage else {}
            with self.client.stream("POST", "/api/admin/export", params=params) as r:
                if r.status_code != 200:
                    raise self._fail(r.status_code, r.read())
                with tmp.open("wb") as f:
                    for chunk in r.iter_bytes():
                        f.write(chunk)
                        progress.advance(len(chunk))
                ts = int(r.headers.get("convection-snapshot-ts", "0"))
        except httpx.TransportError as exc:
            tmp.unlink(missing_ok=True)
            raise CliFailure(f"Could not reach {self.url}: {exc}", "Is the backend running?") from None
        os.replace(tmp, out)
        tables = _zip_counts(out)
        return {"ts": ts, "tables": {n: c for n, c in tables.items() if not n.startswith("_")}, "files": tables.get("_storage", 0)}

    def import_(self, data: bytes, *, fmt: str, table: str | None, mode: str, source: str,
                progress: Progress) -> dict[str, Any]:
        import httpx

        params = {"format": fmt, "mode": mode, "stream": "1", "filename": source}
        if table is not None:
            params["table"] = table
        try:
            with self.client.stream("POST", "/api/admin/import", params=params, content=data) as r:
                if r.status_code != 200:
                    raise self._fail(r.status_code, r.read())
                result: dict[str, Any] | None = None
                for line in r.iter_lines():
                    if not line.strip():
                        continue
                    item = orjson.loads(line)
                    if "progress" in item:
                        p = item["progress"]
                        if p["table"]:
                            progress(p["table"], p["done"], p["total"])
                    elif "error" in item:
                        e = item["error"]
                        raise CliFailure(f"{e.get('message')} ({e.get('code')})")
                    elif "result" in item:
                        result = item["result"]
        except httpx.TransportError as exc:
            raise CliFailure(f"The connection to {self.url} failed during the import: {exc}",
                             "Check with `convection data` what was imported.") from None
        if result is None:
            raise CliFailure("The backend ended the import without a result", "Check with `convection data` what was imported.")
        return result

    def stream_import(self, path: Path, *, fmt: str, table: str, mode: str,
                      progress: StreamImportProgress) -> dict[str, Any]:
        """Open an import session, send the file in numbered parts, finish it
        (application/bulk_import.py). A part whose answer was lost is sent once more (the
        backend answers a repeat of the last part without writing it again). On a failure
        or Ctrl-C the session is aborted, which undoes what it wrote."""
        import httpx

        params = {"format": fmt, "mode": mode, "table": table, "filename": path.name}
        session = self.request("POST", "/api/admin/import/stream", params=params).json()["importId"]
        base = f"/api/admin/import/stream/{session}"
        finished = False
        try:
            for number, part in enumerate(_parts(path)):
                for attempt in (0, 1):
                    try:
                        r = self.client.post(base, params={"part": number}, content=part)
                        break
                    except httpx.TransportError as exc:
                        if attempt:
                            raise CliFailure(
                                f"The connection to {self.url} failed during the import: {exc}",
                                "The backend undoes the import when it hears nothing for IMPORT_SESSION_IDLE_MS; "
                                "check with `convection data`, then import again.",
                            ) from None
                if r.status_code != 200:
                    finished = True  # the backend undid it already
                    raise self._fail(r.status_code, r.content)
                reply = r.json()
                progress.report(reply["documents"], reply["bytes"])
            result = self.request("POST", f"{base}/finish").json()
            finished = True
            return dict(result)
        finally:
            if not finished:
                with contextlib.suppress(Exception):
                    self.client.delete(base)

    def env_list(self) -> dict[str, str]:
        return dict(self.request("GET", "/api/admin/env").json()["env"])

    def env_get(self, name: str) -> str | None:
        import httpx

        try:
            r = self.client.get(f"/api/admin/env/{_q(name)}")
        except httpx.TransportError as exc:
            raise CliFailure(f"Could not reach {self.url}: {exc}", "Is the backend running?") from None
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise self._fail(r.status_code, r.content)
        return str(r.json()["value"])

    def env_set(self, name: str, value: str) -> bool:
        return bool(self.request("POST", f"/api/admin/env/{_q(name)}", json={"value": value}).json()["updated"])

    def env_remove(self, name: str) -> bool:
        return bool(self.request("DELETE", f"/api/admin/env/{_q(name)}").json()["removed"])


def _q(segment: str) -> str:
    from urllib.parse import quote

    return quote(segment, safe="")


class LocalTarget:
    """The local project's deployment, opened in-process."""

    def __init__(self, functions: Path, data: Path | None) -> None:
        from convection.functions.identity import Identity
        from convection.server.compose import open_deployment

        self.deployment = open_deployment(functions, data)
        assert self.deployment.admin is not None
        self.admin = self.deployment.admin
        self.identity = Identity(kind="admin")

    def close(self) -> None:
        self.deployment.close()

    def tables(self) -> list[dict[str, Any]]:
        return self.admin.list_tables(self.identity)

    def documents(self, table: str, cursor: str | None, limit: int) -> dict[str, Any]:
        return self.admin.documents(self.identity, table, cursor=cursor, limit=limit)

    def export(self, out: Path, include_file_storage: bool, progress: ExportProgress) -> dict[str, Any]:
        tmp = out.with_name(out.name + ".part")
        try:
            with tmp.open("wb") as f:
                summary = self.admin.export_snapshot(self.identity, progress.wrap(f), include_file_storage=include_file_storage)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, out)
        return summary

    def import_(self, data: bytes, *, fmt: str, table: str | None, mode: str, source: str,
                progress: Progress) -> dict[str, Any]:
        return self.admin.import_data(
            self.identity, data, fmt=fmt, table=table, mode=mode, source=source, progress=progress,  # type: ignore[arg-type]
        )

    def stream_import(self, path: Path, *, fmt: str, table: str, mode: str,
                      progress: StreamImportProgress) -> dict[str, Any]:
        stream = self.admin.stream_import(
            self.identity, fmt=fmt, table=table, mode=mode, source=path.name,
            progress=lambda _table, documents, done: progress.report(documents, done),
        )
        try:
            for part in _parts(path):
                stream.feed(part)  # on a failure it undoes itself
                progress.report(stream.imported + stream.pending(), stream.parser.consumed)
            return stream.finish()
        except BaseException:
            stream.abort()  # Ctrl-C between parts (no-op once it ended)
            raise

    def env_list(self) -> dict[str, str]:
        return self.admin.env_list(self.identity)

    def env_get(self, name: str) -> str | None:
        return self.admin.env_get(self.identity, name)

    def env_set(self, name: str, value: str) -> bool:
        return self.admin.env_set(self.identity, name, value)

    def env_remove(self, name: str) -> bool:
        return self.admin.env_remove(self.identity, name)


class EnvTarget(Protocol):
    def env_list(self) -> dict[str, str]: ...
    def env_get(self, name: str) -> str | None: ...
    def env_set(self, name: str, value: str) -> bool: ...
    def env_remove(self, name: str) -> bool: ...


class LocalEnvTarget:
    """The local project's deployment variables, in-process, from its database alone: no
    module is imported, so a variable that a module needs at import time can be set while the
    module cannot load without it."""

    def __init__(self, data_dir: Path) -> None:
        from convection.server.compose import open_database

        self.db = open_database(data_dir)

    def close(self) -> None:
        self.db.close()

    def env_list(self) -> dict[str, str]:
        from convection.application.admin import stored_env

        return stored_env(self.db)

    def env_get(self, name: str) -> str | None:
        from convection.application.admin import check_env_name

        return self.env_list().get(check_env_name(name))

    def env_set(self, name: str, value: str) -> bool:
        from convection.application.admin import check_env_name, check_env_value, write_env

        return write_env(self.db, check_env_name(name), check_env_value(name, value))

    def env_remove(self, name: str) -> bool:
        from convection.application.admin import check_env_name, write_env

        return write_env(self.db, check_env_name(name), None)


def _remote(url: str | None, admin_key: str | None, command: str, *,
            functions: Path | None = None, data: Path | None = None) -> RemoteTarget:
    """``--url``; else (given ``functions``) the server that owns the project's data directory."""
    if url is None and functions is not None:
        from convection import knobs
        from convection.cli.connect import data_dir_of
        from convection.server.owner import read_info, running_server

        server = running_server(read_info(data_dir_of(functions, data)),
                                timeout_s=knobs.CLI_SERVER_PROBE_TIMEOUT_MS / 1000)
        if server is not None and server.url is not None and server.admin_key is not None:
            return RemoteTarget(server.url, server.admin_key)
    if url is None:
        raise CliFailure(
            f"`convection {command}` needs a running backend: start `convection dev` (or `serve`) "
            "in the project, or pass --url URL --admin-key KEY",
            "Or set CONVECTION_URL and CONVECTION_ADMIN_KEY.",
            exit_code=2,
        )
    if not admin_key:
        raise CliFailure(
            f"--admin-key is required with --url {url}",
            "Print the key with `convection admin-key --data <data dir>` where the backend runs, "
            "or set CONVECTION_ADMIN_KEY.",
            exit_code=2,
        )
    return RemoteTarget(url, admin_key)


@contextmanager
def _target(url: str | None, admin_key: str | None, functions: Path, data: Path | None) -> Iterator[Target]:
    """The running backend (``--url``, or the server owning the data directory), else the
    local project in-process while this process holds its data directory (cli/connect.py)."""
    with connect(url, admin_key, functions, data) as conn:
        target: RemoteTarget | LocalTarget
        if conn.url is not None and conn.admin_key is not None:
            target = RemoteTarget(conn.url, conn.admin_key)
        else:
            target = LocalTarget(conn.functions, conn.data_dir)
        try:
            yield target
        finally:
            target.close()


@contextmanager
def _env_target(url: str | None, admin_key: str | None, functions: Path, data: Path | None) -> Iterator[EnvTarget]:
    """As :func:`_target`, but in-process it opens only the database (:class:`LocalEnvTarget`)."""
    with connect(url, admin_key, functions, data) as conn:
        target: RemoteTarget | LocalEnvTarget
        if conn.url is not None and conn.admin_key is not None:
            target = RemoteTarget(conn.url, conn.admin_key)
        else:
            target = LocalEnvTarget(conn.data_dir)
        try:
            yield target
        finally:
            target.close()


def _zip_counts(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            parts = info.filename.split("/")
            if len(parts) == 2 and parts[1] == "documents.jsonl":
                counts[parts[0]] = zf.read(info).count(b"\n")
    return counts


def _stdout() -> Console:
    out = Console(highlight=False)
    if not out.is_terminal:
        out = Console(highlight=False, width=200)
    return out


# --- data ----------------------------------------------------------------------------------------


def _show(value: Any, top: bool = True) -> str:
    """A compact, JS-like rendering: int64 ``5n``, floats ``1.5``/``NaN``, bytes ``<n bytes>``."""
    import math

    from convection.values.model import Int64

    if isinstance(value, bool) or value is None:
        return orjson.dumps(value).decode()
    if isinstance(value, Int64):
        return f"{int(value)}n"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 and str(value) != "-0.0" else repr(value)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, str):
        return value if top else orjson.dumps(value).decode()
    if isinstance(value, list):
        return "[" + ", ".join(_show(v, False) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v, False)}" for k, v in value.items()) + "}"
    return repr(value)


def _cell(value: Any, width: int = 60) -> str:
    from convection.values.json import from_convex_json

    text = _show(from_convex_json(value))
    return text if len(text) <= width else text[: width - 1] + "…"


def data(
    table: Annotated[str | None, typer.Argument(help="A table to list documents of (none: list tables).")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Documents per page.")] = 20,
    cursor: Annotated[str | None, typer.Option("--cursor", help="Continue from a previous page.")] = None,
    url: UrlOpt = None,
    admin_key: KeyOpt = None,
    functions: FunctionsOpt = Path("convex"),
    data_dir: DataOpt = None,
) -> None:
    """List tables with their document counts, or one page of a table's documents (newest first)."""
    with _reporting(), _target(url, admin_key, functions, data_dir) as target:
        out = _stdout()
        if table is None:
            tables = target.tables()
            if not tables:
                err.print("No tables yet. Insert documents from a mutation or with `convection import`.")
                return
            grid = Table("table", "documents")
            for t in tables:
                grid.add_row(t["name"], str(t["count"]))
            out.print(grid)
            return
        page = target.documents(table, cursor, limit)
        docs: list[dict[str, Any]] = page["page"]
        if not docs:
            err.print(f"Table {table!r} has no documents" + (" after this cursor." if cursor else "."))
            return
        user_fields = sorted({k for d in docs for k in d if k not in ("_id", "_creationTime")})
        fields = ["_id", *user_fields, "_creationTime"]
        grid = Table(*fields)
        for d in docs:
            row = []
            for f in fields:
                if f not in d:
                    row.append("")
                elif f == "_creationTime" and isinstance(d[f], float | int):
                    row.append(datetime.datetime.fromtimestamp(d[f] / 1000).isoformat(sep=" ", timespec="milliseconds"))
                else:
                    row.append(_cell(d[f]))
            grid.add_row(*row)
        out.print(grid)
        if not page["isDone"]:
            more = f"convection data {table} --limit {limit} --cursor {page['continueCursor']}"
            err.print(f"More documents: {more}", markup=False)


# --- import / export -----------------------------------------------------------------------------


def import_(
    path: Annotated[Path, typer.Argument(help="The file: .jsonl, .json (an array), .csv or a .zip snapshot.")],
    table: Annotated[str | None, typer.Option("--table", help="Target table (default: the file name; a ZIP: its tables).")] = None,
    append: Annotated[bool, typer.Option("--append", help="Add to the documents already in the table.")] = False,
    replace: Annotated[bool, typer.Option("--replace", help="Delete the table's documents first.")] = False,
    fmt: Annotated[str | None, typer.Option("--format", help="jsonl, json, csv or zip (default: from the extension).")] = None,
    url: UrlOpt = None,
    admin_key: KeyOpt = None,
    functions: FunctionsOpt = Path("convex"),
    data_dir: DataOpt = None,
) -> None:
    """Import documents into a table (or a ZIP snapshot into its tables)."""
    from convection.application.admin import IMPORT_FORMATS, detect_format
    from convection.application.bulk_import import STREAM_FORMATS

    with _reporting():
        if append and replace:
            raise CliFailure("--append and --replace exclude each other", "Pick one.", exit_code=2)
        if not path.is_file():
            raise CliFailure(f"No file at {path}", "Check the path.", exit_code=2)
        kind = fmt or detect_format(path.name)
        if kind not in IMPORT_FORMATS:
            raise CliFailure(
                f"Cannot tell the format of {path.name}" if fmt is None else f"Unknown format {fmt!r}",
                f"Pass --format with one of {', '.join(IMPORT_FORMATS)}.",
                exit_code=2,
            )
        if table is None and kind != "zip":
            table = path.name.split(".")[0]
            err.print(f"Importing into table [bold]{table}[/bold] (from the file name; use --table to choose)")
        mode = "append" if append else "replace" if replace else "create"
        if kind in STREAM_FORMATS and table is not None:
            _stream_import(path, kind, table, mode, url, admin_key, functions, data_dir)
            return
        payload = path.read_bytes()
        progress = ImportProgress()
        try:
            with _target(url, admin_key, functions, data_dir) as target:
                result = target.import_(payload, fmt=kind, table=table, mode=mode, source=path.name, progress=progress)
        finally:
            progress.stop()
        elapsed = progress.elapsed_s()
        for t in result["tables"]:
            ids = "kept their ids" if t["keptIds"] == t["imported"] and t["imported"] else (
                f"{t['keptIds']} kept their ids" if t["keptIds"] else "new ids"
            )
            deleted = f", {t['deleted']} deleted first" if t["deleted"] else ""
            err.print(f"[green]✔[/green] {t['table']}: {t['imported']} documents imported ({ids}{deleted})")
        total = sum(t["imported"] for t in result["tables"])
        err.print(f"  {total} documents {rate(total, elapsed, 'docs/s')}", style="dim")


def _stream_import(path: Path, kind: str, table: str, mode: str, url: str | None, admin_key: str | None,
                   functions: Path, data_dir: Path | None) -> None:
    """JSONL and CSV: streamed in parts (application/bulk_import.py), any size."""
    progress = StreamImportProgress(table, path.stat().st_size)
    try:
        with _target(url, admin_key, functions, data_dir) as target:
            result = target.stream_import(path, fmt=kind, table=table, mode=mode, progress=progress)
    finally:
        progress.stop()
    t = result["tables"][0]
    ids = "kept their ids" if t["keptIds"] == t["imported"] and t["imported"] else (
        f"{t['keptIds']} kept their ids" if t["keptIds"] else "new ids"
    )
    deleted = f", {t['deleted']} deleted first" if t["deleted"] else ""
    err.print(f"[green]✔[/green] {t['table']}: {t['imported']} documents imported ({ids}{deleted})")
    err.print(f"  {t['imported']} documents {rate(t['imported'], progress.elapsed_s(), 'docs/s')}", style="dim")


def export(
    path: Annotated[
        str | None, typer.Option("--path", help="The ZIP file to write (or a folder for it), or s3://bucket/key.zip.")
    ] = None,
    include_file_storage: Annotated[
        bool, typer.Option("--include-file-storage", help="Also export the stored files (_storage/).")
    ] = False,
    url: UrlOpt = None,
    admin_key: KeyOpt = None,
    functions: FunctionsOpt = Path("convex"),
    data_dir: DataOpt = None,
) -> None:
    """Export every table at one point in time as a ZIP snapshot."""
    with _reporting():
        name = f"snapshot_{time.strftime('%Y%m%d_%H%M%S')}.zip"
        if path is not None and path.startswith("s3://"):
            _export_to_s3(path, name, include_file_storage, url, admin_key, functions, data_dir)
            return
        out = Path(name) if path is None else Path(path) / name if Path(path).is_dir() else Path(path)
        if not out.parent.is_dir():
            raise CliFailure(f"No folder {out.parent} to write {out.name} into", "Create it or pass another --path.", exit_code=2)
        with _target(url, admin_key, functions, data_dir) as target:
            progress = ExportProgress(out.name)
            try:
                summary = target.export(out, include_file_storage, progress)
            finally:
                progress.stop()
        total = sum(summary["tables"].values())
        files = f", {summary.get('files', 0)} files" if include_file_storage else ""
        err.print(
            f"[green]✔[/green] exported {len(summary['tables'])} tables, {total} documents{files} to [bold]{out}[/bold]"
        )
        seconds = max(progress.elapsed_s(), 0.001)
        err.print(f"  {size(progress.bytes)} in {seconds:.1f} s, {size(int(progress.bytes / seconds))}/s", style="dim")
        print(out)


def _export_to_s3(dest: str, name: str, include_file_storage: bool, url: str | None, admin_key: str | None,
                  functions: Path, data_dir: Path | None) -> None:
    """Export to a local temporary file, then stream it to S3 in parts (files/s3.py; endpoint
    and credentials as for ``serve --storage s3://``, checked first)."""
    import tempfile

    from convection.files.s3 import S3Destination

    destination = S3Destination(dest, name)
    with tempfile.TemporaryDirectory(prefix="convection-export-") as tmp:
        local = Path(tmp) / name
        with _target(url, admin_key, functions, data_dir) as target:
            progress = ExportProgress(name)
            try:
                summary = target.export(local, include_file_storage, progress)
            finally:
                progress.stop()
        destination.upload(local)
    total = sum(summary["tables"].values())
    files = f", {summary.get('files', 0)} files" if include_file_storage else ""
    err.print(f"[green]✔[/green] exported {len(summary['tables'])} tables, {total} documents{files} to [bold]{destination.url}[/bold]")
    print(destination.url)


# --- env -----------------------------------------------------------------------------------------

env_cli = typer.Typer(
    name="env",
    help="Deployment environment variables (functions read them as os.environ).",
    no_args_is_help=True,
    cls=Group,
)


@env_cli.command("list", cls=Command)
def env_list(url: UrlOpt = None, admin_key: KeyOpt = None, functions: FunctionsOpt = Path("convex"),
             data_dir: DataOpt = None) -> None:
    """Print every variable as NAME=VALUE."""
    with _reporting(), _env_target(url, admin_key, functions, data_dir) as target:
        env = target.env_list()
        if not env:
            err.print("No environment variables set. Add one with `convection env set NAME VALUE`.")
        for name, value in env.items():
            print(f"{name}={value}")


@env_cli.command("get", cls=Command)
def env_get(name: Annotated[str, typer.Argument(help="Variable name.")], url: UrlOpt = None,
            admin_key: KeyOpt = None, functions: FunctionsOpt = Path("convex"), data_dir: DataOpt = None) -> None:
    """Print one variable's value."""
    with _reporting(), _env_target(url, admin_key, functions, data_dir) as target:
        value = target.env_get(name)
        if value is None:
            raise CliFailure(f"Environment variable {name} is not set", "List them with `convection env list`.")
        print(value)


@env_cli.command("set", cls=Command)
def env_set(name: Annotated[str, typer.Argument(help="Variable name.")],
            value: Annotated[str, typer.Argument(help="Its value.")], url: UrlOpt = None,
            admin_key: KeyOpt = None, functions: FunctionsOpt = Path("convex"), data_dir: DataOpt = None) -> None:
    """Set a variable (functions see it at once)."""
    with _reporting(), _env_target(url, admin_key, functions, data_dir) as target:
        updated = target.env_set(name, value)
        err.print(f"[green]✔[/green] {'updated' if updated else 'set'} {name}")


@env_cli.command("remove", cls=Command)
def env_remove(name: Annotated[str, typer.Argument(help="Variable name.")], url: UrlOpt = None,
               admin_key: KeyOpt = None, functions: FunctionsOpt = Path("convex"), data_dir: DataOpt = None) -> None:
    """Remove a variable."""
    with _reporting(), _env_target(url, admin_key, functions, data_dir) as target:
        removed = target.env_remove(name)
        err.print(f"[green]✔[/green] removed {name}" if removed else f"{name} was not set")


# --- logs ----------------------------------------------------------------------------------------


def _print_entry(entry: dict[str, Any]) -> None:
    when = datetime.datetime.fromtimestamp(entry["ts"] / 1000).strftime("%H:%M:%S.%f")[:-3]
    kind = str(entry["kind"])[:1].upper()
    for line in entry["lines"]:
        print(f"{when} {kind} {entry['path']} {line}", flush=True)


def logs(
    history: Annotated[int, typer.Option("--history", help="Show this many recent calls' logs first.")] = 0,
    url: UrlOpt = None,
    admin_key: KeyOpt = None,
    functions: FunctionsOpt = Path("convex"),
    data_dir: DataOpt = None,
) -> None:
    """Tail function logs of a running backend: the project's server, or --url (Ctrl-C to stop)."""
    with _reporting():
        target = _remote(url, admin_key, "logs", functions=functions, data=data_dir)
        try:
            body = target.request("GET", "/api/admin/logs", params={"history": history}).json()
            for entry in body["entries"]:
                _print_entry(entry)
            cursor = body["cursor"]
            err.print(f"Watching logs of {target.url} (Ctrl-C to stop)")
            while True:
                body = target.request("GET", "/api/admin/logs", params={"after": cursor}).json()
                for entry in body["entries"]:
                    _print_entry(entry)
                cursor = body["cursor"]
        except KeyboardInterrupt:
            pass
        finally:
            target.close()


# --- deploy --------------------------------------------------------------------------------------

_SKIP_DIRS = {"_generated", "__pycache__", "node_modules"}


def bundle_folder(folder: Path) -> bytes:
    """A ZIP of a functions folder, paths relative to it, without ``_generated/``,
    ``__pycache__/``, ``node_modules/``, dotfiles and compiled files."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
            for name in sorted(files):
                if name.startswith(".") or name.endswith((".pyc", ".pyo")):
                    continue
                full = Path(root) / name
                zf.write(full, full.relative_to(folder).as_posix())
    return buf.getvalue()


def deploy(
    url: UrlOpt = None,
    admin_key: KeyOpt = None,
    functions: FunctionsOpt = Path("convex"),
) -> None:
    """Push the functions folder to a running backend (schema check, index backfill, code swap)."""
    with _reporting():
        target = _remote(url, admin_key, "deploy")
        try:
            if not functions.is_dir():
                raise CliFailure(f"No functions folder at {functions}", "Pass --functions DIR.", exit_code=2)
            bundle = bundle_folder(functions)
            err.print(f"Deploying {functions} ({len(bundle)} bytes) to {target.url} …")
            try:
                summary = target.request(
                    "POST", "/api/admin/deploy", content=bundle, headers={"Content-Type": "application/zip"}
                ).json()
            except CliFailure as exc:
                exc.hint = exc.hint or "Nothing changed: the previous code keeps serving. Fix the error and deploy again."
                raise
        finally:
            target.close()
        n = len(summary["functions"])
        err.print(f"[green]✔ deployed[/green] {n} functions (version {summary['version']}) to {target.url}")
        for f in summary["functions"]:
            print(f"{f['kind']:<8} {f['visibility']:<8} {f['path']}")


def register(cli: typer.Typer) -> None:
    """Add these commands to the ``convection`` app."""
    cli.command("data", cls=Command)(data)
    cli.command("import", cls=Command)(import_)
    cli.command("export", cls=Command)(export)
    cli.add_typer(env_cli, name="env")
    cli.command("logs", cls=Command)(logs)
    cli.command("deploy", cls=Command)(deploy)
