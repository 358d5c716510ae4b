"""e2e: user functions that try to write system tables (tests/e2e/test_system_tables_e2e.py).

``setup`` puts one row into each of ``_storage``, ``_scheduled_functions`` (a job an hour
away) and ``_mutation_results`` (the socket mutation that runs it); ``crons.py`` holds the
``_cron_jobs`` row. ``attack`` tries one write on a table or document and returns the error
code it met (``"written"`` if the write went through).
"""

from convection import action, internal, internal_mutation, mutation, query, v

READABLE_SYSTEM_TABLES = ["_scheduled_functions", "_storage"]  # what ctx.db.system reads


@internal_mutation
def noop(ctx):
    return None


@mutation
def schedule(ctx):
    return ctx.scheduler.run_after(3_600_000, internal.systables.noop, {})


@action
async def store_file(ctx):
    return await ctx.storage.store(b"payload", "text/plain")


@query
def ids(ctx):
    """The first document of each system table that ctx.db.system reads."""
    out = {}
    for table in READABLE_SYSTEM_TABLES:
        doc = ctx.db.system.query(table).first()
        out[table] = None if doc is None else doc["_id"]
    return out


@query(args={"id": v.string()})
def read(ctx, id):
    return ctx.db.system.get(id)


@mutation(args={"op": v.string(), "target": v.string()})
def attack(ctx, op, target):
    try:
        if op == "insert":
            ctx.db.insert(target, {"forged": True})
        elif op == "patch":
            ctx.db.patch(target, {"forged": True})
        elif op == "replace":
            ctx.db.replace(target, {"forged": True})
        elif op == "delete":
            ctx.db.delete(target)
        else:
            return "unknown op"
    except Exception as exc:  # the code of the refusal is what the test checks
        return getattr(exc, "code", type(exc).__name__)
    return "written"


@mutation(args={"op": v.string(), "target": v.string()})
def attack_uncaught(ctx, op, target):
    """The same writes, uncaught: the mutation fails."""
    if op == "patch":
        ctx.db.patch(target, {"forged": True})
    elif op == "delete":
        ctx.db.delete(target)
    return "written"

