"""Issue 12.3 measurement: how long an unrelated query waits while one function path is stuck.

Runs in process (``open_deployment`` + the application facade, no network): starts N calls
of a query that blocks (``time.sleep``) or spins on the CPU for HOLD_S seconds, waits until
they run, then times one unrelated query. ``--per-path N`` overrides
the lane size (``--per-path 0``: no bound, the behaviour before the lanes).

    .venv/bin/python bench/starvation.py [--per-path 0]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import textwrap
import time
from pathlib import Path

FUNCTIONS = '''
import time
from convection import query

@query
def blocked(ctx, hold, n):
    time.sleep(hold)
    return 1

@query
def spinning(ctx, hold, n):
    end = time.perf_counter() + hold
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n

@query
def unrelated(ctx, scenario):
    return "ok"
'''

HOLD_S = 6.0


async def scenario(app: object, path: str, count: int) -> float:
    from convection.application.interface import ANONYMOUS

    run_query = app.run_query  # type: ignore[attr-defined]
    tasks = [asyncio.create_task(run_query(path, {"hold": HOLD_S, "n": n}, ANONYMOUS)) for n in range(count)]
    await asyncio.sleep(1.0)  # let them take their threads
    started = time.perf_counter()
    await run_query("calls:unrelated", {"scenario": path}, ANONYMOUS)  # not cached
    waited = time.perf_counter() - started
    await asyncio.gather(*tasks)
    return waited


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-path", type=int, default=None)
    options = parser.parse_args()
    from convection.server.app import open_deployment

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "convex"
        folder.mkdir()
        (folder / "calls.py").write_text(textwrap.dedent(FUNCTIONS))
        deployment = open_deployment(folder, Path(tmp) / "data")
        try:
            app = deployment.app
            if options.per_path is not None:
                app.lanes.limit = options.per_path or 10**6
            print(f"pool {app.executor._max_workers} threads, per-path lane {app.lanes.limit}")
            blocked = asyncio.run(scenario(app, "calls:blocked", 20))
            print(f"20 queries blocked {HOLD_S:g} s: unrelated query answered in {blocked * 1000:.0f} ms")
            spinning = asyncio.run(scenario(app, "calls:spinning", 24))
            print(f"24 CPU-bound queries ({HOLD_S:g} s): unrelated query answered in {spinning * 1000:.0f} ms")
        finally:
            deployment.close()


if __name__ == "__main__":
    main()
