"""The HTTP router of ``convex/http.py``: which HTTP action answers which method and path.

Routes are exact paths (``path="/stripe/webhook"``) or path prefixes
(``path_prefix="/files/"``, matching every path that starts with it). :meth:`HttpRouter.lookup`
tries the exact route first, then the longest matching prefix. ``HEAD`` is answered by the
``GET`` route (the server drops the body). Executing the handler is the server's job.

Invariants: a (method, path) and a (method, prefix) pair are routed at most once; paths
start with ``/``; prefixes start and end with ``/``; methods are upper case and one of
:data:`ROUTABLE_METHODS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, overload

from convection.errors import ConvectionError
from convection.functions.decorators import ConvexFunction, Handler, http_action

ROUTABLE_METHODS: tuple[str, ...] = ("GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")


class InvalidHttpRoute(ConvectionError):
    """An ``http.route(...)`` call is malformed or routes a (method, path) twice."""

    code = "InvalidHttpRoute"


@dataclass(frozen=True)
class HttpRoute:
    """One routed HTTP action. ``pattern`` is the path, or the prefix followed by ``*``."""

    method: str
    path: str
    is_prefix: bool
    handler: ConvexFunction

    @property
    def pattern(self) -> str:
        return self.path + "*" if self.is_prefix else self.path


class HttpRouter:
    """The routing table built by ``convex/http.py`` (``http = HttpRouter()``).

    Filled while the module is imported; read by the server afterwards.
    """

    def __init__(self) -> None:
        self._exact: dict[tuple[str, str], HttpRoute] = {}
        self._prefixes: dict[tuple[str, str], HttpRoute] = {}

    @overload
    def route(
        self,
        *,
        method: str,
        handler: ConvexFunction | Handler,
        path: str | None = None,
        path_prefix: str | None = None,
    ) -> ConvexFunction: ...

    @overload
    def route(
        self,
        *,
        method: str,
        handler: None = None,
        path: str | None = None,
        path_prefix: str | None = None,
    ) -> Callable[[Handler], ConvexFunction]: ...

    def route(
        self,
        *,
        method: str,
        handler: ConvexFunction | Handler | None = None,
        path: str | None = None,
        path_prefix: str | None = None,
    ) -> ConvexFunction | Callable[[Handler], ConvexFunction]:
        """Route ``method`` + ``path`` (or ``path_prefix``) to an HTTP action.

        With ``handler=`` the route is added at once and the HTTP action returned; without,
        this returns a decorator for ``async def handler(ctx, request)``.
        """
        norm_method, key_path, is_prefix = self._check(method, path, path_prefix)
        if handler is not None:
            return self._add(norm_method, key_path, is_prefix, handler)

        def decorate(fn: Handler) -> ConvexFunction:
            return self._add(norm_method, key_path, is_prefix, fn)

        return decorate

    def _check(
        self, method: Any, path: str | None, path_prefix: str | None
    ) -> tuple[str, str, bool]:
        if not isinstance(method, str) or method.upper() not in ROUTABLE_METHODS:
            extra = " (HEAD is answered by the GET route)" if method == "HEAD" else ""
            raise InvalidHttpRoute(
                f"{method!r} is not an allowed HTTP method; use one of "
                f"{', '.join(ROUTABLE_METHODS)}{extra}."
            )
        if (path is None) == (path_prefix is None):
            raise InvalidHttpRoute(
                "http.route(...) needs exactly one of path='/exact' or path_prefix='/prefix/'."
            )
        if path is not None:
            if not isinstance(path, str) or not path.startswith("/"):
                raise InvalidHttpRoute(f"HTTP route path {path!r} must start with '/'.")
            return method.upper(), path, False
        assert path_prefix is not None
        if (
            not isinstance(path_prefix, str)
            or not path_prefix.startswith("/")
            or not path_prefix.endswith("/")
        ):
            raise InvalidHttpRoute(
                f"HTTP route path_prefix {path_prefix!r} must start and end with '/'."
            )
        return method.upper(), path_prefix, True

    def _add(
        self, method: str, path: str, is_prefix: bool, handler: ConvexFunction | Handler
    ) -> ConvexFunction:
        if isinstance(handler, ConvexFunction) and handler.kind != "httpAction":
            raise InvalidHttpRoute(
                f"The handler of {method} {path} is a {handler.kind} ({handler!r}); routes take "
                "HTTP actions: 'async def handler(ctx, request)' or http_action(...)."
            )
        function = http_action(handler)
        table = self._prefixes if is_prefix else self._exact
        if (method, path) in table:
            kind = "path_prefix" if is_prefix else "path"
            raise InvalidHttpRoute(f"HTTP {kind} {path!r} for method {method} is routed twice.")
        table[(method, path)] = HttpRoute(method, path, is_prefix, function)
        return function

    def lookup(self, method: str, path: str) -> HttpRoute | None:
        """The route answering ``method path``: exact path first, then the longest prefix."""
        method = method.upper()
        if method == "HEAD":
            method = "GET"
        exact = self._exact.get((method, path))
        if exact is not None:
            return exact
        best: HttpRoute | None = None
        for (route_method, prefix), route in self._prefixes.items():
            if (
                route_method == method
                and path.startswith(prefix)
                and (best is None or len(prefix) > len(best.path))
            ):
                best = route
        return best

    def routes(self) -> list[HttpRoute]:
        """Every route: exact ones sorted by (path, method), then prefixes likewise."""
        exact = sorted(self._exact.values(), key=lambda r: (r.path, r.method))
        prefixes = sorted(self._prefixes.values(), key=lambda r: (r.path, r.method))
        return exact + prefixes

    def __repr__(self) -> str:
        return f"<HttpRouter {len(self._exact) + len(self._prefixes)} routes>"
