from convection import ConvexError, Int64, action, api, internal_mutation, mutation, query, v


@query
def list(ctx):
    print("listing messages")
    return ctx.db.query("messages").collect()


@mutation(args={"body": v.string(), "author": v.optional(v.string())})
def send(ctx, body, author=None):
    doc = {"body": body}
    if author is not None:
        doc["author"] = author
    return ctx.db.insert("messages", doc)


@mutation
def fail(ctx):
    raise ValueError("nope")


@mutation
def fail_convex(ctx, code):
    raise ConvexError({"code": code})


@query
def fail_query(ctx):
    raise ConvexError("bad")


@query
def echo(ctx, **args):
    return args


@query
def typed(ctx):
    return {"i": Int64(5), "b": b"\x01\x02\x03", "nan": float("nan"), "negzero": -0.0, "big": Int64(-(2**63))}


@action
async def act(ctx, x):
    msgs = await ctx.run_query(api.messages.list, {})
    return {"x": x, "count": len(msgs)}


@internal_mutation
def secret(ctx):
    return "internal"


@query
def default(ctx):
    return "the default export"


@mutation
def echo_mutation(ctx, **args):
    return args


@action
async def echo_action(ctx, **args):
    return args


@query(args={"author": v.string()})
def by_author(ctx, author):
    return [
        m["body"]
        for m in ctx.db.query("messages").filter(lambda q: q.eq(q.field("author"), author)).collect()
    ]


@mutation(args={"blob": v.string()})
def blob_len(ctx, blob):
    return len(blob)


@mutation(args={"size": v.number()})
def padded(ctx, size):
    """A result of ``size`` characters (the slow-consumer test of the outbox budget)."""
    return "x" * int(size)
