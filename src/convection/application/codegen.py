"""Code generation: a loaded functions folder -> the files of ``<functions>/_generated/``.

:func:`generate` is pure: it takes a :class:`~convection.functions.loader.LoadedApp` and returns
``{relative file path: text}``; :func:`write_generated` writes them. The files follow the npm
``convex`` package's conventions, so a JS/TS app written for Convex imports them unchanged:

* ``api.js`` — ``export const api = anyApi; export const internal = anyApi;`` (as Convex).
* ``api.d.ts`` — a ``fullApi`` type spelling every function as
  ``FunctionReference<kind, visibility, Args, Returns>``, nested by module path (``"queries/
  orders:list"`` -> ``fullApi.queries.orders.list``), and ``api``/``internal`` declared as
  ``FilterApi<typeof fullApi, FunctionReference<any, "public"|"internal">>`` exactly like
  Convex's generated file. Args and return types come from the validators (Convex's
  ``validatorToType``); a function without an args or returns validator has ``any`` there.
* ``dataModel.d.ts`` — an explicit ``DataModel`` (document, field paths, indexes, search and
  vector indexes per table, as Convex's static codegen writes it), ``TableNames``, ``Doc<T>``
  and ``Id<T>``. Without a schema: ``Doc = any``, ``DataModel = AnyDataModel`` (Convex's
  schemaless output). ``strict_table_name_types=False`` adds ``& AnyDataModel``.
* ``server.d.ts`` / ``server.js`` — the builders Convex's ``_generated/server`` exports
  (``query``, ``internalQuery``, ..., ``httpAction``) and the ctx types over ``DataModel``, so
  imports resolve; the Python functions are the real ones.
* ``data_model.py`` — Python stubs for editors: a ``TypedDict`` per table (``MessagesDoc``),
  ``Id = str`` and an alias per table (``MessagesId``), ``TableName``.

Invariants: output is deterministic (sorted, no timestamps), so regenerating an unchanged app
yields identical text and :func:`write_generated` writes nothing. Files in ``_generated/`` are
never loaded as functions (the loader skips ``_``-prefixed folders).
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from convection.application.codegen_python import data_model_py, python_type
from convection.application.codegen_shared import (
    REGENERATE_HINT,
    CodegenError,
    IdType,
    JsonValidator,
    unique,
    with_system_fields,
)
from convection.functions.loader import LoadedApp
from convection.values.json import from_convex_json
from convection.values.model import Int64

__all__ = [
    "GENERATED_DIR",
    "CodegenError",
    "generate",
    "python_type",
    "ts_type",
    "write_generated",
]

GENERATED_DIR: Final = "_generated"
SYSTEM_TABLES: Final = ("_scheduled_functions", "_storage")
"""System tables the ``convex`` package's ``SystemTableNames`` knows (``Id<"_storage">``)."""

_TS_IDENT: Final = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")

# --- TypeScript types from validator JSON -----------------------------------------------------


def _ts_key(name: str) -> str:
    return name if _TS_IDENT.fullmatch(name) else json.dumps(name)


def _ts_string(s: str) -> str:
    return json.dumps(s)


def _js_number(f: float) -> str | None:
    """``f`` written as JavaScript writes it (a valid TS numeric literal), None for NaN/inf."""
    if math.isnan(f) or math.isinf(f):
        return None
    if f == int(f) and abs(f) < 1e21:
        return str(int(f))
    text = repr(f)
    if "e" in text:
        mantissa, exponent = text.split("e")
        e = int(exponent)
        return f"{mantissa}e{'+' if e > 0 else '-'}{abs(e)}"
    return text


def _ts_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Int64):
        return f"{int(value)}n"
    if isinstance(value, float):
        return _js_number(value) or "number"
    if isinstance(value, str):
        return _ts_string(value)
    if isinstance(value, bytes):
        return "ArrayBuffer"
    if value is None:
        return "null"
    return "any"


def _api_id(table: str) -> str:
    return f"Id<{_ts_string(table)}>"


def ts_type(validator: JsonValidator, id_type: IdType = _api_id) -> str:
    """The TypeScript type of the values ``validator`` (Convex ``ValidatorJSON``) accepts, as
    Convex's codegen writes it: ``v.id("t")`` -> ``Id<"t">``, ``v.number()`` -> ``number``,
    ``v.int64()`` -> ``bigint``, ``v.bytes()`` -> ``ArrayBuffer``, optional object fields
    ``name?: T``, ``v.record(k, v)`` -> ``Record<K, V>``, unions ``A | B``, ``v.any()`` -> ``any``.
    ``id_type`` spells an id type from its table name."""
    t = validator.get("type")
    if t == "null":
        return "null"
    if t in ("number", "float64"):
        return "number"
    if t in ("bigint", "int64"):
        return "bigint"
    if t == "boolean":
        return "boolean"
    if t == "string":
        return "string"
    if t == "bytes":
        return "ArrayBuffer"
    if t == "any":
        return "any"
    if t == "id":
        return id_type(validator["tableName"])
    if t == "literal":
        return _ts_literal(from_convex_json(validator["value"]))
    if t == "array":
        return f"Array<{ts_type(validator['value'], id_type)}>"
    if t == "record":
        keys = ts_type(validator["keys"], id_type)
        values = ts_type(validator["values"]["fieldType"], id_type)
        return f"Record<{keys}, {values}>"
    if t == "union":
        members = unique(ts_type(m, id_type) for m in validator["value"])
        return " | ".join(members) if members else "never"
    if t == "object":
        return _ts_object(validator["value"], id_type)
    raise CodegenError(f"Cannot generate a type for the validator {json.dumps(validator)}.")


def _ts_fields(fields: Mapping[str, Any], id_type: IdType) -> list[str]:
    return [
        f"{_ts_key(name)}{'?' if field.get('optional') else ''}: "
        f"{ts_type(field['fieldType'], id_type)}"
        for name, field in fields.items()
    ]


def _ts_object(fields: Mapping[str, Any], id_type: IdType) -> str:
    parts = _ts_fields(fields, id_type)
    return "{ " + "; ".join(parts) + " }" if parts else "{}"


# --- headers ------------------------------------------------------------------------------


def _header(description: str) -> str:
    return (
        "/* eslint-disable */\n"
        "/**\n"
        f" * {description}\n"
        " *\n"
        " * THIS CODE IS AUTOMATICALLY GENERATED by convection.\n"
        " *\n"
        f" * {REGENERATE_HINT}\n"
        " * @module\n"
        " */\n"
    )


def _api_comment(name: str, visibility: str) -> str:
    return (
        "/**\n"
        f" * A utility for referencing Convex functions in your app's {visibility} API.\n"
        " *\n"
        " * Usage:\n"
        " * ```js\n"
        f" * const myFunctionReference = {name}.myModule.myFunction;\n"
        " * ```\n"
        " */\n"
    )


# --- api.js / api.d.ts --------------------------------------------------------------------


def _api_js() -> str:
    return (
        _header("Generated `api` utility.")
        + '\nimport { anyApi } from "convex/server";\n\n'
        + _api_comment("api", "public")
        + "export const api = anyApi;\n\n"
        + _api_comment("internal", "internal")
        + "export const internal = anyApi;\n"
    )


def _function_reference(fn: Mapping[str, Any]) -> str:
    args = "any" if fn["args"] is None else ts_type(fn["args"])
    returns = "any" if fn["returns"] is None else ts_type(fn["returns"])
    return (
        f"FunctionReference<{_ts_string(fn['kind'])}, {_ts_string(fn['visibility'])}, "
        f"{args}, {returns}>"
    )


def _api_tree(functions: list[dict[str, Any]]) -> dict[str, Any]:
    """Functions nested by module path: branches are dicts, leaves are reference types."""
    root: dict[str, Any] = {}
    for fn in functions:
        node = root
        for part in fn["module"].split("/"):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise CodegenError(
                    f"Module {fn['module']!r} and a function called {part!r} would share one "
                    "api path; rename one of them."
                )
            node = child
        if fn["name"] in node:
            raise CodegenError(
                f"Function {fn['path']!r} and the module {fn['module']}/{fn['name']} would "
                "share one api path; rename one of them."
            )
        node[fn["name"]] = _function_reference(fn)
    return root


def _render_tree(tree: Mapping[str, Any], indent: str) -> list[str]:
    lines: list[str] = []
    for key in sorted(tree):
        value = tree[key]
        if isinstance(value, str):
            lines.append(f"{indent}{_ts_key(key)}: {value};")
        else:
            lines.append(f"{indent}{_ts_key(key)}: {{")
            lines.extend(_render_tree(value, indent + "  "))
            lines.append(f"{indent}}};")
    return lines


def _api_dts(app: LoadedApp) -> str:
    tree = _api_tree(app.function_paths_json())
    body = _render_tree(tree, "  ")
    full_api = "declare const fullApi: {\n" + "".join(f"{line}\n" for line in body) + "};\n"
    if not body:
        full_api = "declare const fullApi: {};\n"
    return (
        _header("Generated `api` utility.")
        + '\nimport type { FilterApi, FunctionReference } from "convex/server";\n'
        + 'import type { GenericId as Id } from "convex/values";\n\n'
        + "/**\n"
        + " * Every function of the app (public and internal), nested by module path.\n"
        + " */\n"
        + full_api
        + "\n"
        + _api_comment("api", "public")
        + 'export declare const api: FilterApi<typeof fullApi, FunctionReference<any, "public">>;\n\n'
        + _api_comment("internal", "internal")
        + "export declare const internal: FilterApi<\n"
        + "  typeof fullApi,\n"
        + '  FunctionReference<any, "internal">\n'
        + ">;\n"
    )


# --- dataModel.d.ts -----------------------------------------------------------------------

_NO_SCHEMA_DATA_MODEL: Final = """
import type { AnyDataModel } from "convex/server";
import type { GenericId } from "convex/values";

/**
 * No `schema.py` found!
 *
 * This generated code has permissive types like `Doc = any` because convection doesn't know
 * your schema. For more type safety, define one in `schema.py`:
 * `schema = define_schema({...})`.
 */

/**
 * The names of all of your Convex tables.
 */
export type TableNames = string;

/**
 * The type of a document stored in Convex.
 */
export type Doc = any;

/**
 * An identifier for a document in Convex.
 *
 * IDs are just strings at runtime, but this type can be used to distinguish them from other
 * strings when type checking.
 */
export type Id<TableName extends TableNames = TableNames> = GenericId<TableName>;

/**
 * A type describing your Convex data model.
 */
export type DataModel = AnyDataModel;
"""

_DATA_MODEL_FOOTER: Final = """
/**
 * The names of all of your Convex tables.
 */
export type TableNames = TableNamesInDataModel<DataModel>;

/**
 * The type of a document stored in Convex.
 *
 * @typeParam TableName - A string literal type of the table name (like "users").
 */
export type Doc<TableName extends TableNames> = DocumentByName<DataModel, TableName>;

/**
 * An identifier for a document in Convex.
 *
 * Convex documents are uniquely identified by their `Id`, which is accessible on the `_id`
 * field. IDs are just strings at runtime, but this type can be used to distinguish them from
 * other strings when type checking.
 *
 * @typeParam TableName - A string literal type of the table name (like "users").
 */
export type Id<TableName extends TableNames | SystemTableNames> = GenericId<TableName>;
"""


def _field_paths(validator: JsonValidator) -> Iterable[tuple[str, ...]]:
    """Field paths as Convex's codegen extracts them (records give a ``${string}`` step)."""
    t = validator.get("type")
    if t == "object":
        for name, field in validator["value"].items():
            yield (name,)
            for sub in _field_paths(field["fieldType"]):
                if sub:
                    yield (name, *sub)
    elif t == "union":
        for member in validator["value"]:
            yield from _field_paths(member)
    elif t == "record":
        yield ("${string}",)
    else:
        yield ()


def _string_union(items: Iterable[str]) -> str:
    parts = [f"`{item}`" if "${" in item else _ts_string(item) for item in items]
    return " | ".join(parts) if parts else "never"


def _document_type(document: JsonValidator, id_type: IdType, indent: str) -> str:
    """A document type; object types one field per line."""
    t = document.get("type")
    if t == "object":
        fields = _ts_fields(document["value"], id_type)
        inner = indent + "  "
        return "{\n" + "".join(f"{inner}{f};\n" for f in fields) + indent + "}"
    if t == "union":
        return " | ".join(_document_type(m, id_type, indent) for m in document["value"])
    return ts_type(document, id_type)


def _data_model_dts(app: LoadedApp) -> str:
    schema = app.schema
    if schema is None:
        return _header("Generated data model types.") + _NO_SCHEMA_DATA_MODEL
    known = set(schema.tables) | set(SYSTEM_TABLES)

    def id_type(table: str) -> str:
        return f"{'Id' if table in known else 'GenericId'}<{_ts_string(table)}>"

    lines = [
        _header("Generated data model types."),
        "import type {",
        "  AnyDataModel,",
        "  DocumentByName,",
        "  SystemTableNames,",
        "  TableNamesInDataModel,",
        '} from "convex/server";',
        'import type { GenericId } from "convex/values";',
        "",
        "/**",
        " * A type describing your Convex data model.",
        " *",
        " * This type includes information about what tables you have, the type of documents",
        " * stored in those tables, and the indexes defined on them.",
        " */",
        "export type DataModel = {",
    ]
    for name in sorted(schema.tables):
        table = schema.tables[name]
        document = with_system_fields(name, table.document_validator.to_json())
        if document.get("type") == "any":
            paths = "string"
        else:
            paths = _string_union(sorted({".".join(p) for p in _field_paths(document)}))
        lines.append(f"  {_ts_key(name)}: {{")
        lines.append(f"    document: {_document_type(document, id_type, '    ')};")
        lines.append(f"    fieldPaths: {paths};")
        lines.append("    indexes: {")
        lines.append('      by_id: ["_id"];')
        lines.append('      by_creation_time: ["_creationTime"];')
        for index in table.indexes:
            fields = ", ".join(_ts_string(f) for f in (*index.fields, "_creationTime"))
            lines.append(f"      {_ts_key(index.name)}: [{fields}];")
        lines.append("    };")
        if table.search_indexes:
            lines.append("    searchIndexes: {")
            for s in table.search_indexes:
                lines.append(f"      {_ts_key(s.name)}: {{")
                lines.append(f"        searchField: {_ts_string(s.search_field)};")
                lines.append(f"        filterFields: {_string_union(s.filter_fields)};")
                lines.append("      };")
            lines.append("    };")
        else:
            lines.append("    searchIndexes: {};")
        if table.vector_indexes:
            lines.append("    vectorIndexes: {")
            for vi in table.vector_indexes:
                lines.append(f"      {_ts_key(vi.name)}: {{")
                lines.append(f"        vectorField: {_ts_string(vi.vector_field)};")
                lines.append("        dimensions: number;")
                lines.append(f"        filterFields: {_string_union(vi.filter_fields)};")
                lines.append("      };")
            lines.append("    };")
        else:
            lines.append("    vectorIndexes: {};")
        lines.append("  };")
    lines.append("}" + ("" if schema.strict_table_name_types else " & AnyDataModel") + ";")
    return "\n".join(lines) + "\n" + _DATA_MODEL_FOOTER


# --- server.d.ts / server.js --------------------------------------------------------------

_BUILDERS: Final = (
    ("query", "QueryBuilder", "public", "queryGeneric",
     "Define a query in this Convex app's public API."),
    ("internalQuery", "QueryBuilder", "internal", "internalQueryGeneric",
     "Define a query that is only accessible from other Convex functions (but not from the client)."),
    ("mutation", "MutationBuilder", "public", "mutationGeneric",
     "Define a mutation in this Convex app's public API."),
    ("internalMutation", "MutationBuilder", "internal", "internalMutationGeneric",
     "Define a mutation that is only accessible from other Convex functions (but not from the client)."),
    ("action", "ActionBuilder", "public", "actionGeneric",
     "Define an action in this Convex app's public API."),
    ("internalAction", "ActionBuilder", "internal", "internalActionGeneric",
     "Define an action that is only accessible from other Convex functions (but not from the client)."),
)

_SERVER_NOTE: Final = (
    "/*\n"
    " * convection runs the Python functions of this folder; these builders exist so that code\n"
    " * written for Convex that imports `_generated/server` keeps resolving and type-checking.\n"
    " */\n"
)

_CTX_TYPES: Final = """
/**
 * A set of services for use within Convex query functions.
 */
export type QueryCtx = GenericQueryCtx<DataModel>;

/**
 * A set of services for use within Convex mutation functions.
 */
export type MutationCtx = GenericMutationCtx<DataModel>;

/**
 * A set of services for use within Convex action functions.
 */
export type ActionCtx = GenericActionCtx<DataModel>;

/**
 * An interface to read from the database within Convex query functions.
 */
export type DatabaseReader = GenericDatabaseReader<DataModel>;

/**
 * An interface to read from and write to the database within Convex mutation functions.
 */
export type DatabaseWriter = GenericDatabaseWriter<DataModel>;
"""


def _server_dts() -> str:
    lines = [
        _header("Generated utilities for implementing server-side Convex query and mutation functions."),
        _SERVER_NOTE,
        "import type {",
        "  ActionBuilder,",
        "  GenericActionCtx,",
        "  GenericDatabaseReader,",
        "  GenericDatabaseWriter,",
        "  GenericMutationCtx,",
        "  GenericQueryCtx,",
        "  HttpActionBuilder,",
        "  MutationBuilder,",
        "  QueryBuilder,",
        '} from "convex/server";',
        'import type { DataModel } from "./dataModel.js";',
        "",
    ]
    for name, builder, visibility, _, doc in _BUILDERS:
        lines += [
            f"/** {doc} */",
            f'export declare const {name}: {builder}<DataModel, "{visibility}">;',
            "",
        ]
    lines += [
        "/** Define an HTTP action (route it in `http.py`). */",
        "export declare const httpAction: HttpActionBuilder;",
    ]
    return "\n".join(lines) + "\n" + _CTX_TYPES


def _server_js() -> str:
    lines = [
        _header("Generated utilities for implementing server-side Convex query and mutation functions."),
        _SERVER_NOTE,
        "import {",
        "  actionGeneric,",
        "  httpActionGeneric,",
        "  internalActionGeneric,",
        "  internalMutationGeneric,",
        "  internalQueryGeneric,",
        "  mutationGeneric,",
        "  queryGeneric,",
        '} from "convex/server";',
        "",
    ]
    for name, _, _, generic, doc in _BUILDERS:
        lines += [f"/** {doc} */", f"export const {name} = {generic};", ""]
    lines += [
        "/** Define an HTTP action (route it in `http.py`). */",
        "export const httpAction = httpActionGeneric;",
    ]
    return "\n".join(lines) + "\n"


# --- entry points -------------------------------------------------------------------------


def generate(app: LoadedApp) -> dict[str, str]:
    """The files of ``_generated/`` for ``app``: ``{path relative to _generated/: text}``."""
    return {
        "api.d.ts": _api_dts(app),
        "api.js": _api_js(),
        "dataModel.d.ts": _data_model_dts(app),
        "data_model.py": data_model_py(app),
        "server.d.ts": _server_dts(),
        "server.js": _server_js(),
    }


def write_generated(app: LoadedApp, folder: str | Path | None = None) -> list[Path]:
    """Write :func:`generate`'s files into ``<folder>/_generated/`` (``folder`` defaults to
    the app's functions folder) and return the paths written.

    A file is written only when its text differs from what is on disk, through a temporary
    file in the same folder and ``os.replace``, so readers (bundlers, editors, ``tsc``) never
    see a partial file and an unchanged app touches nothing. Other files in the folder are left
    alone."""
    target = Path(folder if folder is not None else app.folder) / GENERATED_DIR
    files = generate(app)
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for rel, text in sorted(files.items()):
        path = target / rel
        data = text.encode("utf-8")
        try:
            if path.read_bytes() == data:
                continue
        except OSError:
            pass
        tmp = target / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            with open(tmp, "xb") as f:  # "x": created with the usual (umask) permissions
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        written.append(path)
    return written
