"""G1 — growth: W1/R1 per-operation cost at growing document counts, startup with many."""

from __future__ import annotations

import json
import time
from typing import Any

from harness import MUTATION_BODY, OK, Convection, Run, log, prefill_channel, rss_mb


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
