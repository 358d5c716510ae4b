"""Where an uncontended mutation's time goes between threads (issue 15.2).

    .venv/bin/python bench/mutation_hops.py [--n 2000]

On the real deployment of bench/app/convex (temporary SQLite store), sequential inserts
(``messages:send``), measured three ways in one process:

* ``loop``: ``await Application.run_mutation`` from the event loop (event loop -> worker thread
  -> group-commit thread -> worker thread -> event loop), as the HTTP and WebSocket paths do;
* ``direct``: the same mutation called on the calling thread (``Application._mutation_sync``):
  no event-loop/worker hand-off, the commit still goes through the committer thread;
* ``commit``: the committer's share, from its own histogram (``Committer.commit_seconds``,
  asking to commit -> published, which includes the hand-off to its thread and back).

Wall time per mutation (median and mean) and CPU per mutation (``time.process_time``, all
threads of this process). ``loop - direct`` is the cost of the event-loop <-> worker hop.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from convection.application.interface import ANONYMOUS
from convection.server.app import open_deployment

APP = Path(__file__).resolve().parent / "app" / "convex"


async def run(n: int) -> None:
    dep = open_deployment(APP, Path(tempfile.mkdtemp(prefix="convection-hops-")) / "data")
    app = dep.app
    for i in range(200):  # warm up
        await app.run_mutation("messages:send", {"channel": "w", "n": i, "body": "x"}, ANONYMOUS)

    async def via_loop(i: int) -> None:
        await app.run_mutation("messages:send", {"channel": "w", "n": i, "body": "hello world"}, ANONYMOUS)

    def direct(i: int) -> None:
        app._mutation_sync("messages:send", {"channel": "w", "n": i, "body": "hello world"}, ANONYMOUS, None)

    for name in ("loop", "direct", "loop", "direct"):
        commit_hist = app.db.committer.commit_seconds.snapshot()
        walls = []
        c0 = time.process_time()
        for i in range(n):
            t0 = time.perf_counter()
            if name == "loop":
                await via_loop(i)
            else:
                direct(i)
            walls.append(time.perf_counter() - t0)
        cpu = (time.process_time() - c0) / n
        after = app.db.committer.commit_seconds.snapshot()
        commit_mean = (after.sum - commit_hist.sum) / max(1, after.count - commit_hist.count)
        print(f"{name:6s}: wall median {statistics.median(walls) * 1e6:5.0f} us, mean {statistics.mean(walls) * 1e6:5.0f} us; "
              f"CPU {cpu * 1e6:5.0f} us per mutation; commit (ask -> published) mean {commit_mean * 1e6:5.0f} us")
    dep.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    asyncio.run(run(ap.parse_args().n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
