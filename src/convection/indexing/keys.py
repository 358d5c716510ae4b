r"""The order-preserving key encoding of index keys (docs/internals/values.md).

Each value encodes to a self-delimiting byte string whose unsigned byte order is the Convex
total order (:func:`convection.values.order.compare`); a key is the concatenation of its
values' encodings, so every index range (equality on a prefix of the fields, then a range on
the next field) is a byte interval (see "Prefixes and ranges" below).

========  ==================================================================================
tag       value and payload
========  ==================================================================================
0x01      MISSING (undefined, an absent field); no payload
0x03      null
0x04-07   negative int64 with 8/4/2/1 payload bytes (big-endian two's complement, minimal)
0x08      int64 zero
0x09-0C   positive int64 with 1/2/4/8 payload bytes (big-endian, minimal)
0x0D      float64: 8 bytes big-endian; sign bit set -> all bits flipped, else the sign bit
0x0E/0F   false / true
0x10      string: UTF-8 with each 0x00 written 0x00 0xFF, then a 0x00 terminator
0x11      bytes: the same escaping and terminator
0x12      array: element encodings, then 0x00
0x15      object: per field in name order: escaped name + 0x00 (then 0xFF if the name is
          empty), value encoding; then 0x00
========  ==================================================================================

This is byte-for-byte Convex's ``sorting.rs`` encoding plus a 0xFF after an empty
field name (Convex writes nothing there, so ``{"": v}`` would read as ``{}`` followed by
``v``). A plain ``int`` encodes as float64. Field names are assumed valid (printable ASCII,
checked when values are normalized); in particular they contain no NUL.

**Prefixes and ranges.** As in FoundationDB's tuple layer, an encoding is *almost*
prefix-free: ``enc("")`` = 10 00 is a byte prefix of ``enc("\x00")`` = 10 00 FF 00, and
``enc({})`` of ``enc({"": v})``. But the byte after a complete element is always a type tag
(0x01-0x15) or nothing, while the continuation of an escaped string/bytes or of an object
with an empty field name always has 0xFF there. Hence:

* ``encode_key(t1 + t2) == encode_key(t1) + encode_key(t2)``;
* the keys whose first k values equal ``t`` are exactly the byte interval
  ``[encode_key(t), prefix_end(encode_key(t)))`` with ``prefix_end(p) = p + b"\xff"``.

Use :func:`prefix_end` for "first k fields equal" ranges. :func:`prefix_successor` is the
plain byte-string successor (every string starting with ``p``); on an encoded key it would
also take in e.g. strings extending the last one with NUL characters.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, Final

from convection.errors import ValueError_
from convection.values.model import Int64
from convection.values.order import MISSING

__all__ = [
    "MIN_KEY",
    "decode_key",
    "encode_key",
    "encode_value",
    "prefix_end",
    "prefix_successor",
]

MIN_KEY: Final = b""
"""The smallest key: a byte-prefix of (and so not greater than) every key."""

_SIGN: Final = 1 << 63
_ALL: Final = (1 << 64) - 1

_d_to_q = struct.Struct(">d")
_q_struct = struct.Struct(">Q")
_unpack_q = _q_struct.unpack
_pack_d = _d_to_q.pack
_unpack_d = _d_to_q.unpack
_pack_tag_q = struct.Struct(">BQ").pack
_pack_tag_d = struct.Struct(">Bd").pack
_pack_tag_h = struct.Struct(">Bh").pack
_pack_tag_i = struct.Struct(">Bi").pack
_pack_tag_q_signed = struct.Struct(">Bq").pack

# Precomputed encodings of the one-byte int64 range.
_SMALL_INTS: Final = tuple(
    b"\x08" if n == 0 else (bytes((0x07 if n < 0 else 0x09,)) + n.to_bytes(1, "big", signed=True))
    for n in range(-128, 128)
)


def _float(v: float) -> bytes:
    if v > 0.0:
        # Sign bit clear: setting it gives the bits of -v.
        return _pack_tag_d(0x0D, -v)
    (bits,) = _unpack_q(_pack_d(v))
    return _pack_tag_q(0x0D, bits ^ _ALL if bits & _SIGN else bits | _SIGN)


def _int64(v: int) -> bytes:
    if -128 <= v <= 127:
        return _SMALL_INTS[v + 128]
    if -32768 <= v <= 32767:
        return _pack_tag_h(0x06 if v < 0 else 0x0A, v)
    if -2147483648 <= v <= 2147483647:
        return _pack_tag_i(0x05 if v < 0 else 0x0B, v)
    return _pack_tag_q_signed(0x04 if v < 0 else 0x0C, v)


def _str(v: str) -> bytes:
    try:
        if "\x00" not in v:
            # Tag and terminator are code points 0x10 and 0x00, one byte each in UTF-8.
            return f"\x10{v}\x00".encode()
        return b"\x10" + v.encode().replace(b"\x00", b"\x00\xff") + b"\x00"
    except UnicodeEncodeError:
        raise ValueError_(f"String {v[:40]!r} is not valid Unicode (lone surrogate)") from None


def _bytes(v: bytes) -> bytes:
    if b"\x00" in v:
        v = v.replace(b"\x00", b"\x00\xff")
    return b"\x11" + v + b"\x00"


def _enc(v: Any) -> bytes:
    t = type(v)
    if t is str:
        return _str(v)
    if t is float:
        return _float(v)
    if t is Int64:
        return _int64(v)
    if v is None:
        return b"\x03"
    if t is bool:
        return b"\x0f" if v else b"\x0e"
    if t is bytes:
        return _bytes(v)
    if t is list or t is tuple:
        return b"\x12" + b"".join([_enc(x) for x in v]) + b"\x00"
    if t is dict:
        parts = [b"\x15"]
        append = parts.append
        try:
            names = sorted(v)
        except TypeError:
            names = [k for k in v if type(k) is not str]
        for name in names:
            if type(name) is not str:
                raise ValueError_(
                    f"Field names must be strings, got {type(name).__name__} {name!r}"
                )
            if name:
                append(name.encode("utf-8") + b"\x00")
            else:
                append(b"\x00\xff")
            append(_enc(v[name]))
        append(b"\x00")
        return b"".join(parts)
    if v is MISSING:
        return b"\x01"
    if t is int:
        return _float(float(v))
    return _enc_other(v)


def _enc_other(v: Any) -> bytes:
    if isinstance(v, bool):
        return b"\x0f" if v else b"\x0e"
    if isinstance(v, Int64):
        return _int64(int(v))
    if isinstance(v, int | float):
        return _float(float(v))
    if isinstance(v, str):
        return _str(str(v))
    if isinstance(v, bytes | bytearray | memoryview):
        return _bytes(bytes(v))
    if isinstance(v, list | tuple):
        return _enc(list(v))
    if isinstance(v, dict):
        return _enc(dict(v))
    raise ValueError_(
        f"{type(v).__name__} is not a Convex value and cannot be part of an index key"
    )


def encode_value(v: Any) -> bytes:
    """The order-preserving encoding of one value (``MISSING`` allowed)."""
    try:
        return _enc(v)
    except RecursionError:
        raise ValueError_("Value is nested too deeply to encode as an index key") from None


def encode_key(values: Sequence[Any]) -> bytes:
    """The key of a tuple of values: the concatenation of their encodings."""
    try:
        return b"".join([_enc(v) for v in values])
    except RecursionError:
        raise ValueError_("Value is nested too deeply to encode as an index key") from None


def prefix_end(key_prefix: bytes) -> bytes:
    """The exclusive upper bound of the keys that extend the encoded values ``key_prefix``.

    ``[encode_key(t), prefix_end(encode_key(t)))`` holds exactly the keys whose first
    ``len(t)`` values equal ``t`` (see the module docstring); ``prefix_end(MIN_KEY)`` is above
    every key.
    """
    return key_prefix + b"\xff"


def prefix_successor(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string that starts with ``prefix``.

    None if there is none (``prefix`` is empty or all 0xFF): the range is unbounded above.
    A plain byte operation: for "first k key values equal" ranges use :func:`prefix_end`.
    """
    p = prefix.rstrip(b"\xff")
    if not p:
        return None
    return p[:-1] + bytes((p[-1] + 1,))


# --- decoding (tests, debugging, tooling) ----------------------------------------------------


class _Truncated(Exception):
    pass


def _read_escaped(b: bytes, i: int) -> tuple[bytes, int]:
    """Read an escaped, 0x00-terminated byte string starting at ``i``."""
    j = b.find(b"\x00", i)
    if j < 0:
        raise _Truncated
    if j + 1 >= len(b) or b[j + 1] != 0xFF:
        return b[i:j], j + 1
    pieces = []
    while True:
        pieces.append(b[i : j + 1])  # includes the (escaped) 0x00
        i = j + 2
        j = b.find(b"\x00", i)
        if j < 0:
            raise _Truncated
        if j + 1 >= len(b) or b[j + 1] != 0xFF:
            pieces.append(b[i:j])
            return b"".join(pieces), j + 1


def _dec(b: bytes, i: int) -> tuple[Any, int]:
    tag = b[i]
    i += 1
    if tag == 0x10:
        raw, i = _read_escaped(b, i)
        return raw.decode("utf-8"), i
    if tag == 0x0D:
        if i + 8 > len(b):
            raise _Truncated
        (bits,) = _unpack_q(b[i : i + 8])
        bits = bits ^ _SIGN if bits & _SIGN else bits ^ _ALL
        return _unpack_d(_q_struct.pack(bits))[0], i + 8
    if 0x04 <= tag <= 0x0C:
        if tag == 0x08:
            return Int64(0), i
        width = 1 << ((tag - 8 if tag > 8 else 8 - tag) - 1)
        if i + width > len(b):
            raise _Truncated
        return Int64(int.from_bytes(b[i : i + width], "big", signed=True)), i + width
    if tag == 0x03:
        return None, i
    if tag == 0x0E:
        return False, i
    if tag == 0x0F:
        return True, i
    if tag == 0x01:
        return MISSING, i
    if tag == 0x11:
        return _read_escaped(b, i)
    if tag == 0x12:
        items: list[Any] = []
        while True:
            if i >= len(b):
                raise _Truncated
            if b[i] == 0x00:
                return items, i + 1
            x, i = _dec(b, i)
            items.append(x)
    if tag == 0x15:
        obj: dict[str, Any] = {}
        while True:
            if i >= len(b):
                raise _Truncated
            if b[i] == 0x00:
                if i + 1 < len(b) and b[i + 1] == 0xFF:
                    name, i = "", i + 2
                else:
                    return obj, i + 1
            else:
                raw, i = _read_escaped(b, i)
                name = raw.decode("utf-8")
            if i >= len(b):
                raise _Truncated
            obj[name], i = _dec(b, i)
    raise ValueError_(f"Invalid index key: unknown type tag 0x{tag:02x} at byte {i - 1}")


def decode_key(b: bytes) -> list[Any]:
    """The values of a key (inverse of :func:`encode_key`); ``MISSING`` for 0x01."""
    b = bytes(b)
    out: list[Any] = []
    i = 0
    n = len(b)
    try:
        while i < n:
            v, i = _dec(b, i)
            out.append(v)
    except (_Truncated, IndexError):
        raise ValueError_(f"Invalid index key {b[:60]!r}: truncated") from None
    except UnicodeDecodeError:
        raise ValueError_(f"Invalid index key {b[:60]!r}: a string is not UTF-8") from None
    return out
