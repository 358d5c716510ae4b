"""Persistence: the durable, ordered store under the database (docs/internals/transactions.md).

The :class:`Persistence` protocol (``base.py``) and its implementations: SQLite (the default,
``sqlite.py``), PostgreSQL (``postgres.py``, imported only when used) and in-memory
(``memory.py``, for tests). :func:`open_persistence` maps a ``--db`` style location to an
implementation; it is the only place that knows the schemes.
"""

from __future__ import annotations

from pathlib import Path

from convection.errors import ConvectionError, MissingExtra
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
    * ``postgres://`` / ``postgresql://`` (a libpq URL, e.g.
      ``postgres://user:password@host:5432/dbname``, plus an optional ``?schema=name``) ->
      :class:`~convection.persistence.postgres.PostgresPersistence`.

    ``synchronous`` is the SQLite durability mode (see :class:`SqlitePersistence`); a
    PostgreSQL store's durability is the server's ``synchronous_commit``.
    """
    if isinstance(location, Path):
        return SqlitePersistence(location, synchronous=synchronous)
    if location == "memory:":
        return MemoryPersistence()
    if location.startswith(("postgres://", "postgresql://")):
        # Imported here: psycopg loads libpq, which SQLite users never need.
        try:
            from convection.persistence.postgres import PostgresPersistence
        except ImportError as exc:
            if not str(exc.name or "").startswith("psycopg"):
                raise
            raise MissingExtra("A PostgreSQL database (--db postgres://...)", "psycopg", "postgres") from None

        return PostgresPersistence(location)
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
            "sqlite:///path, postgres://user@host:port/dbname or memory:",
            code="UnsupportedStorage",
        )
    return SqlitePersistence(location, synchronous=synchronous)
