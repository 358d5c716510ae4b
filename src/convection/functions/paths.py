"""Function paths: parsing, canonical form, display form (PROTOCOL.md §3).

A function is identified by its *canonical path* ``"module/path:name"``: the module path inside
the functions folder (``/``-joined, no extension) and the module-level name the function is
bound to. Clients send paths in several spellings (``"messages"``, ``"messages:list"``,
``"messages.js:list"``); :func:`canonical_path` maps all of them to the one key the registry
uses, and :func:`display_path` gives the "stripped" form used in messages (no ``.js``,
``:default`` omitted).

Invariants: ``canonical_path`` is idempotent, its result always contains exactly one ``:``
after the module path, and every path it returns satisfies the grammar below.

Grammar (the one the Rust client checks before sending):

- module path components match ``[A-Za-z0-9_.]+``, contain an alphanumeric character and are
  at most 64 characters; the only extension allowed (and stripped) is ``.js``;
- the function name matches ``[A-Za-z_][A-Za-z0-9_]*``, is at most 64 characters and is not
  all underscores.
"""

from __future__ import annotations

import functools
import re

from convection.errors import ConvectionError, FunctionNotFound

DEFAULT_EXPORT = "default"
MAX_PATH_COMPONENT_LENGTH = 64

_MODULE_COMPONENT_RE = re.compile(r"[A-Za-z0-9_.]+")
_HAS_ALNUM_RE = re.compile(r"[A-Za-z0-9]")
_FUNCTION_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class InvalidFunctionPath(FunctionNotFound):
    """A function path does not follow the path grammar (so no function can live there)."""

    code = "InvalidFunctionPath"


class InvalidFunctionReference(ConvectionError):
    """Something given where a function reference is expected cannot name a function."""

    code = "InvalidFunctionReference"


def split_path(path: str) -> tuple[str, str]:
    """Parse any accepted spelling of a path into ``(module_path, function_name)``.

    Raises :class:`InvalidFunctionPath` naming the offending part.
    """
    if not isinstance(path, str):
        raise InvalidFunctionPath(
            f"A function path must be a string like 'messages:list', got {type(path).__name__}."
        )
    return _split_str(path)


@functools.lru_cache(maxsize=4096)
def _split_str(path: str) -> tuple[str, str]:
    # Memoized: every call of a function parses its path a few times (routing, cache key);
    # invalid paths raise and are not remembered.
    module, sep, name = path.rpartition(":")
    if not sep:
        module, name = path, DEFAULT_EXPORT
    if module.endswith(".js"):
        module = module[: -len(".js")]
    if not module:
        raise InvalidFunctionPath(
            f"Invalid function path {path!r}: the module path is empty "
            "(expected 'module/path:functionName')."
        )
    for component in module.split("/"):
        _check_module_component(path, component)
    check_function_name(name, path=path)
    return module, name


def _check_module_component(path: str, component: str) -> None:
    if not component:
        raise InvalidFunctionPath(
            f"Invalid function path {path!r}: the module path has an empty component "
            "(leading, trailing or doubled '/')."
        )
    if len(component) > MAX_PATH_COMPONENT_LENGTH:
        raise InvalidFunctionPath(
            f"Invalid function path {path!r}: module path component {component[:20]!r}... is "
            f"longer than {MAX_PATH_COMPONENT_LENGTH} characters."
        )
    if not _MODULE_COMPONENT_RE.fullmatch(component) or not _HAS_ALNUM_RE.search(component):
        raise InvalidFunctionPath(
            f"Invalid function path {path!r}: module path component {component!r} may contain "
            "only letters, digits, '_' and '.', and needs at least one letter or digit."
        )


def check_function_name(name: str, *, path: str | None = None) -> None:
    """Raise :class:`InvalidFunctionPath` unless ``name`` is a valid function name."""
    where = f"Invalid function path {path!r}" if path is not None else "Invalid function name"
    if not name:
        raise InvalidFunctionPath(f"{where}: the function name after ':' is empty.")
    if len(name) > MAX_PATH_COMPONENT_LENGTH:
        raise InvalidFunctionPath(
            f"{where}: function name {name[:20]!r}... is longer than "
            f"{MAX_PATH_COMPONENT_LENGTH} characters."
        )
    if not _FUNCTION_NAME_RE.fullmatch(name) or set(name) == {"_"}:
        raise InvalidFunctionPath(
            f"{where}: function name {name!r} must start with a letter or '_', contain only "
            "ASCII letters, digits and '_', and not be all underscores."
        )


def canonical_path(path: str) -> str:
    """The registry key for any accepted spelling of a path: ``"module/path:name"``.

    ``"orders"`` -> ``"orders:default"``; ``"orders.js:list"`` -> ``"orders:list"``.
    """
    module, name = split_path(path)
    return f"{module}:{name}"


def display_path(path: str) -> str:
    """The stripped form of a path for messages: no ``.js``, ``:default`` omitted.

    A string that is not a valid path is returned unchanged (it is still worth showing).
    """
    try:
        module, name = split_path(path)
    except InvalidFunctionPath:
        return path if isinstance(path, str) else repr(path)
    return module if name == DEFAULT_EXPORT else f"{module}:{name}"
