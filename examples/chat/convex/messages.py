"""Messages of a channel: a paginated list (newest first), sending, and a filter by author."""

from convection import ConvexError, mutation, pagination_opts_validator, query, v

MAX_BODY_LENGTH = 2000


@query(args={"channel": v.id("channels"), "paginationOpts": pagination_opts_validator})
def list(ctx, channel, paginationOpts):
    """The channel's messages, newest first, one page at a time (``usePaginatedQuery``)."""
    return (
        ctx.db.query("messages")
        .with_index("by_channel", lambda q: q.eq("channel", channel))
        .order("desc")
        .paginate(paginationOpts)
    )


@mutation(args={"channel": v.id("channels"), "author": v.string(), "body": v.string()})
def send(ctx, channel, author, body):
    """Post a message to a channel; returns its id."""
    author, body = author.strip(), body.strip()
    if ctx.db.get(channel) is None:
        raise ConvexError({"code": "NO_SUCH_CHANNEL", "message": "That channel does not exist."})
    if not author:
        raise ConvexError({"code": "INVALID_AUTHOR", "message": "Say who you are."})
    if not body:
        raise ConvexError({"code": "EMPTY_MESSAGE", "message": "A message cannot be empty."})
    if len(body) > MAX_BODY_LENGTH:
        raise ConvexError({
            "code": "MESSAGE_TOO_LONG",
            "message": f"Messages are at most {MAX_BODY_LENGTH} characters.",
        })
    return ctx.db.insert("messages", {"channel": channel, "author": author, "body": body})


@query(args={"channel": v.id("channels"), "author": v.string(), "limit": v.optional(v.number())})
def search_by_author(ctx, channel, author, limit=50):
    """The newest ``limit`` messages of ``author`` in a channel (an index range plus a filter)."""
    return (
        ctx.db.query("messages")
        .with_index("by_channel", lambda q: q.eq("channel", channel))
        .filter(lambda q: q.eq(q.field("author"), author))
        .order("desc")
        .take(limit)
    )
