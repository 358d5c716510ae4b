from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convection.errors import ValueError_
from convection.values.json import (
    dumps,
    dumps_clean,
    from_convex_json,
    loads,
    loads_stored,
    to_clean_json,
    to_convex_json,
)
from convection.values.model import INT64_MAX, INT64_MIN, UNSET, Int64
from convection.values.order import values_equal

NEG_NAN = struct.unpack("<d", struct.pack("<Q", 0xFFF8000000000000))[0]

names = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=6).filter(
    lambda s: not s.startswith("$")
)
floats = st.floats() | st.sampled_from(
    [0.0, -0.0, math.nan, NEG_NAN, math.inf, -math.inf, 5e-324, 1e300]
)
int64s = st.integers(INT64_MIN, INT64_MAX).map(Int64)
leaves = (
    st.none()
    | st.booleans()
    | int64s
    | floats
    | st.text(max_size=8)
    | st.binary(max_size=8)
    | st.sampled_from(["$x", "null", "-0.0", '"$', "\\u0024", "\x00"])
)
values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=5),
    max_leaves=15,
)


def _b64f(x: float) -> str:
    return base64.b64encode(struct.pack("<d", x)).decode()


def _strict_json(data: bytes) -> Any:
    def no_constants(name: str) -> Any:
        raise AssertionError(f"bare {name} in JSON")

    return json.loads(data, parse_constant=no_constants)


# --- examples from PROTOCOL.md §2 -------------------------------------------------------------


def test_spec_examples() -> None:
    assert to_convex_json(math.nan) == {"$float": "AAAAAAAA+H8="}
    assert to_convex_json(-0.0) == {"$float": "AAAAAAAAAIA="}
    assert to_convex_json(Int64(5)) == {"$integer": "BQAAAAAAAAA="}
    assert to_convex_json(b"\x01\x02\x03") == {"$bytes": "AQID"}
    assert to_convex_json(math.inf) == {"$float": _b64f(math.inf)}
    assert to_convex_json(Int64(-1)) == {"$integer": "//////////8="}
    assert from_convex_json({"$integer": "BQAAAAAAAAA="}) == Int64(5)
    assert type(from_convex_json({"$integer": "BQAAAAAAAAA="})) is Int64
    assert math.isnan(from_convex_json({"$float": "AAAAAAAA+H8="}))
    assert math.copysign(1.0, from_convex_json({"$float": "AAAAAAAAAIA="})) == -1.0
    assert from_convex_json({"$bytes": "AQID"}) == b"\x01\x02\x03"


def test_plain_values_and_numbers() -> None:
    assert to_convex_json({"a": [1.5, True, None, "s"], "b": 0.0}) == {
        "a": [1.5, True, None, "s"],
        "b": 0.0,
    }
    assert dumps({"b": 1.0, "a": 5}) == b'{"a":5,"b":1.0}'  # sorted keys; plain int is a number
    assert dumps((1.0, 2.0)) == b"[1.0,2.0]"
    assert loads(dumps(2**70)) == float(2**70)
    v = loads(b'{"a": 5, "b": [1, 2.5, -3], "c": {"d": 0}}')
    assert v == {"a": 5.0, "b": [1.0, 2.5, -3.0], "c": {"d": 0.0}}
    assert (
        type(v["a"]) is float
        and all(type(x) is float for x in v["b"])
        and type(v["c"]["d"]) is float
    )
    assert loads("7") == 7.0 and type(loads("7")) is float
    assert loads_stored(b"7.0") == 7.0


def test_unset_fields_are_dropped_and_input_types_accepted() -> None:
    assert dumps({"a": UNSET, "b": 1.0}) == b'{"b":1.0}'
    assert to_clean_json({"a": UNSET}) == {}
    assert to_convex_json(bytearray(b"\x01")) == {"$bytes": "AQ=="}
    assert to_convex_json(memoryview(b"\x01")) == {"$bytes": "AQ=="}
    assert dumps([bytearray(b"\x01")]) == b'[{"$bytes":"AQ=="}]'


def test_bad_field_names_and_types() -> None:
    with pytest.raises(ValueError_, match=r"'\$x'.*a\.b\[1\]") as exc:
        dumps({"a": {"b": [1.0, {"$x": 1.0}]}})
    assert exc.value.code == "InvalidValue"
    with pytest.raises(ValueError_, match="must be strings"):
        dumps({1: 2.0})
    with pytest.raises(ValueError_, match="set is not a supported"):
        dumps({"a": {1, 2}})
    with pytest.raises(ValueError_, match=r"\$integer"):
        dumps({"$integer": "BQAAAAAAAAA="})
    with pytest.raises(ValueError_):
        to_clean_json({"$x": 1.0})
    with pytest.raises(ValueError_):
        dumps_clean({"$x": 1.0})
    with pytest.raises(ValueError_, match="too large"):
        to_convex_json(10**400)
    with pytest.raises(ValueError_):
        dumps({"a": "\ud800"})  # lone surrogate: not encodable as UTF-8
    with pytest.raises(ValueError_):
        dumps_clean(["\ud800"])


def test_decoding_errors() -> None:
    cases: list[Any] = [
        {"$float": _b64f(1.5)},  # a normal number in $float
        {"$float": _b64f(0.0)},
        {"$float": _b64f(5e-324)},  # subnormal
        {"$integer": "AAAA"},  # 3 bytes
        {"$float": "AAAAAAAAAAAAAA=="},  # 10 bytes
        {"$integer": "BQAAAAAAAAA"},  # bad padding
        {"$integer": 5},
        {"$bytes": "A"},
        {"$commitTs": None},
        {"$set": []},
        {"$x": 1},
        {"$integer": "BQAAAAAAAAA=", "y": 1},  # special key among others
        {"a": [{"$map": []}]},
    ]
    for case in cases:
        with pytest.raises(ValueError_) as exc:
            from_convex_json(case)
        assert exc.value.code == "InvalidValue"
        with pytest.raises(ValueError_):
            loads(orjson.dumps(case))
    with pytest.raises(ValueError_, match="should be encoded as a number"):
        from_convex_json({"$float": _b64f(1.5)})
    with pytest.raises(ValueError_, match=r"a\[0\]"):
        loads(b'{"a": [{"$map": []}]}')
    with pytest.raises(ValueError_, match="Invalid JSON"):
        loads(b"{nope")
    with pytest.raises(ValueError_):
        loads(b"NaN")
    with pytest.raises(ValueError_):
        from_convex_json({1: 2})


def test_urlsafe_base64_is_accepted() -> None:
    raw = b"\xfb\xff\xbf"
    assert base64.b64encode(raw) == b"+/+/"
    assert from_convex_json({"$bytes": "+/+/"}) == raw
    assert from_convex_json({"$bytes": "-_-_"}) == raw
    assert dumps(raw) == b'{"$bytes":"+/+/"}'


def test_escaped_dollar_keys_are_seen() -> None:
    # "\u0024" is "$": the fast paths must not miss it.
    assert loads_stored(b'{"\\u0024integer":"BQAAAAAAAAA="}') == Int64(5)
    assert loads(b'{"\\u0024integer":"BQAAAAAAAAA="}') == Int64(5)
    with pytest.raises(ValueError_):
        loads_stored(b'{"\\u0024x":1.0}')
    with pytest.raises(ValueError_):
        loads_stored('{"\\u0024x":1.0}')


def test_fast_path_fallbacks_give_the_same_text() -> None:
    # Strings that look like what the fast path scans for.
    for v in [
        {"s": "null", "t": "-0.0", "u": '"$'},
        ["$a", "$b"],
        {"a": None},
        {"a": [math.nan, -0.0, math.inf, -math.inf]},
        {"a": Int64(1), "b": b"$", "c": "$"},
        {"a": {"b": UNSET}},
    ]:
        assert dumps(v) == orjson.dumps(to_convex_json(v), option=orjson.OPT_SORT_KEYS)
        assert values_equal(loads(dumps(v)), to_python(v))
        assert dumps_clean(v) == orjson.dumps(to_clean_json(v), option=orjson.OPT_SORT_KEYS)


def to_python(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: to_python(x) for k, x in v.items() if x is not UNSET}
    if isinstance(v, list | tuple):
        return [to_python(x) for x in v]
    return v


def test_clean_json() -> None:
    v = {
        "i": Int64(-5),
        "b": b"\x01\x02\x03",
        "n": math.nan,
        "p": math.inf,
        "m": -math.inf,
        "z": -0.0,
        "f": 1.5,
        "l": [Int64(INT64_MAX)],
        "s": "x",
        "t": True,
        "u": None,
    }
    assert to_clean_json(v) == {
        "i": "-5",
        "b": "AQID",
        "n": "NaN",
        "p": "Infinity",
        "m": "-Infinity",
        "z": -0.0,
        "f": 1.5,
        "l": [str(INT64_MAX)],
        "s": "x",
        "t": True,
        "u": None,
    }
    assert orjson.loads(dumps_clean(v)) == to_clean_json(v)
    assert dumps_clean({"i": Int64(5), "b": b"\x01"}) == b'{"b":"AQ==","i":"5"}'


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    deep: Any = 1.0
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ValueError_, match="nested too deeply"):
        dumps(deep)
    with pytest.raises(ValueError_):
        loads(b"[" * 5000 + b"]" * 5000)


@settings(max_examples=300, deadline=None)
@given(values)
def test_round_trip(v: Any) -> None:
    text = dumps(v)
    _strict_json(text)  # valid JSON, no bare NaN/Infinity
    assert text == orjson.dumps(to_convex_json(v), option=orjson.OPT_SORT_KEYS)
    assert values_equal(loads(text), v)
    assert values_equal(loads(text.decode()), v)
    assert values_equal(loads_stored(text), v)
    assert values_equal(from_convex_json(to_convex_json(v)), v)
    assert values_equal(from_convex_json(orjson.loads(text)), v)


@settings(max_examples=200, deadline=None)
@given(values)
def test_clean_json_fast_path_agrees(v: Any) -> None:
    text = dumps_clean(v)
    _strict_json(text)
    assert text == orjson.dumps(to_clean_json(v), option=orjson.OPT_SORT_KEYS)


@settings(max_examples=200, deadline=None)
@given(values)
def test_from_convex_json_does_not_mutate(v: Any) -> None:
    structure = orjson.loads(dumps(v))
    snapshot = orjson.dumps(structure)
    from_convex_json(structure)
    assert orjson.dumps(structure) == snapshot


def test_negative_floats_that_merely_contain_minus_zero_text() -> None:
    # -0.05 and -0.0123 contain the text "-0.0": the fast path must keep them (a vector of
    # embeddings is full of them) and still encode a real -0.0 anywhere among them.
    for v in [
        [-0.05, -0.0123, -0.0009, 1e-7, -1e-7],
        [-0.05, -0.0],
        [-0.0, -0.05],
        {"a": [-0.01, -0.0], "b": -0.03},
        {"a": -0.0},
        -0.0,
        [-0.0],
    ]:
        assert dumps(v) == orjson.dumps(to_convex_json(v), option=orjson.OPT_SORT_KEYS)
        assert values_equal(loads_stored(dumps(v)), v)
