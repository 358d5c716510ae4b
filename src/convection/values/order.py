"""The total order of Convex values (docs/internals/values.md), without encoding them.

``undefined (MISSING) < null < int64 < float64 < boolean < string < bytes < array < object``.

* int64 compare as integers; *every* int64 sorts before *every* float64.
* float64 use the IEEE-754 total order: -NaN < -inf < ... < -0.0 < +0.0 < ... < +inf < +NaN
  (NaNs ordered by their bit patterns). A plain Python ``int`` is a float64.
* strings compare by their UTF-8 bytes (equal to code-point order for valid strings).
* bytes compare as unsigned bytes; arrays lexicographically by element, a prefix first.
* objects compare as the list of their (field name, value) pairs sorted by name:
  name first, then value, a prefix first.

:func:`compare` agrees exactly with the byte order of
:func:`convection.indexing.keys.encode_value` (a property test checks this). Equality under
this order (:func:`values_equal`) distinguishes ``Int64(1)`` from ``1.0`` and ``0.0`` from
``-0.0``, and a NaN equals itself.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from convection.errors import ValueError_
from convection.values.model import Int64

__all__ = ["MISSING", "compare", "sort_key_of_float", "type_rank", "values_equal"]


class _Missing:
    """A missing field (``undefined``): sorts before every value. A singleton."""

    __slots__ = ()
    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

_pack_d = struct.Struct("<d").pack
_unpack_q = struct.Struct("<q").unpack
_MASK63: Final = (1 << 63) - 1

# Type ranks (the order of the type tags of the key encoding).
_MISSING_RANK: Final = 0
_NULL: Final = 1
_INT64: Final = 2
_FLOAT: Final = 3
_BOOL: Final = 4
_STR: Final = 5
_BYTES: Final = 6
_ARRAY: Final = 7
_OBJECT: Final = 8

_RANKS: Final[dict[type, int]] = {
    type(None): _NULL,
    Int64: _INT64,
    float: _FLOAT,
    int: _FLOAT,
    bool: _BOOL,
    str: _STR,
    bytes: _BYTES,
    bytearray: _BYTES,
    memoryview: _BYTES,
    list: _ARRAY,
    tuple: _ARRAY,
    dict: _OBJECT,
    _Missing: _MISSING_RANK,
}


def type_rank(value: Any) -> int:
    """The position of ``value``'s type in the total order (MISSING 0, null 1, ..., object 8)."""
    rank = _RANKS.get(type(value))
    if rank is not None:
        return rank
    if isinstance(value, bool):
        return _BOOL
    if isinstance(value, Int64):
        return _INT64
    if isinstance(value, int | float):
        return _FLOAT
    if isinstance(value, str):
        return _STR
    if isinstance(value, bytes | bytearray | memoryview):
        return _BYTES
    if isinstance(value, list | tuple):
        return _ARRAY
    if isinstance(value, dict):
        return _OBJECT
    raise ValueError_(f"{type(value).__name__} is not a Convex value and cannot be compared")


def sort_key_of_float(x: float) -> int:
    """A signed integer whose order is the IEEE total order of the float ``x``."""
    bits: int = _unpack_q(_pack_d(x))[0]
    return bits ^ _MASK63 if bits < 0 else bits


def _cmp_float(a: float, b: float) -> int:
    if a < b:
        return -1
    if a > b:
        return 1
    # Equal, or +-0.0, or a NaN is involved: decide by the total order of the bit patterns.
    ka = sort_key_of_float(a)
    kb = sort_key_of_float(b)
    return -1 if ka < kb else (1 if ka > kb else 0)


def _cmp_same(rank: int, a: Any, b: Any) -> int:
    if rank in (_STR, _BYTES, _INT64, _BOOL):
        if rank == _BYTES:
            a = bytes(a) if type(a) is not bytes else a
            b = bytes(b) if type(b) is not bytes else b
        return -1 if a < b else (1 if a > b else 0)
    if rank == _FLOAT:
        return _cmp_float(float(a), float(b))
    if rank == _ARRAY:
        for x, y in zip(a, b, strict=False):
            c = compare(x, y)
            if c:
                return c
        la, lb = len(a), len(b)
        return -1 if la < lb else (1 if la > lb else 0)
    if rank == _OBJECT:
        ka = sorted(a)
        kb = sorted(b)
        for na, nb in zip(ka, kb, strict=False):
            if na != nb:
                return -1 if na < nb else 1
            c = compare(a[na], b[nb])
            if c:
                return c
        la, lb = len(ka), len(kb)
        return -1 if la < lb else (1 if la > lb else 0)
    return 0  # null, MISSING


def compare(a: Any, b: Any) -> int:
    """-1, 0 or 1 as ``a`` sorts before, equal to, or after ``b`` in the Convex total order."""
    ta = type(a)
    if ta is type(b):
        # Fast paths for the common same-type scalars.
        if ta is str or ta is Int64 or ta is bytes:
            return -1 if a < b else (1 if a > b else 0)
        if ta is float:
            if a < b:
                return -1
            if a > b:
                return 1
            return _cmp_float(a, b)
    ra = type_rank(a)
    rb = type_rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    return _cmp_same(ra, a, b)


def values_equal(a: Any, b: Any) -> bool:
    """Equality under the total order (types must match; NaN equals NaN; 0.0 != -0.0)."""
    ta = type(a)
    if ta is type(b):
        if ta is str or ta is Int64 or ta is bytes or ta is bool or a is None:
            return bool(a == b)
        if ta is dict:
            if len(a) != len(b):
                return False
            return all(k in b and values_equal(x, b[k]) for k, x in a.items())
        if ta is list:
            return len(a) == len(b) and all(map(values_equal, a, b))
    return compare(a, b) == 0
