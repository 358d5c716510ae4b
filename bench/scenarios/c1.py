"""C1 — contention: 16 clients incrementing one counter document."""

from __future__ import annotations

import os
import random

from harness import Convection, Run, log, node


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
