from __future__ import annotations

import pytest

from convection.errors import FunctionNotFound
from convection.functions.paths import (
    InvalidFunctionPath,
    canonical_path,
    display_path,
    split_path,
)
from convection.functions.references import FunctionReference, api, function_path, internal


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("messages:list", "messages:list"),
        ("messages", "messages:default"),
        ("messages.js:list", "messages:list"),
        ("messages.js", "messages:default"),
        ("queries/orders:get_my_orders", "queries/orders:get_my_orders"),
        ("queries/orders.js:get_my_orders", "queries/orders:get_my_orders"),
        ("a.b/c_d:_private_fn", "a.b/c_d:_private_fn"),
        ("2fa:verify", "2fa:verify"),
    ],
)
def test_canonical_path(given: str, canonical: str) -> None:
    assert canonical_path(given) == canonical
    assert canonical_path(canonical) == canonical  # idempotent


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("messages:list", "messages:list"),
        ("messages:default", "messages"),
        ("messages.js:default", "messages"),
        ("messages.js:list", "messages:list"),
        ("messages", "messages"),
        ("queries/orders:get", "queries/orders:get"),
        ("not a path!", "not a path!"),
    ],
)
def test_display_path(given: str, shown: str) -> None:
    assert display_path(given) == shown


@pytest.mark.parametrize(
    ("bad", "mentions"),
    [
        ("", "module path is empty"),
        (":list", "module path is empty"),
        ("messages:", "function name after ':' is empty"),
        ("/messages:list", "empty component"),
        ("a//b:list", "empty component"),
        ("a/:list", "empty component"),
        ("my-module:list", "'my-module'"),
        ("___:list", "'___'"),
        ("messages:1list", "'1list'"),
        ("messages:___", "'___'"),
        ("messages:li-st", "'li-st'"),
        ("a:b:c", "'a:b'"),
        ("m" * 65 + ":list", "longer than 64"),
        ("messages:" + "f" * 65, "longer than 64"),
        ("messages:caf\u00e9", "caf"),
    ],
)
def test_invalid_paths(bad: str, mentions: str) -> None:
    with pytest.raises(InvalidFunctionPath) as info:
        canonical_path(bad)
    assert info.value.code == "InvalidFunctionPath"
    assert isinstance(info.value, FunctionNotFound)
    assert mentions in info.value.message


def test_limits_are_inclusive() -> None:
    assert canonical_path("m" * 64 + ":" + "f" * 64) == "m" * 64 + ":" + "f" * 64


def test_split_path() -> None:
    assert split_path("queries/orders.js") == ("queries/orders", "default")


def test_function_path_accepts_strings_and_references() -> None:
    assert function_path("orders.js:get") == "orders:get"
    assert function_path(api.orders.get) == "orders:get"
    assert function_path(internal.queries.orders.get) == "queries/orders:get"
    assert function_path(FunctionReference.from_path("messages")) == "messages:default"


def test_function_path_rejects_other_things() -> None:
    with pytest.raises(Exception) as info:
        function_path(42)
    assert getattr(info.value, "code", None) == "InvalidFunctionReference"
