"""``convection dev``: watch the functions folder and push every change.

A push loads the folder afresh; a module that fails to import (or a schema that fails) leaves
the previous code serving and prints the error with its file and line. Subscriptions are
re-run against the new code (the query cache is cleared and every socket's queries are
invalidated).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

from convection.errors import ConvectionError
from convection.functions.loader import LoadedApp, load_app


async def watch_and_push(deployment: Any, console: Console) -> None:
    from watchfiles import awatch

    folder = deployment.functions_dir
    if deployment.admin is not None:  # one line per function call, failures in red
        deployment.admin.logs.add_listener(lambda call: print_call(console, call))
    _write_generated(deployment.app.loaded, console)
    async for changes in awatch(folder, watch_filter=lambda _c, p: p.endswith(".py") and "/_generated/" not in p):
        names = sorted({c[1].rsplit("/", 1)[-1] for c in changes})
        try:
            loaded = load_app(folder)
        except ConvectionError as exc:
            console.print(f"[red]✖ push failed[/red] ({', '.join(names)}): {exc}", highlight=False)
            console.print("  the previous version keeps serving", style="dim")
            continue
        try:
            import asyncio

            from convection.application.push import push

            await asyncio.get_running_loop().run_in_executor(None, push, deployment.app, loaded, None)
        except ConvectionError as exc:
            console.print(f"[red]✖ push failed:[/red] {exc}", highlight=False)
            continue
        console.print(f"[green]✔ pushed[/green] {len(loaded.functions)} functions ({', '.join(names)} changed)")
        _write_generated(loaded, console)


def _write_generated(loaded: LoadedApp, console: Console) -> None:
    """Refresh ``_generated/`` after a successful push; a failure is reported, not fatal."""
    from rich.markup import escape

    from convection.application.codegen import write_generated

    try:
        write_generated(loaded)
    except (ConvectionError, OSError) as exc:
        console.print(f"[yellow]! codegen failed:[/yellow] {escape(str(exc))}", highlight=False)


def print_call(console: Console, call: Any) -> None:
    """``convection dev``'s call log: one line per call (``functions/calllog.py``), then its
    log lines; a failure in red with its message and user frames. The dashboard's own
    ``_system/...`` calls are left out (the dashboard shows their errors itself)."""
    from rich.markup import escape

    from convection.functions.calllog import format_call_line

    if call.path.startswith("_system/"):
        return

    line = escape(format_call_line(call))
    console.print(line if call.success else f"[bold red]{line}[/bold red]", highlight=False)
    for extra in call.lines:
        console.print("    " + escape(extra), style="dim", highlight=False)
    if not call.success:
        for frame in call.frames:
            console.print("    " + escape(frame), style="red", highlight=False)
