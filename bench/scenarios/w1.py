"""W1 — insert throughput (HTTP under wrk, WebSocket npm clients, PocketBase, raw SQLite)."""

from __future__ import annotations

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
    raw_sqlite_inserts,
)


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
