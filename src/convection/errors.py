"""The error family of convection.

Every error raised by convection itself is a :class:`ConvectionError` carrying a stable
``code`` (a short CamelCase string, the same vocabulary as Convex's error codes where one
exists). Tests assert on codes, never on prose. Messages say what was wrong, where (table,
field path, function) and what to do.

:class:`ConvexError` is the *user's* error: application code raises it with any Convex value
as ``data`` and the caller receives that data (``errorData`` on the wire).
"""

from __future__ import annotations

import os
import sys
from typing import Any

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class ConvectionError(Exception):
    """Base of every error convection raises. ``code`` is stable; ``message`` is for humans."""

    code: str = "InternalError"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


def is_user_file(filename: str) -> bool:
    """Whether code in ``filename`` is the user's: not convection's own, not the standard
    library, not an installed package."""
    stdlib = os.path.dirname(os.__file__) + os.sep
    return not filename.startswith((_PACKAGE_DIR, stdlib, "<")) and "site-packages" not in filename


def shown_path(filename: str) -> str:
    """``filename`` relative to the working directory when it is inside it."""
    try:
        rel = os.path.relpath(filename)
    except ValueError:  # another drive (Windows)
        return filename
    return filename if rel.startswith("..") else rel


def user_location(skip: int = 1) -> str | None:
    """``file:line`` of the innermost frame on the current stack that is the user's code (see
    :func:`is_user_file`): where the user's function broke a rule. None when there is none."""
    frame = sys._getframe(skip)
    while frame is not None:
        if is_user_file(frame.f_code.co_filename):
            return f"{shown_path(frame.f_code.co_filename)}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return None


def at_user_location(skip: int = 2) -> str:
    """`` (at file:line)`` for a message, or "" when the stack has no user frame."""
    where = user_location(skip + 1)
    return f" (at {where})" if where else ""


class ValueError_(ConvectionError):
    """A value is not a valid Convex value (bad type, bad field name, over a limit)."""

    code = "InvalidValue"


class ValidationError(ConvectionError):
    """A value does not match a validator (function arguments, return value, schema)."""

    code = "ValidationError"

    def __init__(self, message: str, *, path: str = "", code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.path = path


class SchemaError(ConvectionError):
    """A schema definition is invalid, or existing data does not match a new schema."""

    code = "InvalidSchema"


class IdError(ConvectionError):
    """A document id string is malformed or belongs to another table."""

    code = "InvalidId"


class LimitError(ConvectionError):
    """A per-value or per-transaction limit was exceeded (see knobs.py)."""

    code = "LimitExceeded"


class FunctionNotFound(ConvectionError):
    """No public function at a path (or an internal one called without admin rights)."""

    code = "FunctionNotFound"


class ModuleLoadError(ConvectionError):
    """A module of the functions folder failed to import; names the file and line."""

    code = "ModuleLoadError"

    def __init__(
        self, message: str, *, file: str | None = None, line: int | None = None
    ) -> None:
        super().__init__(message)
        self.file = file
        self.line = line


class OccConflict(ConvectionError):
    """A transaction read something a concurrent commit wrote; the mutation is retried.

    ``conflict_ts`` is the ts of the conflicting commit: a retry should begin only once it is
    published, or it would read the same stale snapshot and conflict again."""

    code = "OptimisticConcurrencyControlFailure"

    def __init__(self, message: str, *, code: str | None = None, conflict_ts: int | None = None) -> None:
        super().__init__(message, code=code)
        self.conflict_ts = conflict_ts


class DatabaseError(ConvectionError):
    """A misuse of the database API (unknown index, bad range, write in a query, ...)."""

    code = "DatabaseError"


class StorageFailure(ConvectionError):
    """The persistence layer failed."""

    code = "StorageFailure"


class MissingExtra(ConvectionError):
    """A feature needs an optional dependency that is not installed; the message names the
    extra that installs it (``pip install 'convection[vector]'``)."""

    code = "MissingExtra"

    def __init__(self, feature: str, module: str, extra: str) -> None:
        super().__init__(
            f"{feature} needs the Python package {module!r}, which is not installed. Install "
            f"it with: pip install 'convection[{extra}]' (or pip install {module})"
        )
        self.module = module
        self.extra = extra


class StorageUnavailable(StorageFailure):
    """A commit was not applied because the store failed; writes resume by themselves when it
    is back. Retryable: HTTP 503, and the sync socket closes 1013 so the client reconnects
    and re-sends the mutation (de-duplicated by its request id)."""

    code = "StorageUnavailable"


class ConvexError(Exception):
    """Raised by application code to send structured ``data`` to the caller.

    ``data`` is any Convex value; the caller receives it as ``errorData`` and the mutation's
    writes are discarded.
    """

    def __init__(self, data: Any = None) -> None:
        self.data = data
        super().__init__(data if isinstance(data, str) else _describe(data))


def _describe(data: Any) -> str:
    """A readable JSON text of ``data`` for the message (the exact value travels as
    ``errorData``). Int64 prints as a plain number, bytes as ``{"$bytes": base64}``."""
    try:
        import orjson

        return orjson.dumps(data, default=_describe_other).decode()
    except Exception:
        return repr(data)


def _describe_other(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        import base64

        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    raise TypeError(type(value).__name__)
