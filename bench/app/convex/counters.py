"""C1: one counter document incremented by many clients at once."""

from convection import mutation, query, v

# Executions of ``increment`` in this server process, OCC re-runs included (attempts -
# successes = retries). Benchmark instrumentation only: a real app must not keep state here.
_ATTEMPTS = [0]


@mutation(args={"name": v.string()})
def increment(ctx, name):
    _ATTEMPTS[0] += 1
    doc = ctx.db.query("counters").with_index("by_name", lambda q: q.eq("name", name)).unique()
    if doc is None:
        ctx.db.insert("counters", {"name": name, "n": 1})
        return 1
    ctx.db.patch(doc["_id"], {"n": doc["n"] + 1})
    return doc["n"] + 1


@query(args={"name": v.string()})
def get(ctx, name):
    doc = ctx.db.query("counters").with_index("by_name", lambda q: q.eq("name", name)).unique()
    return 0 if doc is None else doc["n"]


@query(args={"cb": v.number()})
def attempts(ctx, cb):
    """Executions of ``increment`` so far (``cb`` varies so the cache never answers)."""
    return _ATTEMPTS[0]
