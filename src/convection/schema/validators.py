"""Validators: the ``v`` builders (docs/schema.md), checking + normalizing values, and their JSON form.

A :class:`Validator` is an immutable description of a set of Convex values. ``check`` returns
the *normalized* value (see :mod:`convection.values.model`), directed by the validator:

* under ``v.number()``/``v.float64()`` a plain ``int`` becomes a ``float``; under ``v.int64()``
  it becomes an :class:`~convection.values.model.Int64` (range checked). ``v.int64()`` rejects
  every float (even ``3.0``) and ``v.number()`` rejects every ``Int64``: Convex distinguishes
  the two types. ``bool`` is never a number.
* under ``v.any()`` the value is normalized exactly as :func:`~convection.values.model.normalize`
  does (plain ``int`` -> float64).
* in objects a field whose value is :data:`~convection.values.model.UNSET` is *missing*
  (JS ``undefined``); ``None`` is the value null and only matches a validator accepting null.
* a union tries its members in order; the first that accepts the value normalizes it.

``check`` raises :class:`~convection.errors.ValidationError` (code ``ValidationError``) for
every mismatch, including unsupported Python types and bad field names (the message names the
field path like ``.tags[2]``, the expected validator and the received value with its Convex
type), and :class:`~convection.errors.LimitError` for nesting depth, array length and field
count limits (same codes as ``normalize``).

Definition errors (``v.array("x")``, ``v.optional`` used anywhere but as an object field, a
bad record key validator, ...) raise :class:`~convection.errors.SchemaError` (code
``InvalidSchema``) when the validator is built.

JSON form (``to_json``/:func:`validator_from_json`) is Convex's ``ValidatorJSON``. There is no
JSON form of "optional" by itself: an optional validator serializes as its inner validator,
and optionality is the ``"optional"`` flag of an object field.

Invariants: validators are immutable and compare (``==``, ``hash``) by structure; object field
order is irrelevant to equality, union member order is relevant (it decides normalization).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Final, TypeAlias

from convection import knobs
from convection.errors import LimitError, SchemaError, ValidationError, ValueError_
from convection.values.model import (
    INT64_MAX,
    INT64_MIN,
    UNSET,
    Int64,
    check_field_name,
    describe,
    normalize,
    type_name,
)
from convection.values.order import sort_key_of_float, values_equal

__all__ = [
    "AnyValidator",
    "ArrayValidator",
    "BooleanValidator",
    "BytesValidator",
    "Float64Validator",
    "IdChecker",
    "IdValidator",
    "Int64Validator",
    "LiteralValidator",
    "NullValidator",
    "ObjectValidator",
    "OptionalValidator",
    "RecordValidator",
    "StringValidator",
    "UnionValidator",
    "Validator",
]

IdChecker: TypeAlias = Callable[[str, str], bool]
"""``id_checker(table, id_string)``: True when ``id_string`` is an id of ``table``."""

LiteralValue: TypeAlias = "str | float | bool | bytes"
"""What ``v.literal`` accepts (``int`` is a float64 literal, ``Int64`` an int64 literal)."""

_REPR_LIMIT: Final = 300


class _Ctx:
    __slots__ = ("depth_limit", "id_checker")

    def __init__(self, id_checker: IdChecker | None, depth_limit: int) -> None:
        self.id_checker = id_checker
        self.depth_limit = depth_limit


def _short_repr(validator: Validator) -> str:
    text = repr(validator)
    return text if len(text) <= _REPR_LIMIT else text[: _REPR_LIMIT - 3] + "..."


def _received(value: Any) -> str:
    return f"{describe(value)} ({type_name(value)})"


class _Mismatch(ValidationError):
    """A value of the wrong type or value; ``literal`` when a ``v.literal`` rejected it (in a
    union of objects that marks the member whose discriminator did not match)."""

    def __init__(self, message: str, *, path: str, literal: bool) -> None:
        super().__init__(message, path=path)
        self.literal = literal


def _mismatch(value: Any, path: str, validator: Validator, note: str | None = None) -> ValidationError:
    lines = ["Value does not match validator" + (f": {note}." if note else ".")]
    if path:
        lines.append(f"Path: {path}")
    lines.append(f"Value: {_received(value)}")
    lines.append(f"Validator: {_short_repr(validator)}")
    return _Mismatch("\n".join(lines), path=path, literal=isinstance(validator, LiteralValidator))


def _nesting(path: str, limit: int) -> LimitError:
    return LimitError(
        f"Value is nested more than {limit} levels deep at {path or 'top level'}",
        code="NestingTooDeep",
    )


def _quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _field_path(path: str, name: str) -> str:
    return f"{path}.{name}"


def _require_validator(x: Any, where: str) -> Validator:
    if not isinstance(x, Validator):
        raise SchemaError(
            f"{where} expects a validator such as v.string(), got {type(x).__name__} "
            f"({describe(x)})"
        )
    return x


def _no_optional(x: Validator, where: str) -> None:
    if isinstance(x, OptionalValidator):
        raise SchemaError(
            f"{_short_repr(x)} is used in {where}, but v.optional(...) is only allowed as the "
            "value of an object field (v.object({...}), a table's fields or a function's args). "
            "To allow null use v.union(..., v.null())."
        )


_ONLY_FLOATS: Final = frozenset({float})


# --- the base class ----------------------------------------------------------------------


class Validator:
    """Base of every validator. Build them with :data:`v`; never instantiate directly."""

    __slots__ = ()

    kind: ClassVar[str] = "?"
    """The Convex JSON ``type`` of this validator (``"string"``, ``"object"``, ...), or
    ``"optional"`` for ``v.optional(...)`` (which has no JSON type of its own)."""

    @property
    def is_optional(self) -> bool:
        """True for ``v.optional(...)``: the object field may be missing."""
        return False

    def check(
        self,
        value: Any,
        path: str = "",
        *,
        id_checker: IdChecker | None = None,
        max_depth: int | None = None,
    ) -> Any:
        """Validate ``value`` and return its normalized form (see the module docstring).

        ``path`` prefixes the field paths in error messages (``".args"``). ``id_checker``
        decides whether an id string belongs to a table (``v.id``); without it any valid id
        string is accepted. ``max_depth`` defaults to ``knobs.MAX_VALUE_NESTING_COUNT``.
        """
        limit = knobs.MAX_VALUE_NESTING_COUNT if max_depth is None else max_depth
        return self._check(value, path, 0, _Ctx(id_checker, limit))

    def matches(self, value: Any, *, id_checker: IdChecker | None = None) -> bool:
        """True when ``check`` would accept ``value``."""
        try:
            self.check(value, id_checker=id_checker)
        except (ValidationError, LimitError):
            return False
        return True

    def _check(self, value: Any, path: str, depth: int, ctx: _Ctx) -> Any:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        """Convex ``ValidatorJSON`` of this validator."""
        return {"type": self.kind}

    def _key(self) -> tuple[Any, ...]:
        return (self.kind,)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Validator):
            return NotImplemented
        return type(self) is type(other) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._key()))

    def __repr__(self) -> str:
        return f"v.{self.kind}()"


# --- scalars -----------------------------------------------------------------------------


class NullValidator(Validator):
    __slots__ = ()
    kind = "null"

    def _check(self, value: Any, path: str, depth: int, ctx: _Ctx) -> Any:
        if value is None:
            return None
        raise _mismatch(value, path, self)


class Float64Validator(Validator):
    """``v.number()`` / ``v.float64()``: floats; a plain ``int`` is converted to float."""

    __slots__ = ()
    kind = "number"

    def _check(self, value: Any, path: str, depth: int, ctx: _Ctx) -> Any:
        t = type(value)
        if t is float:
            return value
        if isinstance(value, float):
            return float(value)
        if isinstance(value, int) and not isinstance(value, bool | Int64):
            try:
                return float(value)
            except OverflowError:
                raise _mismatch(value, path, self, "integer too large for a float64") from None
        raise _mismatch(value, path, self)

    def __repr__(self) -> str:
        return "v.number()"


class Int64Validator(Validator):
    """``v.int64()``: ``Int64``; a plain ``int`` is converted (range checked). No floats."""

    __slots__ = ()
    kind = "bigint"

    def _check(self, value: Any, path: str, depth: int, ctx: _Ctx) -> Any:
        if type(value) is Int64:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            if not INT64_MIN <= value <= INT64_MAX:
                raise _mismatch(value, path, self, "integer outside the int64 range [-2^63, 2^63-1]")
            return Int64(int(value))
        raise _mismatch(value, path, self)

    def __repr__(self) -> str:
        return "v.int64()"


class BooleanValidator(Validator):
    __slots__ = ()
    kind = "boolean"

    def _check(self, value: Any, path: str, depth: int, ctx: _Ctx) -> Any:
        if isinstance(value, bool):
            return bool(value)
        raise _mismatch(value, path, self)


class StringValidator(Validator):
    __slots__ = ()
    kind = "string"

    def _check(self, value: Any, path: str, depth: int, ctx: _Ctx) -> Any:
        if type(value) is str:
            return value
        if isinstance(value, str):
            return str(value)
        raise _mismatch(value, path, self)


class BytesValidator(Validator):
    __slots__ = ()
    kind = "bytes"

    def _check(self, value: Any, path: str, depth: int, ctx: _Ctx) -> Any:
        if type(value) is bytes:
            return value
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        raise _mismatch(value, path, self)


class AnyValidator(Validator):
    """``v.any()``: every Convex value, normalized like ``normalize``."""

    __slots__ = ()
    kind = "any"

    def _check(self, value: Any, path: str, depth: int, ctx: _Ctx) -> Any:
        if value is UNSET:
            raise _mismatch(value, path, self, "UNSET (a missing value) is not a value")
        try:
            return normalize(value, max_depth=max(ctx.depth_limit - depth, 0), path=path)
        except ValueError_ as exc:
            raise ValidationError(
                f"Value does not match validator: {exc.message}.\n"
                + (f"Path: {path}\n" if path else "")
                + f"Validator: {_short_repr(self)}",
                path=path,
            ) from None


class IdValidator(Validator):
    """``v.id(table)``: a document id string of ``table``."""

    __slots__ = ("table_name",)
    kind = "id"

    def __init__(self, table_name: str) -> None:
        if not isinstance(table_name, str) or not table_name:
            raise SchemaError(f"v.id(...) expects a table name string, got {describe(table_name)}")
        self.table_name = table_name

    def _check(self, value: Any, path: str, depth: int, ctx: _Ctx) -> Any:
        if not isinstance(value, str):
            raise _mismatch(value, path, self)
        s = str(value)
        from convection.values.ids import is_valid_id

        if not is_valid_id(s):
            raise _mismatch(value, path, self, "not a valid document ID")
        if ctx.id_checker is not None and not ctx.id_checker(self.table_name, s):
            raise _mismatch(value, path, self, f"the ID is not an ID of table {_quote(self.table_name)}")
        return s

    def to_json(self) -> dict[str, Any]:
        return {"type": "id", "tableName": self.table_name}

    def _key(self) -> tuple[Any, ...]:
        return (self.kind, self.table_name)

    def __repr__(self) -> str:
        return f"v.id({_quote(self.table_name)})"


class LiteralValidator(Validator):
    """``v.literal(x)``: exactly one string, float64, int64, boolean or bytes value."""

    __slots__ = ("value",)
    kind = "literal"

    def __init__(self, value: Any) -> None:
        if isinstance(value, bool):
            self.value: Any = bool(value)
        elif isinstance(value, Int64):
            self.value = Int64(int(value))
        elif isinstance(value, int | float):
            self.value = float(value)
        elif isinstance(value, str):
            self.value = str(value)
        elif isinstance(value, bytes | bytearray | memoryview):
            self.value = bytes(value)
        else:
            hint = " (use v.null() for null)" if value is None else ""
            raise SchemaError(
                f"v.literal(...) expects a string, number, Int64, boolean or bytes, got "
                f"{describe(value)}{hint}"
            )

    def _check(self, value: Any, path: str, depth: int, ctx: _Ctx) -> Any:
        lit = self.value
        t = type(lit)
        ok = False
        out: Any = None
        if t is str:
            ok = isinstance(value, str) and value == lit
            out = lit
        elif t is bool:
            ok = isinstance(value, bool) and value is lit
            out = lit
        elif t is Int64:
            ok = isinstance(value, int) and not isinstance(value, bool) and int(value) == int(lit)
            out = lit
        elif t is float:
            if isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool | Int64)):
                try:
                    f = float(value)
                except OverflowError:
                    f = math.inf
                ok = values_equal(f, lit)
                out = f
        else:  # bytes
            ok = isinstance(value, bytes | bytearray | memoryview) and bytes(value) == lit
            out = lit
        if not ok:
            raise _mismatch(value, path, self)
        return out

    def to_json(self) -> dict[str, Any]:
        from convection.values.json import to_convex_json

        return {"type": "literal", "value": to_convex_json(self.value)}

    def _key(self) -> tuple[Any, ...]:
        lit = self.value
        if type(lit) is float:
            return (self.kind, "float", sort_key_of_float(lit))
        return (self.kind, type(lit).__name__, lit)

    def __repr__(self) -> str:
        lit = self.value
        if type(lit) is str:
            return f"v.literal({_quote(lit)})"
        return f"v.literal({lit!r})"


# --- compound ----------------------------------------------------------------------------


class OptionalValidator(Validator):
    """``v.optional(x)``: as an object field, the field may be missing (``UNSET``)."""

    __slots__ = ("inner",)
    kind = "optional"

    def __init__(self, inner: Validator) -> None:
        _require_validator(inner, "v.optional(...)")
        if isinstance(inner, OptionalValidator):
            raise SchemaError(f"v.optional({_short_repr(inner)}): a validator is optional at most once")
        self.inner = inner

    @property
    def is_optional(self) -> bool:
        return True

    def _check(self, value: Any, path: str, depth: int, ctx: _Ctx) -> Any:
        if value is UNSET:
            return UNSET
        return self.inner._check(value, path, depth, ctx)

    def to_json(self) -> dict[str, Any]:
        return self.inner.to_json()

    def _key(self) -> tuple[Any, ...]:
        return ("optional", self.inner)

    def __repr__(self) -> str:
        return f"v.optional({self.inner!r})"


class ArrayValidator(Validator):
    """``v.array(item)``: a list (or tuple) whose every element matches ``item``."""

    __slots__ = ("item",)
    kind = "array"

    def __init__(self, item: Validator) -> None:
        _require_validator(item, "v.array(...)")
        _no_optional(item, "v.array(...)")
        self.item = item

    def _check(self, value: Any, path: str, depth: int, ctx: _Ctx) -> Any:
        if not isinstance(value, list | tuple):
            raise _mismatch(value, path, self)
        if depth >= ctx.depth_limit:
            raise _nesting(path, ctx.depth_limit)
        if len(value) > knobs.MAX_ARRAY_LENGTH_COUNT:
            raise LimitError(
                f"Array at {path or 'top level'} has {len(value)} elements; the limit is "
                f"{knobs.MAX_ARRAY_LENGTH_COUNT}",
                code="ArrayTooLong",
            )
        item = self.item
        # Fast path (embeddings: hundreds of floats): every element is a float under
        # v.number(), which returns each one unchanged; one C-level pass decides it.
        if type(item) is Float64Validator and _ONLY_FLOATS.issuperset(map(type, value)):
            return list(value)
        return [item._check(x, f"{path}[{i}]", depth + 1, ctx) for i, x in enumerate(value)]

    def to_json(self) -> dict[str, Any]:
        return {"type": "array", "value": self.item.to_json()}

    def _key(self) -> tuple[Any, ...]:
        return (self.kind, self.item)

    def __repr__(self) -> str:
        return f"v.array({self.item!r})"


class ObjectValidator(Validator):
    """``v.object({...})``: a dict with exactly these fields (optional ones may be missing).

    ``fields`` maps each field name to its validator as given (optional fields keep their
    :class:`OptionalValidator` wrapper); :meth:`field_type` unwraps it.
    """

    __slots__ = ("_frozen", "fields", "optional_fields")
    kind = "object"

    def __init__(self, fields: Mapping[str, Validator]) -> None:
        if not isinstance(fields, Mapping):
            raise SchemaError(
                f"v.object(...) expects a dict of field name -> validator, got {type(fields).__name__}"
            )
        checked: dict[str, Validator] = {}
        for name, val in fields.items():
            try:
                check_field_name(name, "v.object(...)")
            except ValueError_ as exc:
                raise SchemaError(f"Invalid field name in v.object(...): {exc.message}") from None
            checked[name] = _require_validator(val, f"Field {_quote(name)} of v.object(...)")
        if len(checked) > knobs.MAX_OBJECT_FIELDS_COUNT:
            raise SchemaError(
                f"v.object(...) has {len(checked)} fields; the limit is {knobs.MAX_OBJECT_FIELDS_COUNT}"
            )
        self.fields: dict[str, Validator] = checked
        self.optional_fields: frozenset[str] = frozenset(
            n for n, x in checked.items() if x.is_optional
        )
        self._frozen = frozenset(checked.items())

    @property
    def required_fields(self) -> frozenset[str]:
        return frozenset(self.fields) - self.optional_fields

    def field_type(self, name: str) -> Validator:
        """The validator of field ``name`` without its ``v.optional`` wrapper."""
        x = self.fields[name]
        return x.inner if isinstance(x, OptionalValidator) else x

    def _check(self, value: Any, path: str, depth: int, ctx: _Ctx) -> Any:
        if not isinstance(value, dict):
            raise _mismatch(value, path, self)
        if depth >= ctx.depth_limit:
            raise _nesting(path, ctx.depth_limit)
        fields = self.fields
        out: dict[str, Any] = {}
        for name, x in value.items():
            validator = fields.get(name) if isinstance(name, str) else None
            if validator is None:
                if x is UNSET:
                    continue
                shown = name if isinstance(name, str) else repr(name)
                fpath = _field_path(path, str(shown))
                raise ValidationError(
                    f"Object contains extra field `{shown}` that is not in the validator.\n"
                    f"Path: {fpath}\nObject: {describe(value)}\nValidator: {_short_repr(self)}",
                    path=fpath,
                )
            if x is UNSET:
                continue
            out[name] = validator._check(x, _field_path(path, name), depth + 1, ctx)
        for name, validator in fields.items():
            if name not in out and not validator.is_optional:
                fpath = _field_path(path, name)
                raise ValidationError(
                    f"Object is missing the required field `{name}`. Consider wrapping the field "
                    f"validator in `v.optional(...)` if this is expected.\nPath: {fpath}\n"
                    f"Object: {describe(value)}\nValidator: {_short_repr(self)}",
                    path=fpath,
                )
        return out

    # Convex's VObject helpers.
    def extend(self, fields: Mapping[str, Validator]) -> ObjectValidator:
        """A new object validator with these fields added (or replaced)."""
        return ObjectValidator({**self.fields, **fields})

    def pick(self, *names: str) -> ObjectValidator:
        """A new object validator with only these fields."""
        missing = [n for n in names if n not in self.fields]
        if missing:
            raise SchemaError(f"pick(...): {', '.join(missing)} not in {_short_repr(self)}")
        return ObjectValidator({n: self.fields[n] for n in names})

    def omit(self, *names: str) -> ObjectValidator:
        """A new object validator without these fields."""
        return ObjectValidator({n: x for n, x in self.fields.items() if n not in names})

    def partial(self) -> ObjectValidator:
        """A new object validator whose every field is optional."""
        return ObjectValidator(
            {n: x if x.is_optional else OptionalValidator(x) for n, x in self.fields.items()}
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "object",
            "value": {
                n: {"fieldType": x.to_json(), "optional": x.is_optional}
                for n, x in self.fields.items()
            },
        }

    def _key(self) -> tuple[Any, ...]:
        return (self.kind, self._frozen)

    def __repr__(self) -> str:
        inner = ", ".join(f"{_quote(n)}: {x!r}" for n, x in self.fields.items())
        return f"v.object({{{inner}}})"


def _check_record_keys(keys: Validator) -> None:
    if isinstance(keys, StringValidator | IdValidator):
        return
    if isinstance(keys, LiteralValidator) and type(keys.value) is str:
        return
    if isinstance(keys, UnionValidator):
        for member in keys.members:
            _check_record_keys(member)
        return
    raise SchemaError(
        f"v.record(...) keys must be v.string(), v.id(...), a string v.literal(...) or a union "
        f"of those, got {_short_repr(keys)}"
    )


class RecordValidator(Validator):
    """``v.record(keys, values)``: a dict with any field names matching ``keys``."""

    __slots__ = ("keys", "values")
    kind = "record"

    def __init__(self, keys: Validator, values: Validator) -> None:
        _require_validator(keys, "v.record(keys, ...)")
        _require_validator(values, "v.record(..., values)")
        _no_optional(keys, "the keys of v.record(...)")
        _no_optional(values, "the values of v.record(...)")
        _check_record_keys(keys)
        self.keys = keys
        self.values = values

    def _check(self, value: Any, path: str, depth: int, ctx: _Ctx) -> Any:
        if not isinstance(value, dict):
            raise _mismatch(value, path, self)
        if depth >= ctx.depth_limit:
            raise _nesting(path, ctx.depth_limit)
        if len(value) > knobs.MAX_OBJECT_FIELDS_COUNT:
            raise LimitError(
                f"Object at {path or 'top level'} has {len(value)} fields; the limit is "
                f"{knobs.MAX_OBJECT_FIELDS_COUNT}",
                code="TooManyFields",
            )
        out: dict[str, Any] = {}
        for k, x in value.items():
            if x is UNSET:
                continue
            kpath = _field_path(path, k if isinstance(k, str) else repr(k))
            if not isinstance(k, str):
                raise ValidationError(
                    f"Record key {describe(k)} is not a string.\nPath: {kpath}\n"
                    f"Validator: {_short_repr(self)}",
                    path=kpath,
                )
            try:
                check_field_name(k, path)
            except ValueError_ as exc:
                raise ValidationError(
                    f"Invalid record key: {exc.message}.\nPath: {kpath}\nValidator: {_short_repr(self)}",
                    path=kpath,
                ) from None
            try:
                key = self.keys._check(k, kpath, depth + 1, ctx)
            except ValidationError:
                raise ValidationError(
                    f"Record key {_quote(k)} does not match the key validator.\nPath: {kpath}\n"
                    f"Key validator: {_short_repr(self.keys)}\nValidator: {_short_repr(self)}",
                    path=kpath,
                ) from None
            out[key] = self.values._check(x, kpath, depth + 1, ctx)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "record",
            "keys": self.keys.to_json(),
            "values": {"fieldType": self.values.to_json(), "optional": False},
        }

    def _key(self) -> tuple[Any, ...]:
        return (self.kind, self.keys, self.values)

    def __repr__(self) -> str:
        return f"v.record({self.keys!r}, {self.values!r})"


class UnionValidator(Validator):
    """``v.union(*members)``: any member matches; the first matching member normalizes."""

    __slots__ = ("members",)
    kind = "union"

    def __init__(self, members: Iterable[Validator]) -> None:
        out: list[Validator] = []
        for i, m in enumerate(members):
            _require_validator(m, f"Member {i} of v.union(...)")
            _no_optional(m, "v.union(...)")
            out.append(m)
        self.members: tuple[Validator, ...] = tuple(out)

    def _check(self, value: Any, path: str, depth: int, ctx: _Ctx) -> Any:
        deep: list[ValidationError] = []
        for member in self.members:
            try:
                return member._check(value, path, depth, ctx)
            except ValidationError as exc:
                # A member that accepted the value's outer shape and failed deeper inside
                # (not on a literal discriminator) gives the more useful message, e.g. the
                # one object shape of a tagged union whose "kind" matched.
                if len(exc.path) > len(path) and not getattr(exc, "literal", False):
                    deep.append(exc)
        if len(deep) == 1:
            raise deep[0]
        raise _mismatch(value, path, self)

    def to_json(self) -> dict[str, Any]:
        return {"type": "union", "value": [m.to_json() for m in self.members]}

    def _key(self) -> tuple[Any, ...]:
        return (self.kind, self.members)

    def __repr__(self) -> str:
        return f"v.union({', '.join(repr(m) for m in self.members)})"


# --- the v builders ----------------------------------------------------------------------

_NULL: Final = NullValidator()
_NUMBER: Final = Float64Validator()
_INT64: Final = Int64Validator()
_BOOLEAN: Final = BooleanValidator()
_STRING: Final = StringValidator()
_BYTES: Final = BytesValidator()
_ANY: Final = AnyValidator()

