"""``convection codegen``: load the functions folder and write ``<functions>/_generated/``.

Thin: the generator is :mod:`convection.application.codegen`. Prints each file it wrote (a
file whose text is unchanged is not rewritten), or that everything was up to date. Exit code 1
when the folder fails to load, 2 when it does not exist.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from convection.application.codegen import GENERATED_DIR, write_generated
from convection.errors import ConvectionError
from convection.functions.loader import load_app

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)


def codegen(
    functions: Annotated[Path, typer.Option("--functions", help="The functions folder.")] = Path("convex"),
) -> None:
    """Write _generated/ (api.d.ts, api.js, dataModel.d.ts, server.d.ts, server.js for JS/TS
    clients; data_model.py type stubs for Python editors)."""
    if not functions.is_dir():
        err.print(f"[red]No functions folder at {escape(str(functions))}[/red]: create it or pass --functions DIR")
        raise typer.Exit(2)
    try:
        app = load_app(functions)
    except ConvectionError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    try:
        written = write_generated(app)
    except (ConvectionError, OSError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    finally:
        app.unload()
    if not written:
        out.print(f"{shown(functions / GENERATED_DIR)}/ is up to date", markup=False)
    for path in written:
        out.print(f"wrote {shown(path)}", markup=False)
