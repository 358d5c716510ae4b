from __future__ import annotations

from typing import Any

import pytest

from convection.functions.decorators import ConvexFunction, http_action, query
from convection.functions.http_router import HttpRouter, InvalidHttpRoute


async def _handler(ctx: Any, request: Any) -> Any:
    return None


def _router() -> tuple[HttpRouter, dict[str, ConvexFunction]]:
    http = HttpRouter()
    handlers: dict[str, ConvexFunction] = {}

    @http.route(path="/files/special", method="GET")
    async def special(ctx: Any, request: Any) -> Any:
        return None

    handlers["special"] = special
    handlers["files"] = http.route(path_prefix="/files/", method="GET", handler=http_action(_handler))
    handlers["files_deep"] = http.route(
        path_prefix="/files/deep/", method="GET", handler=http_action(_handler)
    )
    handlers["post"] = http.route(path="/webhook", method="post", handler=_handler)
    return http, handlers


def test_route_as_decorator_returns_http_action() -> None:
    http, handlers = _router()
    special = handlers["special"]
    assert isinstance(special, ConvexFunction)
    assert special.kind == "httpAction"
    assert special.is_async
    route = http.lookup("GET", "/files/special")
    assert route is not None and route.handler is special
    assert route.pattern == "/files/special"


def test_lookup_exact_then_longest_prefix() -> None:
    http, handlers = _router()
    route = http.lookup("GET", "/files/a/b.txt")
    assert route is not None and route.handler is handlers["files"]
    assert route.is_prefix and route.pattern == "/files/*"
    deep = http.lookup("GET", "/files/deep/x")
    assert deep is not None and deep.handler is handlers["files_deep"]
    assert http.lookup("GET", "/files") is None  # the prefix ends with '/'
    assert http.lookup("POST", "/files/a") is None
    assert http.lookup("GET", "/nothing") is None


def test_head_runs_get_and_methods_are_case_insensitive() -> None:
    http, handlers = _router()
    head = http.lookup("HEAD", "/files/special")
    assert head is not None and head.handler is handlers["special"]
    post = http.lookup("post", "/webhook")
    assert post is not None and post.method == "POST"


def test_routes_listing() -> None:
    http, _ = _router()
    assert [r.pattern for r in http.routes()] == [
        "/files/special",
        "/webhook",
        "/files/*",
        "/files/deep/*",
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"path": "/x", "method": "HEAD"},
        {"path": "/x", "method": "TRACE"},
        {"path": "x", "method": "GET"},
        {"path_prefix": "/x", "method": "GET"},
        {"path_prefix": "x/", "method": "GET"},
        {"method": "GET"},
        {"path": "/x", "path_prefix": "/x/", "method": "GET"},
    ],
)
def test_invalid_routes(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidHttpRoute) as info:
        HttpRouter().route(handler=_handler, **kwargs)
    assert info.value.code == "InvalidHttpRoute"


def test_duplicate_routes_rejected() -> None:
    http, _ = _router()
    with pytest.raises(InvalidHttpRoute, match="twice"):
        http.route(path="/webhook", method="POST", handler=_handler)
    with pytest.raises(InvalidHttpRoute, match="twice"):
        http.route(path_prefix="/files/", method="GET", handler=_handler)
    http.route(path="/webhook", method="PUT", handler=_handler)  # other method: fine


def test_handler_must_be_async_http_action() -> None:
    def sync_handler(ctx: Any, request: Any) -> Any:
        return None

    with pytest.raises(Exception) as info:
        HttpRouter().route(path="/x", method="GET", handler=sync_handler)
    assert getattr(info.value, "code", None) == "InvalidFunctionDefinition"

    @query
    def a_query(ctx: Any) -> None:
        return None

    with pytest.raises(InvalidHttpRoute, match="query"):
        HttpRouter().route(path="/x", method="GET", handler=a_query)
