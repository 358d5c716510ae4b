"""Codegen of ``_generated/data_model.py``: Python type stubs (a ``TypedDict`` per table and
id aliases) for editors. Part of :mod:`convection.application.codegen`, which calls :func:`data_model_py`."""

from __future__ import annotations

import json
import keyword
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

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


def _pascal(table: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in table.split("_") if part) or "Table"


def _class_names(tables: Iterable[str]) -> dict[str, str]:
    """A unique Python name stem per table (``user_profiles`` -> ``UserProfiles``)."""
    out: dict[str, str] = {}
    used: set[str] = {"Id", "TableName"}
    for table in sorted(tables):
        stem = base = _pascal(table)
        n = 2
        while stem in used or f"{stem}Doc" in used or f"{stem}Id" in used:
            stem = f"{base}_{n}"
            n += 1
        used |= {stem, f"{stem}Doc", f"{stem}Id"}
        out[table] = stem
    return out


def _py_literal(value: Any) -> str:
    if isinstance(value, bool):
        return f"Literal[{value!r}]"
    if isinstance(value, Int64):
        return f"Literal[{int(value)}]"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return f"Literal[{_py_str(value)}]"
    if isinstance(value, bytes):
        return f"Literal[{value!r}]"
    return "Any"


def _py_id(table: str) -> str:
    return "Id"


def python_type(validator: JsonValidator, id_type: IdType = _py_id) -> str:
    """The Python annotation of the values ``validator`` (Convex ``ValidatorJSON``) accepts,
    as convection hands them to functions: numbers are ``float``, int64 ``int``, ids ``str``
    aliases, nested objects ``dict[str, Any]``."""
    t = validator.get("type")
    if t == "null":
        return "None"
    if t in ("number", "float64"):
        return "float"
    if t in ("bigint", "int64"):
        return "int"
    if t == "boolean":
        return "bool"
    if t == "string":
        return "str"
    if t == "bytes":
        return "bytes"
    if t == "any":
        return "Any"
    if t == "id":
        return id_type(validator["tableName"])
    if t == "literal":
        return _py_literal(from_convex_json(validator["value"]))
    if t == "array":
        return f"list[{python_type(validator['value'], id_type)}]"
    if t == "record":
        keys = python_type(validator["keys"], id_type)
        values = python_type(validator["values"]["fieldType"], id_type)
        return f"dict[{keys}, {values}]"
    if t == "union":
        members = unique(python_type(m, id_type) for m in validator["value"])
        if "Any" in members:
            return "Any"
        literals = [m[len("Literal[") : -1] for m in members if m.startswith("Literal[")]
        if len(literals) > 1:  # Literal["a"] | Literal["b"] -> Literal["a", "b"]
            first = next(i for i, m in enumerate(members) if m.startswith("Literal["))
            rest = [m for m in members if not m.startswith("Literal[")]
            members = [*rest[:first], f"Literal[{', '.join(literals)}]", *rest[first:]]
        return " | ".join(members) if members else "Never"
    if t == "object":
        return "dict[str, Any]"
    raise CodegenError(f"Cannot generate a type for the validator {json.dumps(validator)}.")


def _py_str(text: str) -> str:
    """A double-quoted Python string literal (JSON escapes are valid Python escapes)."""
    return json.dumps(text)


_TYPING_NAMES: Final = ("Any", "Literal", "Never", "NotRequired", "TypeAlias", "TypedDict")
_PY_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PY_STRING: Final = re.compile(r"""b?("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""")


def _py_class_syntax_ok(items: list[tuple[str, str]]) -> bool:
    """Class syntax works when every field name is a plain identifier that no annotation of the
    class uses (a field ``list`` would shadow ``list[...]`` for type checkers)."""
    used = {
        word
        for _, annotation in items
        for word in _PY_NAME.findall(_PY_STRING.sub("", annotation))
    }
    return all(
        n.isidentifier() and not keyword.iskeyword(n) and not n.startswith("__") and n not in used
        for n, _ in items
    )


def _py_typed_dict(name: str, table: str, fields: Mapping[str, Any], id_type: IdType) -> list[str]:
    items: list[tuple[str, str]] = []
    for field_name, field in fields.items():
        annotation = python_type(field["fieldType"], id_type)
        items.append((field_name, f"NotRequired[{annotation}]" if field.get("optional") else annotation))
    doc = f'"""A document of table {_py_str(table)[1:-1]}."""'
    if _py_class_syntax_ok(items):
        return [f"class {name}(TypedDict):", f"    {doc}", "", *(f"    {n}: {t}" for n, t in items)]
    return [
        f"{name} = TypedDict(",
        f"    {_py_str(name)},",
        "    {",
        *(f"        {_py_str(n)}: {t}," for n, t in items),
        "    },",
        ")",
        doc,
    ]


def data_model_py(app: LoadedApp) -> str:
    schema = app.schema
    exported = ["Id", "TableName"]
    # Top-level definitions; separated by two blank lines, a docstring block by one.
    aliases: list[list[str]] = [["Id: TypeAlias = str", '"""A document id: a string at runtime."""']]
    classes: list[list[str]] = []
    if schema is None:
        exported.append("Doc")
        aliases += [
            ["TableName: TypeAlias = str", '"""No schema.py: any table name."""'],
            ["Doc: TypeAlias = dict[str, Any]", '"""No schema.py: a document is any object."""'],
        ]
    else:
        names = _class_names(schema.tables)
        tables = sorted(schema.tables)

        def id_type(table: str) -> str:
            return f"{names[table]}Id" if table in names else "Id"

        literal = ", ".join(_py_str(t) for t in tables)
        aliases.append([
            f"TableName: TypeAlias = Literal[{literal}]" if tables else "TableName: TypeAlias = Never",
            '"""The names of the tables of the schema."""',
        ])
        for table in tables:
            exported.append(f"{names[table]}Id")
            aliases.append([
                f"{names[table]}Id: TypeAlias = Id",
                f'"""An id of a document of table {_py_str(table)[1:-1]}."""',
            ])
        for table in tables:
            stem = names[table]
            exported.append(f"{stem}Doc")
            document = with_system_fields(table, schema.tables[table].document_validator.to_json())
            doc = f'"""A document of table {_py_str(table)[1:-1]}."""'
            if document.get("type") == "object":
                classes.append(_py_typed_dict(f"{stem}Doc", table, document["value"], id_type))
            elif document.get("type") == "union":
                members = []
                for i, member in enumerate(document["value"]):
                    members.append(f"{stem}Doc{i}")
                    exported.append(f"{stem}Doc{i}")
                    classes.append(_py_typed_dict(f"{stem}Doc{i}", table, member["value"], id_type))
                classes.append([f"{stem}Doc: TypeAlias = {' | '.join(members) or 'Never'}", doc])
            else:
                classes.append([f"{stem}Doc: TypeAlias = dict[str, Any]", doc])
    lines = [
        '"""Generated data model types for editors and type checkers.',
        "",
        "THIS CODE IS AUTOMATICALLY GENERATED by convection; do not edit.",
        REGENERATE_HINT,
        "Use it from your functions: ``from ._generated.data_model import Id``.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import {}",
        "",
        "__all__ = [",
        *(f"    {_py_str(n)}," for n in sorted(exported)),
        "]",
    ]
    for block in aliases:
        lines += ["", *block]
    for block in classes:
        lines += ["", "", *block]
    text = "\n".join(lines) + "\n"
    code = _PY_STRING.sub("", text)
    imports = [n for n in _TYPING_NAMES if re.search(rf"\b{n}\b", code)]
    return text.replace("from typing import {}", f"from typing import {', '.join(imports)}", 1)
