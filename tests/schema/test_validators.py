from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from convection import knobs
from convection.errors import LimitError, SchemaError, ValidationError
from convection.schema.builders import as_args_validator, pagination_opts_validator, v
from convection.schema.validator_json import validator_from_json
from convection.schema.validators import ObjectValidator, Validator
from convection.values.ids import encode_id
from convection.values.model import UNSET, Int64, normalize

ID_T1 = encode_id(1, bytes(range(16)))
ID_T2 = encode_id(2, bytes(range(16)))


def reject(validator: Validator, value: Any, **kw: Any) -> ValidationError:
    with pytest.raises(ValidationError) as e:
        validator.check(value, **kw)
    assert e.value.code == "ValidationError"
    return e.value


# --- scalars -----------------------------------------------------------------------------

ACCEPT: list[tuple[Validator, Any, Any]] = [
    (v.null(), None, None),
    (v.number(), 1.5, 1.5),
    (v.number(), 3, 3.0),
    (v.float64(), -7, -7.0),
    (v.number(), math.inf, math.inf),
    (v.int64(), Int64(5), Int64(5)),
    (v.int64(), 5, Int64(5)),
    (v.int64(), 2**63 - 1, Int64(2**63 - 1)),
    (v.int64(), -(2**63), Int64(-(2**63))),
    (v.boolean(), True, True),
    (v.boolean(), False, False),
    (v.string(), "", ""),
    (v.string(), "héllo", "héllo"),
    (v.bytes(), b"x", b"x"),
    (v.bytes(), bytearray(b"xy"), b"xy"),
    (v.bytes(), memoryview(b"z"), b"z"),
    (v.any(), {"a": [1, Int64(2)], "b": (3,)}, {"a": [1.0, Int64(2)], "b": [3.0]}),
    (v.literal("a"), "a", "a"),
    (v.literal(3), 3, 3.0),
    (v.literal(3), 3.0, 3.0),
    (v.literal(Int64(3)), Int64(3), Int64(3)),
    (v.literal(Int64(3)), 3, Int64(3)),
    (v.literal(True), True, True),
    (v.literal(b"\x00"), bytearray(b"\x00"), b"\x00"),
    (v.literal(math.nan), math.nan, math.nan),
]


@pytest.mark.parametrize(("validator", "value", "expected"), ACCEPT)
def test_accepts_and_normalizes(validator: Validator, value: Any, expected: Any) -> None:
    out = validator.check(value)
    if isinstance(expected, float) and math.isnan(expected):
        assert isinstance(out, float) and math.isnan(out)
    else:
        assert out == expected
        assert type(out) is type(expected)


REJECT: list[tuple[Validator, Any]] = [
    (v.null(), 0),
    (v.null(), UNSET),
    (v.number(), True),
    (v.number(), Int64(3)),
    (v.number(), "1"),
    (v.number(), None),
    (v.number(), 10**400),
    (v.int64(), 3.0),
    (v.int64(), 3.5),
    (v.int64(), False),
    (v.int64(), 2**63),
    (v.int64(), -(2**63) - 1),
    (v.int64(), "3"),
    (v.boolean(), 1),
    (v.boolean(), None),
    (v.string(), b"x"),
    (v.string(), 1),
    (v.bytes(), "x"),
    (v.any(), {1, 2}),
    (v.any(), {"$x": 1}),
    (v.any(), UNSET),
    (v.literal("a"), "b"),
    (v.literal(1), True),
    (v.literal(1), Int64(1)),
    (v.literal(1), "1"),
    (v.literal(0.0), -0.0),
    (v.literal(Int64(1)), 1.0),
    (v.literal(Int64(1)), True),
    (v.literal(True), 1),
    (v.literal(True), False),
    (v.literal(b"a"), "a"),
    (v.array(v.string()), "abc"),
    (v.array(v.string()), {"a": 1}),
    (v.object({}), []),
    (v.object({}), None),
    (v.record(v.string(), v.number()), [1]),
    (v.id("users"), 5),
    (v.id("users"), "not-an-id"),
    (v.id("users"), ID_T1 + "x"),
]


@pytest.mark.parametrize(("validator", "value"), REJECT)
def test_rejects(validator: Validator, value: Any) -> None:
    reject(validator, value)


def test_string_subclass_is_normalized_to_str() -> None:
    class S(str):
        pass

    out = v.string().check(S("x"))
    assert type(out) is str and out == "x"


def test_int_coercion_is_validator_directed() -> None:
    obj = v.object({"f": v.number(), "i": v.int64(), "a": v.any()})
    out = obj.check({"f": 1, "i": 1, "a": 1})
    assert type(out["f"]) is float and type(out["i"]) is Int64 and type(out["a"]) is float
    assert type(v.union(v.number(), v.int64()).check(1)) is float
    assert type(v.union(v.int64(), v.number()).check(1)) is Int64
    assert type(v.union(v.int64(), v.number()).check(1.0)) is float
    assert type(v.array(v.int64()).check([1, 2])[0]) is Int64


# --- ids ---------------------------------------------------------------------------------


def test_id_validator_with_and_without_checker() -> None:
    assert v.id("users").check(ID_T1) == ID_T1
    assert v.id("users").check(ID_T2) == ID_T2  # no checker: any valid id
    numbers = {"users": 1, "posts": 2}

    def checker(table: str, id_str: str) -> bool:
        from convection.values.ids import table_number_of

        return numbers.get(table) == table_number_of(id_str)

    assert v.id("users").check(ID_T1, id_checker=checker) == ID_T1
    err = reject(v.id("users"), ID_T2, id_checker=checker)
    assert '"users"' in str(err) and ID_T2 in str(err)
    # The checker reaches ids nested anywhere.
    nested = v.object({"refs": v.array(v.id("posts"))})
    err = reject(nested, {"refs": [ID_T2, ID_T1]}, id_checker=checker)
    assert err.path == ".refs[1]"


def test_id_validator_needs_a_table_name() -> None:
    with pytest.raises(SchemaError):
        v.id("")
    with pytest.raises(SchemaError):
        v.id(3)  # type: ignore[arg-type]
    assert v.id("_storage").table_name == "_storage"


# --- objects -----------------------------------------------------------------------------


def test_object_missing_extra_optional_unset_and_null() -> None:
    obj = v.object({"a": v.string(), "b": v.optional(v.number())})
    assert obj.check({"a": "x"}) == {"a": "x"}
    assert obj.check({"a": "x", "b": 2}) == {"a": "x", "b": 2.0}
    assert obj.check({"a": "x", "b": UNSET}) == {"a": "x"}
    assert obj.check({"a": "x", "zzz": UNSET}) == {"a": "x"}
    err = reject(obj, {"b": 1.0})
    assert "missing the required field `a`" in str(err) and err.path == ".a"
    err = reject(obj, {"a": "x", "c": 1})
    assert "Object contains extra field `c` that is not in the validator" in str(err)
    assert err.path == ".c"
    # None is null, not missing.
    err = reject(obj, {"a": "x", "b": None})
    assert err.path == ".b" and "null" in str(err)
    err = reject(obj, {"a": UNSET})
    assert err.path == ".a"
    nullable = v.object({"b": v.optional(v.union(v.number(), v.null()))})
    assert nullable.check({"b": None}) == {"b": None}
    assert nullable.check({}) == {}


def test_object_fields_and_optional_introspection() -> None:
    obj = v.object({"a": v.string(), "b": v.optional(v.number())})
    assert set(obj.fields) == {"a", "b"}
    assert obj.optional_fields == {"b"} and obj.required_fields == {"a"}
    assert obj.field_type("b") == v.number()
    assert obj.fields["b"] == v.optional(v.number()) and obj.fields["b"].is_optional
    assert obj.extend({"c": v.null()}).fields.keys() == {"a", "b", "c"}
    assert obj.pick("a") == v.object({"a": v.string()})
    assert obj.omit("a") == v.object({"b": v.optional(v.number())})
    assert obj.partial().optional_fields == {"a", "b"}
    with pytest.raises(SchemaError):
        obj.pick("nope")


def test_object_definition_errors() -> None:
    with pytest.raises(SchemaError):
        v.object({"a": "string"})  # type: ignore[dict-item]
    with pytest.raises(SchemaError):
        v.object({"$a": v.string()})
    with pytest.raises(SchemaError):
        v.object([v.string()])  # type: ignore[arg-type]


def test_error_message_names_path_expected_and_received() -> None:
    obj = v.object(
        {
            "author": v.object({"name": v.string()}),
            "tags": v.array(v.union(v.literal("a"), v.literal("b"))),
        }
    )
    err = reject(obj, {"author": {"name": "x"}, "tags": ["a", "b", "c"]})
    msg = str(err)
    assert err.path == ".tags[2]"
    assert ".tags[2]" in msg
    assert 'v.union(v.literal("a"), v.literal("b"))' in msg
    assert "'c'" in msg and "(string)" in msg
    err = reject(obj, {"author": {"name": 5}, "tags": []})
    assert err.path == ".author.name" and ".author.name" in str(err)
    assert "v.string()" in str(err) and "(float64)" in str(err)
    err = reject(v.int64(), 1.5, path=".args.n")
    assert err.path == ".args.n" and "v.int64()" in str(err) and "1.5 (float64)" in str(err)


def test_tagged_union_reports_the_matching_member() -> None:
    u = v.union(
        v.object({"kind": v.literal("a"), "x": v.number()}),
        v.object({"kind": v.literal("b"), "y": v.string()}),
    )
    assert u.check({"kind": "b", "y": "s"}) == {"kind": "b", "y": "s"}
    err = reject(u, {"kind": "b", "y": 1})
    assert err.path == ".y" and "v.string()" in str(err)
    err = reject(u, {"kind": "c"})
    assert err.path == "" and "v.union(" in str(err)


# --- arrays, records, unions, optional ---------------------------------------------------


def test_array() -> None:
    assert v.array(v.number()).check((1, 2.5)) == [1.0, 2.5]
    vec = [0.5, -0.25] * 384  # the all-float fast path: a fresh list, same values
    out = v.array(v.number()).check(vec)
    assert out == vec and out is not vec
    assert v.array(v.number()).check((0.5, 1.5)) == [0.5, 1.5]
    err = reject(v.array(v.number()), [0.5, 1.5, "x"])
    assert err.path == "[2]"
    err = reject(v.array(v.array(v.string())), [["a"], ["b", None]])
    assert err.path == "[1][1]"
    with pytest.raises(LimitError) as le:
        v.array(v.null()).check([None] * (knobs.MAX_ARRAY_LENGTH_COUNT + 1))
    assert le.value.code == "ArrayTooLong"


def test_record() -> None:
    r = v.record(v.string(), v.number())
    assert r.check({"a": 1, "b": 2.5, "c": UNSET}) == {"a": 1.0, "b": 2.5}
    err = reject(r, {"a": "x"})
    assert err.path == ".a"
    err = reject(r, {"$a": 1})
    assert "$a" in str(err)
    err = reject(r, {1: 1})
    assert "not a string" in str(err)
    lit = v.record(v.union(v.literal("x"), v.literal("y")), v.boolean())
    assert lit.check({"x": True}) == {"x": True}
    err = reject(lit, {"z": True})
    assert err.path == ".z" and "key" in str(err)
    ids = v.record(v.id("users"), v.number())
    assert ids.check({ID_T1: 1}) == {ID_T1: 1.0}
    reject(ids, {"nope": 1})
    assert v.record(v.literal("k"), v.any()).check({"k": 1}) == {"k": 1.0}


@pytest.mark.parametrize(
    "keys", [v.number(), v.any(), v.literal(1), v.union(v.string(), v.number()), v.object({})]
)
def test_record_key_validator_must_be_string_like(keys: Validator) -> None:
    with pytest.raises(SchemaError) as e:
        v.record(keys, v.any())
    assert e.value.code == "InvalidSchema"


def test_optional_only_as_object_field() -> None:
    opt = v.optional(v.string())
    for build in (
        lambda: v.array(opt),
        lambda: v.union(v.null(), opt),
        lambda: v.record(v.string(), opt),
        lambda: v.record(opt, v.string()),
        lambda: v.optional(opt),
        lambda: as_args_validator(opt),
    ):
        with pytest.raises(SchemaError) as e:
            build()
        assert "v.optional" in str(e.value)
    # Checking an optional directly: UNSET is the missing value.
    assert opt.check(UNSET) is UNSET
    assert opt.check("x") == "x"


def test_non_validator_arguments_are_schema_errors() -> None:
    loose: Any = v  # the calls below are deliberately ill-typed
    builds: list[Callable[[], Any]] = [
        lambda: loose.array("x"),
        lambda: loose.union(v.string(), str),
        lambda: loose.optional(None),
        lambda: loose.record("a", v.any()),
        lambda: loose.literal(None),
        lambda: loose.literal([1]),
    ]
    for build in builds:
        with pytest.raises(SchemaError):
            build()


def test_empty_union_matches_nothing() -> None:
    reject(v.union(), None)


def test_nullable() -> None:
    assert v.nullable(v.string()) == v.union(v.string(), v.null())


def test_nesting_limits() -> None:
    deep: Any = "x"
    val: Validator = v.string()
    for _ in range(5):
        deep = [deep]
        val = v.array(val)
    assert val.check(deep) == deep
    with pytest.raises(LimitError) as le:
        val.check(deep, max_depth=4)
    assert le.value.code == "NestingTooDeep"
    with pytest.raises(LimitError):
        v.any().check(deep, max_depth=4)
    with pytest.raises(LimitError):
        v.array(v.any()).check(deep, max_depth=4)


def test_matches() -> None:
    assert v.string().matches("x")
    assert not v.string().matches(1)


# --- repr, equality ----------------------------------------------------------------------


def test_repr() -> None:
    assert repr(v.object({"a": v.string()})) == 'v.object({"a": v.string()})'
    assert repr(v.union(v.literal("a"), v.literal("b"))) == 'v.union(v.literal("a"), v.literal("b"))'
    assert repr(v.optional(v.id("users"))) == 'v.optional(v.id("users"))'
    assert repr(v.record(v.string(), v.int64())) == "v.record(v.string(), v.int64())"
    assert repr(v.array(v.number())) == "v.array(v.number())"
    assert repr(v.literal(Int64(2))) == "v.literal(Int64(2))"
    assert repr(v.literal(2)) == "v.literal(2.0)"
    assert repr(v.literal(True)) == "v.literal(True)"
    assert repr(v) == "v"
    for val in (v.null(), v.boolean(), v.bytes(), v.any()):
        assert repr(val) == f"v.{val.kind}()"


def test_equality_by_structure() -> None:
    assert v.number() == v.float64()
    assert v.object({"a": v.string(), "b": v.null()}) == v.object({"b": v.null(), "a": v.string()})
    assert v.union(v.string(), v.null()) != v.union(v.null(), v.string())
    assert v.literal(1) != v.literal(Int64(1))
    assert v.literal(1) != v.literal(True)
    assert v.literal(0.0) != v.literal(-0.0)
    assert v.literal(math.nan) == v.literal(math.nan)
    assert v.optional(v.string()) != v.string()
    assert v.id("a") != v.id("b")
    assert v.array(v.string()) != v.array(v.bytes())
    assert len({v.string(), v.string(), v.object({"a": v.optional(v.any())})}) == 2
    assert v.string() != "string"


# --- JSON --------------------------------------------------------------------------------

JSON_FORMS: list[tuple[Validator, dict[str, Any]]] = [
    (v.null(), {"type": "null"}),
    (v.number(), {"type": "number"}),
    (v.int64(), {"type": "bigint"}),
    (v.boolean(), {"type": "boolean"}),
    (v.string(), {"type": "string"}),
    (v.bytes(), {"type": "bytes"}),
    (v.any(), {"type": "any"}),
    (v.id("users"), {"type": "id", "tableName": "users"}),
    (v.literal("a"), {"type": "literal", "value": "a"}),
    (v.literal(2), {"type": "literal", "value": 2.0}),
    (v.literal(False), {"type": "literal", "value": False}),
    (v.literal(Int64(1)), {"type": "literal", "value": {"$integer": "AQAAAAAAAAA="}}),
    (v.literal(b"\x01"), {"type": "literal", "value": {"$bytes": "AQ=="}}),
    (v.array(v.string()), {"type": "array", "value": {"type": "string"}}),
    (
        v.object({"a": v.string(), "b": v.optional(v.number())}),
        {
            "type": "object",
            "value": {
                "a": {"fieldType": {"type": "string"}, "optional": False},
                "b": {"fieldType": {"type": "number"}, "optional": True},
            },
        },
    ),
    (
        v.record(v.string(), v.boolean()),
        {
            "type": "record",
            "keys": {"type": "string"},
            "values": {"fieldType": {"type": "boolean"}, "optional": False},
        },
    ),
    (
        v.union(v.string(), v.null()),
        {"type": "union", "value": [{"type": "string"}, {"type": "null"}]},
    ),
]


@pytest.mark.parametrize(("validator", "expected"), JSON_FORMS)
def test_json_form_and_round_trip(validator: Validator, expected: dict[str, Any]) -> None:
    assert validator.to_json() == expected
    back = validator_from_json(orjson.loads(orjson.dumps(expected)))
    assert back == validator and repr(back) == repr(validator)


def test_optional_json_is_the_inner_json() -> None:
    assert v.optional(v.string()).to_json() == {"type": "string"}


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [],
        {},
        {"type": "nope"},
        {"type": "id"},
        {"type": "literal"},
        {"type": "literal", "value": {"$bad": 1}},
        {"type": "array"},
        {"type": "object", "value": []},
        {"type": "object", "value": {"a": {"type": "string"}}},
        {"type": "object", "value": {"a": {"fieldType": {"type": "string"}, "optional": 1}}},
        {"type": "record", "keys": {"type": "string"}},
        {"type": "record", "keys": {"type": "string"}, "values": {"fieldType": {"type": "string"}, "optional": True}},
        {"type": "record", "keys": {"type": "number"}, "values": {"fieldType": {"type": "string"}, "optional": False}},
        {"type": "union", "value": {"type": "string"}},
    ],
)
def test_bad_json_is_a_schema_error(bad: Any) -> None:
    with pytest.raises(SchemaError):
        validator_from_json(bad)


_names = st.text(alphabet="abcxyz_", min_size=1, max_size=6).filter(lambda s: not s.startswith("_"))
_literals = st.one_of(
    st.text(max_size=5).map(v.literal),
    st.floats(allow_nan=True).map(v.literal),
    st.integers(-(2**63), 2**63 - 1).map(lambda n: v.literal(Int64(n))),
    st.booleans().map(v.literal),
    st.binary(max_size=4).map(v.literal),
)
_leaves = st.one_of(
    st.sampled_from([v.null(), v.number(), v.int64(), v.boolean(), v.string(), v.bytes(), v.any()]),
    _names.map(v.id),
    _literals,
)
_record_keys = st.one_of(
    st.just(v.string()),
    _names.map(v.id),
    st.lists(st.one_of(_names.map(v.literal), st.just(v.string())), min_size=1, max_size=3).map(
        lambda ms: v.union(*ms)
    ),
)


def _extend(children: st.SearchStrategy[Validator]) -> st.SearchStrategy[Validator]:
    field = st.tuples(children, st.booleans()).map(lambda t: v.optional(t[0]) if t[1] else t[0])
    return st.one_of(
        children.map(v.array),
        st.dictionaries(_names, field, max_size=4).map(v.object),
        st.tuples(_record_keys, children).map(lambda t: v.record(t[0], t[1])),
        st.lists(children, max_size=4).map(lambda ms: v.union(*ms)),
    )


validators = st.recursive(_leaves, _extend, max_leaves=12)


@given(validators)
def test_json_round_trip_property(validator: Validator) -> None:
    j = validator.to_json()
    back = validator_from_json(orjson.loads(orjson.dumps(j)))
    assert back == validator
    assert hash(back) == hash(validator)
    assert back.to_json() == j
    assert repr(back) == repr(validator)


_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False),
        st.text(max_size=5),
        st.binary(max_size=5),
        st.integers(-(2**63), 2**63 - 1).map(Int64),
    ),
    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(_names, c, max_size=3)),
    max_leaves=10,
)


@given(_values)
def test_any_normalizes_like_normalize(value: Any) -> None:
    assert v.any().check(value) == normalize(value)


# --- args and pagination -----------------------------------------------------------------


def test_as_args_validator() -> None:
    obj = as_args_validator({"a": v.string(), "b": v.optional(v.number())})
    assert isinstance(obj, ObjectValidator) and obj.optional_fields == {"b"}
    same = v.object({"x": v.null()})
    assert as_args_validator(same) is same
    assert as_args_validator({}) == v.object({})
    with pytest.raises(SchemaError):
        as_args_validator(v.string())
    with pytest.raises(SchemaError):
        as_args_validator([v.string()])  # type: ignore[arg-type]
    with pytest.raises(SchemaError):
        as_args_validator({"a": 1})  # type: ignore[dict-item]


def test_pagination_opts_validator() -> None:
    out = pagination_opts_validator.check({"numItems": 10, "cursor": None})
    assert out == {"numItems": 10.0, "cursor": None} and type(out["numItems"]) is float
    out = pagination_opts_validator.check(
        {"numItems": 5.0, "cursor": "c", "endCursor": None, "id": 3, "maximumRowsRead": 100}
    )
    assert out["id"] == 3.0 and out["endCursor"] is None
    reject(pagination_opts_validator, {"numItems": 10})
    reject(pagination_opts_validator, {"numItems": "10", "cursor": None})
    assert pagination_opts_validator.optional_fields == {
        "endCursor",
        "id",
        "maximumRowsRead",
        "maximumBytesRead",
    }
