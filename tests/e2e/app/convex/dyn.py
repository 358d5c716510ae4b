"""Tables named at run time (the catalog crash test creates hundreds of them)."""

from convection import mutation, query, v


@mutation(args={"table": v.string(), "n": v.number()})
def insert(ctx, table, n):
    return ctx.db.insert(table, {"n": n})


@query(args={"table": v.string()})
def read(ctx, table):
    return [d["n"] for d in ctx.db.query(table).collect()]
