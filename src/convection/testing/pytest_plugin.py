"""The pytest plugin of convection (entry point ``pytest11: convection``).

Fixtures:

* ``convection_backend``: a fresh :class:`~convection.testing.TestBackend` per test, closed
  (and its temporary store deleted) after it;
* ``convection_functions_dir``: the functions folder that backend loads. Override it in a
  ``conftest.py`` to point somewhere else.

Which folder (first match wins):

1. the ``--convection-functions DIR`` command-line option (relative to the invocation
   directory);
2. the ``convection_functions`` ini option (relative to the ini file's directory, else the
   rootdir);
3. the nearest ``convex/`` folder found walking up from the test file's directory to the
   rootdir (so ``myapp/tests/test_x.py`` finds ``myapp/convex``; with tests beside the
   project root this is ``<rootdir>/convex``).

Importing this module is cheap: the engine is imported only when the fixture is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from convection.testing.backend import TestBackend

OPTION = "--convection-functions"
INI = "convection_functions"
DEFAULT_FOLDER = "convex"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("convection")
    group.addoption(
        OPTION,
        action="store",
        dest="convection_functions",
        default=None,
        metavar="DIR",
        help="Functions folder loaded by the convection_backend fixture "
        "(default: the nearest 'convex' folder above the test file).",
    )
    parser.addini(
        INI,
        help="Functions folder loaded by the convection_backend fixture, relative to the ini "
        "file (default: the nearest 'convex' folder above the test file).",
        default=None,
    )


def resolve_functions_dir(config: pytest.Config, start: Path | None) -> Path:
    """The functions folder for a test whose file is in ``start`` (see module docstring).

    Raises ``pytest.UsageError`` when nothing is configured and no ``convex/`` folder exists.
    """
    option = config.getoption("convection_functions", default=None)
    if option:
        return (Path(config.invocation_params.dir) / str(option)).resolve()
    ini = config.getini(INI)
    if ini:
        base = Path(config.inipath).parent if config.inipath is not None else Path(config.rootpath)
        return (base / str(ini)).resolve()
    root = Path(config.rootpath).resolve()
    if start is not None:
        here = start.resolve()
        while True:
            candidate = here / DEFAULT_FOLDER
            if candidate.is_dir():
                return candidate
            if here == root or here.parent == here:
                break
            here = here.parent
    fallback = root / DEFAULT_FOLDER
    if fallback.is_dir():
        return fallback
    raise pytest.UsageError(
        f"convection_backend: no functions folder: pass {OPTION} DIR, set "
        f"'{INI} = \"DIR\"' in the pytest ini options, or override the "
        "'convection_functions_dir' fixture (no 'convex' folder was found above "
        f"{start or root})."
    )


@pytest.fixture
def convection_functions_dir(request: pytest.FixtureRequest) -> Path:
    """The functions folder ``convection_backend`` loads (override to choose another)."""
    return resolve_functions_dir(request.config, Path(request.path).parent)


@pytest.fixture
def convection_backend(convection_functions_dir: Path) -> Iterator[TestBackend]:
    """A fresh TestBackend on ``convection_functions_dir``, closed after the test."""
    from convection.testing.backend import TestBackend

    backend = TestBackend(convection_functions_dir)
    try:
        yield backend
    finally:
        backend.close()
