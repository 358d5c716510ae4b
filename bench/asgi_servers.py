"""uvicorn (httptools, websockets-sansio; what ``convection serve`` runs) and granian (Rust
HTTP/WebSocket server, embedded in the same asyncio loop) side by side on the same app.

    .venv/bin/python bench/asgi_servers.py [--seconds 5] [--conns 32]

For each server: a fresh deployment of bench/app/convex on a temporary store, served from a
child process (``--serve uvicorn|granian``) on uvloop; then ``wrk`` on ``GET /version`` (the
HTTP stack alone) and ``POST /api/mutation`` (W1: one insert per request), and the WebSocket
fan-out of ``fanout_micro.py`` (N raw sockets on one query). Reports requests/s and the
server's CPU per request (utime + stime from /proc), the better figure on a shared machine.
granian needs ``pip install granian`` (not a dependency; this is the measurement behind the
decision in PROFILES.md).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import APP, PROCS, PY, cpu_seconds, free_port, log, wait_http

MUTATION = '{"path":"messages:send","args":{"channel":"w","n":1,"body":"hello world"},"format":"json"}'


def serve(kind: str, port: int, data: Path) -> None:
    import uvloop

    from convection.cli.main import _tune_gc
    from convection.server.app import build_app, open_deployment

    deployment = open_deployment(APP, data)
    app = build_app(deployment)

    async def main() -> None:
        await deployment.app.start()
        if kind == "uvicorn":
            import uvicorn

            config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", loop="auto",
                                    ws="websockets-sansio", lifespan="off", ws_per_message_deflate=False)
            await uvicorn.Server(config).serve()
        else:
            from granian.constants import Interfaces
            from granian.server.embed import Server

            server = Server(app, address="127.0.0.1", port=port, interface=Interfaces.ASGI, log_enabled=False)
            await server.serve()

    _tune_gc()
    uvloop.run(main())


def wrk(url: str, seconds: float, conns: int, body: str | None) -> float:
    args = ["wrk", "-t1", f"-c{conns}", f"-d{int(seconds)}s", url]
    if body is not None:
        lua = Path(tempfile.mkdtemp()) / "post.lua"
        lua.write_text(f"wrk.method='POST'\nwrk.headers['Content-Type']='application/json'\nwrk.body='{body}'\n")
        args[4:4] = ["-s", str(lua)]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return float(next(line for line in out.splitlines() if "Requests/sec" in line).split()[1])


def measure(kind: str, a: argparse.Namespace) -> dict[str, float]:
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix=f"convection-{kind}-")) / "data"
    proc = PROCS.start([PY, __file__, "--serve", kind, "--port", str(port), "--data", str(data)])
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/version")
    out: dict[str, float] = {}
    for name, path, body in (("version", "/version", None), ("mutation", "/api/mutation", MUTATION)):
        c0 = cpu_seconds(proc.pid)
        rps = wrk(url + path, a.seconds, a.conns, body)
        cpu = cpu_seconds(proc.pid) - c0
        out[f"{name}_rps"] = rps
        out[f"{name}_cpu_us"] = cpu / (rps * a.seconds) * 1e6
    if a.fanout:
        from fanout_micro import fanout

        walls, cpus = asyncio.run(fanout(url, proc.pid, a.fanout, 6))
        out["fanout_last_ms"] = statistics.median(walls)
        out["fanout_cpu_us"] = statistics.median(cpus) * 1000 / a.fanout
    PROCS.stop(proc)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2, help="alternate the servers this many times")
    ap.add_argument("--fanout", type=int, default=500, help="WebSocket subscribers (0: skip)")
    ap.add_argument("--serve", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        serve(a.serve, a.port, a.data)
        return 0
    try:
        for _ in range(a.rounds):
            for kind in ("uvicorn", "granian"):
                r = measure(kind, a)
                log(f"{kind:8s} GET /version {r['version_rps']:8,.0f}/s {r['version_cpu_us']:6.0f} us CPU/req | "
                    f"POST /api/mutation {r['mutation_rps']:7,.0f}/s {r['mutation_cpu_us']:6.0f} us CPU/req"
                    + (f" | WS fan-out to {a.fanout}: last {r['fanout_last_ms']:.0f} ms, {r['fanout_cpu_us']:.0f} us CPU/sub"
                       if a.fanout else ""))
                time.sleep(1)
    finally:
        PROCS.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
