"""Insert-cost growth (the G1 W1 figure, alone): server CPU per single-document insert as the
table grows.

Starts ``convection serve`` (from ``--tree``: a checkout with its own ``.venv``, so the same
script measures an older tree as the "before" side) on a temporary data directory with the
benchmark app, prefills one channel through ``messages:bulk`` (1,000 inserts per mutation, as
G1 does), and at each size runs ``--rounds`` rounds of ``--inserts`` single inserts
(``messages:send`` into another channel, ``--clients`` HTTP callers), printing the server's CPU
time (user + system, from /proc) per insert of each round. The median round is the figure;
a round that caught a maintenance pass (every MAINTENANCE_INTERVAL_MS, 60 s) shows as an
outlier; the mean over all rounds includes it (make the rounds span a minute or more, as G1's
30 s of load at each size may or may not).

    .venv/bin/python bench/insert_growth.py --sizes 10000,300000
    .venv/bin/python bench/insert_growth.py --tree /work/wt/s1 --sizes 10000,300000
    .venv/bin/python bench/insert_growth.py --quick          # 2,000 and 20,000 documents

To run another revision of ``src/`` with this tree's venv:
``--env PYTHONPATH=/tmp/base/src`` (after ``git archive REV src | tar -x -C /tmp/base``).
``--prune-cost DATA_DIR`` (server stopped) times, on that store, one retention pass's read
of index entries as it was (the whole index log, LEAD over the PK) and as it is (the entries
of one MAINTENANCE_INTERVAL_MS window, through indexes_by_ts): CPU seconds of this process.

``--profile DIR`` records the server with py-spy (if installed) during the first round at
each size. ``--env K=V`` passes knob overrides to the server (repeatable).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
APP = HERE / "app" / "convex"
CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(client: httpx.Client, path: str, args: dict[str, object]) -> object:
    r = client.post("/api/mutation", json={"path": path, "args": args, "format": "json"})
    body = r.json()
    if body.get("status") != "success":
        raise RuntimeError(f"{path}: {body.get('errorMessage')}")
    return body.get("value")


def parallel(url: str, clients: int, work: list[dict[str, object]], path: str) -> None:
    errors: list[BaseException] = []

    def run(part: list[dict[str, object]]) -> None:
        with httpx.Client(base_url=url, timeout=600) as c:
            for args in part:
                try:
                    post(c, path, args)
                except BaseException as exc:  # reported below
                    errors.append(exc)
                    return

    threads = [threading.Thread(target=run, args=(work[i::clients],)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{path} failed: {errors[0]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", default=str(HERE.parent), help="checkout to run (its .venv/bin/python)")
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--quick", action="store_true", help="sizes 2,000 and 20,000")
    ap.add_argument("--inserts", type=int, default=2000, help="inserts per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--profile", default="", help="directory for py-spy flame graphs")
    ap.add_argument("--env", action="append", default=[], help="K=V for the server")
    ap.add_argument("--keep", default="", help="data directory to use and keep (reused if prefilled)")
    ap.add_argument("--prune-cost", default="", help="data directory: time retention's index read")
    a = ap.parse_args()
    if a.prune_cost:
        prune_cost(Path(a.prune_cost))
        return
    sizes = [2_000, 20_000] if a.quick else [int(s) for s in a.sizes.split(",")]
    tree = Path(a.tree).resolve()
    py = tree / ".venv" / "bin" / "python"
    tmp = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="insert-growth-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    for kv in a.env:
        k, _, v = kv.partition("=")
        env[k] = v
    log = (tmp / "server.log").open("ab")
    proc = subprocess.Popen(
        [str(py), "-m", "convection", "serve", "--functions", str(APP), "--data", str(tmp / "data"),
         "--host", "127.0.0.1", "--port", str(port), "--site-port", "0"],
        cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    print(f"tree {tree} (git {git_head(tree)}), env {' '.join(a.env) or '-'}, "
          f"server pid {proc.pid}, data {tmp}", flush=True)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(url + "/version", timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        have = count_prefilled(tmp)
        serial = 0
        for size in sizes:
            if size > have:
                t0 = time.perf_counter()
                work: list[dict[str, object]] = [
                    {"channel": "big", "start": s, "count": min(1000, size - s)}
                    for s in range(have, size, 1000)
                ]
                parallel(url, 2, work, "messages:bulk")
                print(f"prefill {have} -> {size}: {time.perf_counter() - t0:.1f} s", flush=True)
                have = size
                (tmp / "prefilled").write_text(str(have))
            # warm-up (connections, caches)
            parallel(url, a.clients, [{"channel": "w", "n": serial + i, "body": "hello world"}
                                      for i in range(200)], "messages:send")
            serial += 200
            per: list[float] = []
            for r in range(a.rounds):
                spy = None
                if a.profile and r == 0 and shutil.which("py-spy"):
                    Path(a.profile).mkdir(parents=True, exist_ok=True)
                    spy = subprocess.Popen(
                        ["py-spy", "record", "-p", str(proc.pid), "-r", "200", "-o",
                         str(Path(a.profile) / f"insert-{size}.svg")],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(0.5)
                work = [{"channel": "w", "n": serial + i, "body": "hello world"} for i in range(a.inserts)]
                serial += a.inserts
                c0, t0 = cpu_seconds(proc.pid), time.perf_counter()
                parallel(url, a.clients, work, "messages:send")
                c1, t1 = cpu_seconds(proc.pid), time.perf_counter()
                if spy is not None:
                    spy.send_signal(2)
                    spy.wait()
                us = (c1 - c0) / a.inserts * 1e6
                per.append(us)
                print(f"  {size:>9,} docs round {r}: {us:7.0f} µs CPU/insert, "
                      f"{a.inserts / (t1 - t0):6.0f} inserts/s", flush=True)
            print(f"{size:>9,} docs: median {statistics.median(per):.0f} µs CPU/insert, "
                  f"all rounds {statistics.fmean(per):.0f} µs CPU/insert", flush=True)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)


# Retention's index-entry read before 2026-12-08 (one pass over the whole index log).
_FULL_PASS = (
    "SELECT index_id, key, ts FROM ("
    "SELECT index_id, key, ts, deleted,"
    " LEAD(ts) OVER (PARTITION BY index_id, key ORDER BY ts) AS next_ts"
    " FROM indexes WHERE ts <= ?"
    ") WHERE deleted OR next_ts IS NOT NULL"
)
# ... and since (the entries written in (watermark, bound]; needs indexes_by_ts).
_WINDOW = (
    "SELECT o.index_id, o.key, o.ts FROM indexes AS n JOIN indexes AS o"
    " ON o.index_id = n.index_id AND o.key = n.key AND o.ts < n.ts"
    " WHERE n.ts > ?1 AND n.ts <= ?2"
    " UNION ALL SELECT index_id, key, ts FROM indexes"
    " WHERE ts > ?1 AND ts <= ?2 AND deleted"
)


def prune_cost(data: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(f"file:{data / 'db.sqlite3'}?mode=ro", uri=True)
    entries = conn.execute("SELECT count(*) FROM indexes").fetchone()[0]
    documents = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
    top = conn.execute("SELECT max(ts) FROM documents").fetchone()[0]
    retention, interval = 300 * 10**9, 60 * 10**9  # SNAPSHOT_RETENTION_MS, MAINTENANCE_INTERVAL_MS
    bound = top - retention
    print(f"{data}: {documents:,} document revisions, {entries:,} index entries")

    def timed(label: str, sql: str, params: tuple[int, ...], rows: int | None = None) -> None:
        for _ in range(2):  # the second run has the pages in SQLite's and the OS's cache
            t0 = time.process_time()
            found = len(conn.execute(sql, params).fetchall())
            cpu = time.process_time() - t0
        extra = f", {rows:,} entries in the window" if rows is not None else ""
        print(f"  {label}: {cpu:.2f} s CPU, {found:,} candidates{extra}", flush=True)

    timed("whole index log, bound = newest - 5 min", _FULL_PASS, (bound,))
    timed("whole index log, bound = newest (every entry older than the retention)", _FULL_PASS, (top,))
    has_ts = conn.execute("SELECT 1 FROM sqlite_schema WHERE name = 'indexes_by_ts'").fetchone()
    if has_ts:
        window = (bound - interval, bound)
        n = conn.execute("SELECT count(*) FROM indexes WHERE ts > ? AND ts <= ?", window).fetchone()[0]
        timed("one 60 s window before the bound", _WINDOW, window, n)
    conn.close()


def count_prefilled(tmp: Path) -> int:
    f = tmp / "prefilled"
    return int(f.read_text()) if f.exists() else 0


def git_head(tree: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


if __name__ == "__main__":
    sys.exit(main())
