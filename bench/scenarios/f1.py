"""F1 — fan-out: N subscribers on one query, time until the last sees an insert."""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Any

from harness import Convection, PocketBase, Run, Subscribers, log, profiling, rss_mb


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
