"""A module in a folder with an __init__.py."""

from convection import action, api, internal_query, v


@internal_query(args={"email": v.string()})
def lookup(ctx, email):
    return None


@action
async def refresh(ctx):
    return await ctx.run_query(api.orders.get_order, {"orderId": "x"})
