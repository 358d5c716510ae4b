from __future__ import annotations

from pathlib import Path

import pytest

APP = Path(__file__).parents[1] / "search" / "app" / "convex"


@pytest.fixture
def convection_functions_dir() -> Path:
    """The vector tests share the search tests' app (its ``docs`` table has a vector index)."""
    return APP
