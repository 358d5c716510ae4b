"""Messages: insert (W1), the take-10 query by index (R1, watched by L1/F1), bulk prefill (G1)."""

from convection import mutation, query, v


@mutation(args={"channel": v.string(), "n": v.number(), "body": v.string()})
def send(ctx, channel, n, body):
    return ctx.db.insert("messages", {"channel": channel, "n": n, "body": body})


@query(args={"channel": v.string(), "cb": v.optional(v.number())})
def latest(ctx, channel, cb=None):
    """The 10 highest ``n`` of a channel. ``cb`` is a cache-breaker: ignored, but part of the
    cache key, so varying it forces a real run (R1 uncached)."""
    return (
        ctx.db.query("messages")
        .with_index("by_channel_n", lambda q: q.eq("channel", channel))
        .order("desc")
        .take(10)
    )


@query(args={"channel": v.string(), "cb": v.optional(v.number())})
def top(ctx, channel, cb=None):
    """The highest ``n`` of a channel (a small result: L1/F1 subscribers watch this)."""
    doc = (
        ctx.db.query("messages")
        .with_index("by_channel_n", lambda q: q.eq("channel", channel))
        .order("desc")
        .first()
    )
    return None if doc is None else doc["n"]


@mutation(args={"channel": v.string(), "start": v.number(), "count": v.number()})
def bulk(ctx, channel, start, count):
    """Insert ``count`` documents ``n = start ..`` in one transaction (G1 prefill)."""
    for i in range(int(count)):
        ctx.db.insert("messages", {"channel": channel, "n": start + i, "body": "prefill"})
    return count
