"""The outcome of one function call, in the shape every protocol needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FunctionOutcome:
    """The result of one function call, as every protocol needs it.

    On success ``value`` is the Convex value and ``value_json`` its encoded JSON. On failure
    ``error_message`` is the client-facing message and, for ConvexError, ``error_data`` /
    ``error_data_json`` hold the data (``has_error_data`` tells null data from no data).
    ``ts`` is the commit ts (mutations) or the snapshot ts (queries).
    """

    success: bool
    value: Any = None
    value_json: bytes = b"null"
    error_message: str = ""
    has_error_data: bool = False
    error_data: Any = None
    error_data_json: bytes = b"null"
    log_lines: list[str] = field(default_factory=list)
    ts: int | None = None
    journal: str | None = None
    error_code: str | None = None
    """On failure: a stable code (``ConvexError``, ``ArgumentValidationError``,
    ``FunctionNotFound``, ``WrongFunctionKind``, ``FunctionTimeout``, ...)."""
