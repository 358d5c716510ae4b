"""The curated public API (docs/functions.md) stays honest: ``__all__`` is exactly what the
docs name, everything in it is importable from ``convection``, ``dir(convection)`` shows
nothing else, and the ctx types let a type checker (and so an editor) see ``ctx.db``."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

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
    # types for annotations (docs/functions.md, "Types for editors")
    "QueryCtx",
    "MutationCtx",
    "ActionCtx",
    "Doc",
    "Id",
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


def test_dir_shows_only_the_api() -> None:
    assert dir(convection) == sorted(API_MD_NAMES)
    for helper in ("Any", "TYPE_CHECKING", "annotations", "importlib"):
        assert helper not in dir(convection)


def test_ctx_types_are_the_runtime_classes() -> None:
    from convection.functions.context import ActionCtx, MutationCtx, QueryCtx

    assert convection.QueryCtx is QueryCtx
    assert convection.MutationCtx is MutationCtx
    assert convection.ActionCtx is ActionCtx
    assert issubclass(MutationCtx, QueryCtx)


def test_a_type_checker_sees_ctx_db(tmp_path: Path) -> None:
    """What an editor completes is what mypy infers: ctx.db of a query reads, of a mutation
    also writes, and a write in a query is flagged before the code runs."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from convection import ActionCtx, Doc, Id, MutationCtx, QueryCtx\n"
        "def q(ctx: QueryCtx) -> list[Doc]:\n"
        "    reveal_type(ctx.db)\n"
        "    ctx.db.insert('t', {})\n"
        "    return ctx.db.query('t').collect()\n"
        "def m(ctx: MutationCtx) -> Id:\n"
        "    reveal_type(ctx.db)\n"
        "    return ctx.db.insert('t', {})\n"
        "async def a(ctx: ActionCtx) -> None:\n"
        "    reveal_type(ctx.storage)\n"
        "    await ctx.run_query('t:list')\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--cache-dir", str(tmp_path / "cache"),
         "--follow-imports", "silent", str(sample)],
        capture_output=True, text=True, timeout=280, check=False,
    )
    out = done.stdout
    assert 'sample.py:3: note: Revealed type is "convection.functions.context.DatabaseReader"' in out, out
    assert 'sample.py:4: error: "DatabaseReader" has no attribute "insert"' in out, out
    assert 'sample.py:7: note: Revealed type is "convection.functions.context.DatabaseWriter"' in out, out
    assert 'sample.py:10: note: Revealed type is "convection.files.context.ActionStorage"' in out, out
    assert "sample.py:8: error" not in out and "sample.py:11: error" not in out, out
