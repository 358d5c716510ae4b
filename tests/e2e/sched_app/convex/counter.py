"""A counter incremented by a scheduled mutation, for the scheduler crash tests
(tests/e2e/test_scheduler_crash.py).

``slow_increment`` appends a line to the file named by ``SCHED_MARKER`` when it starts (so the
test knows a run is under way), sleeps ``SCHED_SPIN_S`` seconds, then increments the counter.
(Real functions must not do I/O or sleep; this one does so a test can kill the server mid-run.)
"""

import os
import time

from convection import internal, internal_mutation, mutation, query, v


@internal_mutation
def slow_increment(ctx):
    marker = os.environ.get("SCHED_MARKER")
    if marker:
        with open(marker, "a") as f:
            f.write("start\n")
    time.sleep(float(os.environ.get("SCHED_SPIN_S", "0")))
    doc = ctx.db.query("counters").first()
    if doc is None:
        ctx.db.insert("counters", {"n": 1})
    else:
        ctx.db.patch(doc["_id"], {"n": doc["n"] + 1})


@mutation(args={"delayMs": v.number()})
def schedule_increment(ctx, delayMs):
    return ctx.scheduler.run_after(delayMs, internal.counter.slow_increment, {})


@query
def get(ctx):
    doc = ctx.db.query("counters").first()
    return 0 if doc is None else doc["n"]


@query(args={"id": v.id("_scheduled_functions")})
def job_state(ctx, id):
    doc = ctx.db.system.get(id)
    return None if doc is None else doc["state"]["kind"]
