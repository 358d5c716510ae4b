from convection import mutation


@mutation
def later(ctx):
    """e2e (dashboard): a message scheduled an hour from now, for the Schedules page."""
    return ctx.scheduler.run_after(3_600_000, "messages:send", {"body": "from the scheduler", "author": "scheduler"})
