"""M1 — memory: per open connection, and the 10-minute soak on a fresh server."""

from __future__ import annotations

import contextlib
import statistics
import threading
import time

from harness import Convection, Run, Subscribers, log, node, rss_mb


def m1_connections(run: Run, cvx: Convection) -> None:
    if not run.has_node:
        return
    n = run.cfg.m1_conns
    log(f"M1 RSS of {n} open connections")
    rss0 = rss_mb(cvx.pid)
    subs = Subscribers(cvx.url, {"kind": "convex", "mode": "none"}, n)
    try:
        subs.ready(300)
        time.sleep(1)
        rss1 = rss_mb(cvx.pid)
    finally:
        subs.stop()
    time.sleep(1)
    m = run.section("M1")
    m["connections"] = n
    m["per_connection_kb"] = (rss1 - rss0) * 1024 / n
    m["rss_after_close_mb"] = rss_mb(cvx.pid)




def soak(run: Run) -> None:
    if not run.has_node:
        return
    cvx = Convection(run.tmp, "soak")
    cvx.start()
    try:
        _soak(run, cvx)
    finally:
        cvx.stop()


def _soak(run: Run, cvx: Convection) -> None:
    secs = run.cfg.soak_s
    log(f"M1 soak for {secs:.0f} s (a server of its own)")
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample() -> None:
        t0 = time.time()
        while not stop.is_set():
            with contextlib.suppress(Exception):
                samples.append((time.time() - t0, rss_mb(cvx.pid)))
            stop.wait(max(1.0, secs / 120))

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        res = node("soak.mjs", cvx.url, {"seconds": secs, "clients": 20, "rate": 100, "channel": "soak"},
                   timeout=secs + 300)
    finally:
        stop.set()
        th.join()
    quarter = [m for t, m in samples if t <= secs / 4] or [samples[0][1]]
    second_quarter = [m for t, m in samples if secs / 4 < t <= secs / 2] or quarter
    last_quarter = [m for t, m in samples if t >= secs * 3 / 4] or [samples[-1][1]]
    half = [(t, m) for t, m in samples if t >= secs / 2]
    slope = 0.0
    if len(half) >= 3:
        ts, ms = zip(*half, strict=True)
        mt, mm = statistics.fmean(ts), statistics.fmean(ms)
        slope = sum((t - mt) * (m - mm) for t, m in half) / max(1e-9, sum((t - mt) ** 2 for t in ts)) * 60
    run.section("M1")["soak"] = {
        "seconds": secs, "result": res, "rss_start_mb": samples[0][1] if samples else None,
        "rss_first_quarter_max_mb": max(quarter), "rss_second_quarter_max_mb": max(second_quarter),
        "rss_last_quarter_max_mb": max(last_quarter),
        "rss_end_mb": samples[-1][1] if samples else None, "slope_mb_per_min_second_half": slope,
        "samples": samples}


# ---------------------------------------------------------------------------------------
# Report
