from convection import action, internal_query, mutation


@mutation
def add(ctx, embedding, kind="a", userId=None):
    doc = {"embedding": embedding, "kind": kind}
    if userId is not None:
        doc["userId"] = userId
    return ctx.db.insert("docs", doc)


@mutation
def add_many(ctx, n):
    """``n`` documents with vectors pointing away from (1, 0, 0)."""
    for i in range(int(n)):
        ctx.db.insert("docs", {"embedding": [-1.0, float(i % 7), float(i)], "kind": "c"})


@mutation
def set_embedding(ctx, id, embedding):
    ctx.db.patch(id, {"embedding": embedding})


@mutation
def remove(ctx, id):
    ctx.db.delete(id)


@internal_query
def kinds(ctx, ids):
    return [ctx.db.get(i)["kind"] for i in ids]


def _filter(spec):
    """spec: None (no filter), [[field, value], ...] OR'ed, or "not-eq" (an invalid filter)."""
    if spec is None:
        return None
    if spec == "not-eq":
        return lambda q: "not a filter expression"
    if len(spec) == 1:
        field, value = spec[0]
        return lambda q: q.eq(field, value)
    return lambda q: q.or_(*[q.eq(f, v) for f, v in spec])


@action
async def search(ctx, vector, limit=None, filter=None, table="docs", index="by_embedding"):
    if limit is None:
        return await ctx.vector_search(table, index, vector=vector, filter=_filter(filter))
    return await ctx.vector_search(table, index, vector=vector, limit=limit, filter=_filter(filter))


@action
async def search_options(ctx, vector, limit=10):
    """The Convex-style options-dict form."""
    return await ctx.vector_search("docs", "by_embedding", {"vector": vector, "limit": limit})


@action
async def search_and_load(ctx, vector):
    found = await ctx.vector_search("docs", "by_embedding", vector=vector, limit=2)
    return await ctx.run_query("docs:kinds", {"ids": [r["_id"] for r in found]})
