"""Cross-node latency on one host: a subscriber on node A sees a commit made on node B.

Starts its own throwaway PostgreSQL cluster (as tests/e2e do: ``tests/conftest.py``'s
``start_postgres``; or ``--pg-url`` to use a running server), two ``convection serve --db
postgres://...`` nodes on different ports with the bench app (``bench/app/convex``), and two
raw sync sockets subscribed to ``counters:get``: one on node A, one on node B (the same-node
baseline). Then ``--count`` times: an HTTP mutation ``counters:increment`` to node B (one
keep-alive connection), and the wait until both subscribers saw the new value.

Reports p50 / p90 / p99 / max, in ms, of
* ``A``: from sending the HTTP request to B to node A's Transition with the new value;
* ``B``: the same for the subscriber on B (what a local subscriber sees);
* ``A - B``: what crossing nodes adds (the tailer's wake-up and catch-up on A).

Before that, the CPU an idle node uses (node A over ``--idle-s`` seconds, with one socket
subscribed and nothing committing).

Extra ``CONVECTION_*`` knobs for both nodes go in ``--env NAME=VALUE`` (e.g.
``--env CONVECTION_LOG_TAIL_NOTIFY=0`` to measure polling). Usage:

    .venv/bin/python bench/cross_node.py --count 300
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "bench" / "app" / "convex"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Node:
    def __init__(self, base: Path, name: str, db: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = base / f"{name}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "convection", "serve", "--functions", str(APP),
                 "--data", str(base / name), "--db", db, "--host", "127.0.0.1",
                 "--port", str(self.port), "--site-port", str(free_port())],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited:\n{self.log.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(self.url + "/version", timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start:\n{self.log.read_text()[-4000:]}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Subscriber:
    """A raw sync socket subscribed to ``counters:get``; records when each value arrived."""

    def __init__(self, url: str, name: str) -> None:
        ws_url = url.replace("http://", "ws://") + "/api/1.48.0/sync"
        self._conn = connect(ws_url, max_size=None, open_timeout=10)
        self.ws = self._conn.__enter__()
        self.seen: dict[int, float] = {}
        self.cond = threading.Condition()
        self.ws.send(json.dumps({"type": "Connect", "sessionId": str(uuid.uuid4()),
                                 "connectionCount": 0, "lastCloseReason": "InitialConnect",
                                 "clientTs": 0}))
        self.ws.send(json.dumps({"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1,
                                 "modifications": [{"type": "Add", "queryId": 0,
                                                    "udfPath": "counters:get",
                                                    "args": [{"name": name}]}]}))
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for text in self.ws:
                now = time.perf_counter()
                msg = json.loads(text)
                if msg.get("type") != "Transition":
                    continue
                for mod in msg["modifications"]:
                    if mod.get("type") == "QueryUpdated":
                        with self.cond:
                            self.seen.setdefault(int(mod["value"]), now)
                            self.cond.notify_all()
        except Exception:
            pass

    def wait(self, value: int, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while value not in self.seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.seen[value]

    def close(self) -> None:
        self._conn.__exit__(None, None, None)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--gap-ms", type=float, default=20.0, help="pause between commits")
    parser.add_argument("--pg-url", help="use this PostgreSQL server instead of starting one")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for both nodes")
    parser.add_argument("--label", default="")
    parser.add_argument("--idle-s", type=float, default=10.0, help="idle CPU measured this long")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)

    base = Path(tempfile.mkdtemp(prefix="cross-node-"))
    pg = None
    if args.pg_url:
        pg_url = args.pg_url
    else:
        sys.path.insert(0, str(ROOT / "tests"))
        from conftest import postgres_bin_dir, start_postgres  # type: ignore[import-not-found]

        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise SystemExit("PostgreSQL binaries not found; pass --pg-url")
        pg = start_postgres(bin_dir)
        pg_url = pg.url
    db = f"{pg_url}{'&' if '?' in pg_url else '?'}schema=x_{uuid.uuid4().hex[:10]}"
    nodes: list[Node] = []
    subs: list[Subscriber] = []
    try:
        a = Node(base, "node-a", db, env)
        nodes.append(a)
        b = Node(base, "node-b", db, env)
        nodes.append(b)
        name = uuid.uuid4().hex
        sub_a, sub_b = Subscriber(a.url, name), Subscriber(b.url, name)
        subs += [sub_a, sub_b]
        assert sub_a.wait(0, 30) is not None and sub_b.wait(0, 30) is not None
        time.sleep(2)  # let start-up work settle, then measure an idle node's CPU
        before = cpu_seconds(a.proc.pid)
        time.sleep(args.idle_s)
        idle_pct = (cpu_seconds(a.proc.pid) - before) / args.idle_s * 100
        conn = http.client.HTTPConnection("127.0.0.1", b.port, timeout=30)
        body = json.dumps({"path": "counters:increment", "args": {"name": name}, "format": "json"})
        lat_a: list[float] = []
        lat_b: list[float] = []
        missed = 0
        for i in range(1, args.count + 1):
            sent = time.perf_counter()
            conn.request("POST", "/api/mutation", body, {"Content-Type": "application/json"})
            out = json.loads(conn.getresponse().read())
            assert out["status"] == "success" and out["value"] == i, out
            got_b = sub_b.wait(i, 10)
            got_a = sub_a.wait(i, 10)
            if got_a is None or got_b is None:
                missed += 1
            else:
                lat_a.append((got_a - sent) * 1000)
                lat_b.append((got_b - sent) * 1000)
            time.sleep(args.gap_ms / 1000)
        diff = [x - y for x, y in zip(lat_a, lat_b, strict=True)]
        print(f"\n{args.label or 'run'}: {len(lat_a)} commits on B, {missed} not seen within 10 s; "
              f"env {env or '{}'}; idle node A: {idle_pct:.1f}% of a core")
        print("| latency (ms) | p50 | p90 | p99 | max |")
        print("|---|---|---|---|---|")
        for label, xs in (("A (other node)", lat_a), ("B (same node)", lat_b), ("A - B", diff)):
            print(f"| {label} | {statistics.median(xs):.2f} | {pct(xs, 90):.2f} | "
                  f"{pct(xs, 99):.2f} | {max(xs):.2f} |")
    finally:
        for s in subs:
            s.close()
        for n in reversed(nodes):
            n.stop()
        if pg is not None:
            pg.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
