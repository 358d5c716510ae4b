from __future__ import annotations

import inspect
from typing import Any

import pytest

from convection.functions.decorators import (
    ConvexFunction,
    InvalidFunctionDefinition,
    action,
    http_action,
    internal_action,
    internal_mutation,
    internal_query,
    mutation,
    query,
)
from convection.schema.builders import v
from convection.schema.validators import ObjectValidator, Validator


def test_bare_decorators() -> None:
    @query
    def q(ctx: Any) -> str:
        """Doc."""
        return "q"

    assert isinstance(q, ConvexFunction)
    assert (q.kind, q.visibility, q.is_async) == ("query", "public", False)
    assert q.args_validator is None and q.returns_validator is None
    assert q.path is None
    assert q(None) == "q"
    assert q.__name__ == "q" and q.__doc__ == "Doc." and q.__module__ == __name__
    assert q.display_kind == "Query"


@pytest.mark.parametrize(
    ("decorator", "kind", "visibility"),
    [
        (query, "query", "public"),
        (mutation, "mutation", "public"),
        (action, "action", "public"),
        (internal_query, "query", "internal"),
        (internal_mutation, "mutation", "internal"),
        (internal_action, "action", "internal"),
    ],
)
def test_kinds_and_visibility(decorator: Any, kind: str, visibility: str) -> None:
    def handler(ctx: Any, **args: Any) -> Any:
        return args

    fn = decorator(handler)
    assert (fn.kind, fn.visibility) == (kind, visibility)
    assert fn.is_internal == (visibility == "internal")
    with_kw = decorator()(handler)
    assert (with_kw.kind, with_kw.visibility) == (kind, visibility)


def test_args_and_returns() -> None:
    @mutation(args={"a": v.string(), "b": v.optional(v.number())}, returns=v.null())
    def m(ctx: Any, a: str, b: float = 0) -> None:
        return None

    assert isinstance(m.args_validator, ObjectValidator)
    assert isinstance(m.returns_validator, Validator)

    @query(args=v.object({"a": v.string()}))
    def q(ctx: Any, a: str) -> str:
        return a

    assert isinstance(q.args_validator, ObjectValidator)
    assert q(None, a="x") == "x"

    @query(args={})
    def no_args(ctx: Any) -> None:
        return None

    assert isinstance(no_args.args_validator, ObjectValidator)


def test_handler_passed_with_keywords() -> None:
    def handler(ctx: Any) -> int:
        return 1

    fn = query(handler, returns=v.number())
    assert fn.returns_validator is not None and fn(None) == 1


def test_actions_async_or_plain() -> None:
    @action
    async def a(ctx: Any) -> int:
        return 1

    @internal_action
    def b(ctx: Any) -> int:
        return 2

    assert a.is_async and not b.is_async
    assert inspect.iscoroutinefunction(a.handler)


@pytest.mark.parametrize("decorator", [query, mutation, internal_query, internal_mutation])
def test_async_query_or_mutation_rejected(decorator: Any) -> None:
    async def handler(ctx: Any) -> None:
        return None

    with pytest.raises(InvalidFunctionDefinition, match="async def") as info:
        decorator(handler)
    assert info.value.code == "InvalidFunctionDefinition"
    assert "handler" in info.value.message


def test_misuse_rejected() -> None:
    def handler(ctx: Any) -> None:
        return None

    with pytest.raises(InvalidFunctionDefinition, match="already"):
        mutation(query(handler))
    with pytest.raises(InvalidFunctionDefinition, match="must decorate a function"):
        query(42)  # type: ignore[call-overload]
    with pytest.raises(InvalidFunctionDefinition, match="returns"):
        query(returns="string")(handler)  # type: ignore[call-overload]

    def gen(ctx: Any) -> Any:
        yield 1

    with pytest.raises(InvalidFunctionDefinition, match="generator"):
        query(gen)


def test_http_action() -> None:
    async def handler(ctx: Any, request: Any) -> Any:
        return None

    fn = http_action(handler)
    assert (fn.kind, fn.visibility, fn.is_async) == ("httpAction", "public", True)
    assert http_action(fn) is fn

    def sync(ctx: Any, request: Any) -> Any:
        return None

    with pytest.raises(InvalidFunctionDefinition, match="async def"):
        http_action(sync)


def test_repr() -> None:
    @internal_query
    def secret(ctx: Any) -> None:
        return None

    assert repr(secret).startswith("<internal query ")
    secret.path = "admin:secret"
    assert repr(secret) == "<internal query admin:secret>"
