from __future__ import annotations

from pathlib import Path

import pytest

APP = Path(__file__).parent / "app" / "convex"


@pytest.fixture
def convection_functions_dir() -> Path:
    """The search tests use their own small app (messages, notes, docs)."""
    return APP
