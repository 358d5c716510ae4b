"""Orders: a user's functions module (path prefix "orders:")."""

from convection import ConvexError, internal_mutation, mutation, query, v


@query(args={"orderId": v.id("orders")})
def get_order(ctx, orderId):
    return ctx.db.get(orderId)


@mutation(args={"orderId": v.id("orders")}, returns=v.null())
def cancel_order(ctx, orderId):
    order = ctx.db.get(orderId)
    if order is None:
        raise ConvexError({"code": "NOT_FOUND"})
    ctx.db.patch(orderId, {"status": "cancelled"})


@internal_mutation
def delete_expired(ctx):
    return None


def not_a_function(x):
    return x * 2


PAGE_SIZE = 50
