"""functions: decorators, references, paths, the HTTP router, cron definitions and the loader
(functions folder -> registry).

This layer describes user functions; running them (ctx objects, the runner) builds on it.
"""

from __future__ import annotations

from convection.functions.crons import CronJobSpec, Crons, InvalidCronJob
from convection.functions.decorators import (
    ConvexFunction,
    FunctionKind,
    InvalidFunctionDefinition,
    Visibility,
    action,
    http_action,
    internal_action,
    internal_mutation,
    internal_query,
    mutation,
    query,
)
from convection.functions.http_router import (
    ROUTABLE_METHODS,
    HttpRoute,
    HttpRouter,
    InvalidHttpRoute,
)
from convection.functions.loader import FunctionSpec, LoadedApp, load_app
from convection.functions.paths import (
    InvalidFunctionPath,
    InvalidFunctionReference,
    canonical_path,
    display_path,
    split_path,
)
from convection.functions.references import FunctionReference, api, function_path, internal

__all__ = [
    "ROUTABLE_METHODS",
    "ConvexFunction",
    "CronJobSpec",
    "Crons",
    "FunctionKind",
    "FunctionReference",
    "FunctionSpec",
    "HttpRoute",
    "HttpRouter",
    "InvalidCronJob",
    "InvalidFunctionDefinition",
    "InvalidFunctionPath",
    "InvalidFunctionReference",
    "InvalidHttpRoute",
    "LoadedApp",
    "Visibility",
    "action",
    "api",
    "canonical_path",
    "display_path",
    "function_path",
    "http_action",
    "internal",
    "internal_action",
    "internal_mutation",
    "internal_query",
    "load_app",
    "mutation",
    "query",
    "split_path",
]
