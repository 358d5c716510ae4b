"""Latency probes (tests/e2e/test_e2e_latency.py)."""

from convection import mutation, query, v


@query(args={"run": v.string()})
def latest(ctx, run):
    doc = (
        ctx.db.query("pings")
        .with_index("by_run_seq", lambda q: q.eq("run", run))
        .order("desc")
        .first()
    )
    return None if doc is None else doc["seq"]


@mutation(args={"run": v.string(), "seq": v.number()})
def send(ctx, run, seq):
    return ctx.db.insert("pings", {"run": run, "seq": seq})
