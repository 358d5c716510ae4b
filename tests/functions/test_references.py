from __future__ import annotations

import copy
import inspect
import pickle

import pytest

from convection.errors import ConvectionError
from convection.functions.references import FunctionReference, api, internal


def test_paths_built_by_attribute_access() -> None:
    assert api.orders.get_order.path == "orders:get_order"
    assert api.queries.orders.get_my_orders.path == "queries/orders:get_my_orders"
    assert api.messages.default.path == "messages:default"
    assert internal.sessions.delete_expired.path == "sessions:delete_expired"


def test_visibility_hint() -> None:
    assert api.orders.get_order.visibility_hint == "public"
    assert internal.orders.get_order.visibility_hint == "internal"


def test_equality_and_hash_by_path() -> None:
    assert api.orders.get_order == api.orders.get_order
    assert api.orders.get_order == internal.orders.get_order
    assert api.orders.get_order != api.orders.get_orders
    assert api.messages.default == FunctionReference.from_path("messages.js")
    assert len({api.a.b, api.a.b, FunctionReference.from_path("a:b")}) == 1
    assert api.orders.get_order != "orders:get_order"


def test_repr() -> None:
    assert "orders:get_order" in repr(api.orders.get_order)
    assert repr(api.messages.default).endswith("'messages'>")
    assert "api.orders" in repr(api.orders)


def test_incomplete_reference_has_no_path() -> None:
    with pytest.raises(ConvectionError) as info:
        api.orders.path  # noqa: B018
    assert info.value.code == "InvalidFunctionReference"
    assert "api.orders" in info.value.message
    with pytest.raises(ConvectionError):
        internal.path  # noqa: B018


def test_private_names_are_not_path_parts() -> None:
    for name in ("__wrapped__", "_fields", "__signature__", "_pytestfixturefunction"):
        with pytest.raises(AttributeError):
            getattr(api.orders, name)
    assert not hasattr(api.orders.get, "__wrapped__")
    inspect.unwrap(api.orders.get)  # type: ignore[arg-type]  # does not loop
    assert inspect.isfunction(api.orders.get) is False


def test_item_access_reaches_reserved_names() -> None:
    assert api["path"]["visibility_hint"].path == "path:visibility_hint"
    assert api.files["path"].path == "files:path"


def test_invalid_part_is_reported_when_used() -> None:
    ref = api["my-module"].fn
    with pytest.raises(ConvectionError) as info:
        ref.path  # noqa: B018
    assert info.value.code == "InvalidFunctionPath"


def test_immutable_and_copyable() -> None:
    ref = api.orders.get_order
    with pytest.raises(AttributeError):
        ref.foo = 1
    assert copy.copy(ref) == ref
    assert copy.deepcopy(ref) == ref
    restored = pickle.loads(pickle.dumps(internal.orders.get_order))
    assert restored == ref
    assert restored.visibility_hint == "internal"
