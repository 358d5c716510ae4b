import os

from convection import query


@query
def get(ctx, name):
    return os.environ.get(name)


@query
def version(ctx):
    return "v1"
