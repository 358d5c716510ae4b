from convection import Crons, api, internal

from .actions import sync_thing

crons = Crons()
crons.interval("clear expired", {"hours": 24}, internal.orders.delete_expired)
crons.cron("sync", "*/5 * * * *", sync_thing)
crons.weekly(
    "weekly cancel",
    {"dayOfWeek": "monday", "hourUTC": 9, "minuteUTC": 30},
    api.orders.cancel_order,
    {"orderId": "abc"},
)
