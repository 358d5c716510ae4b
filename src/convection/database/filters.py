"""Filter expressions for ``.filter(lambda q: ...)``: built once, evaluated per document.

The builder ``q`` offers ``field, eq, neq, lt, lte, gt, gte, add, sub, mul, div, mod, neg,
and_, or_, not_`` (docs/database.md). Comparisons use the Convex total order across types
(``convection.values.order``); a missing field is "undefined", which sorts first and is not
equal to null. Filters are post-filters: rows they reject still count as read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from convection.errors import DatabaseError, at_user_location
from convection.values.model import Int64, normalize
from convection.values.order import MISSING, compare

_RULE = (
    "A filter is built once from q's methods and then evaluated by the database; the lambda "
    "never sees a document"
)

_OPERATORS = {"__eq__": "eq", "__ne__": "neq", "__lt__": "lt", "__le__": "lte", "__gt__": "gt", "__ge__": "gte"}


def _python_operator(op: str) -> DatabaseError:
    name = _OPERATORS[op]
    return DatabaseError(
        f"{_RULE}, so Python's comparison operators do not work on its expressions{at_user_location(3)}. "
        f"Write q.{name}(a, b) instead, e.g. .filter(lambda q: q.{name}(q.field(\"done\"), False)).",
        code="InvalidFilter",
    )


class Expr:
    """A node of a filter expression."""

    __hash__ = object.__hash__

    def evaluate(self, doc: dict[str, Any]) -> Any:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        raise _python_operator("__eq__")

    def __ne__(self, other: object) -> bool:
        raise _python_operator("__ne__")

    def __lt__(self, other: object) -> bool:
        raise _python_operator("__lt__")

    def __le__(self, other: object) -> bool:
        raise _python_operator("__le__")

    def __gt__(self, other: object) -> bool:
        raise _python_operator("__gt__")

    def __ge__(self, other: object) -> bool:
        raise _python_operator("__ge__")

    def __bool__(self) -> bool:
        raise DatabaseError(
            "A filter expression has no truth value: use q.and_(a, b), q.or_(a, b) and q.not_(a) "
            "instead of Python's and/or/not, and q.eq(...) instead of ==.",
            code="InvalidFilter",
        )


class _Literal(Expr):
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def evaluate(self, doc: dict[str, Any]) -> Any:
        return self.value


class _Field(Expr):
    __slots__ = ("parts",)

    def __init__(self, path: str) -> None:
        self.parts = path.split(".")

    def evaluate(self, doc: dict[str, Any]) -> Any:
        cur: Any = doc
        for p in self.parts:
            if not isinstance(cur, dict) or p not in cur:
                return MISSING
            cur = cur[p]
        return cur


class _Op(Expr):
    __slots__ = ("args", "fn")

    def __init__(self, fn: Callable[..., Any], *args: Expr) -> None:
        self.fn = fn
        self.args = args

    def evaluate(self, doc: dict[str, Any]) -> Any:
        return self.fn(*(a.evaluate(doc) for a in self.args))


def _wrap(x: Any) -> Expr:
    if isinstance(x, Expr):
        return x
    return _Literal(normalize(x))


def _num(op: str, a: Any, b: Any) -> Any:
    if type(a) is Int64 and type(b) is Int64:
        if op == "add":
            return Int64(int(a) + int(b))
        if op == "sub":
            return Int64(int(a) - int(b))
        if op == "mul":
            return Int64(int(a) * int(b))
        if op == "div":
            if b == 0:
                raise DatabaseError("Division by zero in a filter", code="InvalidFilter")
            q = abs(int(a)) // abs(int(b))
            return Int64(q if (a >= 0) == (b >= 0) else -q)
        if op == "mod":
            if b == 0:
                raise DatabaseError("Modulo by zero in a filter", code="InvalidFilter")
            r = abs(int(a)) % abs(int(b))
            return Int64(r if a >= 0 else -r)
    if type(a) is float and type(b) is float:
        if op == "add":
            return a + b
        if op == "sub":
            return a - b
        if op == "mul":
            return a * b
        if op == "div":
            return a / b if b != 0 else (float("nan") if a == 0 or a != a else (float("inf") if a > 0 else float("-inf")))
        if op == "mod":
            import math

            return math.fmod(a, b) if b != 0 else float("nan")
    raise DatabaseError(
        f"Filter arithmetic q.{op}() needs two numbers of the same type (both float64 or both "
        f"int64), got {a!r} and {b!r}",
        code="InvalidFilter",
    )


def _neg(a: Any) -> Any:
    if type(a) is Int64:
        return Int64(-int(a))
    if type(a) is float:
        return -a
    raise DatabaseError(f"q.neg() needs a number, got {a!r}", code="InvalidFilter")


def _truthy(x: Any) -> bool:
    if type(x) is not bool:
        raise DatabaseError(
            f"Filter conditions must be booleans; got {x!r}. Combine comparisons with q.and_/q.or_.",
            code="InvalidFilter",
        )
    return x


class FilterBuilder:
    """The ``q`` passed to ``.filter(lambda q: ...)``."""

    def __getitem__(self, key: Any) -> Any:
        field = key if isinstance(key, str) else "field"
        raise DatabaseError(
            f"{_RULE}: q[{key!r}] is not a field of a document{at_user_location(2)}. Read a field "
            f"with q.field({field!r}) and compare with q's methods: .filter(lambda q: "
            f"q.eq(q.field({field!r}), value)) for d[{key!r}] == value (also q.neq, q.lt, q.lte, "
            "q.gt, q.gte, q.and_, q.or_, q.not_).",
            code="InvalidFilter",
        )

    if not TYPE_CHECKING:  # (type checkers see only q's real methods)

        def __getattr__(self, name: str) -> Any:
            if name.startswith("_"):
                raise AttributeError(name)
            raise DatabaseError(
                f"{_RULE}: q.{name} is not a field of a document{at_user_location(2)}. Read a field "
                f"with q.field({name!r}) and compare with q's methods: .filter(lambda q: "
                f"q.eq(q.field({name!r}), value)). q has field, eq, neq, lt, lte, gt, gte, add, sub, "
                "mul, div, mod, neg, and_, or_, not_.",
                code="InvalidFilter",
            )

    def field(self, path: str) -> Expr:
        if not isinstance(path, str) or not path:
            raise DatabaseError(f"q.field() takes a field path string, got {path!r}", code="InvalidFilter")
        return _Field(path)

    def eq(self, a: Any, b: Any) -> Expr:
        return _Op(lambda x, y: compare(x, y) == 0, _wrap(a), _wrap(b))

    def neq(self, a: Any, b: Any) -> Expr:
        return _Op(lambda x, y: compare(x, y) != 0, _wrap(a), _wrap(b))

    def lt(self, a: Any, b: Any) -> Expr:
        return _Op(lambda x, y: compare(x, y) < 0, _wrap(a), _wrap(b))

    def lte(self, a: Any, b: Any) -> Expr:
        return _Op(lambda x, y: compare(x, y) <= 0, _wrap(a), _wrap(b))

    def gt(self, a: Any, b: Any) -> Expr:
        return _Op(lambda x, y: compare(x, y) > 0, _wrap(a), _wrap(b))

    def gte(self, a: Any, b: Any) -> Expr:
        return _Op(lambda x, y: compare(x, y) >= 0, _wrap(a), _wrap(b))

    def add(self, a: Any, b: Any) -> Expr:
        return _Op(lambda x, y: _num("add", x, y), _wrap(a), _wrap(b))

    def sub(self, a: Any, b: Any) -> Expr:
        return _Op(lambda x, y: _num("sub", x, y), _wrap(a), _wrap(b))

    def mul(self, a: Any, b: Any) -> Expr:
        return _Op(lambda x, y: _num("mul", x, y), _wrap(a), _wrap(b))

    def div(self, a: Any, b: Any) -> Expr:
        return _Op(lambda x, y: _num("div", x, y), _wrap(a), _wrap(b))

    def mod(self, a: Any, b: Any) -> Expr:
        return _Op(lambda x, y: _num("mod", x, y), _wrap(a), _wrap(b))

    def neg(self, a: Any) -> Expr:
        return _Op(_neg, _wrap(a))

    def and_(self, *exprs: Any) -> Expr:
        es = [_wrap(e) for e in exprs]
        return _And(es)

    def or_(self, *exprs: Any) -> Expr:
        es = [_wrap(e) for e in exprs]
        return _Or(es)

    def not_(self, a: Any) -> Expr:
        return _Op(lambda x: not _truthy(x), _wrap(a))


class _And(Expr):
    __slots__ = ("exprs",)

    def __init__(self, exprs: list[Expr]) -> None:
        self.exprs = exprs

    def evaluate(self, doc: dict[str, Any]) -> Any:
        return all(_truthy(e.evaluate(doc)) for e in self.exprs)


class _Or(Expr):
    __slots__ = ("exprs",)

    def __init__(self, exprs: list[Expr]) -> None:
        self.exprs = exprs

    def evaluate(self, doc: dict[str, Any]) -> Any:
        return any(_truthy(e.evaluate(doc)) for e in self.exprs)


FILTER_BUILDER = FilterBuilder()


def build_filter(fn: Callable[[FilterBuilder], Any]) -> Callable[[dict[str, Any]], bool]:
    """Turn ``lambda q: ...`` into a predicate over documents."""
    expr = fn(FILTER_BUILDER)
    e = _wrap(expr)

    def predicate(doc: dict[str, Any]) -> bool:
        return _truthy(e.evaluate(doc))

    return predicate
