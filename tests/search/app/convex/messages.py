from convection import mutation, query


def _search(db, text, channel=None, author=None):
    def build(q):
        q = q.search("body", text)
        if channel is not None:
            q = q.eq("channel", channel)
        if author is not None:
            q = q.eq("author", author)
        return q

    return db.query("messages").with_search_index("search_body", build)


@query
def search(ctx, text, channel=None, author=None, limit=None):
    q = _search(ctx.db, text, channel, author)
    return q.collect() if limit is None else q.take(limit)


@query
def search_bodies(ctx, text, channel=None, limit=None):
    q = _search(ctx.db, text, channel)
    docs = q.collect() if limit is None else q.take(limit)
    return [d["body"] for d in docs]


@query
def search_min_n(ctx, text, min_n):
    q = _search(ctx.db, text).filter(lambda f: f.gte(f.field("n"), min_n))
    return [d["body"] for d in q.collect()]


@query
def search_first(ctx, text):
    doc = _search(ctx.db, text).first()
    return None if doc is None else doc["body"]


@query
def search_page(ctx, text, paginationOpts):
    return _search(ctx.db, text).paginate(paginationOpts)


@mutation
def add(ctx, body, channel="general", author=None, n=None):
    doc = {"body": body, "channel": channel}
    if author is not None:
        doc["author"] = author
    if n is not None:
        doc["n"] = n
    return ctx.db.insert("messages", doc)


@mutation
def add_many(ctx, bodies, channel="general"):
    return [ctx.db.insert("messages", {"body": b, "channel": channel}) for b in bodies]


@mutation
def edit(ctx, id, body):
    ctx.db.patch(id, {"body": body})


@mutation
def remove(ctx, id):
    ctx.db.delete(id)


@mutation
def add_then_search(ctx, body, text, channel="general"):
    ctx.db.insert("messages", {"body": body, "channel": channel})
    return [d["body"] for d in _search(ctx.db, text, channel).collect()]


@mutation
def edit_then_search(ctx, id, body, text):
    ctx.db.patch(id, {"body": body})
    return [d["body"] for d in _search(ctx.db, text).collect()]


@mutation
def remove_then_search(ctx, id, text):
    ctx.db.delete(id)
    return [d["body"] for d in _search(ctx.db, text).collect()]


@mutation
def search_then_count(ctx, text):
    """Reads search results and writes a counter document: conflicts with matching writes."""
    found = _search(ctx.db, text).collect()
    ctx.db.insert("notes", {"text": f"found {len(found)}"})
    return len(found)
