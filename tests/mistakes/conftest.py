from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def convection_functions_dir() -> Path:
    return Path(__file__).parent / "app" / "convex"
