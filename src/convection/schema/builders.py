"""The validator builders ``v`` (API.md §4), ``as_args_validator`` for a function's ``args=``
and ``pagination_opts_validator``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from convection.errors import SchemaError
from convection.schema.validators import (
    _ANY,
    _BOOLEAN,
    _BYTES,
    _INT64,
    _NULL,
    _NUMBER,
    _STRING,
    AnyValidator,
    ArrayValidator,
    BooleanValidator,
    BytesValidator,
    Float64Validator,
    IdValidator,
    Int64Validator,
    LiteralValidator,
    LiteralValue,
    NullValidator,
    ObjectValidator,
    OptionalValidator,
    RecordValidator,
    StringValidator,
    UnionValidator,
    Validator,
    _short_repr,
)


class _V:
    """The validator builders: ``from convection.schema.builders import v``."""

    __slots__ = ()

    def id(self, table_name: str) -> IdValidator:
        """A document id of ``table_name`` (system tables such as ``"_storage"`` allowed)."""
        return IdValidator(table_name)

    def null(self) -> NullValidator:
        return _NULL

    def number(self) -> Float64Validator:
        """A float64 (Python ``float``; a plain ``int`` is converted)."""
        return _NUMBER

    def float64(self) -> Float64Validator:
        """Same as :meth:`number`."""
        return _NUMBER

    def int64(self) -> Int64Validator:
        """An int64 (:class:`Int64`; a plain ``int`` is converted)."""
        return _INT64

    def boolean(self) -> BooleanValidator:
        return _BOOLEAN

    def string(self) -> StringValidator:
        return _STRING

    def literal(self, value: LiteralValue) -> LiteralValidator:
        """Exactly ``value``: a str, float (a plain int is a float64), Int64, bool or bytes."""
        return LiteralValidator(value)

    def array(self, item: Validator) -> ArrayValidator:
        return ArrayValidator(item)

    def object(self, fields: Mapping[str, Validator]) -> ObjectValidator:
        return ObjectValidator(fields)

    def record(self, keys: Validator, values: Validator) -> RecordValidator:
        return RecordValidator(keys, values)

    def union(self, *members: Validator) -> UnionValidator:
        return UnionValidator(members)

    def optional(self, inner: Validator) -> OptionalValidator:
        """An object field that may be missing. Only valid as an object field's validator."""
        return OptionalValidator(inner)

    def nullable(self, inner: Validator) -> UnionValidator:
        """``v.union(inner, v.null())``."""
        return UnionValidator((inner, _NULL))

    def any(self) -> AnyValidator:
        return _ANY

    def bytes(self) -> BytesValidator:
        return _BYTES

    def __repr__(self) -> str:
        return "v"


v: Final = _V()
"""The validator builders (API.md §4)."""


def as_args_validator(args: Mapping[str, Validator] | Validator) -> ObjectValidator:
    """A function's ``args=``: a dict of field validators (wrapped in ``v.object``) or a
    ``v.object(...)``. Anything else raises :class:`SchemaError`."""
    if isinstance(args, ObjectValidator):
        return args
    if isinstance(args, Mapping):
        return ObjectValidator(args)
    if isinstance(args, Validator):
        raise SchemaError(
            f"Function arguments must be a dict of validators or v.object({{...}}), got "
            f"{_short_repr(args)}"
        )
    raise SchemaError(
        f"Function arguments must be a dict of validators or v.object({{...}}), got "
        f"{type(args).__name__}"
    )


pagination_opts_validator: Final = v.object(
    {
        "numItems": v.number(),
        "cursor": v.union(v.string(), v.null()),
        "endCursor": v.optional(v.union(v.string(), v.null())),
        "id": v.optional(v.number()),
        "maximumRowsRead": v.optional(v.number()),
        "maximumBytesRead": v.optional(v.number()),
    }
)
"""Validates the ``paginate(...)`` options argument (API.md §3)."""
