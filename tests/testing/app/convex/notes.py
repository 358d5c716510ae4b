"""Notes of the signed-in user: identity, validation, errors, internal functions."""

from convection import ConvexError, internal_mutation, internal_query, mutation, query, v


def _owner(ctx):
    identity = ctx.auth.get_user_identity()
    if identity is None:
        raise ConvexError({"code": "UNAUTHENTICATED"})
    return identity.token_identifier


@query
def mine(ctx):
    owner = _owner(ctx)
    return ctx.db.query("notes").with_index("by_owner", lambda q: q.eq("owner", owner)).collect()


@mutation(args={"text": v.string()})
def add(ctx, text):
    print("adding", text)
    if not text.strip():
        raise ConvexError({"code": "EMPTY", "message": "a note needs text"})
    return ctx.db.insert("notes", {"owner": _owner(ctx), "text": text, "done": False})


@mutation(args={"id": v.id("notes")})
def finish(ctx, id):
    ctx.db.patch(id, {"done": True})


@mutation
def explode(ctx):
    print("about to fail")
    raise RuntimeError("kaboom")


@query(returns=v.string())
def wrong_return(ctx):
    return 42


@query
def whoami(ctx):
    identity = ctx.auth.get_user_identity()
    if identity is None:
        return None
    return {
        "subject": identity.subject,
        "issuer": identity.issuer,
        "tokenIdentifier": identity.token_identifier,
        "email": identity.email,
        "givenName": identity.given_name,
        "role": identity.get("role"),
    }


@query
def now(ctx):
    return ctx.now


@internal_query
def count_all(ctx):
    return len(ctx.db.query("notes").collect())


@internal_mutation(args={"owner": v.string(), "text": v.string()})
def add_for(ctx, owner, text):
    return ctx.db.insert("notes", {"owner": owner, "text": text, "done": False})
