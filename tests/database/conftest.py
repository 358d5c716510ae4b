"""Database fixtures: ``db`` is a Database on SQLite and, again, on PostgreSQL (a fresh schema
on the session's throwaway server, see tests/conftest.py; skipped without PostgreSQL), so
every test taking ``db`` runs on both stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from convection.database import Database
from convection.persistence.base import Persistence
from convection.persistence.sqlite import SqlitePersistence


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "db.sqlite3"


@pytest.fixture(params=["sqlite", "postgres"])
def persistence(request: pytest.FixtureRequest, db_path: Path) -> Persistence:
    if request.param == "postgres":
        from convection.persistence.postgres import PostgresPersistence

        return PostgresPersistence(request.getfixturevalue("postgres_store_url"))
    return SqlitePersistence(db_path)


@pytest.fixture
def db(persistence: Persistence) -> Iterator[Database]:
    database = Database(persistence, secret=b"test-secret")
    yield database
    database.close()
