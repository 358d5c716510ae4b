"""Skipped as a module (leading underscore), but other modules may import it."""

from convection import query


def make_counter(table):
    @query
    def count(ctx):
        return len(ctx.db.query(table).collect())

    return count
