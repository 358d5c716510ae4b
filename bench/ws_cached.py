"""R1 "WebSocket cached" alone, A/B between checkouts: server CPU per cached query over the
sync protocol.

    .venv/bin/python bench/ws_cached.py --tree /work/wt/s1 --tree . --rounds 3 [--seconds 10]
        [--clients 64] [--vary] [--syscalls] [--threads] [--py-spy DIR] [--perf DIR] ...
    .venv/bin/python bench/ws_cached.py --inproc --tree /work/wt/s1 --tree . --rounds 3 \
        --queries 40 --batches 10

A tree is ``DIR[,NAME=VALUE...]``: a checkout and environment variables for its server (e.g.
``.,CONVECTION_LOG_TAIL_POLL_MS=0``, or another source tree run with this venv:
``/tmp/base,PYTHONPATH=/tmp/base/src`` where /tmp/base has a ``.venv`` link).

For each round and each ``--tree`` in turn (A B A B ...), starts ``convection serve`` from
that checkout (its own ``.venv/bin/python``, its own bench/app/convex) on a fresh temporary
data dir, prefills 1,000 documents in channel ``r1`` (messages:bulk), then runs
bench/js/rawquery.mjs (raw sync clients: each one loops ModifyQuerySet Remove previous + Add
``messages:latest({channel: "r1"})`` and waits for the Transition answering it) for
``--seconds``, and reads the server's CPU time (utime + stime from /proc/<pid>/stat) before
and after. Prints reads/s, server CPU µs per query (the process and its event-loop thread)
and how often that thread slept or was preempted per query, for every run, then the median
per tree. CPU per query is what to compare on a shared machine; reads/s moves with the load.
``--syscalls`` counts the loop thread's system calls per query (``perf stat``), ``--threads``
prints the other threads' CPU, ``--perf DIR`` / ``--strace DIR`` record the loop thread.
``--py-spy DIR`` records a py-spy profile (``--native`` off, raw collapsed stacks) of each
server during the load into DIR.

``--inproc`` drives the same loop without sockets, in one process per run started from the
tree's own venv: the real deployment (``open_deployment`` on the tree's bench/app/convex, a
temporary SQLite store) and ``--clients`` real ``SyncWorker``s whose ``send`` only notes that a
Transition left; each client sends its ModifyQuerySet text through ``handle_text`` and waits
for that Transition, ``--queries`` per client, ``--batches`` times. Prints the loop thread's
CPU time per query (``time.thread_time``) of the best batch (the least disturbed by other
processes) and the median batch: the sync worker, session state, cache and encoding, without
uvicorn and the kernel.
``--profile DIR`` writes a cProfile of each in-process run into DIR.

``--cprofile DIR`` (socket mode) runs each server under cProfile (event-loop thread only),
switched on for the measured load only (SIGUSR1 on, SIGUSR2 off and dump to DIR/<run>.prof):
call counts per query compare exactly between trees even on a loaded machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
JS = HERE / "js"
CLK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def thread_cpu_s(pid: int) -> dict[int, float]:
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / CLK
    return out


def ctxt_switches(pid: int) -> tuple[int, int]:
    """(voluntary, involuntary) context switches of the thread ``pid`` (the event loop)."""
    vol = invol = 0
    for line in Path(f"/proc/{pid}/task/{pid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            vol = int(line.split()[1])
        elif line.startswith("nonvoluntary_ctxt_switches:"):
            invol = int(line.split()[1])
    return vol, invol


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve_profiled(out: str, argv: list[str]) -> None:
    """``convection <argv>`` in this process, cProfile on between SIGUSR1 and SIGUSR2."""
    import cProfile
    import gc
    import runpy

    prof = cProfile.Profile()
    gcs: dict[str, list[float]] = {}
    started = [0.0]
    active = [False]

    def gc_cb(phase: str, info: dict[str, int]) -> None:
        if not active[0]:
            return
        if phase == "start":
            started[0] = time.thread_time()
        else:
            g = gcs.setdefault(str(info["generation"]), [0, 0.0, 0])
            g[0] += 1
            g[1] += time.thread_time() - started[0]
            g[2] += info["collected"]

    gc.callbacks.append(gc_cb)

    def on(*_: object) -> None:
        active[0] = True
        prof.enable()

    def off(*_: object) -> None:
        prof.disable()
        active[0] = False
        Path(out + ".gc.json").write_text(json.dumps({"collections": gcs, "tracked": len(gc.get_objects()),
                                                      "frozen": gc.get_freeze_count()}))
        prof.dump_stats(out)

    signal.signal(signal.SIGUSR1, on)
    signal.signal(signal.SIGUSR2, off)
    sys.argv = ["convection", *argv]
    runpy.run_module("convection", run_name="__main__")


def start_server(tree: Path, data: Path, log: Path, profile_out: str | None = None,
                 env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    launcher = ["-m", "convection"] if profile_out is None else [
        str(Path(__file__).resolve()), "--serve-profiled", profile_out, "--tree", str(tree), "--"]
    proc = subprocess.Popen(
        [str(tree / ".venv" / "bin" / "python"), *launcher, "serve", "--functions",
         str(tree / "bench" / "app" / "convex"), "--data", str(data), "--host", "127.0.0.1",
         "--port", str(port), "--site-port", "0"],
        cwd=tree, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + 300
    while True:
        try:
            if httpx.get(url + "/version", timeout=2).status_code < 500:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server from {tree} did not start (see {log})")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def prefill(url: str) -> None:
    body = {"path": "messages:bulk", "args": {"channel": "r1", "start": 0, "count": 1000}, "format": "json"}
    r = httpx.post(url + "/api/mutation", json=body, timeout=300).json()
    if r.get("status") != "success":
        raise RuntimeError(r)


def parse_tree(spec: str) -> tuple[Path, dict[str, str]]:
    """``path[,NAME=VALUE...]``: a checkout and environment variables for its server."""
    path, *pairs = spec.split(",")
    return Path(path).resolve(), dict(p.split("=", 1) for p in pairs)


def one(spec: str, args: argparse.Namespace, tag: str) -> dict[str, float]:
    tree, env = parse_tree(spec)
    tmp = Path(tempfile.mkdtemp(prefix="convection-ws-cached-"))
    prof_out = str(Path(args.cprofile).resolve() / f"{tag}.prof") if args.cprofile else None
    proc, url = start_server(tree, tmp / "data", tmp / "server.log", prof_out, env)
    spy: subprocess.Popen[bytes] | None = None
    try:
        prefill(url)
        params = {"vary": args.vary, "clients": args.clients, "seconds": args.seconds, "channel": "r1"}
        # warm-up (imports, the first run of the query, the cache entry)
        subprocess.run(["node", str(JS / "rawquery.mjs"), url, json.dumps({**params, "seconds": 1})],
                       cwd=JS, capture_output=True, check=True)
        if args.py_spy:
            out = Path(args.py_spy) / f"{tag}.txt"
            spy = subprocess.Popen(
                [shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(proc.pid), "--format", "raw",
                 "-o", str(out), "--rate", "500", "--gil", "--duration", str(int(args.seconds))],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if prof_out:
            proc.send_signal(signal.SIGUSR1)
        count_out = tmp / "syscalls.csv"
        if args.syscalls:
            spy = subprocess.Popen(["perf", "stat", "-e", "raw_syscalls:sys_enter", "-t", str(proc.pid), "-x", ",",
                                    "-o", str(count_out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        if args.perf:
            spy = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "1999", "-g", "-t", str(proc.pid), "-o",
                                    str(Path(args.perf).resolve() / f"{tag}.data")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        if args.strace:
            spy = subprocess.Popen(["strace", "-c", "-p", str(proc.pid), "-o",
                                    str(Path(args.strace).resolve() / f"{tag}.txt")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        c0, t0, x0 = cpu_s(proc.pid), thread_cpu_s(proc.pid), ctxt_switches(proc.pid)
        p = subprocess.run(["node", str(JS / "rawquery.mjs"), url, json.dumps(params)], cwd=JS,
                           capture_output=True, text=True, check=True)
        c1, t1, x1 = cpu_s(proc.pid), thread_cpu_s(proc.pid), ctxt_switches(proc.pid)
        if prof_out:
            proc.send_signal(signal.SIGUSR2)
            deadline = time.monotonic() + 60
            while not Path(prof_out).exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)
        if spy is not None:
            if args.strace or args.perf or args.syscalls:
                spy.send_signal(signal.SIGINT)
            spy.wait(60)
        syscalls = 0
        if args.syscalls:
            for line in count_out.read_text().splitlines():
                if "raw_syscalls" in line:
                    syscalls = int(line.split(",")[0])
        res = next(json.loads(line)["result"] for line in p.stdout.splitlines() if '"result"' in line)
        ok = res["ok"]
        main = t1.get(proc.pid, 0.0) - t0.get(proc.pid, 0.0)
        others = sorted(((t1[t] - t0.get(t, 0.0), t) for t in t1 if t != proc.pid), reverse=True)
        if args.threads:
            print("  other threads (s):", ", ".join(f"{tid}:{d:.2f}" for d, tid in others[:6] if d > 0))
        return {"ok": ok, "rps": ok / res["seconds"], "us_per_query": (c1 - c0) / max(1, ok) * 1e6,
                "main_us_per_query": main / max(1, ok) * 1e6,
                "sleeps_per_query": (x1[0] - x0[0]) / max(1, ok), "syscalls_per_query": syscalls / max(1, ok), "preempted_per_query": (x1[1] - x0[1]) / max(1, ok),
                "server_cores": (c1 - c0) / res["seconds"], "failed": res["failed"]}
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        stop(proc)


async def _inproc_child(clients: int, queries: int, rounds: int, profile: str | None) -> None:
    import asyncio
    import cProfile
    import uuid

    import orjson

    from convection.server.app import open_deployment  # the tree's own package
    from convection.sync.worker import SyncWorker

    tree = Path.cwd()
    tmp = Path(tempfile.mkdtemp(prefix="convection-ws-cached-inproc-"))
    dep = open_deployment(tree / "bench" / "app" / "convex", tmp / "data")
    app = dep.app
    loop = asyncio.get_running_loop()
    app._loop = loop  # type: ignore[attr-defined]
    waiting: list[asyncio.Future[str] | None] = [None] * clients

    def sender(i: int):  # type: ignore[no-untyped-def]
        async def send(text: str) -> None:
            fut = waiting[i]
            if fut is not None and not fut.done() and (
                    text.startswith(('{"type":"Transition"', '{"type":"MutationResponse"'))):
                fut.set_result(text)
        return send

    async def close(code: int, reason: str) -> None:
        pass

    workers = []
    for i in range(clients):
        w = SyncWorker(app, sender(i), close)
        w.start()
        await w.handle_text(orjson.dumps({"type": "Connect", "sessionId": str(uuid.uuid4()), "connectionCount": 0,
                                          "lastCloseReason": "InitialConnect", "clientTs": 0}).decode())
        workers.append(w)
    fut = waiting[0] = loop.create_future()
    await workers[0].handle_text(orjson.dumps({"type": "Mutation", "requestId": 0, "udfPath": "messages:bulk",
                                               "args": [{"channel": "r1", "start": 0, "count": 1000}]}).decode())
    assert '"success":true' in await fut, fut.result()
    versions = [0] * clients
    add = ('{"type":"ModifyQuerySet","baseVersion":%d,"newVersion":%d,"modifications":[%s'
           '{"type":"Add","queryId":%d,"udfPath":"messages:latest","args":[{"channel":"r1"}]}]}')

    async def client(i: int, n: int) -> None:
        w = workers[i]
        for _ in range(n):
            v = versions[i]
            text = add % (v, v + 1, f'{{"type":"Remove","queryId":{v - 1}}},' if v else "", v)
            fut = waiting[i] = loop.create_future()
            await w.handle_text(text)
            await fut
            versions[i] = v + 1

    await asyncio.gather(*(client(i, 20) for i in range(clients)))  # warm-up
    prof = cProfile.Profile() if profile else None
    batches: list[float] = []  # CPU µs per query of each batch of ``queries`` per client
    t0 = time.perf_counter()
    if prof is not None:
        prof.enable()
    for _ in range(rounds):
        c0 = time.thread_time()
        await asyncio.gather(*(client(i, queries) for i in range(clients)))
        batches.append((time.thread_time() - c0) / (clients * queries) * 1e6)
    if prof is not None:
        prof.disable()
        prof.dump_stats(profile)
    t1 = time.perf_counter()
    for w in workers:
        await w.aclose()
    dep.close()
    n = clients * queries * rounds
    print(json.dumps({"us_per_query": min(batches), "median": statistics.median(batches), "rps": n / (t1 - t0)}))


def one_inproc(spec: str, args: argparse.Namespace, tag: str) -> dict[str, float]:
    tree, env = parse_tree(spec)
    cmd = [str(tree / ".venv" / "bin" / "python"), str(Path(__file__).resolve()), "--inproc-child",
           "--tree", str(tree), "--clients", str(args.clients), "--queries", str(args.queries),
           "--batches", str(args.batches)]
    if args.profile:
        cmd += ["--profile", str(Path(args.profile).resolve() / f"{tag}.prof")]
    p = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, env={**os.environ, **env})
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-3000:])
    res = json.loads(p.stdout.strip().splitlines()[-1])
    return {"rps": res["rps"], "us_per_query": res["us_per_query"], "median": res["median"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", action="append", required=True,
                    help="a checkout with .venv, optionally ,NAME=VALUE environment for its server (repeat: A, B, ...)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--vary", action="store_true", help="uncached: vary a cache-breaker argument")
    ap.add_argument("--py-spy", help="directory for py-spy raw profiles of each run")
    ap.add_argument("--inproc", action="store_true", help="drive SyncWorkers in-process (no sockets)")
    ap.add_argument("--queries", type=int, default=300, help="--inproc: queries per client")
    ap.add_argument("--batches", type=int, default=10,
                    help="--inproc: batches of --queries per client; the CPU per query reported is the batch minimum")
    ap.add_argument("--profile", help="--inproc: directory for a cProfile of each run")
    ap.add_argument("--cprofile", help="socket mode: directory for a cProfile of each server's event loop")
    ap.add_argument("--strace", help="socket mode: directory for strace -c of each server's event-loop thread")
    ap.add_argument("--perf", help="socket mode: directory for perf record (cpu-clock) of the event-loop thread")
    ap.add_argument("--syscalls", action="store_true",
                    help="socket mode: count the event-loop thread's system calls (perf stat)")
    ap.add_argument("--threads", action="store_true", help="socket mode: print other threads' CPU")
    ap.add_argument("--inproc-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--serve-profiled", help=argparse.SUPPRESS)
    if "--serve-profiled" in sys.argv:
        i = sys.argv.index("--")
        _serve_profiled(sys.argv[sys.argv.index("--serve-profiled") + 1], sys.argv[i + 1:])
        return
    args = ap.parse_args()
    if args.inproc_child:
        import asyncio

        asyncio.run(_inproc_child(args.clients, args.queries, args.batches, args.profile))
        return
    trees = args.tree
    for d in (args.py_spy, args.profile, args.cprofile, args.strace, args.perf):
        if d:
            Path(d).mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict[str, float]]] = {t: [] for t in trees}
    for rnd in range(args.rounds):
        for i, tree in enumerate(trees):
            tag = f"r{rnd}-{i}-{parse_tree(tree)[0].name}"
            r = one_inproc(tree, args, tag) if args.inproc else one(tree, args, tag)
            results[tree].append(r)
            if args.inproc:
                print(f"round {rnd} {tree}: {r['rps']:,.0f} reads/s, {r['us_per_query']:.1f} µs CPU/query "
                      f"(best batch; median batch {r['median']:.1f})", flush=True)
                continue
            print(f"round {rnd} {tree}: {r['rps']:,.0f} reads/s, {r['us_per_query']:.1f} µs CPU/query, "
                  f"{r['server_cores']:.2f} cores, event-loop thread {r.get('main_us_per_query', 0):.1f} µs/query, "
                  f"failed {r['failed']}, {r.get('ok', 0)} queries, event-loop thread slept {r.get('sleeps_per_query', 0):.3f} "
                  f"and was preempted {r.get('preempted_per_query', 0):.3f} times per query"
                  + (f", {r['syscalls_per_query']:.2f} syscalls per query" if args.syscalls else ""), flush=True)
    for tree, rs in results.items():
        us = [r["us_per_query"] for r in rs]
        rps = [r["rps"] for r in rs]
        print(f"{tree}: median {statistics.median(us):.1f} µs/query (min {min(us):.1f}, max {max(us):.1f}), "
              f"median {statistics.median(rps):,.0f} reads/s")


if __name__ == "__main__":
    main()
