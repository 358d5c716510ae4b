from convection import action, api, internal, mutation, query, v


@query(args={"name": v.string()})
def get(ctx, name):
    doc = ctx.db.query("counters").with_index("by_name", lambda q: q.eq("name", name)).unique()
    return 0 if doc is None else doc["n"]


@mutation(args={"name": v.string()})
def increment(ctx, name):
    doc = ctx.db.query("counters").with_index("by_name", lambda q: q.eq("name", name)).unique()
    if doc is None:
        ctx.db.insert("counters", {"name": name, "n": 1})
        return 1
    ctx.db.patch(doc["_id"], {"n": doc["n"] + 1})
    return doc["n"] + 1


@action(args={"name": v.string(), "times": v.number()})
async def bump(ctx, name, times):
    for _ in range(int(times)):
        await ctx.run_mutation(api.counter.increment, {"name": name})
    return await ctx.run_query(api.counter.get, {"name": name})


@action
def sync_total(ctx):
    return "plain def action"


@action
async def notes_total(ctx):
    return await ctx.run_query(internal.notes.count_all)
