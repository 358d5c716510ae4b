"""``GET /metrics``: the deployment's metrics in the Prometheus text format
(``application/metrics.py``; docs/metrics.md).

On by default. When the environment variable ``CONVECTION_METRICS_TOKEN`` is set (read when
the app is built) every scrape must send ``Authorization: Bearer <token>``; others get 401
``Unauthorized``. The admin key is deliberately not accepted: a scraper should hold a
credential that can read counters and nothing else.
"""

from __future__ import annotations

import hmac
import os

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from convection.application.app import Application
from convection.application.metrics import CONTENT_TYPE, Metrics, SyncSource
from convection.server.http_api import error_response

METRICS_TOKEN_ENV = "CONVECTION_METRICS_TOKEN"


class MetricsEndpoint:
    """The ``/metrics`` handler of one deployment; ``token`` None means no authentication."""

    def __init__(self, metrics: Metrics, token: str | None) -> None:
        self.metrics = metrics
        self.token = token or None

    def authorized(self, request: Request) -> bool:
        if self.token is None:
            return True
        header = request.headers.get("authorization") or ""
        scheme, _, value = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self.token.encode())

    async def handle(self, request: Request) -> Response:
        if not self.authorized(request):
            response = error_response(
                401,
                "Unauthorized",
                f"/metrics needs 'Authorization: Bearer <token>' with the token set in {METRICS_TOKEN_ENV} "
                "on the server",
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        return Response(self.metrics.render(), media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})


def metrics_routes(
    app: Application, sync: SyncSource | None, version: str, *, token: str | None = None
) -> list[Route]:
    """The ``/metrics`` route; ``token`` defaults to ``$CONVECTION_METRICS_TOKEN``."""
    if token is None:
        token = os.environ.get(METRICS_TOKEN_ENV) or None
    endpoint = MetricsEndpoint(Metrics(app, sync=sync, version=version), token)
    return [Route("/metrics", endpoint.handle, methods=["GET"])]
