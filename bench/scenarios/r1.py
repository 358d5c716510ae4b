"""R1 — take-10 read throughput, cached and uncached, HTTP and WebSocket, vs PocketBase list."""

from __future__ import annotations

import json

from harness import (
    OK,
    Convection,
    PocketBase,
    Run,
    ThreadedCreates,
    cpu_seconds,
    log,
    node,
    prefill_channel,
)


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
