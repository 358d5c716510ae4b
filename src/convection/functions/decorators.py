"""The function decorators: ``query``, ``mutation``, ``action``, their ``internal_`` twins and
``http_action``.

A decorator wraps the user's handler in a :class:`ConvexFunction`: a plain description of the
function (kind, visibility, validators, whether the handler is a coroutine function) that the
loader registers under a path and the runner executes. Decorating runs no user code and
touches no engine state.

Invariants:

- queries and mutations have plain ``def`` handlers (deterministic, no ``await``); an
  ``async def`` one is rejected when the decorator runs, pointing at the handler;
- actions may be ``async def`` (run on the event loop) or plain ``def`` (run in a worker
  thread): ``is_async`` tells which;
- HTTP actions are ``async def (ctx, request)``;
- ``path`` is ``None`` until the loader assigns it, and the loader assigns it once per load,
  in the module that defines the function.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeAlias, overload

from convection.errors import ConvectionError
from convection.schema.builders import as_args_validator
from convection.schema.validators import ObjectValidator, Validator

FunctionKind: TypeAlias = Literal["query", "mutation", "action", "httpAction"]
Visibility: TypeAlias = Literal["public", "internal"]
Handler: TypeAlias = Callable[..., Any]
ArgsSpec: TypeAlias = Mapping[str, Validator] | Validator

_DISPLAY_KIND: dict[str, str] = {
    "query": "Query",
    "mutation": "Mutation",
    "action": "Action",
    "httpAction": "HttpAction",
}


class InvalidFunctionDefinition(ConvectionError):
    """A decorator was applied to something that cannot be that kind of function."""

    code = "InvalidFunctionDefinition"


class ConvexFunction:
    """A decorated function: the handler plus what the engine needs to know to run it.

    Owns no state beyond its description and ``path``, which the loader sets when it
    registers the function (``None`` before). Calling the object calls the handler directly
    (``fn(ctx, **args)``) with no validation: handy in unit tests and helpers.
    """

    __name__: str
    __qualname__: str

    def __init__(
        self,
        handler: Handler,
        *,
        kind: FunctionKind,
        visibility: Visibility,
        args_validator: ObjectValidator | None = None,
        returns_validator: Validator | None = None,
    ) -> None:
        self.handler = handler
        self.kind: FunctionKind = kind
        self.visibility: Visibility = visibility
        self.args_validator = args_validator
        self.returns_validator = returns_validator
        self.is_async = inspect.iscoroutinefunction(handler)
        self.path: str | None = None
        self.__name__ = getattr(handler, "__name__", type(handler).__name__)
        self.__qualname__ = getattr(handler, "__qualname__", self.__name__)
        self.__module__ = getattr(handler, "__module__", None) or __name__
        self.__doc__ = getattr(handler, "__doc__", None)
        self.__wrapped__ = handler

    @property
    def display_kind(self) -> str:
        """The kind as Convex spells it in messages: ``Query``, ``Mutation``, ..."""
        return _DISPLAY_KIND[self.kind]

    @property
    def is_internal(self) -> bool:
        return self.visibility == "internal"

    def __call__(self, ctx: Any, /, **args: Any) -> Any:
        return self.handler(ctx, **args)

    def __repr__(self) -> str:
        where = self.path if self.path is not None else f"{self.__module__}.{self.__qualname__}"
        prefix = "internal " if self.visibility == "internal" else ""
        return f"<{prefix}{self.kind} {where}>"


def _describe_handler(handler: Any) -> str:
    name = getattr(handler, "__qualname__", None) or repr(handler)
    code = getattr(inspect.unwrap(handler), "__code__", None)
    if code is not None:
        return f"{name!r} ({os.path.basename(code.co_filename)}:{code.co_firstlineno})"
    return repr(name)


def _make(
    handler: Any,
    kind: FunctionKind,
    visibility: Visibility,
    args: ArgsSpec | None,
    returns: Validator | None,
    decorator: str,
) -> ConvexFunction:
    if isinstance(handler, ConvexFunction):
        raise InvalidFunctionDefinition(
            f"@{decorator} was applied to {handler!r}, which is already a decorated "
            f"{handler.kind}. Use one decorator per function."
        )
    if not callable(handler):
        raise InvalidFunctionDefinition(
            f"@{decorator} must decorate a function, got {type(handler).__name__}."
        )
    is_async = inspect.iscoroutinefunction(handler)
    if kind in ("query", "mutation") and is_async:
        raise InvalidFunctionDefinition(
            f"@{decorator} handler {_describe_handler(handler)} is 'async def', but queries "
            "and mutations are deterministic and cannot await. Use a plain 'def' (or make it "
            "an action)."
        )
    if inspect.isgeneratorfunction(handler) or inspect.isasyncgenfunction(handler):
        raise InvalidFunctionDefinition(
            f"@{decorator} handler {_describe_handler(handler)} is a generator; "
            "return a value instead of yielding."
        )
    if returns is not None and not isinstance(returns, Validator):
        raise InvalidFunctionDefinition(
            f"@{decorator}(returns=...) of {_describe_handler(handler)} must be a validator "
            f"such as v.string(), got {type(returns).__name__}."
        )
    args_validator = None if args is None else as_args_validator(args)
    return ConvexFunction(
        handler,
        kind=kind,
        visibility=visibility,
        args_validator=args_validator,
        returns_validator=returns,
    )


class _Decorator:
    """One of the six function decorators; usable bare or with ``args=`` / ``returns=``."""

    def __init__(self, name: str, kind: FunctionKind, visibility: Visibility) -> None:
        self._name = name
        self._kind: FunctionKind = kind
        self._visibility: Visibility = visibility
        self.__name__ = name
        self.__qualname__ = name

    @overload
    def __call__(
        self,
        handler: Handler,
        /,
        *,
        args: ArgsSpec | None = None,
        returns: Validator | None = None,
    ) -> ConvexFunction: ...

    @overload
    def __call__(
        self,
        handler: None = None,
        /,
        *,
        args: ArgsSpec | None = None,
        returns: Validator | None = None,
    ) -> Callable[[Handler], ConvexFunction]: ...

    def __call__(
        self,
        handler: Handler | None = None,
        /,
        *,
        args: ArgsSpec | None = None,
        returns: Validator | None = None,
    ) -> ConvexFunction | Callable[[Handler], ConvexFunction]:
        if handler is not None:
            return _make(handler, self._kind, self._visibility, args, returns, self._name)

        def decorate(fn: Handler) -> ConvexFunction:
            return _make(fn, self._kind, self._visibility, args, returns, self._name)

        return decorate

    def __repr__(self) -> str:
        return f"<decorator {self._name}>"


query = _Decorator("query", "query", "public")
mutation = _Decorator("mutation", "mutation", "public")
action = _Decorator("action", "action", "public")
internal_query = _Decorator("internal_query", "query", "internal")
internal_mutation = _Decorator("internal_mutation", "mutation", "internal")
internal_action = _Decorator("internal_action", "action", "internal")


def http_action(handler: Handler, /) -> ConvexFunction:
    """Make ``async def handler(ctx, request)`` an HTTP action (route it with ``HttpRouter``).

    ``request`` is a Starlette ``Request``; the handler returns a Starlette ``Response``.
    """
    if isinstance(handler, ConvexFunction):
        if handler.kind == "httpAction":
            return handler
        raise InvalidFunctionDefinition(
            f"@http_action was applied to {handler!r}, which is already a decorated "
            f"{handler.kind}."
        )
    if not callable(handler):
        raise InvalidFunctionDefinition(
            f"@http_action must decorate a function, got {type(handler).__name__}."
        )
    if not inspect.iscoroutinefunction(handler):
        raise InvalidFunctionDefinition(
            f"HTTP action handler {_describe_handler(handler)} must be 'async def "
            "handler(ctx, request)'."
        )
    return ConvexFunction(handler, kind="httpAction", visibility="public")
