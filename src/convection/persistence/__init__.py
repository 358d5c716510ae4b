"""Persistence: the durable, ordered store under the database (SEMANTICS.md §1.1).

The :class:`Persistence` protocol (``base.py``) and its implementations: SQLite (the default,
``sqlite.py``) and in-memory (``memory.py``, for tests). :func:`open_persistence` maps a
``--db`` style location to an implementation; it is the only place that knows the schemes.
"""

from __future__ import annotations

from pathlib import Path

from convection.errors import ConvectionError
from convection.persistence.base import DocumentRevision, IndexEntry, Persistence
from convection.persistence.memory import MemoryPersistence
from convection.persistence.sqlite import SqlitePersistence

__all__ = [
    "DocumentRevision",
    "IndexEntry",
    "MemoryPersistence",
    "Persistence",
    "SqlitePersistence",
    "open_persistence",
]


def open_persistence(location: str | Path, *, synchronous: str = "NORMAL") -> Persistence:
    """Open the store at ``location``.

    * ``memory:`` -> a fresh :class:`MemoryPersistence`;
    * ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (SQLAlchemy style:
      everything after ``sqlite:///``) or a plain path -> :class:`SqlitePersistence`;
    * ``postgres://`` / ``postgresql://`` -> not supported yet.

    ``synchronous`` is the SQLite durability mode (see :class:`SqlitePersistence`).
    """
    if isinstance(location, Path):
        return SqlitePersistence(location, synchronous=synchronous)
    if location == "memory:":
        return MemoryPersistence()
    if location.startswith(("postgres://", "postgresql://")):
        raise ConvectionError(
            "PostgreSQL persistence is not yet supported; use a SQLite file path "
            "(or sqlite:///path) for now",
            code="UnsupportedStorage",
        )
    if location.startswith("sqlite:"):
        if not location.startswith("sqlite:///") or location == "sqlite:///":
            raise ConvectionError(
                f"{location!r} is not a SQLite URL; write sqlite:///relative/path.db or "
                "sqlite:////absolute/path.db",
                code="InvalidArgument",
            )
        return SqlitePersistence(location[len("sqlite:///") :], synchronous=synchronous)
    scheme, sep, _ = location.partition("://")
    if sep and scheme.isidentifier():
        raise ConvectionError(
            f"unknown storage URL scheme {scheme!r} in {location!r}; use a file path, "
            "sqlite:///path or memory:",
            code="UnsupportedStorage",
        )
    return SqlitePersistence(location, synchronous=synchronous)
