"""Validators from their JSON form (``ValidatorJSON``, the inverse of ``Validator.to_json``),
used by codegen, the dashboard and schema round trips."""

from __future__ import annotations

from typing import Any

from convection.errors import SchemaError, ValueError_
from convection.schema.validators import (
    _ANY,
    _BOOLEAN,
    _BYTES,
    _INT64,
    _NULL,
    _NUMBER,
    _STRING,
    ArrayValidator,
    IdValidator,
    LiteralValidator,
    ObjectValidator,
    OptionalValidator,
    RecordValidator,
    UnionValidator,
    Validator,
)
from convection.values.model import describe


def _json_error(d: Any, what: str) -> SchemaError:
    return SchemaError(f"Invalid validator JSON ({what}): {describe(d, 120)}")


def _field_type_from_json(d: Any, where: str) -> tuple[Validator, bool]:
    if not isinstance(d, dict) or "fieldType" not in d:
        raise _json_error(d, f"{where} must be {{'fieldType': ..., 'optional': bool}}")
    optional = d.get("optional", False)
    if not isinstance(optional, bool):
        raise _json_error(d, f"{where}: 'optional' must be a boolean")
    return validator_from_json(d["fieldType"]), optional


def validator_from_json(d: Any) -> Validator:
    """The validator whose Convex ``ValidatorJSON`` is ``d`` (inverse of ``to_json``)."""
    if not isinstance(d, dict) or not isinstance(d.get("type"), str):
        raise _json_error(d, "expected an object with a string 'type'")
    t = d["type"]
    if t == "null":
        return _NULL
    if t in ("number", "float64"):
        return _NUMBER
    if t in ("bigint", "int64"):
        return _INT64
    if t == "boolean":
        return _BOOLEAN
    if t == "string":
        return _STRING
    if t == "bytes":
        return _BYTES
    if t == "any":
        return _ANY
    if t == "id":
        name = d.get("tableName")
        if not isinstance(name, str):
            raise _json_error(d, "'id' needs a string 'tableName'")
        return IdValidator(name)
    if t == "literal":
        if "value" not in d:
            raise _json_error(d, "'literal' needs a 'value'")
        from convection.values.json import from_convex_json

        try:
            value = from_convex_json(d["value"])
        except ValueError_ as exc:
            raise _json_error(d, exc.message) from None
        return LiteralValidator(value)
    if t == "array":
        if "value" not in d:
            raise _json_error(d, "'array' needs a 'value'")
        return ArrayValidator(validator_from_json(d["value"]))
    if t == "object":
        fields = d.get("value")
        if not isinstance(fields, dict):
            raise _json_error(d, "'object' needs a 'value' object of fields")
        out: dict[str, Validator] = {}
        for name, ft in fields.items():
            inner, optional = _field_type_from_json(ft, f"field {name!r}")
            out[name] = OptionalValidator(inner) if optional else inner
        return ObjectValidator(out)
    if t == "record":
        if "keys" not in d or "values" not in d:
            raise _json_error(d, "'record' needs 'keys' and 'values'")
        values, optional = _field_type_from_json(d["values"], "record values")
        if optional:
            raise _json_error(d, "record values cannot be optional")
        return RecordValidator(validator_from_json(d["keys"]), values)
    if t == "union":
        members = d.get("value")
        if not isinstance(members, list):
            raise _json_error(d, "'union' needs a 'value' list")
        return UnionValidator(validator_from_json(m) for m in members)
    raise _json_error(d, f"unknown type {t!r}")
