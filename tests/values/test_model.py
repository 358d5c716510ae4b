from __future__ import annotations

import math

import pytest

from convection.errors import LimitError, ValueError_
from convection.values import UNSET, Int64, normalize, type_name, value_size


def test_int64_range_and_arithmetic_keeps_type() -> None:
    n = Int64(5)
    assert isinstance(n + 1, Int64) and n + 1 == 6
    assert isinstance(1 + n, Int64)
    assert isinstance(n * 2, Int64)
    assert isinstance(-n, Int64)
    assert isinstance(n + 1.5, float)
    with pytest.raises(ValueError_):
        Int64(2**63)
    with pytest.raises(ValueError_):
        Int64(2**63 - 1) + 1


def test_normalize_converts_plain_int_to_float() -> None:
    out = normalize({"a": 1, "b": [2, Int64(3)], "c": True, "d": b"x", "e": (1,)})
    assert out == {"a": 1.0, "b": [2.0, Int64(3)], "c": True, "d": b"x", "e": [1.0]}
    assert type(out["a"]) is float and type(out["b"][1]) is Int64 and out["c"] is True


def test_normalize_drops_unset_and_checks_names() -> None:
    assert normalize({"a": UNSET, "b": 1}) == {"b": 1.0}
    with pytest.raises(ValueError_, match=r"\$"):
        normalize({"$x": 1})
    with pytest.raises(ValueError_, match="printable"):
        normalize({"é": 1})
    with pytest.raises(ValueError_, match="supported"):
        normalize({"a": object()})


def test_limits() -> None:
    deep: object = 1
    for _ in range(70):
        deep = [deep]
    with pytest.raises(LimitError) as e:
        normalize(deep)
    assert e.value.code == "NestingTooDeep"
    with pytest.raises(LimitError):
        normalize(list(range(9000)))


def test_type_names_and_size() -> None:
    assert [type_name(x) for x in (None, True, Int64(1), 1.0, 1, "s", b"b", [], {})] == [
        "null", "boolean", "int64", "float64", "float64", "string", "bytes", "array", "object"]
    assert value_size({"ab": "xyz"}) > value_size({})
    assert math.isnan(normalize(float("nan")))


def test_flat_arrays_normalize_and_size_as_element_by_element() -> None:
    class F(float):
        pass

    vec = [0.5, -0.25, 1e-7] * 256
    out = normalize(vec)
    assert out == vec and out is not vec and all(type(x) is float for x in out)
    assert normalize((1.5, "a", None, True, Int64(3), b"x")) == [1.5, "a", None, True, Int64(3), b"x"]
    mixed = normalize([1.5, 2, F(0.5)])  # plain int and a float subclass still become float
    assert mixed == [1.5, 2.0, 0.5] and all(type(x) is float for x in mixed)
    assert value_size(vec) == 2 + sum(value_size(x) for x in vec)
    assert value_size([1.0, 2, Int64(3)]) == 2 + 9 * 3
    assert value_size([1.0, True, None]) == 2 + 9 + 1 + 1
