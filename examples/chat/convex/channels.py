"""Channels: list them, create one."""

from convection import ConvexError, mutation, query, v

MAX_NAME_LENGTH = 40


@query
def list(ctx):
    """Every channel, sorted by name."""
    return ctx.db.query("channels").with_index("by_name").collect()


@mutation(args={"name": v.string()})
def create(ctx, name):
    """Create a channel and return its id; names are unique."""
    name = name.strip()
    if not name:
        raise ConvexError({"code": "INVALID_NAME", "message": "A channel needs a name."})
    if len(name) > MAX_NAME_LENGTH:
        raise ConvexError({
            "code": "INVALID_NAME",
            "message": f"Channel names are at most {MAX_NAME_LENGTH} characters.",
        })
    taken = ctx.db.query("channels").with_index("by_name", lambda q: q.eq("name", name)).first()
    if taken is not None:
        raise ConvexError({"code": "NAME_TAKEN", "message": f"#{name} already exists."})
    return ctx.db.insert("channels", {"name": name})
