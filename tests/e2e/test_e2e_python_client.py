"""The official PyPI `convex` client (0.8.1) against the real server: ConvexClient (WebSocket,
the bundled Rust client) and ConvexHttpClient (HTTP)."""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from convex import ConvexClient, ConvexError, ConvexInt64
from convex.http_client import ConvexHttpClient

T = TypeVar("T")
TIMEOUT_S = 20.0


def within(fn: Callable[[], T], timeout: float = TIMEOUT_S) -> T:
    """Run a blocking client call in a thread, so a hang fails the test instead of the run."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        pytest.fail(f"client call did not return within {timeout}s")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def client(server_url: str) -> ConvexClient:
    return ConvexClient(server_url)


@pytest.fixture(scope="module")
def http(server_url: str) -> ConvexHttpClient:
    return ConvexHttpClient(server_url)


def typed_args() -> dict[str, Any]:
    return {
        "i": ConvexInt64(5),
        "big": ConvexInt64(-(2**63)),
        "b": b"\x01\x02\x03\xff",
        "nan": float("nan"),
        "negzero": -0.0,
        "inf": float("inf"),
        "n": 3,
        "nested": {"list": [ConvexInt64(1), b"", "s"]},
    }


def assert_typed_echo(value: dict[str, Any]) -> None:
    assert value["i"] == ConvexInt64(5)
    assert isinstance(value["i"], ConvexInt64)
    assert value["big"] == ConvexInt64(-(2**63))
    assert value["b"] == b"\x01\x02\x03\xff"
    assert math.isnan(value["nan"])
    assert value["negzero"] == 0.0
    assert math.copysign(1.0, value["negzero"]) == -1.0
    assert value["inf"] == float("inf")
    assert value["n"] == 3.0  # Python ints travel as float64
    assert value["nested"] == {"list": [ConvexInt64(1), b"", "s"]}


def test_ws_query_mutation_action(client: ConvexClient) -> None:
    author = f"py-{uuid.uuid4()}"
    assert within(lambda: client.query("messages:by_author", {"author": author})) == []
    doc_id = within(lambda: client.mutation("messages:send", {"body": "from python", "author": author}))
    assert isinstance(doc_id, str)
    assert within(lambda: client.query("messages:by_author", {"author": author})) == ["from python"]
    count = len(within(lambda: client.query("messages:list")))
    result = within(lambda: client.action("messages:act", {"x": 1}))
    assert result["x"] == 1.0
    assert result["count"] >= count
    # A default export: "messages" is "messages:default".
    assert within(lambda: client.query("messages")) == "the default export"


def test_ws_typed_values(client: ConvexClient) -> None:
    assert_typed_echo(within(lambda: client.query("messages:echo", typed_args())))
    assert_typed_echo(within(lambda: client.mutation("messages:echo_mutation", typed_args())))
    assert_typed_echo(within(lambda: client.action("messages:echo_action", typed_args())))
    typed = within(lambda: client.query("messages:typed"))
    assert typed["i"] == ConvexInt64(5)
    assert typed["b"] == b"\x01\x02\x03"
    assert math.isnan(typed["nan"])
    assert math.copysign(1.0, typed["negzero"]) == -1.0


def test_ws_errors(client: ConvexClient) -> None:
    with pytest.raises(ConvexError) as query_error:
        within(lambda: client.query("messages:fail_query"))
    assert query_error.value.data == "bad"
    with pytest.raises(ConvexError) as mutation_error:
        within(lambda: client.mutation("messages:fail_convex", {"code": "PY"}))
    assert mutation_error.value.data == {"code": "PY"}
    with pytest.raises(Exception, match="Uncaught ValueError: nope") as plain:
        within(lambda: client.mutation("messages:fail"))
    assert not isinstance(plain.value, ConvexError)
    with pytest.raises(Exception, match="Could not find public function for 'messages:secret'"):
        within(lambda: client.mutation("messages:secret"))
    with pytest.raises(Exception, match="Trying to execute messages:list as Mutation, but it is defined as Query"):
        within(lambda: client.mutation("messages:list"))
    # The client is still usable afterwards.
    assert within(lambda: client.query("messages:default")) == "the default export"


def test_ws_subscribe_sees_other_clients_writes(server_url: str, http: ConvexHttpClient) -> None:
    subscriber = ConvexClient(server_url)
    author = f"py-sub-{uuid.uuid4()}"
    subscription = subscriber.subscribe("messages:by_author", {"author": author})
    updates = iter(subscription)
    assert within(lambda: next(updates)) == []
    http.mutation("messages:send", {"body": "one", "author": author})
    assert within(lambda: next(updates)) == ["one"]
    # A second WebSocket client writes too.
    writer = ConvexClient(server_url)
    within(lambda: writer.mutation("messages:send", {"body": "two", "author": author}))
    assert within(lambda: next(updates)) == ["one", "two"]
    subscription.unsubscribe()


def test_ws_subscription_error(client: ConvexClient) -> None:
    subscription = client.subscribe("messages:fail_query")
    with pytest.raises(ConvexError) as error:
        within(lambda: next(iter(subscription)))
    assert error.value.data == "bad"


def test_http_client(http: ConvexHttpClient) -> None:
    author = f"py-http-{uuid.uuid4()}"
    assert isinstance(http.mutation("messages:send", {"body": "h", "author": author}), str)
    assert http.query("messages:by_author", {"author": author}) == ["h"]
    assert http.action("messages:act", {"x": 2})["x"] == 2.0
    assert http.query("messages") == "the default export"
    assert_typed_echo(http.query("messages:echo", typed_args()))
    assert_typed_echo(http.mutation("messages:echo_mutation", typed_args()))
    assert_typed_echo(http.action("messages:echo_action", typed_args()))
    # The PyPI HTTP client passes errorData through undecoded.
    with pytest.raises(ConvexError) as query_error:
        http.query("messages:fail_query")
    assert query_error.value.data == "bad"
    with pytest.raises(ConvexError) as mutation_error:
        http.mutation("messages:fail_convex", {"code": "H"})
    assert mutation_error.value.data == {"code": "H"}
    with pytest.raises(Exception, match="Uncaught ValueError: nope"):
        http.mutation("messages:fail")
    with pytest.raises(Exception, match="Could not find public function for 'messages:secret'"):
        http.mutation("messages:secret")
    with pytest.raises(Exception, match="Trying to execute messages:send as Action, but it is defined as Mutation"):
        http.action("messages:send", {"body": "x"})
