"""Convex JSON: the wire and storage text form of values (docs/internals/values.md), and "clean" JSON.

Convex JSON (``convex_encoded_json``):

* int64 -> ``{"$integer": base64(8 bytes, little-endian two's complement)}``
* bytes -> ``{"$bytes": base64(raw)}``
* float64 NaN, +-inf and -0.0 -> ``{"$float": base64(8 bytes, little-endian IEEE-754)}``; every
  other float is a JSON number. A plain Python ``int`` is a float64 and is written as a JSON
  integer (clients read any JSON number as a float64); beyond the 64-bit range, as a float.
* null, booleans, strings, arrays, objects as themselves. Object keys must be strings not
  starting with ``$``; fields whose value is :data:`~convection.values.model.UNSET` are
  dropped (like ``undefined`` in JS).

Decoding: every JSON number (``5`` or ``5.0``) is a float64. An object with exactly one key
among ``$integer``/``$float``/``$bytes`` is the special type; any other ``$`` key is an error.
base64 is the standard alphabet with ``=`` padding; ``-`` and ``_`` are accepted on input.

Text: :func:`dumps` writes sorted keys (deterministic, hashable) and never a bare ``NaN``.
:func:`loads` decodes any Convex JSON text. :func:`loads_stored` is the fast path for text that
:func:`dumps` wrote from a *normalized* value (no plain ``int``): since orjson always writes a
float with a ``.`` or an exponent, such text parses straight to the right Python values when it
holds no ``"$`` (no int64, bytes or special float), so the conversion walk is skipped.

Clean JSON (``format: "json"``, HTTP only): int64 -> decimal string, bytes -> base64 string,
NaN -> ``"NaN"``, +-inf -> ``"Infinity"``/``"-Infinity"``, everything else as usual.

Every error is a :class:`~convection.errors.ValueError_` (code ``InvalidValue``) naming the
path of the offending element.
"""

from __future__ import annotations

import binascii
import math
import re
import struct
from typing import Any, Final

import orjson

from convection.errors import ValueError_
from convection.values.model import UNSET, Int64, conversion_hint

__all__ = [
    "dumps",
    "dumps_clean",
    "from_convex_json",
    "loads",
    "loads_stored",
    "to_clean_json",
    "to_convex_json",
]

_pack_d = struct.Struct("<d").pack
_unpack_d = struct.Struct("<d").unpack
_b2a = binascii.b2a_base64
_a2b = binascii.a2b_base64
_copysign = math.copysign
_int_new = int.__new__
_I64_MIN: Final = -(1 << 63)
_U64_MAX: Final = (1 << 64) - 1

_SORT: Final = orjson.OPT_SORT_KEYS
_FAST: Final = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS
# orjson writes -0.0 as the token ``-0.0``; ``-0.05`` or ``-0.0e-07`` merely contain it (a
# vector of negative floats almost always does), so match only where the number ends.
_NEGATIVE_ZERO: Final = re.compile(rb"-0\.0(?![0-9eE])")
_URLSAFE: Final = str.maketrans("-_", "+/")


class _PathError(Exception):
    """Raised inside the walkers; the path is collected (innermost first) while unwinding."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str | int] = []


def _format_path(path: list[str | int]) -> str:
    out = ""
    for key in reversed(path):
        if type(key) is int:
            out += f"[{key}]"
        else:
            out = f"{out}.{key}" if out else str(key)
    return out or "top level"


def _fail(exc: _PathError, what: str) -> ValueError_:
    return ValueError_(f"{what}: {exc.message} at {_format_path(exc.path)}")


def _b64(data: bytes) -> str:
    return _b2a(data, newline=False).decode("ascii")


def _bad_key(key: Any) -> _PathError:
    if type(key) is not str:
        return _PathError(f"field names must be strings, got {type(key).__name__} {key!r}")
    return _PathError(f"field name {key!r} starts with a '$', which is reserved")


def _unsupported(value: Any) -> _PathError:
    return _PathError(f"{type(value).__name__} is not a supported Convex value ({conversion_hint(value)})")


# --- Python value -> Convex JSON -------------------------------------------------------------


def _enc(v: Any) -> Any:
    t = type(v)
    if t is str or t is bool or v is None:
        return v
    if t is float:
        if v - v == 0.0 and (v != 0.0 or _copysign(1.0, v) > 0.0):
            return v
        return {"$float": _b64(_pack_d(v))}
    if t is dict:
        out: dict[str, Any] = {}
        for k, x in v.items():
            if type(k) is not str or k[:1] == "$":
                raise _bad_key(k)
            tx = type(x)
            if tx is str or tx is bool or x is None or (tx is float and x - x == 0.0 and x != 0.0):
                out[k] = x
            elif x is UNSET:
                continue
            else:
                try:
                    out[k] = _enc(x)
                except _PathError as exc:
                    exc.path.append(k)
                    raise
        return out
    if t is Int64:
        return {"$integer": _b64(v.to_bytes(8, "little", signed=True))}
    if t is list or t is tuple:
        items: list[Any] = []
        append = items.append
        for i, x in enumerate(v):
            tx = type(x)
            if tx is str or tx is bool or x is None or (tx is float and x - x == 0.0 and x != 0.0):
                append(x)
            else:
                try:
                    append(_enc(x))
                except _PathError as exc:
                    exc.path.append(i)
                    raise
        return items
    if t is bytes:
        return {"$bytes": _b64(v)}
    if t is int:
        return _plain_int(v)
    return _enc_other(v)


def _plain_int(v: int) -> Any:
    """A plain int is a float64: written as a JSON integer when orjson can, else as a float."""
    if _I64_MIN <= v <= _U64_MAX:
        return v
    try:
        f = float(v)
    except OverflowError:
        raise _PathError(
            f"integer {v} is too large for a float64 (use Int64 for integers)"
        ) from None
    return _enc(f)


def _enc_other(v: Any) -> Any:
    """Subclasses and the accepted input-only types (bytearray, memoryview)."""
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, Int64):
        return _enc(Int64(int(v)))
    if isinstance(v, int):
        return _plain_int(int(v))
    if isinstance(v, float):
        return _enc(float(v))
    if isinstance(v, str):
        return str(v)
    if isinstance(v, bytes | bytearray | memoryview):
        return {"$bytes": _b64(bytes(v))}
    if isinstance(v, dict):
        return _enc(dict(v))
    if isinstance(v, list | tuple):
        return _enc(list(v))
    raise _unsupported(v)


def to_convex_json(value: Any) -> Any:
    """The Convex JSON structure of ``value`` (dicts, lists, str, float, bool, None).

    The result can be dumped by orjson. Raises :class:`ValueError_` for unsupported types
    and invalid field names.
    """
    try:
        return _enc(value)
    except _PathError as exc:
        raise _fail(exc, "Cannot encode value as Convex JSON") from None
    except RecursionError:
        raise ValueError_("Cannot encode value as Convex JSON: it is nested too deeply") from None


def dumps(value: Any) -> bytes:
    """Convex JSON text of ``value`` (UTF-8, sorted keys, no bare NaN/Infinity).

    Equal to ``orjson.dumps(to_convex_json(value), option=OPT_SORT_KEYS)``. Fast path: orjson
    serializes ``value`` directly (a ``default`` hook encodes Int64 and bytes, counting them),
    and the text is kept unless it could be wrong: ``null`` (orjson writes NaN and +-inf as
    null), ``-0.0``, or more ``"$`` than the hook produced (a ``$`` field name). Then, or when
    orjson refuses the value (other types, UNSET fields, bad keys), the Python walk runs.
    """
    emitted = 0

    def default(o: Any) -> Any:
        nonlocal emitted
        t = type(o)
        if t is Int64:
            emitted += 1
            return {"$integer": _b64(o.to_bytes(8, "little", signed=True))}
        if t is bytes:
            emitted += 1
            return {"$bytes": _b64(o)}
        raise TypeError

    try:
        out = orjson.dumps(value, default=default, option=_FAST)
    except orjson.JSONEncodeError:
        return _dump_sorted(to_convex_json(value))
    if (
        b"null" in out
        or (b"-0.0" in out and _NEGATIVE_ZERO.search(out) is not None)
        or (b"$" in out and out.count(b'"$') != emitted)
    ):
        return _dump_sorted(to_convex_json(value))
    return out


def _dump_sorted(structure: Any) -> bytes:
    try:
        return orjson.dumps(structure, option=_SORT)
    except orjson.JSONEncodeError as exc:  # lone surrogates, nesting beyond orjson's limit
        raise ValueError_(f"Cannot encode value as JSON: {exc}") from None


# --- Convex JSON -> Python value -------------------------------------------------------------


def _b64_decode(text: Any, what: str) -> bytes:
    if type(text) is not str:
        raise _PathError(f"{what} must hold a base64 string, got {type(text).__name__}")
    try:
        return _a2b(text.translate(_URLSAFE), strict_mode=True)
    except (binascii.Error, ValueError):
        raise _PathError(f"{what} holds invalid base64 {text[:40]!r}") from None


def _special(key: str, payload: Any) -> Any:
    if key == "$integer":
        raw = _b64_decode(payload, "$integer")
        if len(raw) != 8:
            raise _PathError(f"$integer must decode to exactly 8 bytes, got {len(raw)}")
        return _int_new(Int64, int.from_bytes(raw, "little", signed=True))
    if key == "$float":
        raw = _b64_decode(payload, "$float")
        if len(raw) != 8:
            raise _PathError(f"$float must decode to exactly 8 bytes, got {len(raw)}")
        (f,) = _unpack_d(raw)
        if f - f == 0.0 and (f != 0.0 or _copysign(1.0, f) > 0.0):
            raise _PathError(
                f"$float holds the ordinary number {f!r}, which should be encoded as a number"
            )
        return f
    if key == "$bytes":
        return _b64_decode(payload, "$bytes")
    raise _PathError(f"field name {key!r} starts with a '$', which is reserved")


def _dec(o: Any) -> Any:
    """Decode a JSON structure into a new value (the input is not modified)."""
    t = type(o)
    if t is str or t is float or t is bool or o is None:
        return o
    if t is int:
        return float(o)
    if t is dict:
        if len(o) == 1:
            for k, x in o.items():
                if type(k) is str and k[:1] == "$":
                    return _special(k, x)
        out: dict[str, Any] = {}
        for k, x in o.items():
            if type(k) is not str or k[:1] == "$":
                raise _bad_key(k)
            tx = type(x)
            if tx is str or tx is float or tx is bool or x is None:
                out[k] = x
            else:
                try:
                    out[k] = _dec(x)
                except _PathError as exc:
                    exc.path.append(k)
                    raise
        return out
    if t is list or t is tuple:
        items: list[Any] = []
        append = items.append
        for i, x in enumerate(o):
            tx = type(x)
            if tx is str or tx is float or tx is bool or x is None:
                append(x)
            else:
                try:
                    append(_dec(x))
                except _PathError as exc:
                    exc.path.append(i)
                    raise
        return items
    if t is Int64:
        raise _PathError("an Int64 is not JSON (encode it with to_convex_json first)")
    raise _PathError(f"{type(o).__name__} is not a JSON value")


def _fix(o: Any) -> Any:
    """Like :func:`_dec` but converts a fresh orjson result in place (no copies)."""
    t = type(o)
    if t is dict:
        if len(o) == 1:
            for k, x in o.items():
                if k[:1] == "$":
                    return _special(k, x)
        for k, x in o.items():
            if k[:1] == "$":
                raise _bad_key(k)
            tx = type(x)
            if tx is int:
                o[k] = float(x)
            elif tx is dict or tx is list:
                try:
                    y = _fix(x)
                except _PathError as exc:
                    exc.path.append(k)
                    raise
                if y is not x:
                    o[k] = y
        return o
    if t is list:
        for i, x in enumerate(o):
            tx = type(x)
            if tx is int:
                o[i] = float(x)
            elif tx is dict or tx is list:
                try:
                    y = _fix(x)
                except _PathError as exc:
                    exc.path.append(i)
                    raise
                if y is not x:
                    o[i] = y
        return o
    if t is int:
        return float(o)
    return o


def from_convex_json(obj: Any) -> Any:
    """The value a Convex JSON structure (as parsed by a JSON library) denotes.

    Every JSON number becomes a float; special objects are decoded. ``obj`` is not modified.
    """
    try:
        return _dec(obj)
    except _PathError as exc:
        raise _fail(exc, "Invalid Convex JSON") from None
    except RecursionError:
        raise ValueError_("Invalid Convex JSON: it is nested too deeply") from None


def _parse(data: bytes | bytearray | memoryview | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError_(f"Invalid JSON text: {exc}") from None


def _convert(parsed: Any) -> Any:
    try:
        return _fix(parsed)
    except _PathError as exc:
        raise _fail(exc, "Invalid Convex JSON") from None
    except RecursionError:
        raise ValueError_("Invalid Convex JSON: it is nested too deeply") from None


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Decode Convex JSON text (from any writer: ``5`` and ``5.0`` are both float 5.0)."""
    return _convert(_parse(data))


def loads_stored(data: bytes | str) -> Any:
    """Decode text written by :func:`dumps` from a normalized value (fast path).

    Invariant required of the caller: the text holds no bare JSON integer (true of everything
    :func:`dumps` writes for a normalized value, where numbers are floats and orjson writes
    them with a ``.`` or an exponent). Text with a ``"$`` (int64, bytes, special floats) takes
    the general conversion; without one, orjson's result is already the value.
    """
    parsed = _parse(data)
    # Single-byte searches (memchr) first; the exact two-byte checks only when they hit.
    if type(data) is str:
        if "$" not in data and "\\" not in data:
            return parsed
        plain = '"$' not in data and "\\u0024" not in data
    else:
        if b"$" not in data and b"\\" not in data:
            return parsed
        plain = b'"$' not in data and b"\\u0024" not in data
    if plain:
        return parsed
    return _convert(parsed)


# --- clean JSON ------------------------------------------------------------------------------


def _clean(v: Any) -> Any:
    t = type(v)
    if t is str or t is bool or v is None:
        return v
    if t is float:
        if v - v == 0.0:
            return v
        if v != v:
            return "NaN"
        return "Infinity" if v > 0 else "-Infinity"
    if t is dict:
        out: dict[str, Any] = {}
        for k, x in v.items():
            if type(k) is not str or k[:1] == "$":
                raise _bad_key(k)
            if x is UNSET:
                continue
            try:
                out[k] = _clean(x)
            except _PathError as exc:
                exc.path.append(k)
                raise
        return out
    if t is Int64:
        return str(int(v))
    if t is list or t is tuple:
        items: list[Any] = []
        for i, x in enumerate(v):
            try:
                items.append(_clean(x))
            except _PathError as exc:
                exc.path.append(i)
                raise
        return items
    if t is bytes:
        return _b64(v)
    if t is int:
        try:
            return float(v)
        except OverflowError:
            raise _PathError(f"integer {v} is too large for a float64") from None
    return _clean_other(v)


def _clean_other(v: Any) -> Any:
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, Int64):
        return str(int(v))
    if isinstance(v, int):
        return _clean(int(v))
    if isinstance(v, float):
        return _clean(float(v))
    if isinstance(v, str):
        return str(v)
    if isinstance(v, bytes | bytearray | memoryview):
        return _b64(bytes(v))
    if isinstance(v, dict):
        return _clean(dict(v))
    if isinstance(v, list | tuple):
        return _clean(list(v))
    raise _unsupported(v)


def to_clean_json(value: Any) -> Any:
    """The clean-JSON structure of ``value`` (``format: "json"``, HTTP only). Lossy."""
    try:
        return _clean(value)
    except _PathError as exc:
        raise _fail(exc, "Cannot encode value as JSON") from None
    except RecursionError:
        raise ValueError_("Cannot encode value as JSON: it is nested too deeply") from None


def _clean_default(o: Any) -> Any:
    t = type(o)
    if t is Int64:
        return str(int(o))
    if t is bytes:
        return _b64(o)
    raise TypeError


def dumps_clean(value: Any) -> bytes:
    """Clean JSON text of ``value`` (sorted keys); same fast path as :func:`dumps`."""
    try:
        out = orjson.dumps(value, default=_clean_default, option=_FAST)
    except orjson.JSONEncodeError:
        return _dump_sorted(to_clean_json(value))
    if b"null" in out or (b"$" in out and b'"$' in out):
        return _dump_sorted(to_clean_json(value))
    return out
