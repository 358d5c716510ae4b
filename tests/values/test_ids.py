from __future__ import annotations

import base64
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convection.errors import IdError
from convection.values.ids import (
    decode_id,
    encode_id,
    is_valid_id,
    new_internal_id,
    table_number_of,
)

SAMPLE = "kg27rxfv99gzp01wmph0gvt92d6hnvy6"  # a storage id from the Convex sources
CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_TO_CROCKFORD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", CROCKFORD)


def reference_base32(data: bytes) -> str:
    """RFC 4648 base32 (bit order, no padding) re-lettered with Crockford's lowercase alphabet."""
    return base64.b32encode(data).decode().rstrip("=").translate(_TO_CROCKFORD)


def reference_binary(table: int, internal: bytes) -> bytes:
    vint = bytearray()
    n = table
    while n >= 0x80:
        vint.append((n & 0x7F) | 0x80)
        n >>= 7
    vint.append(n)
    body = bytes(vint) + internal
    c0 = c1 = 0
    for b in body:
        c0 = (c0 + b) % 256
        c1 = (c1 + c0) % 256
    return body + bytes((c0, c1))  # footer little-endian: low byte c0 first


def test_verified_sample() -> None:
    table, internal = decode_id(SAMPLE)
    assert table == 540
    assert len(internal) == 16
    assert int.from_bytes(internal[14:], "big") == 19738  # day number
    assert encode_id(table, internal) == SAMPLE
    assert is_valid_id(SAMPLE) and table_number_of(SAMPLE) == 540


def test_convex_stability_vector() -> None:
    internal = [251]
    for _ in range(15):
        internal.append(internal[-1] * 251 % 256)
    assert encode_id(1017, bytes(internal)) == "z43zp6c3e75gkmz1kfwj6mbbx5sw281h"
    assert decode_id("z43zp6c3e75gkmz1kfwj6mbbx5sw281h") == (1017, bytes(internal))


def test_lengths() -> None:
    internal = bytes(range(16))
    assert len(encode_id(1, internal)) == 31
    assert len(encode_id(127, internal)) == 31
    assert len(encode_id(128, internal)) == 32
    assert len(encode_id(10001, internal)) == 32
    assert len(encode_id(16384, internal)) == 34
    assert len(encode_id(2**32 - 1, internal)) == 37


def test_invalid_ids() -> None:
    bad = [
        "",
        SAMPLE[:-1],
        SAMPLE + "0",
        SAMPLE.upper(),
        SAMPLE[:-1] + "u",  # not in the alphabet
        SAMPLE[:-1] + "i",
        SAMPLE[:-1] + ("0" if SAMPLE[-1] != "0" else "1"),  # checksum
        SAMPLE[:5] + "_" + SAMPLE[6:],
        " " + SAMPLE[1:],
        "é" * 32,
        "x" * 33,
        "0" * 32,
    ]
    for s in bad:
        with pytest.raises(IdError) as exc:
            decode_id(s)
        assert exc.value.code == "InvalidId"
        assert not is_valid_id(s)
        assert table_number_of(s) is None
    assert not is_valid_id(5)
    assert table_number_of(None) is None


def test_encode_rejects_bad_input() -> None:
    with pytest.raises(IdError):
        encode_id(0, bytes(16))
    with pytest.raises(IdError):
        encode_id(2**32, bytes(16))
    with pytest.raises(IdError):
        encode_id(10001, bytes(15))


def test_non_minimal_vint_is_rejected() -> None:
    # table 5 written as 0x85 0x00 (two bytes): a 32-char string that decodes only loosely.
    internal = bytes(range(16))
    body = bytes((0x85, 0x00)) + internal
    c0 = sum(body) % 256
    c1 = 0
    acc = 0
    for b in body:
        acc = (acc + b) % 256
        c1 = (c1 + acc) % 256
    text = reference_base32(body + bytes((c0, c1)))
    assert len(text) == 32
    assert not is_valid_id(text)


def test_new_internal_id() -> None:
    now_ms = 19738 * 86_400_000 + 12345.678
    a = new_internal_id(random.Random(7), now_ms)
    b = new_internal_id(random.Random(7), now_ms)
    assert a == b and len(a) == 16
    assert int.from_bytes(a[14:], "big") == 19738
    assert new_internal_id(random.Random(8), now_ms) != a
    table, internal = decode_id(encode_id(10001, a))
    assert (table, internal) == (10001, a)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 2**32 - 1) | st.sampled_from([1, 127, 128, 16383, 16384, 10001]),
    st.binary(min_size=16, max_size=16),
)
def test_round_trip_matches_reference(table: int, internal: bytes) -> None:
    s = encode_id(table, internal)
    assert s == reference_base32(reference_binary(table, internal))
    assert decode_id(s) == (table, internal)
    assert table_number_of(s) == table


def _with_footer(body: bytes) -> bytes:
    c0 = c1 = 0
    for b in body:
        c0 = (c0 + b) % 256
        c1 = (c1 + c0) % 256
    return body + bytes((c0, c1))


@settings(max_examples=400, deadline=None)
@given(
    st.binary(min_size=1, max_size=6),  # a VInt, possibly non-minimal, too long or truncated
    st.binary(min_size=15, max_size=17),  # internal id, sometimes the wrong size
    st.binary(max_size=2),  # trailing garbage
    st.booleans(),
)
def test_decoding_is_strict(vint: bytes, internal: bytes, trailing: bytes, checksum: bool) -> None:
    # Whatever decodes must re-encode to exactly the same text.
    body = vint + internal
    raw = (_with_footer(body) if checksum else body + b"\x00\x00") + trailing
    text = reference_base32(raw)
    try:
        table, internal = decode_id(text)
    except IdError:
        return
    assert encode_id(table, internal) == text


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=CROCKFORD + "ilouIL_-", min_size=30, max_size=38))
def test_random_strings_never_crash(text: str) -> None:
    try:
        table, internal = decode_id(text)
    except IdError:
        return
    assert encode_id(table, internal) == text


@settings(max_examples=200, deadline=None)
@given(
    st.integers(10001, 20000), st.binary(min_size=16, max_size=16), st.integers(0, 31), st.data()
)
def test_single_character_changes_are_caught_or_consistent(
    table: int, internal: bytes, pos: int, data: st.DataObject
) -> None:
    s = encode_id(table, internal)
    c = data.draw(st.sampled_from(CROCKFORD))
    t = s[:pos] + c + s[pos + 1 :]
    if t == s:
        return
    try:
        table2, internal2 = decode_id(t)
    except IdError:
        return
    assert encode_id(table2, internal2) == t
