"""Wire encoding of commit timestamps (docs/internals/protocol.md).

A timestamp is an ``int`` of nanoseconds since the Unix epoch, in ``[0, 2**63 - 1]``. On the
wire it is the standard base64 (``+/`` alphabet, ``=`` padded) of the value as an unsigned
64-bit little-endian integer: ``0`` is ``"AAAAAAAAAAA="``. The JS client decodes it with
``Long.fromBytesLE`` and requires exactly 8 bytes, so :func:`encode_ts` always emits 12
characters.

:func:`decode_ts` is strict about what it accepts: exactly 8 bytes, canonical base64 (no
stray trailing bits), no whitespace, a value within the i64 range. It accepts the URL-safe
alphabet (``-_``) and a missing ``=`` too, as the JS decoder does.
"""

from __future__ import annotations

import base64
import binascii
import struct
from typing import Any

from convection.errors import ConvectionError

TS_MAX = (1 << 63) - 1
"""The largest timestamp (i64::MAX): the reference's Timestamp type is bounded by it."""

_PACK = struct.Struct("<Q")
_TO_STANDARD = str.maketrans("-_", "+/")


class TimestampError(ConvectionError):
    """A timestamp is not a valid int (encoding) or not a valid base64 u64 (decoding)."""

    code = "InvalidTimestamp"


def encode_ts(ns: int) -> str:
    """``ns`` (nanoseconds since the epoch) as base64 of 8 little-endian bytes."""
    if isinstance(ns, bool) or not isinstance(ns, int):
        raise TimestampError(
            f"A timestamp must be an int of nanoseconds, got {type(ns).__name__} {ns!r}."
        )
    if not 0 <= ns <= TS_MAX:
        raise TimestampError(f"Timestamp {ns} is outside [0, 2^63-1] nanoseconds.")
    return base64.b64encode(_PACK.pack(ns)).decode("ascii")


def decode_ts(encoded: Any) -> int:
    """The int of a wire timestamp; raises :class:`TimestampError` unless it is exactly 8
    bytes of canonical base64 (standard or URL-safe alphabet, padding optional)."""
    if not isinstance(encoded, str):
        raise TimestampError(f"A timestamp must be a base64 string, got {type(encoded).__name__}.")
    text = encoded.translate(_TO_STANDARD)
    if len(text) == 11:
        text += "="
    if len(text) != 12 or not text.isascii():
        raise TimestampError(
            f"Timestamp {encoded!r} is not base64 of 8 bytes (expected 12 characters)."
        )
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TimestampError(f"Timestamp {encoded!r} is not valid base64: {exc}.") from exc
    if len(raw) != 8 or base64.b64encode(raw).decode("ascii") != text:
        raise TimestampError(f"Timestamp {encoded!r} is not canonical base64 of 8 bytes.")
    (ns,) = _PACK.unpack(raw)
    if ns > TS_MAX:
        raise TimestampError(f"Timestamp {encoded!r} decodes to {ns}, above 2^63-1.")
    return int(ns)
