"""Each function here makes one mistake a Convex user makes in Python (tests/mistakes)."""

import datetime

from convection import action, mutation, query


@mutation
def add(ctx, text):
    return ctx.db.insert("tasks", {"text": text, "done": False})


@query
def calls_mutation(ctx):
    return ctx.run_mutation("tasks:add", {"text": "x"})  # MISTAKE: run_mutation


@query
def inserts(ctx):
    return ctx.db.insert("tasks", {"text": "x", "done": False})  # MISTAKE: insert


@query
def pythonic_filter(ctx):
    return ctx.db.query("tasks").filter(lambda d: d["done"] == False).collect()  # MISTAKE: filter  # noqa: E712


@query
def attribute_filter(ctx):
    return ctx.db.query("tasks").filter(lambda d: d.done == False).collect()  # MISTAKE: attribute  # noqa: E712


@query
def operator_filter(ctx):
    return ctx.db.query("tasks").filter(lambda q: q.field("done") == False).collect()  # MISTAKE: operator  # noqa: E712


@query
def returns_datetime(ctx):  # MISTAKE: datetime
    return {"due": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)}


@query
def returns_set(ctx):  # MISTAKE: set
    return {"tags": {"a", "b"}}


@action
def sync_action(ctx):
    return ctx.run_query("tasks:list_all")  # MISTAKE: sync action


@query
def list_all(ctx):
    return ctx.db.query("tasks").collect()


@action
async def missing_await(ctx):
    tasks = ctx.run_query("tasks:list_all")
    return [t["text"] for t in tasks]  # MISTAKE: missing await


@action
async def returns_coroutine(ctx):  # MISTAKE: returned coroutine
    return ctx.run_query("tasks:list_all")


@query
def vector_in_query(ctx):
    return ctx.db.query("documents").with_search_index(  # MISTAKE: with_search_index
        "by_embedding", lambda q: q.search("text", "x")
    ).collect()


@query
def vector_search_in_query(ctx):
    return ctx.vector_search("documents", "by_embedding", vector=[1.0, 0.0])  # MISTAKE: ctx.vector_search


@action
async def db_in_action(ctx):
    return ctx.db.query("tasks").collect()  # MISTAKE: db in action
