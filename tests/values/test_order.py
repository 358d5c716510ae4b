from __future__ import annotations

import math
import random
import struct
from functools import cmp_to_key
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convection.errors import ValueError_
from convection.values.model import INT64_MAX, INT64_MIN, Int64
from convection.values.order import MISSING, compare, sort_key_of_float, type_rank, values_equal

NEG_NAN = struct.unpack("<d", struct.pack("<Q", 0xFFF8000000000000))[0]

names = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=4).filter(
    lambda s: not s.startswith("$")
)
floats = st.floats() | st.sampled_from([0.0, -0.0, math.nan, NEG_NAN, math.inf, -math.inf, 5e-324])
int64s = st.integers(INT64_MIN, INT64_MAX).map(Int64) | st.sampled_from(
    [Int64(0), Int64(-1), Int64(INT64_MIN), Int64(INT64_MAX)]
)
leaves = (
    st.none()
    | st.booleans()
    | int64s
    | floats
    | st.text(max_size=6)
    | st.binary(max_size=6)
    | st.sampled_from(["", "\x00", "a", b"\x00\xff", b"\xff"])
)
values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=4),
    max_leaves=10,
)


def test_type_order() -> None:
    ordered = [
        MISSING,
        None,
        Int64(10**6),
        -math.inf,
        0.5,
        False,
        True,
        "",
        "a",
        b"",
        b"a",
        [],
        [None],
        {},
        {"a": None},
    ]
    for i, a in enumerate(ordered):
        for j, b in enumerate(ordered):
            assert compare(a, b) == (i > j) - (i < j), (a, b)
    # Every int64 sorts before every float64, regardless of magnitude.
    assert compare(Int64(INT64_MAX), -math.inf) == -1
    assert [type_rank(v) for v in (MISSING, None, Int64(1), 1.0, 1, True, "", b"", [], {})] == [
        0,
        1,
        2,
        3,
        3,
        4,
        5,
        6,
        7,
        8,
    ]


def test_float_total_order() -> None:
    ordered = [
        NEG_NAN,
        -math.inf,
        -1e308,
        -1.0,
        -5e-324,
        -0.0,
        0.0,
        5e-324,
        1.0,
        1e308,
        math.inf,
        math.nan,
    ]
    shuffled = ordered.copy()
    random.Random(3).shuffle(shuffled)
    out = sorted(shuffled, key=cmp_to_key(compare))
    assert all(x is y for x, y in zip(out, ordered, strict=True))
    for a, b in pairwise(ordered):
        assert compare(a, b) == -1 and compare(b, a) == 1
        assert sort_key_of_float(a) < sort_key_of_float(b)
    assert compare(math.nan, math.nan) == 0
    assert values_equal(math.nan, math.nan)
    assert not values_equal(0.0, -0.0)


def test_plain_int_is_float64_and_int64_differs() -> None:
    assert compare(1, 1.0) == 0 and values_equal(3, 3.0)
    assert not values_equal(Int64(1), 1.0)
    assert compare(Int64(1), 1.0) == -1
    assert compare(Int64(-5), Int64(3)) == -1


def test_strings_by_utf8_bytes() -> None:
    # UTF-16 order would put U+10000 (a surrogate pair) before U+FFFF; UTF-8 does not.
    assert compare("\uffff", "\U00010000") == -1
    assert compare("a", "ab") == -1 and compare("b", "ab") == 1
    assert compare(b"\x00", b"") == 1 and compare(b"\x01", b"\x00\xff") == 1


def test_arrays_and_objects() -> None:
    assert compare([1.0], [1.0, None]) == -1
    assert compare([2.0], [1.0, None]) == 1
    assert compare({"a": 1.0}, {"a": 1.0, "b": None}) == -1
    # Field name decides before the value.
    assert compare({"a": 9.0}, {"b": 1.0}) == -1
    assert compare({"b": 1.0, "a": 2.0}, {"a": 2.0, "b": 1.0}) == 0
    assert compare({"a": 1.0, "c": 1.0}, {"a": 1.0, "b": 5.0}) == 1
    assert values_equal({"x": [Int64(1), b"z"]}, {"x": [Int64(1), b"z"]})
    assert not values_equal({"x": [Int64(1)]}, {"x": [1.0]})
    assert not values_equal({"x": 1.0}, {"y": 1.0})
    assert compare((1.0, 2.0), [1.0, 2.0]) == 0


def test_unsupported_types() -> None:
    with pytest.raises(ValueError_):
        compare(object(), 1.0)
    assert compare(bytearray(b"a"), b"a") == 0


def test_missing_sentinel() -> None:
    assert repr(MISSING) == "MISSING" and not MISSING
    assert compare(MISSING, None) == -1 and compare(MISSING, MISSING) == 0
    assert type(MISSING)() is MISSING


@settings(max_examples=300, deadline=None)
@given(values, values)
def test_compare_is_antisymmetric_and_matches_equality(a: object, b: object) -> None:
    c = compare(a, b)
    assert c in (-1, 0, 1)
    assert compare(b, a) == -c
    assert values_equal(a, b) == (c == 0)
    assert compare(a, a) == 0 and values_equal(a, a)


@settings(max_examples=200, deadline=None)
@given(st.lists(values, max_size=6))
def test_sort_is_consistent(vs: list[object]) -> None:
    out = sorted(vs, key=cmp_to_key(compare))
    for x, y in pairwise(out):
        assert compare(x, y) <= 0
    for x in out:
        for y in out:
            for z in out:
                if compare(x, y) <= 0 and compare(y, z) <= 0:
                    assert compare(x, z) <= 0
