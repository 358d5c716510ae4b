"""Document ids: the Convex v6 id format (docs/internals/values.md).

Binary form: ``VInt(table_number) ‖ internal_id[16] ‖ footer[2]`` where VInt is unsigned
LEB128 (1-5 bytes, low 7-bit groups first), ``internal_id`` is 14 random bytes followed by a
2-byte big-endian count of days since the Unix epoch, and ``footer`` is the Fletcher-16
checksum (mod 256) of everything before it, XOR version 0, written little-endian.

Text form: base32 of the binary form, Crockford's alphabet in lowercase
(``0123456789abcdefghjkmnpqrstvwxyz``), RFC-4648 bit order, no padding: 31 characters for
tables < 128, 32 for tables < 16384 (every user table), up to 37.

Decoding is strict and exact: an id is accepted iff it is the encoding of some
(table_number, internal_id), so ``encode_id(*decode_id(s)) == s`` for every accepted ``s``
(valid length and alphabet, zero padding bits, minimal VInt, table number in 1..2^32-1, no
trailing bytes, matching checksum). Errors raise :class:`~convection.errors.IdError`.
"""

from __future__ import annotations

import random
from itertools import accumulate
from typing import Any, Final

from convection.errors import IdError

__all__ = [
    "INTERNAL_ID_BYTES",
    "decode_id",
    "encode_id",
    "is_valid_id",
    "new_internal_id",
    "table_number_of",
]

INTERNAL_ID_BYTES: Final = 16
_FOOTER_BYTES: Final = 2
_MAX_TABLE_NUMBER: Final = (1 << 32) - 1
_MS_PER_DAY: Final = 86_400_000

_ALPHABET: Final = "0123456789abcdefghjkmnpqrstvwxyz"
# Two base32 digits per 10 bits.
_PAIRS: Final = [_ALPHABET[i >> 5] + _ALPHABET[i & 31] for i in range(1024)]

# Text -> digits of Python's int(..., 32) ("0-9a-v"); every other byte becomes "!" (invalid).
_INT_DIGITS: Final = "0123456789abcdefghijklmnopqrstuv"
_DECODE_TABLE: Final = bytes(
    ord(_INT_DIGITS[_ALPHABET.index(chr(c))]) if chr(c) in _ALPHABET else ord("!")
    for c in range(256)
)

# Valid text lengths -> binary lengths (binary form is 19..23 bytes).
_TEXT_TO_BINARY_LEN: Final = {(8 * n + 4) // 5: n for n in range(19, 24)}


def _base32(data: bytes) -> str:
    nbits = len(data) * 8
    ndigits = (nbits + 4) // 5
    n = int.from_bytes(data, "big") << (ndigits * 5 - nbits)
    pairs = _PAIRS
    parts: list[str] = []
    if ndigits & 1:
        parts.append(_ALPHABET[n & 31])
        n >>= 5
    for _ in range(ndigits >> 1):
        parts.append(pairs[n & 1023])
        n >>= 10
    parts.reverse()
    return "".join(parts)


def _fletcher16(buf: bytes) -> int:
    # c0 = sum(b) mod 256; c1 = the sum of the running c0 values, mod 256.
    return ((sum(accumulate(buf)) & 0xFF) << 8) | (sum(buf) & 0xFF)


def _vint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_VINT_CACHE: dict[int, bytes] = {}


def encode_id(table_number: int, internal_id: bytes) -> str:
    """The id string of document ``internal_id`` (16 bytes) in table ``table_number``."""
    prefix = _VINT_CACHE.get(table_number)
    if prefix is None:
        if type(table_number) is not int or not 1 <= table_number <= _MAX_TABLE_NUMBER:
            raise IdError(f"Table number {table_number!r} is outside 1..{_MAX_TABLE_NUMBER}")
        prefix = _vint(table_number)
        if len(_VINT_CACHE) < 4096:
            _VINT_CACHE[table_number] = prefix
    if len(internal_id) != INTERNAL_ID_BYTES:
        raise IdError(f"An internal id has {INTERNAL_ID_BYTES} bytes, got {len(internal_id)}")
    body = prefix + bytes(internal_id)
    checksum = _fletcher16(body)  # XOR version 0
    return _base32(body + bytes((checksum & 0xFF, checksum >> 8)))


def _invalid(s: str, why: str) -> IdError:
    shown = s if len(s) <= 40 else s[:37] + "..."
    return IdError(f"Invalid document id {shown!r}: {why}")


def decode_id(s: str) -> tuple[int, bytes]:
    """``(table_number, internal_id)`` of an id string; :class:`IdError` if it is not one."""
    if type(s) is not str:
        if isinstance(s, str):
            s = str(s)
        else:
            raise IdError(f"A document id is a string, got {type(s).__name__}")
    nbytes = _TEXT_TO_BINARY_LEN.get(len(s))
    if nbytes is None:
        raise _invalid(s, f"length {len(s)} is not the length of an id")
    try:
        raw = s.encode("ascii")
    except UnicodeEncodeError:
        raise _invalid(s, "it contains characters outside the base32 alphabet") from None
    try:
        n = int(raw.translate(_DECODE_TABLE), 32)
    except ValueError:
        raise _invalid(s, "it contains characters outside the base32 alphabet") from None
    pad = len(s) * 5 - nbytes * 8
    if n & ((1 << pad) - 1):
        raise _invalid(s, "it is not canonical base32 (nonzero padding bits)")
    data = (n >> pad).to_bytes(nbytes, "big")
    # VInt table number.
    b = data[0]
    if b < 0x80:
        table, pos = b, 1
    else:
        table, shift, pos = 0, 0, 0
        while True:
            if pos >= 5:
                raise _invalid(s, "the table number is too large")
            b = data[pos]
            table |= (b & 0x7F) << shift
            shift += 7
            pos += 1
            if b < 0x80:
                break
        if b == 0:
            raise _invalid(s, "the table number is not minimally encoded")
    if table == 0 or table > _MAX_TABLE_NUMBER:
        raise _invalid(s, "invalid table number")
    if nbytes - pos != INTERNAL_ID_BYTES + _FOOTER_BYTES:
        raise _invalid(s, f"length {len(s)} does not match its table number")
    end = pos + INTERNAL_ID_BYTES
    checksum = _fletcher16(data[:end])
    if data[end] != checksum & 0xFF or data[end + 1] != checksum >> 8:
        raise _invalid(s, "invalid ID version (checksum mismatch)")
    return table, data[pos:end]


def is_valid_id(s: Any) -> bool:
    """True if ``s`` is a well-formed id string (of any table)."""
    try:
        decode_id(s)
    except IdError:
        return False
    return True


def table_number_of(s: Any) -> int | None:
    """The table number embedded in id ``s``, or None if ``s`` is not a valid id."""
    try:
        return decode_id(s)[0]
    except IdError:
        return None


def new_internal_id(rng: random.Random, now_ms: float) -> bytes:
    """A fresh internal id: 14 bytes from ``rng`` and the big-endian day number of ``now_ms``."""
    day = int(now_ms // _MS_PER_DAY) & 0xFFFF
    return rng.randbytes(14) + day.to_bytes(2, "big")
