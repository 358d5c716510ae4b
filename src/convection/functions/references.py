"""Function references: ``api.<module path parts>.<name>`` and ``internal....``.

Attribute access on :data:`api` / :data:`internal` builds an immutable
:class:`FunctionReference`; all parts but the last form the module path (``/``-joined) and
the last is the function name, so ``api.queries.orders.get_my_orders`` names
``"queries/orders:get_my_orders"`` and ``api.messages.default`` names ``"messages:default"``
(displayed ``"messages"``). Nothing is looked up when a reference is built; the path is
checked against the registry only when the reference is used.

Names starting with ``_`` are never path parts (``__wrapped__``, ``_fields`` and whatever
else introspection probes raise ``AttributeError``). ``path`` and ``visibility_hint`` are the
reference's own attributes; a module or function with one of those names is reached with
item access: ``api["path"].get``.
"""

from __future__ import annotations

from typing import Any, Literal

from convection.errors import ConvectionError
from convection.functions.decorators import ConvexFunction
from convection.functions.paths import (
    DEFAULT_EXPORT,
    InvalidFunctionReference,
    canonical_path,
    split_path,
)

VisibilityHint = Literal["public", "internal"]


class FunctionReference:
    """A name for a function, built from ``api``/``internal`` or from a path string.

    ``visibility_hint`` records which root it was built from; the registry, not the hint,
    decides what the function is. Equality and hashing go by canonical path.
    """

    __slots__ = ("_parts", "_visibility")

    _parts: tuple[str, ...]
    _visibility: VisibilityHint

    def __init__(
        self, parts: tuple[str, ...] = (), visibility_hint: VisibilityHint = "public"
    ) -> None:
        object.__setattr__(self, "_parts", tuple(parts))
        object.__setattr__(self, "_visibility", visibility_hint)

    @classmethod
    def from_path(
        cls, path: str, visibility_hint: VisibilityHint = "public"
    ) -> FunctionReference:
        """A reference to ``path`` (any accepted spelling; validated here)."""
        module, name = split_path(path)
        return cls((*module.split("/"), name), visibility_hint)

    @property
    def path(self) -> str:
        """The canonical path ``"module/path:name"``."""
        if len(self._parts) < 2:
            root = "api" if self._visibility == "public" else "internal"
            found = ".".join((root, *self._parts))
            raise InvalidFunctionReference(
                f"A function reference has the form {root}.module.function_name "
                f"(or {root}.folder.module.function_name); got {found}."
            )
        return canonical_path("/".join(self._parts[:-1]) + ":" + self._parts[-1])

    @property
    def visibility_hint(self) -> VisibilityHint:
        return self._visibility

    @property
    def parts(self) -> tuple[str, ...]:
        return self._parts

    def __getattr__(self, name: str) -> FunctionReference:
        if name.startswith("_"):
            raise AttributeError(name)
        return FunctionReference((*self._parts, name), self._visibility)

    def __getitem__(self, name: str) -> FunctionReference:
        if not isinstance(name, str) or not name:
            raise InvalidFunctionReference(
                f"A function reference part must be a non-empty string, got {name!r}."
            )
        return FunctionReference((*self._parts, name), self._visibility)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("FunctionReference is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("FunctionReference is immutable")

    def _key(self) -> tuple[str, ...] | str:
        try:
            return self.path
        except ConvectionError:
            return self._parts

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FunctionReference):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self) -> tuple[type[FunctionReference], tuple[tuple[str, ...], str]]:
        return (FunctionReference, (self._parts, self._visibility))

    def __repr__(self) -> str:
        root = "api" if self._visibility == "public" else "internal"
        dotted = ".".join((root, *self._parts))
        try:
            path = self.path
        except ConvectionError:
            return f"<FunctionReference {dotted}>"
        module, _, name = path.rpartition(":")
        shown = module if name == DEFAULT_EXPORT else path
        return f"<FunctionReference {dotted} -> {shown!r}>"


api = FunctionReference((), "public")
"""References to public functions: ``api.orders.get_order``."""

internal = FunctionReference((), "internal")
"""References to internal functions: ``internal.sessions.delete_expired``."""


def function_path(ref: Any) -> str:
    """The canonical path of anything that names a function.

    Accepts a path string, a :class:`FunctionReference`
    (``api.orders.get_order``) or a decorated function object that the loader has registered.
    """
    if isinstance(ref, str):
        return canonical_path(ref)
    if isinstance(ref, FunctionReference):
        return ref.path
    if isinstance(ref, ConvexFunction):
        if ref.path is None:
            raise InvalidFunctionReference(
                f"The {ref.kind} {ref.__qualname__!r} (defined in {ref.__module__}) has no "
                "path: only functions bound to a module-level name in a module of the loaded "
                "functions folder have one. Pass a reference (api.module.name) or a path "
                "string instead."
            )
        return ref.path
    raise InvalidFunctionReference(
        f"Expected a function reference (api.module.name), a decorated function or a path "
        f"string like 'messages:list', got {type(ref).__name__}."
    )
