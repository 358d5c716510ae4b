"""The curated public API (API.md) stays honest: ``__all__`` is exactly what the docs name
and everything in it is importable from ``convection``."""

from __future__ import annotations

import importlib

import convection

# Every name API.md shows being imported from ``convection``.
API_MD_NAMES = {
    "query",
    "mutation",
    "action",
    "internal_query",
    "internal_mutation",
    "internal_action",
    "http_action",
    "HttpRouter",
    "Crons",
    "v",
    "ConvexError",
    "Int64",
    "UNSET",
    "api",
    "internal",
    "define_schema",
    "define_table",
    "pagination_opts_validator",
    "FunctionReference",
}


def test_all_is_the_documented_api() -> None:
    assert set(convection.__all__) == API_MD_NAMES
    assert len(convection.__all__) == len(set(convection.__all__))


def test_every_name_is_importable() -> None:
    module = importlib.import_module("convection")
    for name in convection.__all__:
        assert getattr(module, name) is not None, name
    namespace: dict[str, object] = {}
    exec("from convection import *", namespace)
    assert set(API_MD_NAMES) <= set(namespace)


def test_names_come_from_their_defining_modules() -> None:
    from convection.errors import ConvexError
    from convection.functions.decorators import query
    from convection.values.model import UNSET, Int64

    assert convection.ConvexError is ConvexError
    assert convection.query is query
    assert convection.Int64 is Int64
    assert convection.UNSET is UNSET


def test_unknown_names_raise_attribute_error() -> None:
    assert not hasattr(convection, "no_such_name")
    assert set(convection.__all__) <= set(dir(convection))


def test_readme_example_shape() -> None:
    from convection import api, internal

    assert api.queries.orders.get_my_orders.path == "queries/orders:get_my_orders"
    assert internal.sessions.delete_expired.visibility_hint == "internal"
