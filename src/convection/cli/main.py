"""The ``convection`` command line (docs/cli.md). Thin: parse flags, call server/, print."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from convection.cli.admin_commands import KeyOpt, UrlOpt
from convection.cli.style import CONTEXT_SETTINGS, Command, Group, show_version

console = Console(stderr=True)
cli = typer.Typer(
    name="convection",
    help="A reactive backend for Python: queries, mutations and actions over a transactional "
    "document database, live to every subscribed client.",
    no_args_is_help=True,
    add_completion=False,
    cls=Group,
    context_settings=CONTEXT_SETTINGS,
)


@cli.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=show_version)
    ] = False,
) -> None:
    """A reactive backend for Python: queries, mutations and actions over a transactional
    document database, live to every subscribed client."""

FunctionsOpt = Annotated[Path, typer.Option("--functions", help="The functions folder.")]
HostOpt = Annotated[str, typer.Option("--host", help="Interface to listen on.")]
PortOpt = Annotated[int, typer.Option("--port", help="Port for the API and WebSocket.")]
DataOpt = Annotated[
    Path | None, typer.Option("--data", help="Data directory (default: .convection beside the functions folder).")
]
DbOpt = Annotated[str | None, typer.Option("--db", help="Database URL (default: SQLite in the data directory).")]
StorageOpt = Annotated[
    str | None,
    typer.Option(
        "--storage", envvar="CONVECTION_STORAGE",
        help="File storage: a directory, file:///path or s3://bucket/prefix (default: <data>/storage; S3 settings: docs/files.md).",
    ),
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


def _serve(functions: Path, host: str, port: int, data: Path | None, db: str | None, *, dev: bool, redact: bool, site_port: int = 3211, origin: str | None = None, storage: str | None = None, workers: int = 1) -> None:
    from convection.application.app import derive_admin_key
    from convection.cli.connect import data_dir_of, report_error
    from convection.errors import ConvectionError
    from convection.server.owner import acquire

    if not functions.is_dir():
        report_error(f"No functions folder at {functions}: create it or pass --functions DIR")
        raise typer.Exit(2)
    if workers < 1:
        report_error(f"--workers must be at least 1, got {workers}")
        raise typer.Exit(2)
    ddir = data_dir_of(functions, data)
    try:
        owner = acquire(ddir)  # held until this process exits (server/owner.py)
    except ConvectionError as exc:
        report_error(exc.message, exc.code)
        raise typer.Exit(1) from None
    local_url = _origin(None, host, port)  # where CLI commands on this machine reach it
    if workers == 1:  # (--workers binds its sockets itself and reports a busy port there)
        from convection.server.ports import ensure_port_free

        try:
            ensure_port_free(host, port, "--port")  # a clean error before the banner (17.3)
        except ConvectionError as exc:
            owner.release()
            report_error(exc.message, exc.code)
            raise typer.Exit(1) from None

    def open_it() -> Any:
        from convection.server.compose import open_deployment

        return open_deployment(
            functions, ddir, db_url=db, redact_errors=redact, dev=dev,
            origin=_origin(origin, host, port), storage_url=storage,
        )

    def banner_rows(functions_dir: Path, data_dir: Path) -> list[tuple[str, str]]:
        url = f"http://{host}:{port}"
        rows = [("serving", str(functions_dir)), ("API", url), ("dashboard", local_url + "/")]
        if site_port:
            rows.append(("HTTP actions", f"http://{host}:{site_port}/<path> and {url}/http/<path>"))
        if workers > 1:
            rows.append(("workers", f"{workers} processes (docs/cli.md)"))
        rows += [("data", str(data_dir)), ("admin key", f"convection admin-key --data {data_dir}")]
        return rows

    if workers > 1:
        _serve_workers(owner, workers, host, port, site_port, open_it, banner_rows, local_url, ddir)
        return
    try:
        deployment = open_it()
    except ConvectionError as exc:  # a module that fails to load: file:line and the message
        owner.release()
        report_error(exc.message, exc.code)
        raise typer.Exit(1) from None
    owner.publish(local_url, derive_admin_key(deployment.secret))
    _print_banner("dev" if dev else "serve", banner_rows(deployment.functions_dir, deployment.data_dir))
    _tune_gc()
    _exit_on_sigterm()
    try:
        _run_loop(_serve_deployment(deployment, host, port, site_port, dev=dev))
    except KeyboardInterrupt:  # Ctrl-C: a clean stop, not an error
        pass
    finally:
        deployment.close()
        owner.release()


def _serve_workers(owner: Any, workers: int, host: str, port: int, site_port: int,
                   open_it: Any, banner_rows: Any, local_url: str, ddir: Path) -> None:
    """``serve --workers N``: bind the sockets here, fork N workers (server/workers.py)."""
    from convection.application.app import derive_admin_key
    from convection.cli.connect import report_error
    from convection.errors import ConvectionError
    from convection.server.compose import instance_secret
    from convection.server.workers import Supervisor, bind

    try:
        sockets = [bind(host, port)] + ([bind(host, site_port)] if site_port else [])
    except OSError as exc:
        owner.release()
        report_error(f"cannot listen on {host}:{port}{f' or {site_port}' if site_port else ''}: {exc}")
        raise typer.Exit(1) from None

    def worker(shared: list[Any], ready: Any) -> int:
        try:
            deployment = open_it()
        except ConvectionError as exc:
            report_error(exc.message, exc.code)
            return 1
        ready()
        _tune_gc()
        _exit_on_sigterm()
        try:
            _run_loop(_serve_deployment(deployment, host, port, site_port, dev=False, sockets=shared))
        except KeyboardInterrupt:
            pass
        finally:
            deployment.close()
        return 0

    def started() -> None:
        owner.publish(local_url, derive_admin_key(instance_secret(ddir)))
        _print_banner("serve", banner_rows(Path("(the deployment's code)"), ddir))

    code = Supervisor(workers, sockets, worker, on_started=started).run()
    owner.release()
    if code:
        raise typer.Exit(code)


async def _serve_deployment(deployment: Any, host: str, port: int, site_port: int, *, dev: bool,
                            sockets: list[Any] | None = None) -> None:
    """Serve one deployment on this process's event loop until uvicorn stops (a signal)."""
    import uvicorn

    from convection import knobs
    from convection.server.app import build_app, build_site_app
    from convection.server.http_timeouts import protocol_class

    url = f"http://{host}:{port}"
    config = uvicorn.Config(
        build_app(deployment), host=host, port=port, log_level="warning", loop="auto",
        ws="websockets-sansio", lifespan="off", ws_max_size=knobs.SYNC_MAX_MESSAGE_SIZE_BYTES,
        # No permessage-deflate: compressing every Transition cost more server (and client)
        # CPU than loopback/LAN bandwidth saves; F1 at N=10,000 went 1,236 -> 822 ms and idle
        # memory per connection 88 -> 45 KB without it (bench/PROFILES.md).
        ws_per_message_deflate=False,
        http=protocol_class(knobs.HTTP_REQUEST_IDLE_TIMEOUT_MS / 1000),
    )
    server = uvicorn.Server(config)
    site_server = None
    if site_port:
        site_server = uvicorn.Server(uvicorn.Config(
            build_site_app(deployment), host=host, port=site_port, log_level="warning", lifespan="off",
            http=protocol_class(knobs.HTTP_REQUEST_IDLE_TIMEOUT_MS / 1000),
        ))
    await deployment.app.start()  # scheduler and crons
    tasks = [asyncio.create_task(server.serve(sockets=sockets[:1] if sockets else None))]
    if site_server is not None:
        site = site_server

        async def serve_site() -> None:
            try:
                await site.serve(sockets=sockets[1:2] if sockets else None)
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


def _exit_on_sigterm() -> None:
    """uvicorn handles SIGTERM/SIGINT while it serves, then re-raises the signal once it has
    stopped. With the default SIGTERM handler that killed the process on the spot, skipping
    the clean-up below (scheduler stop, database close, giving up the data directory). Make
    the re-raised SIGTERM a ``SystemExit(0)`` instead, so the ``finally`` clauses run."""
    import signal

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)


def _print_banner(title: str, rows: list[tuple[str, str]]) -> None:
    """The start banner: one ``label  value`` line each, never wrapped (a narrow terminal
    folds a long line as a whole, so a command or URL stays copyable)."""
    console.print(f"[green]convection {title}[/green]", highlight=False)
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        console.print(f"  {label + ':':<{width + 1}}  {value}", markup=False, highlight=False, soft_wrap=True)


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


@cli.command(cls=Command)
def serve(
    functions: FunctionsOpt = Path("convex"),
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 3210,
    site_port: SitePortOpt = 3211,
    origin: OriginOpt = None,
    data: DataOpt = None,
    db: DbOpt = None,
    storage: StorageOpt = None,
    redact_errors: Annotated[bool, typer.Option("--redact-errors/--no-redact-errors", help="Callers that are not admins get 'Server Error' and a request id instead of a function's error message and traceback (the full text goes to the server log). On by default; --no-redact-errors shows everything (as `convection dev` does).")] = True,
    workers: Annotated[int, typer.Option("--workers", envvar="CONVECTION_WORKERS", help="Server processes sharing the port and the store (docs/cli.md).")] = 1,
) -> None:
    """Run the backend on a functions folder (production: no watching)."""
    _serve(functions, host, port, data, db, dev=False, redact=redact_errors, site_port=site_port, origin=origin, storage=storage, workers=workers)


@cli.command(cls=Command)
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


@cli.command("admin-key", cls=Command)
def admin_key(
    functions: FunctionsOpt = Path("convex"),
    data: DataOpt = None,
) -> None:
    """Print an admin key for this deployment (derived from the instance secret)."""
    from convection.application.app import derive_admin_key
    from convection.server.compose import instance_secret

    ddir = data if data is not None else functions.resolve().parent / ".convection"
    print(derive_admin_key(instance_secret(ddir)))


@cli.command(cls=Command)
def run(
    path: Annotated[str, typer.Argument(help="Function path, e.g. messages:list")],
    args: Annotated[str, typer.Argument(help="Arguments as a JSON object")] = "{}",
    functions: FunctionsOpt = Path("convex"),
    data: DataOpt = None,
    url: UrlOpt = None,
    admin_key: KeyOpt = None,
    watch: Annotated[bool, typer.Option("--watch", help="Subscribe to a query and print every new result.")] = False,
) -> None:
    """Call a function (any kind, internal ones included) and print its result.

    It runs on the server running for this project if there is one, else in-process."""
    import orjson

    from convection.cli.connect import connect, report_error, reporting

    try:
        parsed: Any = orjson.loads(args)
    except orjson.JSONDecodeError as exc:
        report_error(f"Arguments are not valid JSON: {exc}")
        raise typer.Exit(2) from None
    if watch:
        _watch(path, parsed, url, admin_key, functions, data)
        return
    with reporting(), connect(url, admin_key, functions, data) as conn:
        if conn.url is not None:
            body = _run_remote(conn.url, conn.admin_key, path, parsed)
        else:
            body = _run_local(conn.functions, conn.data_dir, path, parsed)
    for line in body.get("logLines") or []:
        console.print(line, markup=False, highlight=False)
    if body.get("status") == "error":
        report_error(str(body.get("errorMessage")))
        if "errorData" in body:
            print(orjson.dumps(body["errorData"], option=orjson.OPT_INDENT_2).decode())
        raise typer.Exit(1)
    print(orjson.dumps(body.get("value"), option=orjson.OPT_INDENT_2).decode())


def _run_remote(url: str, admin_key: str | None, path: str, args: Any) -> dict[str, Any]:
    import httpx

    from convection.cli.connect import CliFailure

    headers = {"Authorization": f"Convex {admin_key}"} if admin_key else {}
    try:
        r = httpx.post(url.rstrip("/") + "/api/function", json={"path": path, "args": args, "format": "json"},
                       headers=headers, timeout=httpx.Timeout(60.0, read=None))
    except httpx.TransportError as exc:
        raise CliFailure(f"Could not reach {url}: {exc}", "Is the backend running? Check --url.") from None
    try:
        body: dict[str, Any] = r.json()
    except ValueError:
        raise CliFailure(f"{url} answered HTTP {r.status_code} without JSON", "Is it a convection backend?") from None
    if r.status_code != 200:
        raise CliFailure(f"{body.get('message')} ({body.get('code')}, HTTP {r.status_code})")
    return body


def _run_local(functions: Path, data_dir: Path, path: str, args: Any) -> dict[str, Any]:
    import orjson

    from convection.functions.identity import Identity
    from convection.server.compose import open_deployment
    from convection.server.http_api import outcome_body

    dep = open_deployment(functions, data_dir)
    try:
        outcome = asyncio.run(dep.app.run_function(path, _from_json(args), Identity(kind="admin")))
        body: dict[str, Any] = orjson.loads(orjson.dumps(outcome_body(outcome, "json")))
    finally:
        dep.close()
    return body


def _watch(path: str, args: Any, url: str | None, admin_key: str | None, functions: Path, data: Path | None) -> None:
    import orjson

    from convection import knobs
    from convection.cli.connect import data_dir_of, report_error
    from convection.client.watch import watch
    from convection.server.owner import read_info, running_server
    from convection.values.json import from_convex_json, to_clean_json

    if url is None:  # the server that owns the project's data directory, else the default port
        ddir = data_dir_of(functions, data)
        server = running_server(read_info(ddir), timeout_s=knobs.CLI_SERVER_PROBE_TIMEOUT_MS / 1000)
        if server is not None:
            url, admin_key = server.url, admin_key or server.admin_key
        else:
            url = "http://127.0.0.1:3210"
            if admin_key is None and (ddir / "instance_secret").exists():
                from convection.application.app import derive_admin_key
                from convection.server.compose import instance_secret

                admin_key = derive_admin_key(instance_secret(ddir))
    assert url is not None
    try:
        for update in watch(url, path, from_convex_json(args), admin_key=admin_key):
            for line in update.log_lines:
                console.print(line, markup=False, highlight=False)
            if update.success:
                print(orjson.dumps(to_clean_json(update.value), option=orjson.OPT_INDENT_2).decode(), flush=True)
            else:
                report_error(update.error_message)
    except KeyboardInterrupt:
        return
    except OSError as exc:
        report_error(f"Cannot watch {path} at {url}: {exc}. Is `convection dev` running? Pass --url.")
        raise typer.Exit(1) from None


def _from_json(x: Any) -> Any:
    from convection.values.json import from_convex_json

    return from_convex_json(x)


def _register_commands() -> None:
    from convection.cli.codegen import codegen

    cli.command("codegen", cls=Command)(codegen)

    from convection.cli.admin_commands import register

    register(cli)  # data, import, export, env, logs, deploy


_register_commands()


def main() -> None:
    cli()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())  # type: ignore[func-returns-value]
