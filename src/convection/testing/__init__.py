"""Testing support (docs/testing.md): :class:`TestBackend` runs the real engine in-process on a
temporary store for synchronous tests; the pytest plugin (``pytest_plugin.py``, registered as
the ``convection`` pytest11 entry point) provides the ``convection_backend`` fixture.

This package is the top of the layer stack: it wires concretes through
``convection.server.compose.open_deployment`` and may import from every layer.
"""

from __future__ import annotations

from convection.testing.backend import (
    FunctionError,
    IdentityView,
    TestBackend,
    TestClock,
    TestSubscription,
)

__all__ = ["FunctionError", "IdentityView", "TestBackend", "TestClock", "TestSubscription"]
