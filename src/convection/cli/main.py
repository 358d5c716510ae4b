"""The ``convection`` command line (docs/cli.md). Thin: parse flags, call server/, print."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console(stderr=True)
cli = typer.Typer(
    name="convection",
    help="A reactive backend for Python: queries, mutations and actions over a transactional "
    "document database, live to every subscribed client.",
    no_args_is_help=True,
    add_completion=False,
)

FunctionsOpt = Annotated[Path, typer.Option("--functions", help="The functions folder.")]
HostOpt = Annotated[str, typer.Option("--host", help="Interface to listen on.")]
PortOpt = Annotated[int, typer.Option("--port", help="Port for the API and WebSocket.")]
DataOpt = Annotated[
    Path | None, typer.Option("--data", help="Data directory (default: .convection beside the functions folder).")
]
DbOpt = Annotated[str | None, typer.Option("--db", help="Database URL (default: SQLite in the data directory).")]
StorageOpt = Annotated[
    str | None, typer.Option("--storage", help="File storage: a directory or file:///path (default: <data>/storage).")
]


SitePortOpt = Annotated[int, typer.Option("--site-port", help="Port for HTTP actions at /<path> (0: off; they are also at /http/<path> on --port).")]
OriginOpt = Annotated[
    str | None,
    typer.Option(
        "--origin",
        envvar="CONVECTION_ORIGIN",
        help="Public URL of this server, used in file URLs (ctx.storage.get_url, generate_upload_url). Default: http://<host>:<port>.",
    ),
]


def _origin(origin: str | None, host: str, port: int) -> str:
    if origin:
        return origin
    shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else (f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{port}"


def _serve(functions: Path, host: str, port: int, data: Path | None, db: str | None, *, dev: bool, redact: bool, site_port: int = 3211, origin: str | None = None, storage: str | None = None) -> None:
    import uvicorn

    from convection import knobs
    from convection.errors import ConvectionError
    from convection.server.app import build_app, open_deployment
    from convection.server.ports import ensure_port_free

    if not functions.is_dir():
        console.print(f"[red]No functions folder at {functions}[/red]: create it or pass --functions DIR")
        raise typer.Exit(2)
    try:
        ensure_port_free(host, port, "--port")  # a clean error before the banner (issue 17.3)
        deployment = open_deployment(
            functions, data, db_url=db, redact_errors=redact, dev=dev, on_log=_print_logs if dev else None,
            origin=_origin(origin, host, port), storage_url=storage,
        )
    except ConvectionError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    app = build_app(deployment)
    url = f"http://{host}:{port}"
    console.print(f"[green]convection[/green] serving [bold]{deployment.functions_dir}[/bold] at [bold]{url}[/bold]")
    console.print(f"  data: {deployment.data_dir}   admin key: `convection admin-key --data {deployment.data_dir}`")
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", loop="auto", ws="websockets-sansio",
        lifespan="off", ws_max_size=knobs.SYNC_MAX_MESSAGE_SIZE_BYTES,
        # No permessage-deflate: compressing every Transition cost more server (and client)
        # CPU than loopback/LAN bandwidth saves; F1 at N=10,000 went 1,236 -> 822 ms and idle
        # memory per connection 88 -> 45 KB without it (bench/PROFILES.md).
        ws_per_message_deflate=False,
    )
    server = uvicorn.Server(config)
    site_server = None
    if site_port:
        from convection.server.app import build_site_app

        site_server = uvicorn.Server(uvicorn.Config(
            build_site_app(deployment), host=host, port=site_port, log_level="warning", lifespan="off",
        ))
        console.print(f"  HTTP actions: http://{host}:{site_port}/<path> and {url}/http/<path>")

    async def main() -> None:
        await deployment.app.start()  # scheduler and crons
        tasks = [asyncio.create_task(server.serve())]
        if site_server is not None:
            site = site_server

            async def serve_site() -> None:
                try:
                    await site.serve()
                except (SystemExit, OSError):
                    console.print(f"[yellow]could not listen on site port {site_port}[/yellow]; HTTP actions stay at {url}/http/<path>")

            tasks.append(asyncio.create_task(serve_site()))
        if dev:
            from convection.cli.dev import watch_and_push

            tasks.append(asyncio.create_task(watch_and_push(deployment, console)))
        try:
            await tasks[0]
        finally:
            for t in tasks[1:]:
                t.cancel()
            await deployment.app.stop()

    _tune_gc()
    try:
        _run_loop(main())
    finally:
        deployment.close()


def _tune_gc() -> None:
    """Fewer cyclic-GC passes in the server process: with thousands of sockets alive, the
    default threshold (700 allocations) made collections over the live objects take about
    half the CPU of a fan-out (bench/RESULTS.md, F1). Start-up objects are frozen out of
    the collector's scans."""
    import gc

    from convection import knobs

    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(knobs.GC_GEN0_THRESHOLD_COUNT, gen1, gen2)


def _run_loop(coro: Any) -> None:
    """Run the server's event loop: uvloop where it is installed (a dependency on POSIX),
    the standard loop otherwise."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        asyncio.run(coro)
        return
    uvloop.run(coro)


def _print_logs(path: str, kind: str, lines: list[str]) -> None:
    import datetime

    now = datetime.datetime.now().strftime("%H:%M:%S")
    for line in lines:
        console.print(f"{now} {kind[0].upper()} {path} {line}", highlight=False, markup=False)


@cli.command()
def serve(
    functions: FunctionsOpt = Path("convex"),
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 3210,
    site_port: SitePortOpt = 3211,
    origin: OriginOpt = None,
    data: DataOpt = None,
    db: DbOpt = None,
    storage: StorageOpt = None,
    redact_errors: Annotated[bool, typer.Option("--redact-errors", help="Send 'Server Error' without details to clients.")] = False,
) -> None:
    """Run the backend on a functions folder (production: no watching)."""
    _serve(functions, host, port, data, db, dev=False, redact=redact_errors, site_port=site_port, origin=origin, storage=storage)


@cli.command()
def dev(
    functions: FunctionsOpt = Path("convex"),
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 3210,
    site_port: SitePortOpt = 3211,
    origin: OriginOpt = None,
    data: DataOpt = None,
    db: DbOpt = None,
    storage: StorageOpt = None,
) -> None:
    """Run the backend on the embedded store, watch the functions folder and re-push on change."""
    _serve(functions, host, port, data, db, dev=True, redact=False, site_port=site_port, origin=origin, storage=storage)


@cli.command("admin-key")
def admin_key(
    functions: FunctionsOpt = Path("convex"),
    data: DataOpt = None,
) -> None:
    """Print an admin key for this deployment (derived from the instance secret)."""
    from convection.application.app import derive_admin_key
    from convection.server.app import instance_secret

    ddir = data if data is not None else functions.resolve().parent / ".convection"
    print(derive_admin_key(instance_secret(ddir)))


@cli.command()
def run(
    path: Annotated[str, typer.Argument(help="Function path, e.g. messages:list")],
    args: Annotated[str, typer.Argument(help="Arguments as a JSON object")] = "{}",
    functions: FunctionsOpt = Path("convex"),
    data: DataOpt = None,
    url: Annotated[str | None, typer.Option("--url", help="Call a running backend instead of running in-process.")] = None,
    admin_key: Annotated[str | None, typer.Option("--admin-key", help="Admin key for --url.")] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Subscribe to a query and print every new result (default --url: the local dev server).")] = False,
) -> None:
    """Call a function (any kind, internal ones included) and print its result."""
    import orjson

    try:
        parsed: Any = orjson.loads(args)
    except orjson.JSONDecodeError as exc:
        console.print(f"[red]Arguments are not valid JSON:[/red] {exc}")
        raise typer.Exit(2) from None
    if watch:
        _watch(path, parsed, url or "http://127.0.0.1:3210", admin_key, functions, data)
        return
    if url is not None:
        import httpx

        headers = {"Authorization": f"Convex {admin_key}"} if admin_key else {}
        r = httpx.post(url.rstrip("/") + "/api/function", json={"path": path, "args": parsed, "format": "json"}, headers=headers)
        body = r.json()
        if r.status_code != 200:
            console.print(f"[red]{body.get('code')}:[/red] {body.get('message')}")
            raise typer.Exit(1)
    else:
        from convection.functions.identity import Identity
        from convection.server.app import open_deployment
        from convection.server.http_api import outcome_body

        dep = open_deployment(functions, data)
        try:
            outcome = asyncio.run(dep.app.run_function(path, _from_json(parsed), Identity(kind="admin")))
            body = orjson.loads(orjson.dumps(outcome_body(outcome, "json")))
        finally:
            dep.close()
    for line in body.get("logLines") or []:
        console.print(line, markup=False, highlight=False)
    if body.get("status") == "error":
        console.print(f"[red]{body.get('errorMessage')}[/red]", markup=False)
        if "errorData" in body:
            print(orjson.dumps(body["errorData"], option=orjson.OPT_INDENT_2).decode())
        raise typer.Exit(1)
    print(orjson.dumps(body.get("value"), option=orjson.OPT_INDENT_2).decode())


def _watch(path: str, args: Any, url: str, admin_key: str | None, functions: Path, data: Path | None) -> None:
    import orjson

    from convection.client.watch import watch
    from convection.values.json import from_convex_json, to_clean_json

    if admin_key is None:
        ddir = data if data is not None else functions.resolve().parent / ".convection"
        if (ddir / "instance_secret").exists():
            from convection.application.app import derive_admin_key
            from convection.server.app import instance_secret

            admin_key = derive_admin_key(instance_secret(ddir))
    try:
        for update in watch(url, path, from_convex_json(args), admin_key=admin_key):
            for line in update.log_lines:
                console.print(line, markup=False, highlight=False)
            if update.success:
                print(orjson.dumps(to_clean_json(update.value), option=orjson.OPT_INDENT_2).decode(), flush=True)
            else:
                console.print(f"[red]{update.error_message}[/red]", markup=False)
    except KeyboardInterrupt:
        return
    except OSError as exc:
        console.print(f"[red]Cannot watch {path} at {url}:[/red] {exc}. Is `convection dev` running? Pass --url.")
        raise typer.Exit(1) from None


def _from_json(x: Any) -> Any:
    from convection.values.json import from_convex_json

    return from_convex_json(x)


def _register_commands() -> None:
    from convection.cli.codegen import codegen

    cli.command("codegen")(codegen)

    from convection.cli.admin_commands import register

    register(cli)  # data, import, export, env, logs, deploy


_register_commands()


def main() -> None:
    cli()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())  # type: ignore[func-returns-value]
