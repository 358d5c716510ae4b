"""Actions: async and plain def."""

from convection import action, internal_action, v


@action(args={"orderId": v.id("orders")})
async def send_confirmation(ctx, orderId):
    return orderId


@internal_action
def sync_thing(ctx):
    return "synced"
