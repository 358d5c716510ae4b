"""W1 — insert throughput (HTTP under wrk, WebSocket npm clients, PocketBase, raw SQLite)."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from harness import (
    MUTATION_BODY,
    OK,
    PB_CREATE_BODY,
    Convection,
    PocketBase,
    Run,
    cpu_seconds,
    log,
    node,
    profiling,
)


def raw_sqlite_inserts(path: Path, seconds: float) -> dict[str, float]:
    """The storage reference: one Python thread, WAL + synchronous=NORMAL, 1 txn per insert."""
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
    s["raw_sqlite"] = raw_sqlite_inserts(run.tmp / f"raw{run.suffix.replace('@', '-')}.sqlite3", min(cfg.load_s, 5))
