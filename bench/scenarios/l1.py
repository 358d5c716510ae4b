"""L1 — observe-insert latency (convection, PocketBase SSE, WebSocket echo)."""

from __future__ import annotations

from harness import Convection, Echo, PocketBase, Run, log, node, profiling


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
