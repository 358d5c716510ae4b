"""What the codegen modules share: the error, the validator-JSON aliases, the regenerate hint
and helpers used by both the TypeScript (:mod:`convection.application.codegen`) and the
Python (:mod:`convection.application.codegen_python`) generators. Depends on neither."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from convection.errors import ConvectionError

REGENERATE_HINT: Final = "To regenerate, run `convection codegen` (`convection dev` does it on every push)."

JsonValidator = Mapping[str, Any]
IdType = Callable[[str], str]


class CodegenError(ConvectionError):
    """The app cannot be turned into generated code (e.g. two functions at one api path)."""

    code = "CodegenError"


def unique(items: Iterable[str]) -> list[str]:
    """``items`` without repeats, in first-seen order."""
    out: list[str] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def with_system_fields(table: str, document: JsonValidator) -> JsonValidator:
    """The document validator with ``_id`` and ``_creationTime`` (as Convex's codegen)."""
    t = document.get("type")
    if t == "object":
        return {
            "type": "object",
            "value": {
                **document["value"],
                "_id": {"fieldType": {"type": "id", "tableName": table}, "optional": False},
                "_creationTime": {"fieldType": {"type": "number"}, "optional": False},
            },
        }
    if t == "union":
        return {"type": "union", "value": [with_system_fields(table, m) for m in document["value"]]}
    return {"type": "any"}
