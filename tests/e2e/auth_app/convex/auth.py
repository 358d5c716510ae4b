"""Functions of the e2e auth app: who is calling, and a write that reruns ``whoami``."""

from convection import internal_query, mutation, query


def _identity(ctx):
    ident = ctx.auth.get_user_identity()
    if ident is None:
        return None
    return {
        "tokenIdentifier": ident.token_identifier,
        "subject": ident.subject,
        "issuer": ident.issuer,
        "email": ident.email,
        "name": ident.name,
        "emailVerified": ident.email_verified,
        "org": ident.get("org"),
        "gen": ident.get("gen"),
    }


@query
def whoami(ctx):
    ctx.db.query("touches").collect()
    return _identity(ctx)


@mutation
def whoami_mutation(ctx):
    return _identity(ctx)


@mutation
def touch(ctx):
    ctx.db.insert("touches", {"at": ctx.now})


@internal_query
def internal_whoami(ctx):
    return _identity(ctx)
