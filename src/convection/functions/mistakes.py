"""The mistakes a Convex user makes in Python, each explained: the rule, where it was broken
(``file:line`` of the user's code) and what to do instead, with a stable code.

The ctx classes raise these from ``__getattr__`` when a function reaches for something its
kind does not have (``ctx.run_mutation`` in a query, ``ctx.db.insert`` in a query,
``ctx.vector_search`` outside an action, ``ctx.db`` in an action); :func:`explain` rewrites a
Python error that comes from a missing ``await`` (``'coroutine' object is not subscriptable``)
into one that says so. Codes (docs/errors.md): ``MutationInQuery``, ``ActionInTransaction``,
``WriteInQuery``, ``VectorSearchOutsideAction``, ``DbInAction``, ``AwaitInSyncAction``,
``MissingAwait``.

Every error here is also an :class:`AttributeError` where it replaces one, so ``hasattr(ctx,
"run_mutation")`` stays False in a query.
"""

from __future__ import annotations

import inspect
import linecache
import re
import traceback
from typing import Any

from convection.errors import ConvectionError, at_user_location, is_user_file, shown_path

__all__ = [
    "FunctionMisuse",
    "awaitable_in_sync_action",
    "explain",
    "function_location",
    "missing_on_action_ctx",
    "missing_on_query_ctx",
    "missing_on_reader",
]


class FunctionMisuse(ConvectionError, AttributeError):
    """A function used something its kind does not offer; the message says what to use."""

    code = "FunctionMisuse"


def _in(source: str) -> str:
    return f" in {source}" if source else ""


def missing_on_query_ctx(name: str, kind: str, source: str) -> FunctionMisuse | None:
    """The error for ``ctx.<name>`` missing on a query or mutation ctx, or None (a plain
    AttributeError). ``kind`` is "query" or "mutation"; ``source`` the function's path."""
    where = at_user_location(3)
    if name == "run_mutation" and kind == "query":
        return FunctionMisuse(
            f"Queries are read-only, so a query cannot call a mutation: ctx.run_mutation{where}"
            f"{_in(source)}. Call the mutation from the client (useMutation), from another "
            "mutation, or from an action with await ctx.run_mutation(...).",
            code="MutationInQuery",
        )
    if name == "run_action":
        return FunctionMisuse(
            f"A {kind} runs in a transaction and cannot call an action: ctx.run_action{where}"
            f"{_in(source)}. "
            + (
                "Schedule it instead: ctx.scheduler.run_after(0, api.module.fn, args) runs it "
                "once this mutation commits."
                if kind == "mutation"
                else "Call it from the client (useAction) or from another action."
            ),
            code="ActionInTransaction",
        )
    if name == "vector_search":
        return FunctionMisuse(
            f"Vector search runs only in actions (as in Convex): ctx.vector_search{where}"
            f"{_in(source)} is a {kind}. Move the search into an @action (await "
            "ctx.vector_search(table, index, vector=[...])) and load the documents it finds "
            "with await ctx.run_query(...).",
            code="VectorSearchOutsideAction",
        )
    if name == "scheduler" and kind == "query":
        return FunctionMisuse(
            f"Queries are read-only, so they cannot schedule functions: ctx.scheduler{where}"
            f"{_in(source)}. Schedule from a mutation or an action.",
            code="MutationInQuery",
        )
    return None


_WRITES = ("insert", "patch", "replace", "delete")


def missing_on_reader(name: str, source: str) -> FunctionMisuse | None:
    """The error for ``ctx.db.<name>`` missing on a query's (read-only) ``ctx.db``."""
    if name not in _WRITES:
        return None
    return FunctionMisuse(
        f"Queries are read-only: ctx.db.{name}{at_user_location(3)}{_in(source)} writes. Write "
        "in a @mutation (its ctx.db has insert, patch, replace and delete) and call it from "
        "the client with useMutation, or from an action with await ctx.run_mutation(...).",
        code="WriteInQuery",
    )


def missing_on_action_ctx(name: str) -> FunctionMisuse | None:
    """The error for ``ctx.<name>`` missing on an action's ctx."""
    if name != "db":
        return None
    return FunctionMisuse(
        f"Actions run outside the database's transactions and have no ctx.db{at_user_location(3)}. "
        "Read with await ctx.run_query(api.module.fn, args) and write with await "
        "ctx.run_mutation(api.module.fn, args).",
        code="DbInAction",
    )


def awaitable_in_sync_action(method: str) -> FunctionMisuse:
    """``ctx.<method>(...)`` called from an action declared with a plain ``def``."""
    return FunctionMisuse(
        f"ctx.{method}() is awaitable, but it was called from an action declared with a plain "
        f"`def`{at_user_location(3)}. Declare the action `async def` and write "
        f"`await ctx.{method}(...)`.",
        code="AwaitInSyncAction",
    )


_DEF = re.compile(r"\s*(async\s+)?def\s")

_COROUTINE_MISUSE = re.compile(
    r"'coroutine' object (is not subscriptable|has no attribute|is not iterable|is not callable"
    r"|does not support item assignment|is not a mapping|cannot be interpreted)"
)


def explain(exc: BaseException) -> FunctionMisuse | None:
    """A clearer error for ``exc`` when it comes from a known mistake, else None.

    A coroutine used as a value (``ctx.run_query(...)["x"]``, ``for d in
    ctx.run_query(...)``) means a missing ``await``; the location is the innermost user frame
    of ``exc``'s traceback."""
    if isinstance(exc, TypeError) and _COROUTINE_MISUSE.search(str(exc)):
        where = _traceback_user_location(exc)
        return FunctionMisuse(
            f"Missing `await`{f' at {where}' if where else ''}: {exc}. ctx.run_query, "
            "ctx.run_mutation, ctx.run_action, ctx.vector_search and ctx.storage calls in "
            "actions return awaitables; write `await ctx.run_query(...)`.",
            code="MissingAwait",
        )
    return None


def function_location(fn: Any) -> str:
    """``file:line`` where a user function is defined (its ``def``), or its name."""
    target = inspect.unwrap(fn)
    code = getattr(target, "__code__", None)
    if code is None:
        return getattr(fn, "__qualname__", repr(fn))
    line = code.co_firstlineno  # the first decorator's line: move on to the ``def``
    for offset in range(20):
        if _DEF.match(linecache.getline(code.co_filename, line + offset)):
            line += offset
            break
    return f"{shown_path(code.co_filename)}:{line}"


def _traceback_user_location(exc: BaseException) -> str | None:
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if is_user_file(frame.filename):
            return f"{shown_path(frame.filename)}:{frame.lineno}"
    return None
