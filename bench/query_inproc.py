"""In-process micro benchmark of uncached queries: CPU per ``messages:latest`` take-10 run.

    .venv/bin/python bench/query_inproc.py --n 2000 [--profile out.prof]

Builds the real deployment on bench/app/convex (temporary SQLite store), inserts 1,000
messages into one channel, then runs ``messages:latest({channel, cb})`` N times through the
application facade with a new cache-breaker ``cb`` each time (a real run every time, as R1
uncached), sequentially. Reports CPU per query (``time.process_time``: this process only,
so other processes' load does not count). ``--direct`` runs each query on this thread
(``Application._execute_query``: the query's own work, profiled fully by ``--profile``, which
otherwise sees only the event loop's side).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import sys
import tempfile
import time
from pathlib import Path

from convection.application.interface import ANONYMOUS
from convection.server.app import open_deployment

APP = Path(__file__).resolve().parent / "app" / "convex"


async def run(n: int, profile: Path | None, direct: bool) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="convection-query-inproc-"))
    dep = open_deployment(APP, tmp / "data")
    app = dep.app
    for i in range(0, 1000, 100):
        await app.run_mutation("messages:bulk", {"channel": "r1", "start": i, "count": 100}, ANONYMOUS)
    for i in range(200):  # warm up
        await app.run_query("messages:latest", {"channel": "r1", "cb": -i - 1}, ANONYMOUS)
    prof = cProfile.Profile() if profile else None
    ts = app.latest_ts()
    c0, w0 = time.process_time(), time.perf_counter()
    if prof:
        prof.enable()
    for i in range(n):
        if direct:  # the query's own work, on this thread (no event-loop/worker hop)
            entry = app._execute_query("messages:latest", {"channel": "r1", "cb": i}, ANONYMOUS, None, ts)
            entry.subscription.close()
            continue
        out = await app.run_query("messages:latest", {"channel": "r1", "cb": i}, ANONYMOUS)
        assert out.success, out.error_message
    if prof:
        prof.disable()
        prof.dump_stats(str(profile))
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    print(f"{n} uncached take-10 queries: {cpu * 1e6 / n:.0f} us CPU, {wall * 1e6 / n:.0f} us wall per query")
    dep.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--profile", type=Path, default=None)
    ap.add_argument("--direct", action="store_true", help="run each query on this thread (Application._execute_query)")
    a = ap.parse_args()
    asyncio.run(run(a.n, a.profile, a.direct))
    return 0


if __name__ == "__main__":
    sys.exit(main())
