"""S1: one subscription per key; a mutation touching a few keys."""

from convection import mutation, query, v


@mutation(args={"start": v.number(), "count": v.number()})
def init(ctx, start, count):
    for k in range(int(start), int(start + count)):
        ctx.db.insert("slots", {"k": k, "v": 0})
    return count


@query(args={"k": v.number()})
def get(ctx, k):
    doc = ctx.db.query("slots").with_index("by_k", lambda q: q.eq("k", k)).unique()
    return None if doc is None else doc["v"]


@mutation(args={"ks": v.array(v.number()), "value": v.number()})
def touch(ctx, ks, value):
    for k in ks:
        doc = ctx.db.query("slots").with_index("by_k", lambda q: q.eq("k", k)).unique()
        if doc is not None:
            ctx.db.patch(doc["_id"], {"v": value})
    return len(ks)
