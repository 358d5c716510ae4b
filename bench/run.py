"""Benchmarks side by side with PocketBase (shared/BENCHMARKS.md: W1 L1 F1 S1 R1 C1 G1 M1).

One command::

    .venv/bin/python bench/run.py            # full run (about 30 minutes), writes bench/RESULTS.md
    .venv/bin/python bench/run.py --quick    # under 2 minutes, writes bench/RESULTS-quick.md

It installs what it needs (the ``bench`` optional dependencies of pyproject.toml into the
running venv; ``wrk`` with apt-get when missing and possible, else a multi-process Python load
generator; ``npm ci`` in bench/js), starts convection (serving bench/app/convex), PocketBase,
a bare WebSocket echo server and runs the raw-SQLite reference in this process, all on
loopback with temporary data directories, and stops everything it started, also on Ctrl-C
or failure. Every figure is measured in the same run as its reference and reported as a
ratio too. ``--profile`` also samples the server with py-spy during W1 and F1.

``--only F1`` (comma-separated ids) runs the named scenarios alone; with ``--quick`` that takes
a minute or two. Layout: ``harness.py`` (processes, servers, load generators, configuration),
``scenarios/<id>.py`` (one module per scenario), ``report.py`` (RESULTS.md and the plots) and
this file (the command line and the order of the scenarios).

Nothing here is a timed assertion of the test suite: the numbers are for reading.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import (
    BENCH,
    PROCS,
    WORK,
    Cfg,
    Convection,
    Echo,
    HttpLoad,
    PocketBase,
    Run,
    echo_server,
    ensure_node,
    ensure_python_deps,
    ensure_wrk,
    log,
    process_tree,
    rss_mb,
)
from report import machine, plot_f1, plot_g1, report
from scenarios.c1 import c1
from scenarios.f1 import f1
from scenarios.g1 import g1
from scenarios.l1 import l1
from scenarios.m1 import m1_connections, soak
from scenarios.r1 import r1
from scenarios.s1 import s1
from scenarios.w1 import w1


def guard(run: Run, name: str, fn: Callable[..., None], *args: Any) -> None:
    """Run one scenario; a failure is reported in RESULTS.md and the run goes on."""
    try:
        fn(run, *args)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        log(f"{name} failed: {exc!r}")
        run.notes.append(f"{name} failed: {str(exc)[:400]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="under 2 minutes: small N, short runs, no 1M documents")
    ap.add_argument("--profile", action="store_true", help="sample the server with py-spy during W1, L1 and F1")
    ap.add_argument("--only", default="", help="comma-separated scenarios to run (W1,L1,F1,S1,R1,C1,G1,M1)")
    ap.add_argument("--out", type=Path, default=None, help="report path (default bench/RESULTS.md, or RESULTS-quick.md)")
    ap.add_argument("--workers", default="1,2",
                    help="worker counts to measure W1, L1, R1 and F1 with (serve --workers N), e.g. 1 or 1,2")
    ap.add_argument("--render", action="store_true",
                    help="only re-render the report from the last run's saved numbers (bench/.work/results*.json)")
    ap.add_argument("--echo-server", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.echo_server is not None:
        echo_server(a.echo_server)
        return 0
    if a.render:
        return render_saved(a.quick, a.out)

    started = time.time()
    cfg = Cfg.make(a.quick, a.profile)
    only = {x.strip().upper() for x in a.only.split(",") if x.strip()}
    want = lambda x: not only or x in only  # noqa: E731
    out = a.out or (BENCH / ("RESULTS-quick.md" if a.quick else "RESULTS.md"))
    WORK.mkdir(exist_ok=True)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    ensure_python_deps()
    wrk = ensure_wrk()
    has_node = ensure_node()
    tmp = Path(tempfile.mkdtemp(prefix="convection-bench-"))
    run = Run(cfg, tmp, HttpLoad(wrk, cfg.conns), has_node)
    if not wrk:
        run.notes.append("wrk was not available (no apt-get or not root): HTTP load came from a 2-process "
                         "Python asyncio generator, which is slower than wrk and may be the limit.")
    if not has_node:
        run.notes.append("node/npm not installed: every scenario that needs the npm clients was skipped.")
    mach = machine()
    pb_version = "PocketBase"
    try:
        cvx = Convection(tmp, "main")
        startup = cvx.start()
        pb = PocketBase(tmp)
        pb.start()
        pb_version = pb.version
        echo = Echo()
        if want("L1"):
            echo.start()
        time.sleep(1 if cfg.quick else 2)
        m = run.section("M1")
        m["idle_rss_mb"] = rss_mb(cvx.pid)
        m["startup_empty_s"] = startup
        m["pocketbase_idle_rss_mb"] = rss_mb(pb.pid)
        log(f"convection {cvx.url} (pid {cvx.pid}, {m['idle_rss_mb']:.0f} MB), {pb.version} {pb.url} "
            f"({m['pocketbase_idle_rss_mb']:.0f} MB), echo {echo.url}; data in {tmp}")
        if want("M1"):
            guard(run, "M1", m1_connections, cvx)
        if want("W1"):
            guard(run, "W1", w1, cvx, pb)
        if want("L1"):
            guard(run, "L1", l1, cvx, pb, echo)
        if want("R1"):
            guard(run, "R1", r1, cvx, pb)
        if want("C1"):
            guard(run, "C1", c1, cvx)
        if want("F1"):
            guard(run, "F1", f1, cvx, pb)
        if want("S1") or want("M1"):
            guard(run, "S1", s1, cvx)
        cvx.stop()
        for n in sorted({int(x) for x in a.workers.split(",") if x.strip()} - {1}):
            # The same scenarios against one deployment served by n processes (one host,
            # SQLite, shared listening socket), PocketBase measured again beside it.
            run.suffix = f"@{n}"
            wcvx = Convection(tmp, f"workers{n}", workers=n)
            wcvx.start()
            time.sleep(1 if cfg.quick else 2)
            log(f"--workers {n}: convection {wcvx.url} (pids {', '.join(map(str, process_tree(wcvx.pid)))})")
            for name, fn, extra in (("W1", w1, (pb,)), ("L1", l1, (pb, echo)), ("R1", r1, (pb,)), ("F1", f1, (pb,))):
                if want(name):
                    if name == "L1" and echo.proc is None:
                        echo.start()
                    guard(run, f"{name} --workers {n}", fn, wcvx, *extra)
            wcvx.stop()
            run.suffix = ""
        pb.stop()
        echo.stop()
        if want("M1"):
            guard(run, "M1 soak", soak)
        if want("G1"):
            guard(run, "G1", g1)
    except KeyboardInterrupt:
        log("interrupted: stopping everything started")
        PROCS.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
        return 130
    finally:
        PROCS.stop_all()
    shutil.rmtree(tmp, ignore_errors=True)
    suffix = "-quick" if cfg.quick else ""
    saved = {"results": run.results, "notes": run.notes, "profiles": run.profiles, "machine": mach,
             "started": started, "finished": time.time(), "pb_version": pb_version, "generator": run.http.name,
             "profile": cfg.profile}
    (WORK / f"results{suffix}.json").write_text(json.dumps(saved, indent=1, default=str))
    plot_f1(run, out.parent / f"f1{suffix}.png")
    plot_g1(run, out.parent / f"g1{suffix}.png")
    out.write_text(report(run, out, mach, started, pb_version))
    log(f"wrote {out} in {(time.time() - started) / 60:.1f} min")
    return 0


def render_saved(quick: bool, out: Path | None) -> int:
    """Re-render RESULTS.md from the numbers the last run saved (e.g. after editing PROFILES.md)."""
    suffix = "-quick" if quick else ""
    saved = json.loads((WORK / f"results{suffix}.json").read_text())
    run = Run(Cfg.make(quick, saved.get("profile", False)), WORK, HttpLoad(None, 0), True,
              results=saved["results"], notes=saved["notes"], profiles=saved["profiles"])
    run.http.name_override = saved["generator"]  # type: ignore[attr-defined]
    out = out or (BENCH / f"RESULTS{suffix}.md")
    elapsed = saved["finished"] - saved["started"]
    text = report(run, out, saved["machine"], time.time() - elapsed, saved["pb_version"])
    out.write_text(text)
    log(f"re-rendered {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
