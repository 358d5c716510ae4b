"""The official npm clients (convex 1.48.0) under Node against the real server:
ConvexClient (WebSocket), ConvexHttpClient (HTTP) and ConvexReactClient (WebSocket through
the `ws` package). The scripts are in tests/e2e/js; they print what they saw as JSON."""

from __future__ import annotations

from typing import Any

from conftest import NodeRunner

TYPED_ECHO = {
    "b": {"$bytes": [1, 2, 3, 255]},
    "big": {"$bigint": "-9223372036854775808"},
    "empty": {"$bytes": []},
    "f": 1.5,
    "i": {"$bigint": "5"},
    "inf": {"$number": "Infinity"},
    "max": {"$bigint": "9223372036854775807"},
    "nan": {"$number": "NaN"},
    "negzero": {"$number": "-0"},
    "nested": {"list": [{"$bigint": "1"}, {"$number": "NaN"}, {"$number": "-0"}, {"$bytes": [9]}], "s": "x"},
    "ninf": {"$number": "-Infinity"},
}
TYPED_RESULT = {
    "b": {"$bytes": [1, 2, 3]},
    "big": {"$bigint": "-9223372036854775808"},
    "i": {"$bigint": "5"},
    "nan": {"$number": "NaN"},
    "negzero": {"$number": "-0"},
}


def function_error(outcome: dict[str, Any], text: str) -> None:
    assert outcome["ok"] is False, outcome
    assert text in outcome["error"]["message"], outcome
    assert outcome["error"]["hasData"] is False, outcome


def test_convex_client(server_url: str, node: NodeRunner) -> None:
    r = node.run("convex_client.mjs", server_url)

    # Subscribe, mutate, see the update: when the mutation promise resolves, onUpdate has
    # already delivered the result containing the write.
    assert r["initial"] == []
    assert r["sendResultIsString"] is True
    assert r["visibleWhenResolved"] == ["hello"]
    assert r["currentValueWhenResolved"] == ["hello"]
    assert r["afterOtherClient"] == ["hello", "from c2"]
    assert r["valuesSeen"] == [[], ["hello"], ["hello", "from c2"]]
    assert r["oneShot"] == ["hello", "from c2"]

    # ConvexError data from a query (one-shot and subscribed) and a mutation.
    assert r["queryConvexError"]["ok"] is False
    assert r["queryConvexError"]["error"]["name"] == "ConvexError"
    assert r["queryConvexError"]["error"]["data"] == "bad"
    assert r["queryErrorInstanceOfConvexError"] is True
    assert r["subscriptionConvexError"] == {"isConvexError": True, "data": "bad"}
    assert r["mutationConvexError"]["isConvexError"] is True
    assert r["mutationConvexError"]["data"] == {"code": "E42"}
    function_error(r["mutationPlainError"], "Uncaught ValueError: nope")

    # int64 (bigint), bytes (ArrayBuffer), NaN, -0, ±Infinity as args and results.
    assert r["echoQuery"] == TYPED_ECHO
    assert r["echoMutation"] == TYPED_ECHO
    assert r["echoAction"] == TYPED_ECHO
    assert r["putResult"] == TYPED_ECHO
    assert r["storedViaSubscription"] == TYPED_ECHO
    assert r["typedResult"] == TYPED_RESULT

    # An action calling a query.
    assert r["actionResult"]["x"] == 7
    assert r["actionResult"]["count"] >= r["listLengthBeforeAction"]

    # A default export: api.messages.default is the function name "messages".
    assert r["defaultExport"] == {"ok": True, "value": "the default export"}

    # Internal, unknown and wrong-kind calls are function errors.
    function_error(r["internalMutation"], "Could not find public function for 'messages:secret'.")
    function_error(r["unknownQuery"], "Could not find public function for 'nope:nothing'.")
    function_error(r["unknownMutation"], "Could not find public function for 'nope:nothing'.")
    function_error(
        r["mutationOnQuery"], "Trying to execute messages:list as Mutation, but it is defined as Query."
    )
    function_error(
        r["queryOnMutation"], "Trying to execute messages:send as Query, but it is defined as Mutation."
    )
    function_error(
        r["actionOnQuery"], "Trying to execute messages:list as Action, but it is defined as Query."
    )
    function_error(r["argValidation"], "ArgumentValidationError")

    # ... none of which disturbed the connection.
    assert r["afterErrors"] == ["hello", "from c2", "after errors"]
    assert r["socketsOpened"] == 1
    assert r["closes"] == []
    assert r["fatalErrors"] == []
    assert r["firstClientMessage"] == "Connect"


def test_http_client(server_url: str, node: NodeRunner) -> None:
    r = node.run("http_client.mjs", server_url)
    assert r["mutation"] == "string"
    assert r["query"] == ["via http"]
    assert r["consistentQuery"] == ["via http"]
    assert r["action"]["x"] == 3
    assert r["action"]["count"] >= r["listLength"] - 1
    typed = {
        "b": {"$bytes": [1, 2, 3]},
        "big": {"$bigint": "-9223372036854775808"},
        "i": {"$bigint": "5"},
        "nan": {"$number": "NaN"},
        "negzero": {"$number": "-0"},
        "nested": [{"x": {"$bigint": "7"}}],
    }
    assert r["echoQuery"] == typed
    assert r["echoMutation"] == typed
    assert r["echoAction"] == typed
    assert r["typed"] == TYPED_RESULT
    assert r["queryConvexError"] == {"isConvexError": True, "data": "bad"}
    assert r["mutationConvexError"] == {"isConvexError": True, "data": {"code": "HTTP"}}
    function_error(r["mutationPlainError"], "Uncaught ValueError: nope")
    assert r["defaultExport"] == {"ok": True, "value": "the default export"}
    function_error(r["internalMutation"], "Could not find public function for 'messages:secret'.")
    function_error(r["unknownQuery"], "Could not find public function for 'nope:nothing'.")
    function_error(
        r["mutationOnQuery"], "Trying to execute messages:list as Mutation, but it is defined as Query."
    )
    function_error(
        r["actionOnMutation"], "Trying to execute messages:send as Action, but it is defined as Mutation."
    )


def test_react_client_under_node(server_url: str, node: NodeRunner) -> None:
    r = node.run("react_client.mjs", server_url)
    assert r["initial"] == []
    # The mutation resolved after its result was in the local query result.
    assert r["afterMutation"] == ["one"]
    # The optimistic update showed at once, and was replaced (not duplicated) by the server's.
    assert r["optimisticSeen"] == ["one", "two"]
    assert r["afterOptimisticMutation"] == ["one", "two"]
    assert r["oneShot"] == ["one", "two"]
    assert r["action"] == {"n": {"$bigint": "1"}}
    assert r["seen"][0] == []
    assert r["seen"][-1] == ["one", "two"]
    assert all(value.count("two") <= 1 for value in r["seen"])
