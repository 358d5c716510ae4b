from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from convection.database import Database
from convection.persistence.sqlite import SqlitePersistence


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "db.sqlite3"


@pytest.fixture
def db(db_path: Path) -> Iterator[Database]:
    database = Database(SqlitePersistence(db_path), secret=b"test-secret")
    yield database
    database.close()
