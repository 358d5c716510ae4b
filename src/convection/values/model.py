"""The Convex value model in Python.

Nine value types, mapped to Python:

=========  ===================================================
null       ``None``
int64      :class:`Int64` (an ``int`` subclass, -2**63 .. 2**63-1)
float64    ``float`` (a plain ``int`` is taken as float64 unless a validator says int64)
boolean    ``bool``
string     ``str``
bytes      ``bytes`` (``bytearray``/``memoryview`` accepted on input)
array      ``list`` (``tuple`` accepted on input)
object     ``dict`` with ``str`` keys
=========  ===================================================

Invariants of a *normalized* value (what :func:`normalize` returns and what the database
stores): no plain ``int`` (only ``Int64`` or ``float``), ``bytes`` not bytearray, ``list`` not
tuple, field names valid, limits respected. Normalizing is idempotent.
"""

from __future__ import annotations

import math
from typing import Any, Final, TypeAlias

from convection import knobs
from convection.errors import LimitError, ValueError_

INT64_MIN: Final = -(1 << 63)
INT64_MAX: Final = (1 << 63) - 1

Value: TypeAlias = Any
"""A Convex value (see the module docstring). Typed as Any: Python cannot spell the union."""


class Int64(int):
    """A Convex int64. Arithmetic with ints stays Int64; with floats it gives float."""

    __slots__ = ()

    def __new__(cls, value: int | str | float = 0) -> Int64:
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError_(f"Int64({value!r}): not an integer")
            value = int(value)
        n = int.__new__(cls, value)
        if not INT64_MIN <= n <= INT64_MAX:
            raise ValueError_(f"Int64({int(n)}) is outside the int64 range [-2^63, 2^63-1]")
        return n

    def __repr__(self) -> str:
        return f"Int64({int(self)})"

    # Keep the type through integer arithmetic so a counter read back as Int64, incremented,
    # and written again stays an int64 (JS bigint + bigint stays bigint).
    def _wrap(self, result: Any) -> Any:
        if isinstance(result, int) and not isinstance(result, bool):
            return Int64(result)
        return result

    def __add__(self, other: Any) -> Any:
        return self._wrap(int.__add__(self, other)) if isinstance(other, int) else int.__add__(self, other)

    __radd__ = __add__

    def __sub__(self, other: Any) -> Any:
        return self._wrap(int.__sub__(self, other)) if isinstance(other, int) else int.__sub__(self, other)

    def __rsub__(self, other: Any) -> Any:
        return self._wrap(int.__rsub__(self, other)) if isinstance(other, int) else int.__rsub__(self, other)

    def __mul__(self, other: Any) -> Any:
        return self._wrap(int.__mul__(self, other)) if isinstance(other, int) else int.__mul__(self, other)

    __rmul__ = __mul__

    def __floordiv__(self, other: Any) -> Any:
        return self._wrap(int.__floordiv__(self, other)) if isinstance(other, int) else int.__floordiv__(self, other)

    def __mod__(self, other: Any) -> Any:
        return self._wrap(int.__mod__(self, other)) if isinstance(other, int) else int.__mod__(self, other)

    def __neg__(self) -> Any:
        return Int64(-int(self))

    def __abs__(self) -> Any:
        return Int64(abs(int(self)))

    def __pos__(self) -> Any:
        return self


class _Unset:
    """Sentinel: ``ctx.db.patch(id, {"f": UNSET})`` removes field ``f``."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = _Unset()


def type_name(value: Any) -> str:
    """The Convex type name of a Python value, for error messages."""
    if value is None:
        return "null"
    t = type(value)
    if t is bool:
        return "boolean"
    if t is Int64:
        return "int64"
    if t is float or t is int:
        return "float64"
    if t is str:
        return "string"
    if isinstance(value, bytes | bytearray | memoryview):
        return "bytes"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return f"unsupported Python type {t.__name__}"


def describe(value: Any, limit: int = 60) -> str:
    """A short printable form of a value for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_field_name(name: Any, path: str, *, user_document: bool = False) -> None:
    """Raise if ``name`` is not a valid object field name at ``path``.

    Field names are strings of printable ASCII (0x20-0x7E), at most 1024 characters, not
    starting with ``$``. In stored documents (``user_document``) top-level names starting with
    ``_`` are reserved for system fields.
    """
    if type(name) is not str:
        raise ValueError_(f"Field names must be strings, got {type(name).__name__} at {path or 'top level'}")
    if len(name) > knobs.MAX_FIELD_NAME_LENGTH_COUNT:
        raise ValueError_(f"Field name {name[:40]!r}... at {path or 'top level'} is longer than {knobs.MAX_FIELD_NAME_LENGTH_COUNT} characters")
    if name.startswith("$"):
        raise ValueError_(f"Field name {name!r} at {path or 'top level'} starts with a '$', which is reserved")
    if not name.isascii() or not name.isprintable():
        raise ValueError_(f"Field name {name!r} at {path or 'top level'} must be printable ASCII")
    if user_document and name.startswith("_"):
        raise ValueError_(f"Field name {name!r} starts with '_', which is reserved for system fields (_id, _creationTime)")


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def normalize(value: Any, *, max_depth: int | None = None, path: str = "") -> Any:
    """Check a value and return its normalized form (see the module docstring).

    Raises :class:`ValueError_` for unsupported types or bad field names and
    :class:`LimitError` for nesting, field-count or array-length limits.
    """
    depth_limit = knobs.MAX_VALUE_NESTING_COUNT if max_depth is None else max_depth
    return _normalize(value, path, 0, depth_limit)


# Field names already checked: documents repeat the same few names, so a set lookup replaces
# the character checks on the hot path. Bounded so hostile input cannot grow it forever.
_VALID_NAMES: set[str] = set()
_VALID_NAMES_MAX = 65536
_SCALARS = (str, float, bool, Int64, bytes, type(None))
_SCALAR_SET: Final = frozenset(_SCALARS)  # normalized as themselves
_NUMBERS: Final = frozenset((float, Int64, int))  # 9 bytes each in value_size


def _check_name_cached(k: Any, path: str) -> None:
    if k in _VALID_NAMES and type(k) is str:
        return
    check_field_name(k, path)
    if len(_VALID_NAMES) < _VALID_NAMES_MAX:
        _VALID_NAMES.add(k)


def _normalize(value: Any, path: str, depth: int, depth_limit: int) -> Any:
    t = type(value)
    if value is None or t is str or t is float or t is bool or t is Int64:
        return value
    if t is int:
        return float(value)
    if t is bytes:
        return value
    if t is dict or isinstance(value, dict):
        if depth >= depth_limit:
            raise LimitError(f"Value is nested more than {depth_limit} levels deep at {path or 'top level'}", code="NestingTooDeep")
        if len(value) > knobs.MAX_OBJECT_FIELDS_COUNT:
            raise LimitError(f"Object at {path or 'top level'} has {len(value)} fields; the limit is {knobs.MAX_OBJECT_FIELDS_COUNT}", code="TooManyFields")
        out: dict[str, Any] = {}
        valid = _VALID_NAMES
        for k, v in value.items():
            if k not in valid or type(k) is not str:
                _check_name_cached(k, path)
            tv = type(v)
            if tv in _SCALARS:
                out[k] = v
            elif tv is int:
                out[k] = float(v)
            elif v is UNSET:
                continue
            else:
                out[k] = _normalize(v, _join(path, k), depth + 1, depth_limit)
        return out
    if t is list or t is tuple:
        if depth >= depth_limit:
            raise LimitError(f"Value is nested more than {depth_limit} levels deep at {path or 'top level'}", code="NestingTooDeep")
        if len(value) > knobs.MAX_ARRAY_LENGTH_COUNT:
            raise LimitError(f"Array at {path or 'top level'} has {len(value)} elements; the limit is {knobs.MAX_ARRAY_LENGTH_COUNT}", code="ArrayTooLong")
        if _SCALAR_SET.issuperset(map(type, value)):  # e.g. a vector: nothing to convert
            return list(value)
        return [_normalize(v, _join(path, i), depth + 1, depth_limit) for i, v in enumerate(value)]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, Int64):
        return Int64(int(value))
    if isinstance(value, int):
        return float(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise ValueError_(
        f"{type(value).__name__} is not a supported Convex value at {path or 'top level'}: "
        f"{conversion_hint(value)}"
    )


_SUPPORTED = "Convex values are None, bool, float, int, Int64, str, bytes, list and dict"


def conversion_hint(value: Any) -> str:
    """What to do with a value of an unsupported type: the usual conversion for common
    Python types (datetime, set, Decimal, UUID, Enum, dataclass, awaitable)."""
    import datetime
    import decimal
    import enum
    import inspect
    import uuid

    if inspect.isawaitable(value):
        return (
            "it is an awaitable (a coroutine): did you forget `await`? Write "
            "`await ctx.run_query(...)`, and declare the function `async def`."
        )
    if isinstance(value, datetime.datetime):
        return (
            f"{_SUPPORTED}. Convert it: value.timestamp() * 1000 (milliseconds since the epoch, "
            "like Convex's Date.now() and _creationTime) or value.isoformat()."
        )
    if isinstance(value, datetime.date | datetime.time):
        return f"{_SUPPORTED}. Convert it: value.isoformat()."
    if isinstance(value, datetime.timedelta):
        return f"{_SUPPORTED}. Convert it: value.total_seconds() * 1000 (milliseconds)."
    if isinstance(value, set | frozenset):
        return f"{_SUPPORTED}. Convert it: sorted(value) (or list(value)); Convex has no sets."
    if isinstance(value, decimal.Decimal):
        return f"{_SUPPORTED}. Convert it: float(value), or str(value) to keep every digit."
    if isinstance(value, uuid.UUID):
        return f"{_SUPPORTED}. Convert it: str(value)."
    if isinstance(value, enum.Enum):
        return f"{_SUPPORTED}. Convert it: value.value (or value.name)."
    if hasattr(value, "__dataclass_fields__") and not isinstance(value, type):
        return f"{_SUPPORTED}. Convert it: dataclasses.asdict(value)."
    if inspect.isgenerator(value) or isinstance(value, range | map | filter | zip):
        return f"{_SUPPORTED}. Convert it: list(value)."
    return f"{_SUPPORTED}."


def value_size(value: Any) -> int:
    """Bytes a (normalized) value counts toward size limits.

    Accounting: 1 byte per type tag; null/boolean nothing more; int64/float64 8 bytes;
    strings and bytes their length (UTF-8) + 1; arrays and objects their elements + 1, object
    fields also their name length + 1. Close to Convex's own accounting.
    """
    t = type(value)
    if value is None or t is bool:
        return 1
    if t is float or t is Int64 or t is int:
        return 9
    if t is str:
        return len(value.encode("utf-8")) + 2 if not value.isascii() else len(value) + 2
    if t is bytes:
        return len(value) + 2
    if t is list:
        if _NUMBERS.issuperset(map(type, value)):  # vectors: one C-level pass
            return 2 + 9 * len(value)
        return 2 + sum(value_size(v) for v in value)
    if t is dict:
        total = 2
        for k, v in value.items():
            tv = type(v)
            if tv is float or tv is Int64 or tv is int:
                total += len(k) + 10
            elif tv is str:
                total += len(k) + 3 + (len(v) if v.isascii() else len(v.encode("utf-8")))
            elif v is None or tv is bool:
                total += len(k) + 2
            else:
                total += len(k) + 1 + value_size(v)
        return total
    return value_size(normalize(value))


def is_special_float(x: float) -> bool:
    """True for the floats JSON cannot carry as numbers: NaN, +-inf and -0.0."""
    return x != x or x in (math.inf, -math.inf) or (x == 0.0 and math.copysign(1.0, x) < 0)
