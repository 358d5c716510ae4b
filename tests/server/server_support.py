"""Types shared by the server tests' fixtures (conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

from convection.server.app import Deployment

MakeDeployment = Callable[..., Deployment]
"""``make_deployment(module=source, ..., **open_deployment_kwargs) -> Deployment``."""
