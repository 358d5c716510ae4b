import time

from convection import mutation, query, v


@query(args={"name": v.string()})
def get(ctx, name):
    doc = ctx.db.query("counters").with_index("by_name", lambda q: q.eq("name", name)).unique()
    return 0 if doc is None else doc["n"]


@mutation(args={"name": v.string(), "pauseMs": v.optional(v.number())})
def increment(ctx, name, pauseMs=None):
    """``pauseMs``: hold the call that long first (a slow mutation, for the crash tests: the
    kill must land while some are still unanswered)."""
    if pauseMs:
        time.sleep(pauseMs / 1000)
    doc = ctx.db.query("counters").with_index("by_name", lambda q: q.eq("name", name)).unique()
    if doc is None:
        ctx.db.insert("counters", {"name": name, "n": 1})
        return 1
    ctx.db.patch(doc["_id"], {"n": doc["n"] + 1})
    return doc["n"] + 1
