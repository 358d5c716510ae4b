"""Which deployment a CLI command talks to, and how failures are reported.

``run``, ``data``, ``import``, ``export`` and ``env`` resolve their target with
:func:`connect` (docs/cli.md, "Talking to a deployment"):

1. ``--url`` (or ``CONVECTION_URL``) with ``--admin-key`` (or ``CONVECTION_ADMIN_KEY``): that
   backend, over HTTP.
2. Else, when a server owns the project's data directory (``server/owner.py``: the lock is
   held, ``owner.json`` names a live process whose URL answers ``/version``): that server, with
   the admin key it published, the way ``npx convex run`` reaches the dev deployment.
3. Else in-process on the local project, holding the data directory's lock for the duration
   of the command, so that no server can start on it meanwhile and there is never a second
   writer behind a server's back.

A directory held by a process that serves no URL (another in-process command, or a server
that does not answer) is refused with ``DataDirectoryInUse`` naming the holder.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console

err = Console(stderr=True, highlight=False, soft_wrap=True)


class CliFailure(Exception):
    """A failure to report: ``message`` (what went wrong), ``hint`` (what to do)."""

    def __init__(self, message: str, hint: str = "", exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code


def report_error(message: str, code: str | None = None) -> None:
    """``error (Code): message`` on stderr; the message is printed as text, never as markup."""
    err.print(f"error ({code}): " if code else "error: ", style="red", end="", markup=False)
    err.print(message, markup=False)


@contextmanager
def reporting() -> Iterator[None]:
    """Turn :class:`CliFailure` and ``ConvectionError`` into one message and an exit code."""
    from convection.errors import ConvectionError

    try:
        yield
    except CliFailure as exc:
        report_error(exc.message)
        if exc.hint:
            err.print(f"  {exc.hint}", style="dim", markup=False)
        raise typer.Exit(exc.exit_code) from None
    except ConvectionError as exc:
        report_error(exc.message, exc.code)
        raise typer.Exit(1) from None


def data_dir_of(functions: Path, data: Path | None) -> Path:
    """The data directory a command uses: ``--data``, else ``.convection`` beside the
    functions folder (as ``open_deployment`` resolves it)."""
    return Path(data).resolve() if data is not None else functions.resolve().parent / ".convection"


@dataclass
class Connection:
    """Where a command goes: ``url``/``admin_key`` set for a backend over HTTP, else
    in-process on ``functions``/``data_dir`` (whose lock this process holds meanwhile)."""

    functions: Path
    data_dir: Path
    url: str | None = None
    admin_key: str | None = None

    @property
    def remote(self) -> bool:
        return self.url is not None


def _no_functions(functions: Path) -> CliFailure:
    return CliFailure(
        f"No functions folder at {functions}",
        "Run this in your project (or pass --functions DIR), or use --url URL --admin-key KEY "
        "for a running backend.",
        exit_code=2,
    )


def _check_remote(url: str, admin_key: str | None) -> str:
    if not admin_key:
        raise CliFailure(
            f"--admin-key is required with --url {url}",
            "Print the key with `convection admin-key --data <data dir>` where the backend runs, "
            "or set CONVECTION_ADMIN_KEY.",
            exit_code=2,
        )
    return admin_key


@contextmanager
def connect(url: str | None, admin_key: str | None, functions: Path, data: Path | None,
            *, announce: bool = True) -> Iterator[Connection]:
    """Resolve where a command goes (module docstring) and hold the data directory while it
    runs in-process."""
    from convection import knobs
    from convection.server.owner import INFO_FILE, DataDirInUse, acquire, running_server

    ddir = data_dir_of(functions, data)
    if url is not None:
        yield Connection(functions, ddir, url, _check_remote(url, admin_key))
        return
    if not functions.is_dir() and not (ddir / INFO_FILE).exists():
        raise _no_functions(functions)
    try:
        owner = acquire(ddir)
    except DataDirInUse as exc:
        server = running_server(exc.holder, timeout_s=knobs.CLI_SERVER_PROBE_TIMEOUT_MS / 1000)
        if server is None or server.url is None or server.admin_key is None:
            raise
        if announce:
            err.print(f"(talking to the running server at {server.url}, pid {server.pid})", style="dim", markup=False)
        yield Connection(functions, ddir, server.url, server.admin_key)
        return
    try:
        if not functions.is_dir():
            raise _no_functions(functions)
        yield Connection(functions, ddir)
    finally:
        owner.release()
