"""convection: a reactive backend platform for Python in the model of Convex.

This module is the public API (API.md): everything a functions folder imports comes from
here; everything else in the package is internal. Names are imported on first access
(PEP 562), so importing a low layer (``convection.values``, the client) does not pull in the
whole engine, and the layers below never depend on this module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from convection.errors import ConvexError
    from convection.functions.crons import Crons
    from convection.functions.decorators import (
        action,
        http_action,
        internal_action,
        internal_mutation,
        internal_query,
        mutation,
        query,
    )
    from convection.functions.http_router import HttpRouter
    from convection.functions.references import FunctionReference, api, internal
    from convection.schema.builders import pagination_opts_validator, v
    from convection.schema.schema import define_schema, define_table
    from convection.values.model import UNSET, Int64

_EXPORTS: dict[str, str] = {
    "ConvexError": "convection.errors",
    "Crons": "convection.functions.crons",
    "action": "convection.functions.decorators",
    "http_action": "convection.functions.decorators",
    "internal_action": "convection.functions.decorators",
    "internal_mutation": "convection.functions.decorators",
    "internal_query": "convection.functions.decorators",
    "mutation": "convection.functions.decorators",
    "query": "convection.functions.decorators",
    "HttpRouter": "convection.functions.http_router",
    "FunctionReference": "convection.functions.references",
    "api": "convection.functions.references",
    "internal": "convection.functions.references",
    "define_schema": "convection.schema.schema",
    "define_table": "convection.schema.schema",
    "pagination_opts_validator": "convection.schema.builders",
    "v": "convection.schema.builders",
    "UNSET": "convection.values.model",
    "Int64": "convection.values.model",
}

__all__ = [
    "UNSET",
    "ConvexError",
    "Crons",
    "FunctionReference",
    "HttpRouter",
    "Int64",
    "action",
    "api",
    "define_schema",
    "define_table",
    "http_action",
    "internal",
    "internal_action",
    "internal_mutation",
    "internal_query",
    "mutation",
    "pagination_opts_validator",
    "query",
    "v",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'convection' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
