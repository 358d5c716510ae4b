"""A nested module (no __init__.py in queries/) importing a sibling of its parent."""

from convection import query, v

from ..orders import PAGE_SIZE, get_order


@query(args={"status": v.string()})
def get_my_orders(ctx, status):
    return ctx.db.query("orders").take(PAGE_SIZE)


def first(ctx, order_id):
    return get_order(ctx, orderId=order_id)
