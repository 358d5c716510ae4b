from convection import mutation, pagination_opts_validator, query, v


@query(args={"paginationOpts": pagination_opts_validator})
def page(ctx, paginationOpts):
    return ctx.db.query("items").paginate(paginationOpts)


@mutation(args={"n": v.number()})
def add(ctx, n):
    return ctx.db.insert("items", {"n": n})
