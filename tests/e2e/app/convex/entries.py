"""Pagination over an index (tests/e2e/test_e2e_pagination.py): rows of one `list`, ordered by n."""

from convection import mutation, pagination_opts_validator, query, v


@query(args={"list": v.string(), "paginationOpts": pagination_opts_validator})
def page(ctx, list, paginationOpts):
    return (
        ctx.db.query("entries")
        .with_index("by_list_n", lambda q: q.eq("list", list))
        .paginate(paginationOpts)
    )


@query(args={"list": v.string()})
def ns(ctx, list):
    rows = ctx.db.query("entries").with_index("by_list_n", lambda q: q.eq("list", list)).collect()
    return [row["n"] for row in rows]


@mutation(args={"list": v.string(), "ns": v.array(v.number())})
def add(ctx, list, ns):
    return [ctx.db.insert("entries", {"list": list, "n": n}) for n in ns]
