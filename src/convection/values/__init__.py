"""Values: the Convex value model, its JSON forms, ordering and document ids."""

from __future__ import annotations

from convection.values.model import (
    INT64_MAX,
    INT64_MIN,
    UNSET,
    Int64,
    Value,
    check_field_name,
    describe,
    is_special_float,
    normalize,
    type_name,
    value_size,
)

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "UNSET",
    "Int64",
    "Value",
    "check_field_name",
    "describe",
    "is_special_float",
    "normalize",
    "type_name",
    "value_size",
]
