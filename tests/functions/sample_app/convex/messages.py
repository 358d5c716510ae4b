"""Messages: a default export bound under a second name."""

from convection import mutation, query, v


@query
def list_all(ctx):
    return []


default = list_all


@mutation(args=v.object({"body": v.string(), "author": v.optional(v.string())}))
def send(ctx, body, author=None):
    return ctx.db.insert("messages", {"body": body, "author": author or "anonymous"})
