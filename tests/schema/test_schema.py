from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from convection import knobs
from convection.errors import LimitError, SchemaError, ValidationError
from convection.schema import (
    IndexDefinition,
    SchemaDefinition,
    SearchIndexDefinition,
    TableDefinition,
    VectorIndexDefinition,
    define_schema,
    define_table,
    field_path_get,
    schema_from_json,
    table_from_json,
    v,
)
from convection.values.ids import encode_id, table_number_of
from convection.values.model import UNSET, Int64
from convection.values.order import MISSING


def messages() -> TableDefinition:
    return define_table(
        {
            "channel": v.string(),
            "body": v.string(),
            "author": v.object({"name": v.string(), "age": v.optional(v.number())}),
            "tags": v.array(v.string()),
            "embedding": v.optional(v.array(v.float64())),
            "meta": v.any(),
            "counts": v.record(v.string(), v.int64()),
        }
    )


def schema_error(build: Callable[[], Any], *needles: str) -> SchemaError:
    with pytest.raises(SchemaError) as e:
        build()
    assert e.value.code == "InvalidSchema"
    for needle in needles:
        assert needle in str(e.value), (needle, str(e.value))
    return e.value


def one(table: TableDefinition, name: str = "t") -> SchemaDefinition:
    return define_schema({name: table})


# --- a full schema -----------------------------------------------------------------------


def test_define_schema_and_indexes() -> None:
    t = (
        messages()
        .index("by_channel", ["channel"])
        .index("by_author", ["author.name", "channel"])
        .index("by_staged", {"fields": ["body"], "staged": True})
        .search_index("search_body", search_field="body", filter_fields=["channel"])
        .vector_index("by_embedding", vector_field="embedding", dimensions=3, filter_fields=["channel"])
    )
    s = define_schema({"messages": t, "users": define_table({"name": v.string()})})
    assert s.schema_validation and s.strict_table_name_types
    assert s.table("messages") is t and t.name == "messages"
    assert s.table("nope") is None
    assert set(s.tables) == {"messages", "users"}
    assert t.indexes == [
        IndexDefinition("by_channel", ("channel",)),
        IndexDefinition("by_author", ("author.name", "channel")),
        IndexDefinition("by_staged", ("body",), staged=True),
    ]
    assert t.search_indexes == [SearchIndexDefinition("search_body", "body", ("channel",))]
    assert t.vector_indexes == [VectorIndexDefinition("by_embedding", "embedding", 3, ("channel",))]
    all_ix = t.all_database_indexes()
    assert [ix.name for ix in all_ix] == ["by_id", "by_creation_time", "by_channel", "by_author", "by_staged"]
    assert all_ix[0].fields == () and all_ix[1].fields == ("_creationTime",)
    assert all_ix[0].key_fields == ("_id",)
    assert all_ix[1].key_fields == ("_creationTime", "_id")
    assert all_ix[3].key_fields == ("author.name", "channel", "_creationTime", "_id")
    assert t.database_index("by_id") == all_ix[0]
    assert t.database_index("by_channel") == all_ix[2]
    assert t.database_index("nope") is None
    assert t.search_index_named("search_body") is not None
    assert t.vector_index_named("by_embedding") is not None
    assert define_table({}).all_database_indexes() == [
        IndexDefinition("by_id", ()),
        IndexDefinition("by_creation_time", ("_creationTime",)),
    ]


def test_schema_options() -> None:
    s = define_schema({}, schema_validation=False, strict_table_name_types=False)
    assert not s.schema_validation and not s.strict_table_name_types
    schema_error(lambda: define_schema({}, schema_validation=1))  # type: ignore[arg-type]
    schema_error(lambda: define_schema({}, strict_table_name_types=None))  # type: ignore[arg-type]
    schema_error(lambda: define_schema([]))  # type: ignore[arg-type]
    schema_error(lambda: define_schema({"t": {"a": v.string()}}), "'t'", "define_table")  # type: ignore[dict-item]


# --- table names and document validators -------------------------------------------------


@pytest.mark.parametrize("name", ["_t", "1abc", "a-b", "", "a b", "é", "x" * 1025])
def test_bad_table_names(name: str) -> None:
    schema_error(lambda: define_schema({name: define_table({})}))


def test_good_table_names() -> None:
    for name in ("a", "Messages", "a_b_1", "x" * 1024):
        define_schema({name: define_table({})})


def test_table_name_messages() -> None:
    schema_error(lambda: define_schema({"_storage": define_table({})}), "'_storage'", "reserved")


def test_document_validator_kinds() -> None:
    assert define_table({"a": v.string()}).document_validator == v.object({"a": v.string()})
    obj = v.object({"a": v.string()})
    assert define_table(obj).document_validator is obj
    u = v.union(v.object({"k": v.literal("a")}), v.object({"k": v.literal("b"), "x": v.number()}))
    assert define_table(u).document_validator is u
    assert define_table(v.any()).document_validator == v.any()
    schema_error(lambda: define_table(v.string()), "object")
    schema_error(lambda: define_table(v.union(v.object({}), v.string())), "object")
    schema_error(lambda: define_table(v.optional(v.object({}))), "optional")
    schema_error(lambda: define_table(v.array(v.any())))
    schema_error(lambda: define_table(["a"]))  # type: ignore[arg-type]
    schema_error(lambda: define_table({"_secret": v.string()}), "'_secret'", "reserved")
    schema_error(lambda: define_table(v.union(v.object({"_id": v.string()}))), "'_id'")
    # Nested fields may start with '_'.
    define_table({"a": v.object({"_x": v.string()})})


# --- index checks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "needles"),
    [
        (lambda t: t.index("_x", ["channel"]), ["'_x'", "reserved"]),
        (lambda t: t.index("by_id", ["channel"]), ["'by_id'", "reserved"]),
        (lambda t: t.index("by_creation_time", ["channel"]), ["by_creation_time", "reserved"]),
        (lambda t: t.index("1x", ["channel"]), ["'1x'", "identifier"]),
        (lambda t: t.index("a-b", ["channel"]), ["'a-b'"]),
        (lambda t: t.index("x" * 65, ["channel"]), ["64"]),
        (lambda t: t.index("a", ["channel"]).index("a", ["body"]), ["'a'", "unique"]),
        (lambda t: t.index("a", ["channel"]).search_index("a", search_field="body"), ["'a'", "unique"]),
        (
            lambda t: t.search_index("a", search_field="body").vector_index(
                "a", vector_field="embedding", dimensions=2
            ),
            ["'a'", "unique"],
        ),
        (lambda t: t.index("a", []), ["'a'", "at least one field"]),
        (lambda t: t.index("a", ["channel", "channel"]), ["'a'", "duplicate"]),
        (lambda t: t.index("a", ["_id"]), ["'a'", "_id"]),
        (lambda t: t.index("a", ["channel", "_creationTime"]), ["'a'", "_creationTime"]),
        (lambda t: t.index("a", ["_creationTime"]), ["_creationTime", "automatically"]),
        (lambda t: t.index("a", ["nope"]), ["'a'", "'nope'", "does not exist"]),
        (lambda t: t.index("a", ["author.nope"]), ["'author.nope'", "does not exist"]),
        (lambda t: t.index("a", ["channel.x"]), ["'channel.x'"]),
        (lambda t: t.index("a", ["tags.x"]), ["'tags.x'"]),
        (lambda t: t.index("a", ["author..name"]), ["empty"]),
        (lambda t: t.index("a", ["author.$x"]), ["'author.$x'"]),
        (lambda t: t.index("a", ["_other"]), ["'_other'"]),
    ],
)
def test_index_rule_violations(build: Callable[[TableDefinition], Any], needles: list[str]) -> None:
    t = messages()
    build(t)
    err = schema_error(lambda: one(t, "messages"), *needles)
    assert "'messages'" in str(err)


def test_index_argument_types_checked_at_definition() -> None:
    schema_error(lambda: messages().index("a", "channel"), "list")
    schema_error(lambda: messages().index("a", [1]))  # type: ignore[list-item]
    schema_error(lambda: messages().index("a", {"fields": ["x"], "other": 1}))
    schema_error(lambda: messages().index("a", {"staged": True}))
    schema_error(lambda: messages().index("a", {"fields": ["x"], "staged": "yes"}))
    schema_error(lambda: messages().search_index("a", search_field=["body"]))  # type: ignore[arg-type]
    schema_error(lambda: messages().vector_index("a", vector_field="embedding", dimensions="3"))  # type: ignore[arg-type]
    schema_error(lambda: messages().vector_index("a", vector_field="embedding", dimensions=True))


def test_index_field_counts() -> None:
    fields = {f"f{i}": v.number() for i in range(knobs.MAX_INDEX_FIELDS_COUNT + 1)}
    ok = define_table(fields).index("a", list(fields)[: knobs.MAX_INDEX_FIELDS_COUNT])
    one(ok)
    too_many = define_table(fields).index("a", list(fields))
    schema_error(lambda: one(too_many), "'a'", str(knobs.MAX_INDEX_FIELDS_COUNT))


def test_index_counts_per_table() -> None:
    t = define_table({"a": v.string()})
    for i in range(knobs.MAX_INDEXES_PER_TABLE_COUNT):
        t.index(f"i{i}", ["a"])
    one(t)
    t.index("extra", ["a"])
    schema_error(lambda: one(t, "big"), "'big'", str(knobs.MAX_INDEXES_PER_TABLE_COUNT))
    # Search and vector indexes count toward the total too.
    t = define_table({"a": v.string()})
    for i in range(knobs.MAX_INDEXES_PER_TABLE_COUNT - 1):
        t.index(f"i{i}", ["a"])
    t.search_index("s", search_field="a").search_index("s2", search_field="a")
    schema_error(lambda: one(t))


def test_search_and_vector_index_counts() -> None:
    t = define_table({"a": v.string(), "e": v.array(v.float64())})
    for i in range(knobs.MAX_SEARCH_INDEXES_PER_TABLE_COUNT):
        t.search_index(f"s{i}", search_field="a")
    for i in range(knobs.MAX_VECTOR_INDEXES_PER_TABLE_COUNT):
        t.vector_index(f"v{i}", vector_field="e", dimensions=2)
    one(t)
    t.search_index("s_extra", search_field="a")
    schema_error(lambda: one(t), "search indexes")
    t = define_table({"e": v.array(v.float64())})
    for i in range(knobs.MAX_VECTOR_INDEXES_PER_TABLE_COUNT + 1):
        t.vector_index(f"v{i}", vector_field="e", dimensions=2)
    schema_error(lambda: one(t), "vector indexes")


def test_index_fields_in_unions_any_optional_and_records() -> None:
    u = v.union(
        v.object({"kind": v.literal("a"), "x": v.number()}),
        v.object({"kind": v.literal("b"), "y": v.object({"z": v.string()})}),
    )
    one(define_table(u).index("a", ["x"]).index("b", ["y.z"]).index("c", ["kind", "x"]))
    schema_error(lambda: one(define_table(u).index("a", ["w"])), "'w'")
    one(define_table(v.any()).index("a", ["anything.at.all"]))
    one(define_table({"m": v.any()}).index("a", ["m.deep.path"]))
    one(define_table({"o": v.optional(v.object({"p": v.optional(v.string())}))}).index("a", ["o.p"]))
    one(define_table({"r": v.record(v.string(), v.object({"q": v.number()}))}).index("a", ["r.key.q"]))
    one(define_table({"r": v.record(v.literal("k"), v.number())}).index("a", ["r.k"]))
    schema_error(lambda: one(define_table({"r": v.record(v.literal("k"), v.number())}).index("a", ["r.j"])))
    one(define_table({"n": v.union(v.null(), v.object({"a": v.string()}))}).index("a", ["n.a"]))


def test_search_index_rules() -> None:
    one(messages().search_index("s", search_field="author.name", filter_fields=["channel", "tags"]))
    one(define_table({"a": v.optional(v.union(v.string(), v.null()))}).search_index("s", search_field="a"))
    one(define_table({"a": v.literal("x")}).search_index("s", search_field="a"))
    one(define_table({"a": v.any()}).search_index("s", search_field="a"))
    schema_error(lambda: one(messages().search_index("s", search_field="tags")), "'s'", "string")
    schema_error(lambda: one(messages().search_index("s", search_field="nope")), "'nope'")
    schema_error(lambda: one(messages().search_index("s", search_field="_id")))
    schema_error(lambda: one(messages().search_index("s", search_field="body", filter_fields=["nope"])), "'nope'")
    schema_error(
        lambda: one(messages().search_index("s", search_field="body", filter_fields=["channel", "channel"])),
        "duplicate",
    )
    fields = {f"f{i}": v.string() for i in range(knobs.MAX_FILTER_FIELDS_COUNT + 1)}
    one(define_table(fields).search_index("s", search_field="f0", filter_fields=list(fields)[:-1]))
    schema_error(
        lambda: one(define_table(fields).search_index("s", search_field="f0", filter_fields=list(fields))),
        "filter fields",
    )
    # System fields may be filter fields.
    one(messages().search_index("s", search_field="body", filter_fields=["_creationTime"]))


def test_vector_index_rules() -> None:
    one(messages().vector_index("v", vector_field="embedding", dimensions=2))
    one(messages().vector_index("v", vector_field="embedding", dimensions=4096, filter_fields=["channel"]))
    one(messages().vector_index("v", vector_field="embedding", dimensions=1536.0))  # type: ignore[arg-type]
    one(define_table({"e": v.array(v.number())}).vector_index("v", vector_field="e", dimensions=3))
    schema_error(lambda: one(messages().vector_index("v", vector_field="embedding", dimensions=1)), "'v'", "dimensions")
    schema_error(lambda: one(messages().vector_index("v", vector_field="embedding", dimensions=4097)), "4096")
    schema_error(lambda: one(messages().vector_index("v", vector_field="tags", dimensions=3)), "v.array(v.float64())")
    schema_error(lambda: one(messages().vector_index("v", vector_field="body", dimensions=3)))
    schema_error(lambda: one(define_table({"e": v.array(v.int64())}).vector_index("v", vector_field="e", dimensions=3)))
    schema_error(lambda: one(messages().vector_index("v", vector_field="nope", dimensions=3)), "'nope'")
    schema_error(
        lambda: one(messages().vector_index("v", vector_field="embedding", dimensions=3, filter_fields=["nope"])),
        "'nope'",
    )
    fields: dict[str, Any] = {f"f{i}": v.string() for i in range(knobs.MAX_FILTER_FIELDS_COUNT + 1)}
    fields["e"] = v.array(v.float64())
    schema_error(
        lambda: one(
            define_table(fields).vector_index(
                "v", vector_field="e", dimensions=3, filter_fields=[f for f in fields if f != "e"]
            )
        ),
        "filter fields",
    )


# --- document validation -----------------------------------------------------------------

ID_USERS = encode_id(1, bytes(16))
ID_POSTS = encode_id(2, bytes(16))


def test_validate_document() -> None:
    t = define_table({"name": v.string(), "n": v.int64(), "f": v.number(), "u": v.optional(v.id("users"))})
    define_schema({"people": t})
    doc = {"_id": ID_USERS, "_creationTime": 1.5, "name": "x", "n": 1, "f": 2}
    out = t.validate_document(doc)
    assert out == {"_id": ID_USERS, "_creationTime": 1.5, "name": "x", "n": Int64(1), "f": 2.0}
    assert type(out["n"]) is Int64 and type(out["f"]) is float
    assert t.validate_document({"name": "x", "n": 1, "f": 2, "u": UNSET}) == {"name": "x", "n": Int64(1), "f": 2.0}
    with pytest.raises(ValidationError) as e:
        t.validate_document({"name": "x", "n": 1.5, "f": 2}, id="abc")
    msg = str(e.value)
    assert e.value.code == "ValidationError" and e.value.path == ".n"
    assert msg.startswith('Document with ID "abc" in table "people" does not match the schema: ')
    assert ".n" in msg and "v.int64()" in msg
    with pytest.raises(ValidationError) as e:
        t.validate_document({"_id": ID_USERS, "name": "x", "n": 1}, table="other")
    assert f'Document with ID "{ID_USERS}" in table "other"' in str(e.value) and "`f`" in str(e.value)
    with pytest.raises(ValidationError) as e:
        t.validate_document({"name": "x", "n": 1, "f": 2, "extra": 1})
    assert 'Document in table "people"' in str(e.value) and "extra" in str(e.value)
    with pytest.raises(ValidationError):
        t.validate_document([])  # type: ignore[arg-type]


def test_validate_document_id_checker() -> None:
    t = define_table({"u": v.id("users")})

    def checker(table: str, id_str: str) -> bool:
        return {"users": 1, "posts": 2}[table] == table_number_of(id_str)

    assert t.validate_document({"u": ID_USERS}, table="t", id_checker=checker) == {"u": ID_USERS}
    with pytest.raises(ValidationError) as e:
        t.validate_document({"u": ID_POSTS}, table="t", id_checker=checker)
    assert e.value.path == ".u" and '"users"' in str(e.value)


def test_validate_document_nesting_limit() -> None:
    t = define_table(v.any())
    deep: Any = 1
    for _ in range(knobs.MAX_DOCUMENT_NESTING_COUNT + 1):  # one object more than allowed
        deep = {"a": deep}
    with pytest.raises(LimitError) as e:
        t.validate_document(deep, table="t")
    assert e.value.code == "NestingTooDeep"
    assert t.validate_document(deep["a"], table="t") == {"a": deep["a"]["a"]}


def test_union_table_documents() -> None:
    t = define_table(
        v.union(
            v.object({"kind": v.literal("a"), "x": v.number()}),
            v.object({"kind": v.literal("b"), "y": v.string()}),
        )
    )
    assert t.validate_document({"kind": "a", "x": 1}, table="t") == {"kind": "a", "x": 1.0}
    with pytest.raises(ValidationError) as e:
        t.validate_document({"kind": "b", "y": 2}, table="t")
    assert e.value.path == ".y"


# --- JSON --------------------------------------------------------------------------------


def test_schema_json_round_trip() -> None:
    t = (
        messages()
        .index("by_channel", ["channel"])
        .index("by_staged", ["body"], staged=True)
        .search_index("search_body", search_field="body", filter_fields=["channel"], staged=True)
        .vector_index("by_embedding", vector_field="embedding", dimensions=8, filter_fields=["channel"])
    )
    s = define_schema({"messages": t, "any": define_table(v.any())}, schema_validation=False)
    j = orjson.loads(orjson.dumps(s.to_json()))
    assert j["schemaValidation"] is False and j["strictTableNameTypes"] is True
    tj = j["tables"][0]
    assert tj["tableName"] == "messages"
    assert tj["indexes"][0] == {"indexDescriptor": "by_channel", "fields": ["channel"], "staged": False}
    assert tj["searchIndexes"][0] == {
        "indexDescriptor": "search_body",
        "searchField": "body",
        "filterFields": ["channel"],
        "staged": True,
    }
    assert tj["vectorIndexes"][0] == {
        "indexDescriptor": "by_embedding",
        "vectorField": "embedding",
        "dimensions": 8,
        "filterFields": ["channel"],
        "staged": False,
    }
    assert tj["documentType"] == t.document_validator.to_json()
    back = schema_from_json(j)
    assert back == s
    assert back.to_json() == s.to_json()
    assert back.table("messages") == t
    assert define_schema({"messages": messages()}) != s


def test_table_json_round_trip() -> None:
    t = messages().index("a", ["channel"])
    j = t.to_json()
    assert "tableName" not in j
    back = table_from_json(j)
    assert back == t and back.name is None
    one(t, "m")
    back = table_from_json(t.to_json())
    assert back.name == "m" and back == t
    assert t != messages()


@pytest.mark.parametrize(
    "bad",
    [
        None,
        {},
        {"tables": {}},
        {"tables": [{"documentType": {"type": "any"}}]},
        {"tables": [{"tableName": "_x", "documentType": {"type": "any"}}]},
        {"tables": [{"tableName": "a", "documentType": {"type": "any"}}, {"tableName": "a", "documentType": {"type": "any"}}]},
        {"tables": [{"tableName": "a", "documentType": {"type": "any"}, "indexes": [{"fields": []}]}]},
        {"tables": [{"tableName": "a", "documentType": {"type": "string"}}]},
        {"tables": [{"tableName": "a", "documentType": {"type": "any"}}], "schemaValidation": "no"},
    ],
)
def test_bad_schema_json(bad: Any) -> None:
    with pytest.raises(SchemaError):
        schema_from_json(bad)


def test_same_table_definition_under_two_names() -> None:
    t = define_table({"a": v.string()}).index("by_a", ["a"])
    s1 = define_schema({"x": t})
    s2 = define_schema({"y": t})
    assert s1.tables["x"].name == "x" and s2.tables["y"].name == "y"
    assert s1.tables["x"] == s2.tables["y"]


def test_repr() -> None:
    t = define_table({"a": v.string()}).index("by_a", ["a"])
    assert repr(t) == "define_table(v.object({\"a\": v.string()})).index('by_a', ['a'])"
    assert repr(define_schema({"t": t})) == "define_schema({'t'})"


# --- field paths -------------------------------------------------------------------------


def test_field_path_get() -> None:
    doc = {"a": {"b": {"c": 1}, "n": None, "u": UNSET}, "l": [{"x": 1}]}
    assert field_path_get(doc, "a.b.c") == 1
    assert field_path_get(doc, "a.b") == {"c": 1}
    assert field_path_get(doc, ["a", "b", "c"]) == 1
    assert field_path_get(doc, "a.n") is None
    assert field_path_get(doc, "a.u") is MISSING
    assert field_path_get(doc, "a.x") is MISSING
    assert field_path_get(doc, "a.b.c.d") is MISSING
    assert field_path_get(doc, "l.x") is MISSING
    assert field_path_get(doc, "zz") is MISSING
