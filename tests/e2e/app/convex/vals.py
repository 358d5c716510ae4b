"""Typed values stored in documents and read back (int64, bytes, NaN, -0...)."""

from convection import mutation, query, v


@mutation(args={"key": v.string(), "value": v.any()})
def put(ctx, key, value):
    ctx.db.insert("vals", {"key": key, "value": value})
    return value


@query(args={"key": v.string()})
def get(ctx, key):
    doc = ctx.db.query("vals").with_index("by_key", lambda q: q.eq("key", key)).first()
    return None if doc is None else doc["value"]
