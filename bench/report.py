"""Rendering a run's numbers: RESULTS.md (tables, summary with ratios and goals, PROFILES.md
embedded) and the F1/G1 plots."""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import BENCH, ROOT, Run


def machine() -> dict[str, str]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            mem = f"{int(line.split()[1]) / 2**20:.0f} GiB"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    node_v = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip() if shutil.which("node") else "-"
    return {"cpu": cpu, "cores": str(os.cpu_count()), "memory": mem, "kernel": platform.release(),
            "python": platform.python_version(), "node": node_v,
            "commit": commit + (" (with uncommitted changes)" if dirty else ""),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")}


def fmt(x: Any, nd: int = 0) -> str:
    if x is None or (isinstance(x, float) and x != x):
        return "–"
    if isinstance(x, float | int):
        return f"{x:,.{nd}f}"
    return str(x)


def ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "–"
    return f"{a / b:.2f}×"


def verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("yes" if ok else "**no**")


def plot_f1(run: Run, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f = run.results.get("F1", {})
    ns = sorted(int(k) for k in f)
    if not ns:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for side, color in (("convection", "tab:blue"), ("pocketbase", "tab:orange")):
        pts = [(n, f[str(n)][side]) for n in ns if "last_ms" in f[str(n)].get(side, {})]
        if pts:
            ax.plot([n for n, _ in pts], [r["last_ms"] for _, r in pts], "o-", color=color, label=f"{side}: last subscriber")
            ax.plot([n for n, _ in pts], [r["p50_ms"] for _, r in pts], "o--", color=color, alpha=0.6,
                    label=f"{side}: median subscriber")
    ax.axhline(500, color="grey", lw=0.8, ls=":", label="goal at N=10,000: 500 ms")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("subscribers N (one connection each)")
    ax.set_ylabel("ms from sending the insert")
    ax.set_title("F1 fan-out: time until subscribers see the update")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_g1(run: Run, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = run.results.get("G1", {})
    sizes = sorted(int(k) for k in g if k.isdigit())
    if not sizes:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, label in (("w1", "W1 insert"), ("r1_cached", "R1 take-10, cached"), ("r1_uncached", "R1 take-10, uncached")):
        ax.plot(sizes, [g[str(n)][key]["server_cpu_us_per_op"] for n in sizes], "o-", label=f"{label}: server CPU/op")
        ax.plot(sizes, [1e6 / g[str(n)][key]["rps"] for n in sizes], "x--", alpha=0.6, label=f"{label}: 1/throughput")
    ax.set_xscale("log")
    ax.set_xlabel("documents in the table")
    ax.set_ylabel("µs per operation")
    ax.set_ylim(bottom=0)
    ax.set_title("G1 growth: per-operation cost vs table size (convection)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# The run the summary is compared with ("before"): the last full run of session 1, before
# the work of issues 11-17 (bench/RESULTS.md at that commit). CONVECTION_BENCH_BEFORE=<rev>
# picks another; "" turns the comparison off.
BEFORE_REV = os.environ.get("CONVECTION_BENCH_BEFORE", "6295815")


def _summary_rows(text: str) -> dict[tuple[str, str], tuple[str, str, str]]:
    """(id, figure) -> (convection, reference, ratio) from a RESULTS.md summary table."""
    rows: dict[tuple[str, str], tuple[str, str, str]] = {}
    inside = False
    for line in text.splitlines():
        if line.startswith("## Summary"):
            inside = True
            continue
        if inside and line.startswith("## "):
            break
        if inside and line.startswith("| ") and not line.startswith("| id ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) >= 5:
                rows[(cells[0], cells[1])] = (cells[2], cells[3], cells[4])
    return rows


def before_after(after_md: str) -> str:
    """A before/after table: every summary figure of this run beside the same figure of the
    ``BEFORE_REV`` run (each from one run of bench/run.py)."""
    if not BEFORE_REV:
        return ""
    try:
        old = subprocess.run(["git", "show", f"{BEFORE_REV}:bench/RESULTS.md"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""
    before, after = _summary_rows(old), _summary_rows(after_md)
    date = re.search(r"\| date \| ([^|]+) \|", old)
    lines = ["## Before and after", "",
             f"Each summary figure of this run beside the same figure of the full run at `{BEFORE_REV}` "
             f"({date.group(1).strip() if date else 'session 1'}, the last full run before this work; its "
             "RESULTS.md is in git). Ratios are to PocketBase (or the stated reference) measured in "
             "the same run as the figure, so they compare across runs better than raw numbers.", "",
             "| id | figure | before | before ratio | after | after ratio |", "|---|---|---:|---:|---:|---:|"]
    for key, (c, _ref, r) in after.items():
        b = before.get(key)
        lines.append(f"| {key[0]} | {key[1]} | {b[0] if b else '–'} | {b[2] if b else '–'} | {c} | {r} |")
    return "\n".join(lines) + "\n"


def report(run: Run, out: Path, mach: dict[str, str], started: float, pb_version: str) -> str:
    try:
        text = _report(run, out, mach, started, pb_version)
        extra = before_after(text)
        if extra and "\n## Summary" in text:
            head, _, rest = text.partition("\n## Summary")
            text = head + "\n" + extra + "\n## Summary" + rest
        return text
    except Exception as exc:  # never lose a run's numbers to a rendering bug
        import traceback

        return ("# Benchmark results (report rendering failed)\n\n```\n" + traceback.format_exc() +
                "```\n\n```json\n" + json.dumps(run.results, indent=1, default=str)[:200000] + "\n```\n" + str(exc))


def _report(run: Run, out: Path, mach: dict[str, str], started: float, pb_version: str) -> str:
    R = run.results
    cfg = run.cfg
    suffix = "-quick" if cfg.quick else ""
    L: list[str] = []
    add = L.append
    add(f"# Benchmark results{' (quick mode)' if cfg.quick else ''}")
    add("")
    add(f"Generated by `.venv/bin/python bench/run.py{' --quick' if cfg.quick else ''}` "
        f"(spec: shared/BENCHMARKS.md). Every number below was measured in this one run, side by side "
        "with its reference; ratios are convection ÷ reference. This machine is shared and noisy: "
        "trust the ratios more than the absolute figures.")
    add("")
    add("| | |")
    add("|---|---|")
    add(f"| date | {mach['date']} |")
    add(f"| commit | `{mach['commit']}` |")
    add(f"| machine | {mach['cpu']}, {mach['cores']} cores, {mach['memory']} RAM, Linux {mach['kernel']} |")
    add(f"| software | Python {mach['python']}, Node {mach['node']}, {pb_version} |")
    add(f"| HTTP load | {run.http.name}, {cfg.conns} connections, {cfg.load_s:.0f} s per measurement |")
    add(f"| run time | {(time.time() - started) / 60:.1f} min |")
    if cfg.profile:
        add("| profiling | `--profile`: py-spy sampled the server during W1, L1 and the largest F1, which costs it some CPU |")
    add("")
    add("**CPU contention.** The machine has 2 cores; the server under test, the load generator "
        "(wrk, node) and, for subscriber scenarios, thousands of client objects all share them. "
        "Each table shows the generator's own CPU (as a share of one core) next to the server's, "
        "so one can see when the generator, not the server, was the limit. The WebSocket echo "
        "reference (L1) shows what loopback + one Python event loop cost alone.")
    add("")

    # --- summary
    add("## Summary")
    add("")
    add("| id | figure | convection | reference | ratio | goal | met |")
    add("|---|---|---:|---:|---:|---|---|")
    w = R.get("W1", {})
    if w:
        c, p, q = w["convection_http"]["rps"], w["pocketbase_http"]["rps"], w["raw_sqlite"]["rps"]
        add(f"| W1 | inserts/s, HTTP, {cfg.conns} clients | {fmt(c)} | PocketBase {fmt(p)} | {ratio(c, p)} | ≥ 1× | {verdict(c >= p)} |")
        add(f"| W1 | inserts/s vs storage limit | {fmt(c)} | raw SQLite {fmt(q)} | {ratio(c, q)} | ≥ 0.3× | {verdict(c >= 0.3 * q)} |")
    lat = R.get("L1", {})
    if lat:
        for pct in ("p50", "p99"):
            c, p = lat["convection"][pct], lat["pocketbase"][pct]
            add(f"| L1 | observe-insert {pct}, ms | {fmt(c, 2)} | PocketBase {fmt(p, 2)} | {ratio(c, p)} | ≤ 1× | {verdict(c <= p)} |")
        add(f"| L1 | observe-insert p50 vs network | {fmt(lat['convection']['p50'], 2)} | WS echo {fmt(lat['echo']['p50'], 2)} | {ratio(lat['convection']['p50'], lat['echo']['p50'])} | – | – |")
    f = R.get("F1", {})
    for n in sorted((int(k) for k in f), key=int):
        row = f[str(n)]
        c = row.get("convection", {}).get("last_ms")
        p = row.get("pocketbase", {}).get("last_ms")
        goal, met = "–", None
        if n == 100:
            goal, met = "≤ 1×", (c is not None and p is not None and c <= p)
        if n == 10_000:
            goal, met = "< 500 ms", (c is not None and c < 500)
        add(f"| F1 | last delivery, N={n:,}, ms | {fmt(c, 1)} | PocketBase {fmt(p, 1)} | {ratio(c, p)} | {goal} | {verdict(met)} |")
    s = R.get("S1", {})
    if len(s) == 2:
        big, small = s[str(cfg.s1_big)], s[str(cfg.s1_small)]
        add(f"| S1 | commit→update, {cfg.s1_big:,} vs {cfg.s1_small} subs, ms | {fmt(big['last_ms'], 1)} | {fmt(small['last_ms'], 1)} | {ratio(big['last_ms'], small['last_ms'])} | ≈ 1× | {verdict(big['last_ms'] <= 1.5 * small['last_ms'])} |")
        add(f"| S1 | server CPU per commit, ms | {fmt(big['cpu_ms_per_commit'], 1)} | {fmt(small['cpu_ms_per_commit'], 1)} | {ratio(big['cpu_ms_per_commit'], small['cpu_ms_per_commit'])} | ≈ 1× | {verdict(big['cpu_ms_per_commit'] <= 1.5 * small['cpu_ms_per_commit'])} |")
    r = R.get("R1", {})
    if r:
        p = r["pocketbase_http"]["rps"]
        for key, label in (("convection_http_cached", "HTTP cached"), ("convection_http_uncached", "HTTP uncached"),
                           ("convection_ws_cached", "WebSocket cached"), ("convection_ws_uncached", "WebSocket uncached")):
            if key in r:
                c = r[key]["rps"]
                add(f"| R1 | take-10 reads/s, {label} | {fmt(c)} | PocketBase list {fmt(p)} | {ratio(c, p)} | ≥ 1× | {verdict(c >= p)} |")
    c1r = R.get("C1", {})
    if c1r:
        add(f"| C1 | increments/s, 16 clients, one document ({c1r['failed']:,} failed calls) | {fmt(c1r['rps'])} | – | – | no lost update, no failed call | {verdict(c1r['no_lost_update'] and not c1r['failed'])} |")
    g = R.get("G1", {})
    sizes = sorted(int(k) for k in g if k.isdigit())
    if len(sizes) >= 2:
        a, b = g[str(sizes[0])], g[str(sizes[-1])]
        for key, label in (("w1", "insert"), ("r1_uncached", "uncached take-10")):
            ca, cb = a[key]["server_cpu_us_per_op"], b[key]["server_cpu_us_per_op"]
            add(f"| G1 | server CPU/op, {label}, {sizes[-1]:,} vs {sizes[0]:,} docs, µs | {fmt(cb)} | {fmt(ca)} | {ratio(cb, ca)} | flat | {verdict(cb <= 1.5 * ca)} |")
    m = R.get("M1", {})
    if m.get("idle_rss_mb"):
        add(f"| M1 | idle RSS, MB | {fmt(m['idle_rss_mb'], 1)} | PocketBase {fmt(m.get('pocketbase_idle_rss_mb'), 1)} | {ratio(m['idle_rss_mb'], m.get('pocketbase_idle_rss_mb'))} | reported | – |")
    if m.get("soak"):
        sk = m["soak"]
        # Bounded: the last quarter does not exceed the second quarter by more than 10 % + 10 MB
        # (the first minute fills the write log, WRITE_LOG_RETENTION_MS).
        bounded = sk["rss_last_quarter_max_mb"] <= sk.get("rss_second_quarter_max_mb", sk["rss_first_quarter_max_mb"]) * 1.1 + 10
        add(f"| M1 | soak {sk['seconds'] / 60:.0f} min: RSS max 2nd → last quarter, MB | {fmt(sk.get('rss_second_quarter_max_mb'), 1)} → {fmt(sk['rss_last_quarter_max_mb'], 1)} | – | – | bounded | {verdict(bounded)} |")
    add("")
    _workers_section(run, add)

    # --- per scenario
    if w:
        add("## W1 — insert throughput")
        add("")
        add("Each request inserts one document (`messages`, one secondary index `by_channel_n`). Closed loop: "
            f"{cfg.conns} concurrent clients, each waits for its answer before sending the next.")
        add("")
        add("| system | path | inserts/s | p50 ms | p99 ms | failed | server CPU (cores) | generator CPU (cores) | ÷ PocketBase | ÷ raw SQLite |")
        add("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        pbr, raw = w["pocketbase_http"]["rps"], w["raw_sqlite"]["rps"]
        rows = [("convection", "HTTP `/api/mutation` (wrk)", w["convection_http"]),
                ("convection", f"WebSocket, {cfg.conns} npm `ConvexClient`s (1 node process)", w.get("convection_ws")),
                ("PocketBase", "HTTP record create (wrk)", w["pocketbase_http"])]
        for sysname, path, d in rows:
            if not d:
                continue
            add(f"| {sysname} | {path} | {fmt(d['rps'])} | {fmt(d.get('p50_ms'), 1)} | {fmt(d.get('p99_ms'), 1)} | "
                f"{fmt(d.get('bad', d.get('failed')))} | {fmt(d.get('server_cpu_share'), 2)} | {fmt(d.get('gen_cpu_share'), 2)} | "
                f"{ratio(d['rps'], pbr)} | {ratio(d['rps'], raw)} |")
        add(f"| raw SQLite | one Python thread, WAL + synchronous=NORMAL, 1 txn per insert (2 tables) | {fmt(raw)} | | | | | | {ratio(raw, pbr)} | 1.00× |")
        add("")
    if lat:
        add("## L1 — observe-insert latency")
        add("")
        add(f"{cfg.l1_count} paced inserts ({cfg.l1_gap_ms:g} ms pause after each is observed). Convection: npm "
            "`ConvexClient` A watches `messages:top` (onUpdate), `ConvexClient` B sends `messages:send`; time from "
            "B's send to A's callback. PocketBase: JS SDK subscription (SSE `/api/realtime`), time from `create()` "
            "to the SSE event. Echo: round trip of one frame through a bare Python `websockets` echo server.")
        add("")
        add("| system | p50 ms | p90 ms | p99 ms | max ms | ÷ PocketBase (p50 / p99) | ÷ echo (p50 / p99) |")
        add("|---|---:|---:|---:|---:|---:|---:|")
        for name in ("convection", "pocketbase", "echo"):
            d = lat[name]
            add(f"| {name} | {fmt(d['p50'], 2)} | {fmt(d['p90'], 2)} | {fmt(d['p99'], 2)} | {fmt(d['max'], 2)} | "
                f"{ratio(d['p50'], lat['pocketbase']['p50'])} / {ratio(d['p99'], lat['pocketbase']['p99'])} | "
                f"{ratio(d['p50'], lat['echo']['p50'])} / {ratio(d['p99'], lat['echo']['p99'])} |")
        add("")
    if f:
        add("## F1 — fan-out")
        add("")
        add("N subscribers, one connection each (convection: one npm `ConvexClient` per subscriber watching "
            "`messages:top`, up to 2,500 per node process; PocketBase: one raw SSE connection per subscriber "
            "subscribed to `messages`). Per round one insert is sent over HTTP; times are from just before "
            f"sending it; median over {cfg.f1_rounds} rounds (worst round in the last column).")
        add("")
        add("| N | system | last sees it, ms | median sees it, ms | first, ms | worst round last, ms | connect + first result, s | server RSS, MB | RSS per connection, KB | last ÷ PocketBase |")
        add("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for n in sorted(int(k) for k in f):
            row = f[str(n)]
            for side in ("convection", "pocketbase"):
                d = row.get(side, {})
                if "error" in d:
                    add(f"| {n:,} | {side} | failed: {d['error'][:120]} | | | | | | | |")
                    continue
                pl = row.get("pocketbase", {}).get("last_ms")
                add(f"| {n:,} | {side} | {fmt(d.get('last_ms'), 1)} | {fmt(d.get('p50_ms'), 1)} | {fmt(d.get('first_ms'), 1)} | "
                    f"{fmt(d.get('last_ms_max'), 1)} | {fmt(d.get('setup_s'), 1)} | {fmt(d.get('rss_mb'), 0)} | "
                    f"{fmt(d.get('rss_per_conn_kb'), 1)} | {ratio(d.get('last_ms'), pl)} |")
        add("")
        add("The subscribers' own event loops are part of the measured time: with N = 10,000 the node "
            "processes handle 10,000 sockets on the same 2 cores as the server. \"RSS per connection\" is the "
            "growth of the server's RSS while the N sockets were opened: memory freed by earlier scenarios is "
            "reused first, so it under-reports for small N (M1 below measures it on a fresh server).")
        add("")
        if (out.parent / f"f1{suffix}.png").exists():
            add(f"![F1 fan-out](f1{suffix}.png)")
            add("")
    if len(s) == 2:
        add("## S1 — many subscriptions, few invalidated")
        add("")
        add(f"Subscriptions `slots:get({{k}})` on distinct keys, spread over the same {max(1, cfg.s1_big // 1000)} npm "
            "`ConvexClient`s in both runs (so only the number of idle subscriptions differs); each round one "
            "mutation patches 100 of them (random keys); time from sending it until the last of the 100 "
            f"updates arrives, and the server's CPU (utime+stime from /proc, idle CPU subtracted) per round; "
            f"median over {cfg.s1_rounds} rounds.")
        add("")
        add("| subscriptions | commit→last update, ms | commit→median update, ms | server CPU per commit, ms | idle server CPU (cores) | RSS, MB |")
        add("|---:|---:|---:|---:|---:|---:|")
        for k in (str(cfg.s1_small), str(cfg.s1_big)):
            d = s[k]
            add(f"| {int(k):,} | {fmt(d['last_ms'], 1)} | {fmt(d['p50_ms'], 1)} | {fmt(d['cpu_ms_per_commit'], 2)} | {fmt(d['idle_cpu_share'], 3)} | {fmt(d['rss_mb'], 0)} |")
        add("")
    if r:
        add("## R1 — read throughput (take 10 from an index)")
        add("")
        add("`messages:latest({channel})`: the 10 highest `n` of a 1,000-document channel by index. Cached: "
            "the same arguments every time (answered from the query cache); uncached: a new cache-breaker "
            "argument per request (a real run every time). PocketBase: "
            "`GET /records?filter=(channel='r1')&sort=-n&perPage=10&skipTotal=1` (same index).")
        add("")
        add("| system | path | reads/s | p50 ms | p99 ms | server CPU (cores) | generator CPU (cores) | ÷ PocketBase |")
        add("|---|---|---:|---:|---:|---:|---:|---:|")
        p = r["pocketbase_http"]["rps"]
        for key, sysname, path in (
            ("convection_http_cached", "convection", "HTTP `/api/query`, cached"),
            ("convection_http_uncached", "convection", "HTTP `/api/query`, uncached"),
            ("convection_ws_cached", "convection", f"WebSocket sync protocol, {cfg.conns} raw clients, cached"),
            ("convection_ws_uncached", "convection", f"WebSocket sync protocol, {cfg.conns} raw clients, uncached"),
            ("pocketbase_http", "PocketBase", "HTTP list"),
        ):
            if key in r:
                d = r[key]
                add(f"| {sysname} | {path} | {fmt(d['rps'])} | {fmt(d.get('p50_ms'), 1)} | {fmt(d.get('p99_ms'), 1)} | "
                    f"{fmt(d.get('server_cpu_share'), 2)} | {fmt(d.get('gen_cpu_share'), 2)} | {ratio(d['rps'], p)} |")
        add("")
    if c1r:
        add("## C1 — contention on one document")
        add("")
        add(f"16 npm `ConvexClient`s call `counters:increment` in a loop for {c1r['seconds']:.0f} s (each read-modify-writes the "
            "same document; conflicts are retried by the server with backoff, "
            "`MUTATION_MAX_OCC_RETRIES_COUNT` times, then run in the serialized lane).")
        add("")
        add("| increments/s | successes | failed | server retries (OCC re-runs) | final value | final == successes | p50 ms | p99 ms |")
        add("|---:|---:|---:|---:|---:|---|---:|---:|")
        add(f"| {fmt(c1r['rps'])} | {c1r['ok']:,} | {c1r['failed']:,} | {c1r['retries']:,} | {fmt(c1r['final'])} | "
            f"{'**PASS** (no lost update)' if c1r['no_lost_update'] else '**FAIL: lost update**'} | {fmt(c1r['p50_ms'], 1)} | {fmt(c1r['p99_ms'], 1)} |")
        if c1r.get("failures"):
            add("")
            add(f"Failures: `{json.dumps(c1r['failures'])[:300]}`")
        add("")
    if sizes:
        add("## G1 — growth")
        add("")
        add("A convection server of its own, prefilled through `messages:bulk` (1,000 inserts per "
            "mutation, 2 callers) into one channel; at each size: W1 (inserts into another channel), R1 cached and "
            "uncached (take 10 of the big channel). Cost = server CPU per operation; ratio to the smallest size.")
        add("")
        add("| documents | prefill s | W1 inserts/s | W1 CPU µs/op | R1 cached reads/s | R1 cached CPU µs/op | R1 uncached reads/s | R1 uncached CPU µs/op | uncached ÷ smallest | RSS MB |")
        add("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        base = g[str(sizes[0])]
        for n in sizes:
            d = g[str(n)]
            add(f"| {n:,} | {fmt(d['prefill_s'], 1)} | {fmt(d['w1']['rps'])} | {fmt(d['w1']['server_cpu_us_per_op'])} | "
                f"{fmt(d['r1_cached']['rps'])} | {fmt(d['r1_cached']['server_cpu_us_per_op'])} | {fmt(d['r1_uncached']['rps'])} | "
                f"{fmt(d['r1_uncached']['server_cpu_us_per_op'])} | {ratio(d['r1_uncached']['server_cpu_us_per_op'], base['r1_uncached']['server_cpu_us_per_op'])} | {fmt(d['rss_mb'], 0)} |")
        st = g.get("startup")
        if st:
            add("")
            add(f"Startup with {st['documents']:,} documents ({fmt(g.get('db_mb'), 0)} MB of SQLite files): HTTP answers after "
                f"{fmt(st['http_s'], 2)} s, first query answered after {fmt(st['first_query_s'], 2)} s; idle RSS then {fmt(st['rss_idle_mb'], 0)} MB.")
        add("")
        if (out.parent / f"g1{suffix}.png").exists():
            add(f"![G1 growth](g1{suffix}.png)")
            add("")
    if m:
        add("## M1 — memory")
        add("")
        add("| figure | convection | PocketBase |")
        add("|---|---:|---:|")
        add(f"| idle RSS after start, MB | {fmt(m.get('idle_rss_mb'), 1)} | {fmt(m.get('pocketbase_idle_rss_mb'), 1)} |")
        if "per_connection_kb" in m:
            add(f"| per open connection (sync handshake, no query), KB — {m['connections']:,} npm clients | {fmt(m['per_connection_kb'], 1)} | |")
        if f:
            big_n = max(int(k) for k in f)
            row = f[str(big_n)]
            add(f"| per connection with one shared subscription (F1, N={big_n:,}), KB | "
                f"{fmt(row.get('convection', {}).get('rss_per_conn_kb'), 1)} | {fmt(row.get('pocketbase', {}).get('rss_per_conn_kb'), 1)} (SSE) |")
        if "per_subscription_kb" in m:
            add(f"| per subscription on a distinct key (S1, {cfg.s1_big:,} subscriptions), KB | {fmt(m['per_subscription_kb'], 2)} | |")
        if "rss_with_docs" in m:
            rd = m["rss_with_docs"]
            add(f"| idle RSS after a restart with {rd['documents']:,} documents, MB | {fmt(rd['rss_mb'], 0)} | |")
        sk = m.get("soak")
        if sk:
            res = sk["result"]
            add("")
            add(f"**Soak** ({sk['seconds'] / 60:.0f} min, on a freshly started server): 20 npm clients each watching `messages:top` plus one "
                "`messages:latest` whose arguments change every second (cycling through 200 distinct argument sets in all, so the query cache stays bounded), one client closed and replaced every second, "
                f"100 inserts/s; {res['inserted']:,} inserts ({res['failed']} failed), {res['reconnects']} reconnects. "
                f"RSS {fmt(sk['rss_start_mb'], 1)} MB at the start, max {fmt(sk['rss_first_quarter_max_mb'], 1)} MB in "
                f"the first quarter, {fmt(sk.get('rss_second_quarter_max_mb'), 1)} MB in the second, max {fmt(sk['rss_last_quarter_max_mb'], 1)} MB in the last quarter, "
                f"{fmt(sk['rss_end_mb'], 1)} MB at the end; slope over the second half "
                f"{sk['slope_mb_per_min_second_half']:+.2f} MB/min. Note: the in-memory write log keeps commits for "
                "`WRITE_LOG_RETENTION_MS` (60 s), so RSS grows during the first minute by design.")
            if sk["samples"]:
                pts = sk["samples"][:: max(1, len(sk["samples"]) // 12)]
                add("")
                add("RSS samples (s: MB): " + ", ".join(f"{t:.0f}: {mm:.0f}" for t, mm in pts))
        add("")
    if run.profiles:
        add("## Server profiles (this run, `--profile`)")
        add("")
        for name, text in run.profiles.items():
            add(f"### {name}")
            add("")
            add(text)
            add("")
    notes_file = BENCH / "PROFILES.md"
    if notes_file.exists():
        add(re.sub(r"^(#+) ", lambda m: "#" + m.group(1) + " ", notes_file.read_text(), flags=re.MULTILINE))
        add("")
    if run.notes:
        add("## Notes from this run")
        add("")
        for n in run.notes:
            add(f"- {n}")
        add("")
    if not cfg.quick and (BENCH / "RESULTS-quick.md").exists():
        add("The latest quick run (`--quick`) is in [RESULTS-quick.md](RESULTS-quick.md).")
        add("")
    return "\n".join(L)


# ---------------------------------------------------------------------------------------


def _workers_section(run: Run, add: Callable[[str], None]) -> None:
    """W1, L1, R1 and F1 against ``serve --workers N`` (sections ``W1@N`` ...), beside the
    1-process figures and PocketBase measured again in the same minutes."""
    R = run.results
    counts = sorted({int(k.split("@")[1]) for k in R if "@" in k})
    if not counts:
        return
    add("## Scaling with workers (`convection serve --workers N`, SQLite, one host)")
    add("")
    add("The same scenarios run again against one deployment served by N processes that share the "
        "listening socket and commit through SQLite's write lock (docs/deploy.md). PocketBase is "
        "measured again beside each run; the ratio is to the PocketBase figure of the same pass. "
        "Server CPU counts every process of the deployment.")
    add("")
    head = "| figure | 1 process | " + " | ".join(f"{n} workers" for n in counts) + \
        " | PocketBase (same pass) | ratio | goal | met |"
    add(head)
    add("|---|---:|" + "---:|" * len(counts) + "---:|---:|---|---|")

    def row(label: str, get: Callable[[dict[str, Any]], float | None],
            ref: Callable[[dict[str, Any]], float | None], sect: str, higher_better: bool, goal: str,
            nd: int | None = None) -> None:
        one = R.get(sect)
        vals = [get(R[f"{sect}@{n}"]) if f"{sect}@{n}" in R else None for n in counts]
        last = R.get(f"{sect}@{counts[-1]}")
        try:
            v1 = get(one) if one else None
        except (KeyError, TypeError):
            v1 = None
        try:
            p = ref(last) if last else None
        except (KeyError, TypeError):
            p = None
        c = vals[-1]
        met = None if goal == "–" or c is None or p is None else (c >= p if higher_better else c <= p)
        if nd is None:
            nd = 0 if higher_better else 1
        add(f"| {label} | {fmt(v1, nd)} | " + " | ".join(fmt(v, nd) for v in vals) +
            f" | {fmt(p, nd)} | {ratio(c, p)} | {goal} | {verdict(met) if goal != '–' else '–'} |")

    def safe(f: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        def g(d: dict[str, Any]) -> Any:
            try:
                return f(d)
            except (KeyError, TypeError):
                return None
        return g

    row("W1 inserts/s, HTTP", safe(lambda d: d["convection_http"]["rps"]),
        safe(lambda d: d["pocketbase_http"]["rps"]), "W1", True, "≥ 1×")
    row("W1 inserts/s, WebSocket (npm)", safe(lambda d: d["convection_ws"]["rps"]),
        safe(lambda d: d["pocketbase_http"]["rps"]), "W1", True, "–")
    row("W1 server CPU, cores", safe(lambda d: d["convection_http"]["server_cpu_share"]),
        safe(lambda d: d["pocketbase_http"]["server_cpu_share"]), "W1", True, "–", nd=2)
    row("L1 observe-insert p50, ms", safe(lambda d: d["convection"]["p50"]),
        safe(lambda d: d["pocketbase"]["p50"]), "L1", False, "–")
    row("L1 observe-insert p99, ms", safe(lambda d: d["convection"]["p99"]),
        safe(lambda d: d["pocketbase"]["p99"]), "L1", False, "–")
    for key, label in (("convection_http_cached", "HTTP cached"), ("convection_http_uncached", "HTTP uncached"),
                       ("convection_ws_uncached", "WebSocket uncached")):
        row(f"R1 take-10 reads/s, {label}", safe(lambda d, key=key: d[key]["rps"]),
            safe(lambda d: d["pocketbase_http"]["rps"]), "R1", True, "–")
    sizes = sorted({int(k) for n in counts for k in R.get(f"F1@{n}", {}) if k.isdigit()})
    for n in sizes:
        row(f"F1 last delivery, N={n:,}, ms", safe(lambda d, n=n: d[str(n)]["convection"]["last_ms"]),
            safe(lambda d, n=n: d[str(n)]["pocketbase"]["last_ms"]), "F1", False, "≤ 1×" if n == 1000 else "–")
    add("")
    add("With several workers a subscriber and the writer are usually on different processes (the "
        "kernel spreads connections over the workers), so L1 and F1 here include the hop through the "
        "commit log (the committing process wakes the others with a datagram: `persistence/local_wake.py`).")
    add("")
