"""Codegen (application/codegen.py): the text of `_generated/` for a sample app with every
validator kind, Convex's conventions (api.js, FilterApi, DataModel shape, schemaless output),
the Python stubs, idempotent atomic writes, and `convection codegen` on the command line.

The TypeScript output is compiled with the real `tsc` in tests/e2e/test_codegen_tsc.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from convection.application.codegen import (
    GENERATED_DIR,
    generate,
    python_type,
    ts_type,
    write_generated,
)
from convection.cli.main import cli
from convection.functions.loader import LoadedApp, load_app
from convection.schema.builders import v
from convection.values.model import Int64

SCHEMA = """
from convection import Int64, define_schema, define_table, v

schema = define_schema({
    "users": define_table({"name": v.string(), "tokenIdentifier": v.string()})
        .index("by_token", ["tokenIdentifier"]),
    "messages": define_table({
        "author": v.id("users"),
        "body": v.string(),
        "likes": v.number(),
        "score": v.float64(),
        "views": v.int64(),
        "pinned": v.boolean(),
        "attachment": v.optional(v.bytes()),
        "file": v.optional(v.id("_storage")),
        "kind": v.union(v.literal("text"), v.literal("image")),
        "meta": v.record(v.string(), v.any()),
        "reactions": v.array(v.object({"emoji": v.string(), "by": v.id("users")})),
        "extra": v.union(v.null(), v.object({"note": v.string()})),
        "legacy": v.optional(v.id("gone")),
    })
        .index("by_author", ["author"])
        .search_index("search_body", search_field="body", filter_fields=["author", "kind"]),
    "docs": define_table({"embedding": v.array(v.float64()), "owner": v.id("users")})
        .vector_index("by_embedding", vector_field="embedding", dimensions=3, filter_fields=["owner"]),
    "events": define_table(v.union(
        v.object({"type": v.literal("click"), "x": v.number()}),
        v.object({"type": v.literal("key"), "key": v.string()}),
    )),
    "blobs": define_table(v.any()),
    "user_profiles": define_table({
        "list": v.array(v.string()), "class": v.string(), "x": v.literal(1.5),
        "y": v.literal(2), "big": v.literal(Int64(-7)), "t": v.literal(True),
    }),
})
"""

MESSAGES = """
from convection import action, internal_query, mutation, query, v

MESSAGE = v.object({"_id": v.id("messages"), "_creationTime": v.number(), "body": v.string()})


@query(args={}, returns=v.array(MESSAGE))
def list(ctx):
    return []


@mutation(
    args={"body": v.string(), "author": v.id("users"), "views": v.int64(),
          "attachment": v.optional(v.bytes())},
    returns=v.id("messages"),
)
def send(ctx, body, author, views, attachment=None):
    return None


@action(args={"n": v.number()}, returns=v.null())
async def ping(ctx, n):
    return None


@internal_query
def secret(ctx):
    return 1


@query
def default(ctx):
    return "default"
"""

DEEP = """
from convection import query, v


@query(
    args={"m": v.record(v.id("users"), v.union(v.literal("a"), v.literal("b")))},
    returns=v.union(v.string(), v.null()),
)
def get(ctx, m):
    return None
"""


def _write(folder: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return folder


@pytest.fixture
def app(tmp_path: Path) -> Iterator[LoadedApp]:
    folder = _write(
        tmp_path / "convex",
        {"schema.py": SCHEMA, "messages.py": MESSAGES, "queries/deep.py": DEEP},
    )
    loaded = load_app(folder)
    yield loaded
    loaded.unload()


@pytest.fixture
def schemaless(tmp_path: Path) -> Iterator[LoadedApp]:
    folder = _write(tmp_path / "plain", {"a.py": "from convection import query\n\n\n@query\ndef f(ctx):\n    return 1\n"})
    loaded = load_app(folder)
    yield loaded
    loaded.unload()


# --- validator -> type -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("validator", "expected"),
    [
        (v.id("users"), 'Id<"users">'),
        (v.null(), "null"),
        (v.number(), "number"),
        (v.float64(), "number"),
        (v.int64(), "bigint"),
        (v.boolean(), "boolean"),
        (v.string(), "string"),
        (v.bytes(), "ArrayBuffer"),
        (v.any(), "any"),
        (v.literal("a\"b"), '"a\\"b"'),
        (v.literal(2), "2"),
        (v.literal(1.5), "1.5"),
        (v.literal(-3), "-3"),
        (v.literal(1e-7), "1e-7"),
        (v.literal(float("nan")), "number"),
        (v.literal(Int64(-7)), "-7n"),
        (v.literal(True), "true"),
        (v.literal(b"\x01"), "ArrayBuffer"),
        (v.array(v.union(v.string(), v.null())), "Array<string | null>"),
        (v.record(v.string(), v.number()), "Record<string, number>"),
        (v.record(v.id("t"), v.any()), 'Record<Id<"t">, any>'),
        (v.union(v.literal("a"), v.literal("b")), '"a" | "b"'),
        (v.union(), "never"),
        (v.object({}), "{}"),
        (v.object({"a": v.string(), "b": v.optional(v.number())}), "{ a: string; b?: number }"),
    ],
)
def test_ts_type_of_each_validator_kind(validator: Any, expected: str) -> None:
    assert ts_type(validator.to_json()) == expected


def test_ts_object_keys_that_are_not_identifiers_are_quoted() -> None:
    json = {"type": "object", "value": {"a-b": {"fieldType": {"type": "string"}, "optional": True}}}
    assert ts_type(json) == '{ "a-b"?: string }'


@pytest.mark.parametrize(
    ("validator", "expected"),
    [
        (v.id("users"), "Id"),
        (v.null(), "None"),
        (v.number(), "float"),
        (v.int64(), "int"),
        (v.boolean(), "bool"),
        (v.string(), "str"),
        (v.bytes(), "bytes"),
        (v.any(), "Any"),
        (v.literal("a"), 'Literal["a"]'),
        (v.literal(1.5), "float"),
        (v.literal(Int64(3)), "Literal[3]"),
        (v.literal(False), "Literal[False]"),
        (v.array(v.string()), "list[str]"),
        (v.record(v.string(), v.int64()), "dict[str, int]"),
        (v.union(v.literal("a"), v.null(), v.literal("b")), 'Literal["a", "b"] | None'),
        (v.union(v.string(), v.any()), "Any"),
        (v.object({"a": v.string()}), "dict[str, Any]"),
    ],
)
def test_python_type_of_each_validator_kind(validator: Any, expected: str) -> None:
    assert python_type(validator.to_json()) == expected


# --- api.js / api.d.ts -------------------------------------------------------------------


def test_generates_the_files_of_convex_generated(app: LoadedApp) -> None:
    assert sorted(generate(app)) == [
        "api.d.ts", "api.js", "dataModel.d.ts", "data_model.py", "server.d.ts", "server.js",
    ]


def test_api_js_is_any_api_like_convex(app: LoadedApp) -> None:
    text = generate(app)["api.js"]
    assert 'import { anyApi } from "convex/server";' in text
    assert "export const api = anyApi;" in text
    assert "export const internal = anyApi;" in text


def test_api_dts_spells_every_function_reference(app: LoadedApp) -> None:
    text = generate(app)["api.d.ts"]
    assert 'import type { FilterApi, FunctionReference } from "convex/server";' in text
    assert 'import type { GenericId as Id } from "convex/values";' in text
    lines = [line.strip() for line in text.splitlines()]
    assert (
        'list: FunctionReference<"query", "public", {}, '
        'Array<{ _id: Id<"messages">; _creationTime: number; body: string }>>;'
    ) in lines
    assert (
        'send: FunctionReference<"mutation", "public", { body: string; author: Id<"users">; '
        'views: bigint; attachment?: ArrayBuffer }, Id<"messages">>;'
    ) in lines
    assert 'ping: FunctionReference<"action", "public", { n: number }, null>;' in lines
    # No validators: `any`, as Convex writes it.
    assert 'secret: FunctionReference<"query", "internal", any, any>;' in lines
    assert 'default: FunctionReference<"query", "public", any, any>;' in lines
    # Nested module paths nest.
    assert "queries: {" in lines and "deep: {" in lines
    assert (
        'get: FunctionReference<"query", "public", { m: Record<Id<"users">, "a" | "b"> }, '
        "string | null>;"
    ) in lines
    assert (
        'export declare const api: FilterApi<typeof fullApi, FunctionReference<any, "public">>;'
        in lines
    )
    assert "export declare const internal: FilterApi<" in text
    assert 'FunctionReference<any, "internal">' in text


def test_api_dts_of_an_app_without_functions(tmp_path: Path) -> None:
    loaded = load_app(_write(tmp_path / "empty", {"schema.py": "from convection import define_schema\n\nschema = define_schema({})\n"}))
    try:
        assert "declare const fullApi: {};" in generate(loaded)["api.d.ts"]
    finally:
        loaded.unload()


# --- dataModel.d.ts ----------------------------------------------------------------------


def test_data_model_dts_has_document_types_with_system_fields(app: LoadedApp) -> None:
    text = generate(app)["dataModel.d.ts"]
    assert (
        "  users: {\n"
        "    document: {\n"
        "      name: string;\n"
        "      tokenIdentifier: string;\n"
        '      _id: Id<"users">;\n'
        "      _creationTime: number;\n"
        "    };\n"
        '    fieldPaths: "_creationTime" | "_id" | "name" | "tokenIdentifier";\n'
        "    indexes: {\n"
        '      by_id: ["_id"];\n'
        '      by_creation_time: ["_creationTime"];\n'
        '      by_token: ["tokenIdentifier", "_creationTime"];\n'
        "    };\n"
        "    searchIndexes: {};\n"
        "    vectorIndexes: {};\n"
        "  };\n"
    ) in text
    for line in [
        "author: Id<\"users\">;",
        "likes: number;",
        "score: number;",
        "views: bigint;",
        "pinned: boolean;",
        "attachment?: ArrayBuffer;",
        'file?: Id<"_storage">;',
        'kind: "text" | "image";',
        "meta: Record<string, any>;",
        'reactions: Array<{ emoji: string; by: Id<"users"> }>;',
        "extra: null | { note: string };",
        # A table outside the schema: GenericId (Id<...> would not satisfy its constraint).
        'legacy?: GenericId<"gone">;',
        '"extra.note"',
        "`meta.${string}`",
        'search_body: {\n        searchField: "body";\n        filterFields: "author" | "kind";',
        'by_embedding: {\n        vectorField: "embedding";\n        dimensions: number;\n'
        '        filterFields: "owner";',
        "export type TableNames = TableNamesInDataModel<DataModel>;",
        "export type Doc<TableName extends TableNames> = DocumentByName<DataModel, TableName>;",
        "export type Id<TableName extends TableNames | SystemTableNames> = GenericId<TableName>;",
    ]:
        assert line in text, line
    # A union document: system fields on every member; an any document.
    assert '      type: "click";\n      x: number;\n      _id: Id<"events">;' in text
    assert '      type: "key";\n      key: string;\n      _id: Id<"events">;' in text
    assert "    document: any;\n    fieldPaths: string;" in text
    # Strict table names (the default): no `& AnyDataModel`.
    assert "\n};\n" in text and "} & AnyDataModel;" not in text


def test_data_model_dts_loose_table_names(tmp_path: Path) -> None:
    folder = _write(tmp_path / "loose", {"schema.py": """
        from convection import define_schema, define_table, v

        schema = define_schema({"t": define_table({"a": v.string()})}, strict_table_name_types=False)
    """})
    loaded = load_app(folder)
    try:
        assert "} & AnyDataModel;" in generate(loaded)["dataModel.d.ts"]
    finally:
        loaded.unload()


def test_data_model_dts_without_schema_is_permissive_like_convex(schemaless: LoadedApp) -> None:
    text = generate(schemaless)["dataModel.d.ts"]
    assert "export type Doc = any;" in text
    assert "export type TableNames = string;" in text
    assert "export type Id<TableName extends TableNames = TableNames> = GenericId<TableName>;" in text
    assert "export type DataModel = AnyDataModel;" in text


# --- server.d.ts / server.js -------------------------------------------------------------


def test_server_files_export_the_convex_builders(app: LoadedApp) -> None:
    files = generate(app)
    dts, js = files["server.d.ts"], files["server.js"]
    assert 'import type { DataModel } from "./dataModel.js";' in dts
    for name, builder, visibility in [
        ("query", "QueryBuilder", "public"),
        ("internalQuery", "QueryBuilder", "internal"),
        ("mutation", "MutationBuilder", "public"),
        ("internalMutation", "MutationBuilder", "internal"),
        ("action", "ActionBuilder", "public"),
        ("internalAction", "ActionBuilder", "internal"),
    ]:
        assert f'export declare const {name}: {builder}<DataModel, "{visibility}">;' in dts
    assert "export declare const httpAction: HttpActionBuilder;" in dts
    for ctx in ("QueryCtx", "MutationCtx", "ActionCtx", "DatabaseReader", "DatabaseWriter"):
        assert f"export type {ctx} = " in dts
    for line in [
        "export const query = queryGeneric;",
        "export const internalQuery = internalQueryGeneric;",
        "export const mutation = mutationGeneric;",
        "export const internalMutation = internalMutationGeneric;",
        "export const action = actionGeneric;",
        "export const internalAction = internalActionGeneric;",
        "export const httpAction = httpActionGeneric;",
    ]:
        assert line in js


# --- data_model.py -----------------------------------------------------------------------


def test_data_model_py_has_a_typed_dict_per_table(app: LoadedApp) -> None:
    text = generate(app)["data_model.py"]
    assert "Id: TypeAlias = str\n" in text
    assert 'TableName: TypeAlias = Literal["blobs", "docs", "events", "messages", "user_profiles", "users"]' in text
    assert "UsersId: TypeAlias = Id\n" in text
    assert (
        "class UsersDoc(TypedDict):\n"
        '    """A document of table users."""\n'
        "\n"
        "    name: str\n"
        "    tokenIdentifier: str\n"
        "    _id: UsersId\n"
        "    _creationTime: float\n"
    ) in text
    for line in [
        "    author: UsersId",
        "    views: int",
        "    attachment: NotRequired[bytes]",
        "    file: NotRequired[Id]",
        '    kind: Literal["text", "image"]',
        "    meta: dict[str, Any]",
        "    reactions: list[dict[str, Any]]",
        "    extra: None | dict[str, Any]",
        "EventsDoc: TypeAlias = EventsDoc0 | EventsDoc1",
        "BlobsDoc: TypeAlias = dict[str, Any]",
        # `class` is a keyword and `list` would shadow list[...]: functional syntax.
        'UserProfilesDoc = TypedDict(\n    "UserProfilesDoc",',
        '        "class": str,',
        '        "list": list[str],',
    ]:
        assert line in text, line

    namespace: dict[str, Any] = {}
    exec(compile(text, "data_model.py", "exec"), namespace)
    assert namespace["TableName"].__args__ == ("blobs", "docs", "events", "messages", "user_profiles", "users")
    assert set(namespace["UsersDoc"].__annotations__) == {"name", "tokenIdentifier", "_id", "_creationTime"}
    assert set(namespace["UserProfilesDoc"].__annotations__) >= {"class", "list", "_id"}
    assert set(namespace["__all__"]) <= set(namespace)


def test_data_model_py_type_checks_with_mypy(app: LoadedApp, tmp_path: Path) -> None:
    write_generated(app)
    generated = app.folder / GENERATED_DIR
    (tmp_path / "use_it.py").write_text(textwrap.dedent("""
        from data_model import MessagesDoc, UsersDoc, UsersId

        def name_of(user: UsersDoc) -> str:
            return user["name"]

        def author(message: MessagesDoc) -> UsersId:
            return message["author"]

        def views(message: MessagesDoc) -> int:
            return message["views"]

        def bad(user: UsersDoc) -> object:
            return user["nope"]  # error: no such key
    """))
    env = {**os.environ, "MYPYPATH": str(generated)}
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", os.devnull,
         str(generated / "data_model.py"), str(tmp_path / "use_it.py")],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False,
    )
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1 and "use_it.py:14" in errors[0] and '"nope"' in errors[0], done.stdout


def test_data_model_py_without_schema(schemaless: LoadedApp) -> None:
    text = generate(schemaless)["data_model.py"]
    assert "Doc: TypeAlias = dict[str, Any]" in text
    assert "TableName: TypeAlias = str" in text
    exec(compile(text, "data_model.py", "exec"), {})


# --- writing -----------------------------------------------------------------------------


def test_write_is_atomic_idempotent_and_only_rewrites_changed_files(app: LoadedApp) -> None:
    generated = app.folder / GENERATED_DIR
    generated.mkdir()
    (generated / "notes.txt").write_text("mine")
    written = write_generated(app)
    assert sorted(p.name for p in written) == sorted(generate(app))
    for name, text in generate(app).items():
        assert (generated / name).read_text() == text
    stats = {p.name: p.stat().st_mtime_ns for p in generated.iterdir()}

    assert write_generated(app) == []
    assert {p.name: p.stat().st_mtime_ns for p in generated.iterdir()} == stats
    assert (generated / "notes.txt").read_text() == "mine"
    assert not [p for p in generated.iterdir() if p.name.endswith(".tmp")]

    # A new function changes only api.d.ts.
    with (app.folder / "messages.py").open("a") as f:
        f.write("\n\n@query\ndef extra(ctx):\n    return 1\n")
    reloaded = load_app(app.folder)
    try:
        assert [p.name for p in write_generated(reloaded)] == ["api.d.ts"]
        assert "extra: FunctionReference<" in (generated / "api.d.ts").read_text()
        # A hand edit is overwritten on the next write.
        (generated / "api.js").write_text("edited")
        assert [p.name for p in write_generated(reloaded)] == ["api.js"]
    finally:
        reloaded.unload()


def test_generated_folder_is_not_loaded_as_functions(app: LoadedApp) -> None:
    write_generated(app)
    reloaded = load_app(app.folder)
    try:
        assert sorted(reloaded.functions) == sorted(app.functions)
        assert not any(m.startswith("_generated") for m in reloaded.modules)
    finally:
        reloaded.unload()


def test_write_to_another_folder(app: LoadedApp, tmp_path: Path) -> None:
    written = write_generated(app, tmp_path / "elsewhere")
    assert {p.parent for p in written} == {tmp_path / "elsewhere" / GENERATED_DIR}


# --- the command -------------------------------------------------------------------------


def test_codegen_command(app: LoadedApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    first = runner.invoke(cli, ["codegen", "--functions", "convex"])
    assert first.exit_code == 0, first.output
    assert "wrote convex/_generated/api.d.ts" in first.output
    assert "wrote convex/_generated/data_model.py" in first.output
    second = runner.invoke(cli, ["codegen", "--functions", "convex"])
    assert second.exit_code == 0
    assert "convex/_generated/ is up to date" in second.output

    missing = runner.invoke(cli, ["codegen", "--functions", "nope"])
    assert missing.exit_code == 2

    (tmp_path / "convex" / "broken.py").write_text("def oops(:\n")
    broken = runner.invoke(cli, ["codegen", "--functions", "convex"])
    assert broken.exit_code == 1
