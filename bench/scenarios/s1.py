"""S1 — many subscriptions, few invalidated (also M1's per-subscription memory)."""

from __future__ import annotations

import random
import statistics
import time

from harness import Convection, Run, Subscribers, cpu_seconds, log, rss_mb


def s1(run: Run, cvx: Convection) -> None:
    cfg, s = run.cfg, run.section("S1")
    if not run.has_node:
        return
    big, small = cfg.s1_big, cfg.s1_small
    log(f"S1 {big} vs {small} subscriptions, 100 touched per commit")
    for a in range(0, big, 1000):
        cvx.call("mutation", "slots:init", {"start": a, "count": min(1000, big - a)})
    value = 0
    clients = max(1, big // 1000)  # the same sockets for both counts: only idle subscriptions differ
    for count in (small, big):
        rss0 = rss_mb(cvx.pid)
        subs = Subscribers(cvx.url, {"kind": "convex", "mode": "slots", "kStart": 0, "kCount": count},
                           clients, per_proc=10, split_keys=True)
        try:
            setup_s = subs.ready(900)
            rss1 = rss_mb(cvx.pid)
            idle_s = 1.0 if cfg.quick else 3.0
            time.sleep(0.3)
            idle0 = cpu_seconds(cvx.pid)
            time.sleep(idle_s)
            idle_cpu = (cpu_seconds(cvx.pid) - idle0) / idle_s
            lats = []
            cpu = 0.0
            rng = random.Random(7)
            for _ in range(cfg.s1_rounds):
                value += 1
                keys = rng.sample(range(count), 100)
                c0, t0 = cpu_seconds(cvx.pid), time.perf_counter()
                got = subs.round(value, lambda keys=keys, v=value: cvx.call("mutation", "slots:touch", {"ks": keys, "value": v}),
                                 keys=keys, timeout=60)
                time.sleep(0.05)
                cpu += cpu_seconds(cvx.pid) - c0 - idle_cpu * (time.perf_counter() - t0)
                if got is None:
                    raise RuntimeError("S1: an update never arrived")
                lats.append(got)
                time.sleep(0.05)
            s[str(count)] = {"subscriptions": count, "clients": clients,
                             "last_ms": statistics.median(x["last_ms"] for x in lats),
                             "p50_ms": statistics.median(x["p50_ms"] for x in lats),
                             "cpu_ms_per_commit": cpu / cfg.s1_rounds * 1000,
                             "idle_cpu_share": idle_cpu, "setup_s": setup_s,
                             "rss_mb": rss1, "rss_delta_mb": rss1 - rss0}
        finally:
            subs.stop()
        time.sleep(1)
    run.section("M1")["per_subscription_kb"] = s[str(big)]["rss_delta_mb"] * 1024 / big
