from __future__ import annotations

import math
import struct
from functools import cmp_to_key
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convection.errors import ValueError_
from convection.indexing.keys import (
    MIN_KEY,
    decode_key,
    encode_key,
    encode_value,
    prefix_end,
    prefix_successor,
)
from convection.values.model import INT64_MAX, INT64_MIN, Int64
from convection.values.order import MISSING, compare, values_equal

NEG_NAN = struct.unpack("<d", struct.pack("<Q", 0xFFF8000000000000))[0]
NAN_PAYLOAD = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000001))[0]

names = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=3).filter(
    lambda s: not s.startswith("$")
)
floats = st.floats() | st.sampled_from(
    [0.0, -0.0, math.nan, NEG_NAN, NAN_PAYLOAD, math.inf, -math.inf, 5e-324, -5e-324, 1.0, -1.0]
)
int64s = st.integers(INT64_MIN, INT64_MAX).map(Int64) | st.sampled_from(
    [
        Int64(n)
        for n in (
            0,
            1,
            -1,
            127,
            128,
            -128,
            -129,
            32767,
            32768,
            -32768,
            -32769,
            2**31 - 1,
            2**31,
            -(2**31),
            -(2**31) - 1,
            INT64_MIN,
            INT64_MAX,
        )
    ]
)
texts = st.text(max_size=5) | st.sampled_from(
    ["", "\x00", "\x00\x00", "a\x00", "a", "\xff", "\U0001f600"]
)
blobs = st.binary(max_size=5) | st.sampled_from([b"", b"\x00", b"\xff", b"\x00\xff", b"\xff\x00"])
leaves = st.none() | st.booleans() | int64s | floats | texts | blobs
values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=8,
)
key_elements = values | st.just(MISSING)
small_elements = st.sampled_from(
    [
        MISSING,
        None,
        Int64(0),
        Int64(1),
        0.0,
        -0.0,
        math.nan,
        True,
        "",
        "a",
        "a\x00",
        b"",
        b"\x00",
        [],
        {},
        {"": None},
    ]
)


def sign(x: int) -> int:
    return (x > 0) - (x < 0)


def bytes_cmp(a: bytes, b: bytes) -> int:
    return (a > b) - (a < b)


# --- exact bytes ----------------------------------------------------------------------------


def test_exact_encodings() -> None:
    assert encode_value(MISSING) == b"\x01"
    assert encode_value(None) == b"\x03"
    assert encode_value(Int64(0)) == b"\x08"
    assert encode_value(Int64(1)) == b"\x09\x01"
    assert encode_value(Int64(-1)) == b"\x07\xff"
    assert encode_value(Int64(127)) == b"\x09\x7f"
    assert encode_value(Int64(128)) == b"\x0a\x00\x80"
    assert encode_value(Int64(-129)) == b"\x06\xff\x7f"
    assert encode_value(Int64(2**31)) == b"\x0c" + (2**31).to_bytes(8, "big")
    assert encode_value(Int64(-(2**31))) == b"\x05\x80\x00\x00\x00"
    assert encode_value(Int64(INT64_MIN)) == b"\x04\x80" + b"\x00" * 7
    assert encode_value(0.0) == b"\x0d\x80" + b"\x00" * 7
    assert encode_value(-0.0) == b"\x0d\x7f" + b"\xff" * 7
    assert encode_value(1.0) == b"\x0d" + bytes.fromhex("bff0000000000000")
    assert encode_value(-1.0) == b"\x0d" + bytes.fromhex("400fffffffffffff")
    assert encode_value(math.nan) == b"\x0d" + bytes.fromhex("fff8000000000000")
    assert encode_value(1) == encode_value(1.0)  # a plain int is a float64
    assert encode_value(False) == b"\x0e" and encode_value(True) == b"\x0f"
    assert encode_value("a\x00b") == b"\x10a\x00\xffb\x00"
    assert encode_value("é") == b"\x10\xc3\xa9\x00"
    assert encode_value(b"\x00\xff") == b"\x11\x00\xff\xff\x00"
    assert encode_value([None, True]) == b"\x12\x03\x0f\x00"
    assert encode_value((None,)) == b"\x12\x03\x00"
    assert encode_value({"b": None, "a": True}) == b"\x15a\x00\x0fb\x00\x03\x00"
    assert encode_value({"": None}) == b"\x15\x00\xff\x03\x00"
    assert encode_value({}) == b"\x15\x00"
    assert encode_key(["a", Int64(1)]) == b"\x10a\x00\x09\x01"
    assert encode_key([]) == MIN_KEY == b""
    assert encode_value(bytearray(b"x")) == encode_value(b"x")


def test_errors() -> None:
    with pytest.raises(ValueError_):
        encode_value(object())
    with pytest.raises(ValueError_):
        encode_value({1: 2.0})
    with pytest.raises(ValueError_):
        encode_value("\ud800")
    with pytest.raises(ValueError_):
        decode_key(b"\x10abc")  # unterminated
    with pytest.raises(ValueError_):
        decode_key(b"\x0d\x00")
    with pytest.raises(ValueError_):
        decode_key(b"\xff")
    with pytest.raises(ValueError_):
        decode_key(b"\x12\x03")
    deep: Any = None
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ValueError_):
        encode_value(deep)


def test_decode_examples() -> None:
    key = [
        MISSING,
        None,
        Int64(-300),
        -0.0,
        "x\x00y",
        b"\x00",
        [Int64(0), {"": "z"}],
        {"a": [], "b": MISSING},
    ]
    out = decode_key(encode_key(key))
    assert len(out) == len(key)
    assert all(values_equal(a, b) for a, b in zip(out, key, strict=True))
    assert type(out[2]) is Int64 and out[0] is MISSING


def test_prefix_successor_examples() -> None:
    assert prefix_successor(b"") is None
    assert prefix_successor(b"\xff\xff") is None
    assert prefix_successor(b"a") == b"b"
    assert prefix_successor(b"a\xff") == b"b"
    assert prefix_successor(b"a\x00\xff\xff") == b"a\x01"


# --- properties -----------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(key_elements, key_elements)
def test_byte_order_is_value_order(a: Any, b: Any) -> None:
    assert bytes_cmp(encode_value(a), encode_value(b)) == compare(a, b)


@settings(max_examples=200, deadline=None)
@given(st.lists(key_elements, max_size=8))
def test_sorting_by_key_equals_sorting_by_compare(vs: list[Any]) -> None:
    by_value = sorted(vs, key=cmp_to_key(compare))
    by_bytes = sorted(vs, key=encode_value)
    assert all(values_equal(x, y) for x, y in zip(by_value, by_bytes, strict=True))


@settings(max_examples=300, deadline=None)
@given(st.lists(key_elements, max_size=4))
def test_round_trip(vs: list[Any]) -> None:
    out = decode_key(encode_key(vs))
    assert len(out) == len(vs)
    assert all(values_equal(x, y) for x, y in zip(out, vs, strict=True))
    for v in vs:
        [single] = decode_key(encode_value(v))
        assert values_equal(single, v)


def extends(key: bytes, prefix: bytes) -> bool:
    """Does ``key`` lie in the range of keys whose first values are encoded by ``prefix``?"""
    return prefix <= key < prefix_end(prefix)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(small_elements | key_elements, max_size=4),
    st.lists(small_elements | key_elements, max_size=4),
    st.lists(small_elements, max_size=3),
)
def test_prefix_property(t1: list[Any], t2: list[Any], tail: list[Any]) -> None:
    k1 = encode_key(t1)
    assert encode_key(t1 + tail).startswith(k1)
    assert encode_key(t1 + t2) == k1 + encode_key(t2)
    # Equality of the first k elements <=> the key lies in [enc(t1[:k]), prefix_end(...)),
    # i.e. shares that byte prefix with a type tag (not an 0xFF escape) after it.
    for other in (t2, t1[: len(t1) // 2] + t2, t1[:-1] + tail, t1 + tail):
        encoded_other = encode_key(other)
        for k in range(len(t1) + 1):
            same = len(other) >= k and all(
                values_equal(x, y) for x, y in zip(t1[:k], other[:k], strict=False)
            )
            prefix = encode_key(t1[:k])
            assert same == extends(encoded_other, prefix)
            if same:
                assert encoded_other.startswith(prefix)


def test_prefix_end_excludes_escaped_continuations() -> None:
    # The byte-prefix trap: enc("") is a byte prefix of enc("\x00"), enc({}) of enc({"": v}).
    for shorter, longer in [("", "\x00"), ("a", "a\x00b"), (b"", b"\x00"), ({}, {"": None})]:
        p = encode_key([shorter])
        k = encode_key([longer])
        assert k.startswith(p)
        assert not extends(k, p)
        assert compare(longer, shorter) == 1 and k >= prefix_end(p)
    assert extends(encode_key(["", Int64(5)]), encode_key([""]))
    assert prefix_end(MIN_KEY) == b"\xff"


@settings(max_examples=300, deadline=None)
@given(st.lists(small_elements, max_size=3), st.lists(key_elements, max_size=3))
def test_prefix_successor_bounds_key_ranges(prefix: list[Any], rest: list[Any]) -> None:
    p = encode_key(prefix)
    k = encode_key(prefix + rest)
    succ = prefix_successor(p)
    assert p <= k < prefix_end(p)
    assert succ is None or prefix_end(p) <= succ


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=4), st.binary(max_size=6))
def test_prefix_successor_is_least_upper_bound(p: bytes, s: bytes) -> None:
    succ = prefix_successor(p)
    if succ is None:
        assert p.strip(b"\xff") == b""
        assert (s >= p) == s.startswith(p)
        return
    assert succ > p
    assert (p <= s < succ) == s.startswith(p)
    # Nothing between the prefixed strings and succ: succ itself does not start with p,
    # and every string below succ and >= p does.
    assert not succ.startswith(p)
