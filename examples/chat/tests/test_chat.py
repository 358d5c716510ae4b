"""Tests of the chat app, run on the real engine by TestBackend (``convection_backend`` comes
from convection's pytest plugin; it finds ../convex by itself)."""

from __future__ import annotations

import pytest

from convection import ConvexError, api
from convection.testing import FunctionError, TestBackend


@pytest.fixture
def backend(convection_backend: TestBackend) -> TestBackend:
    return convection_backend


@pytest.fixture
def general(backend: TestBackend) -> str:
    return backend.mutation(api.channels.create, {"name": "general"})


def send(backend: TestBackend, channel: str, author: str, body: str) -> str:
    message_id = backend.mutation(
        api.messages.send, {"channel": channel, "author": author, "body": body}
    )
    backend.advance_time(1000)  # the next message comes a second later
    return message_id


def page(backend: TestBackend, channel: str, num_items: int, cursor: str | None = None) -> dict:
    return backend.query(
        api.messages.list,
        {"channel": channel, "paginationOpts": {"numItems": num_items, "cursor": cursor}},
    )


def test_channels_are_listed_by_name(backend: TestBackend) -> None:
    assert backend.query(api.channels.list) == []
    backend.mutation(api.channels.create, {"name": "random"})
    backend.mutation(api.channels.create, {"name": " general "})
    assert [c["name"] for c in backend.query(api.channels.list)] == ["general", "random"]


def test_channel_names_are_unique_and_not_empty(backend: TestBackend, general: str) -> None:
    with pytest.raises(ConvexError) as info:
        backend.mutation(api.channels.create, {"name": "general"})
    assert info.value.data["code"] == "NAME_TAKEN"
    with pytest.raises(ConvexError) as info:
        backend.mutation(api.channels.create, {"name": "   "})
    assert info.value.data["code"] == "INVALID_NAME"


def test_send_and_list(backend: TestBackend, general: str) -> None:
    message_id = send(backend, general, "ann", "  hello  ")
    result = page(backend, general, 10)
    assert result["isDone"] is True
    [message] = result["page"]
    assert message["_id"] == message_id
    assert (message["channel"], message["author"], message["body"]) == (general, "ann", "hello")


def test_list_is_newest_first_and_paginates(backend: TestBackend, general: str) -> None:
    for i in range(7):
        send(backend, general, "ann", f"message {i}")
    first = page(backend, general, 3)
    assert [m["body"] for m in first["page"]] == ["message 6", "message 5", "message 4"]
    assert first["isDone"] is False
    second = page(backend, general, 3, first["continueCursor"])
    assert [m["body"] for m in second["page"]] == ["message 3", "message 2", "message 1"]
    third = page(backend, general, 3, second["continueCursor"])
    assert [m["body"] for m in third["page"]] == ["message 0"]
    assert third["isDone"] is True


def test_channels_do_not_mix(backend: TestBackend, general: str) -> None:
    random_channel = backend.mutation(api.channels.create, {"name": "random"})
    send(backend, general, "ann", "in general")
    send(backend, random_channel, "bob", "in random")
    assert [m["body"] for m in page(backend, general, 10)["page"]] == ["in general"]
    assert [m["body"] for m in page(backend, random_channel, 10)["page"]] == ["in random"]


def test_search_by_author_filters(backend: TestBackend, general: str) -> None:
    send(backend, general, "ann", "one")
    send(backend, general, "bob", "two")
    send(backend, general, "ann", "three")
    found = backend.query(api.messages.search_by_author, {"channel": general, "author": "ann"})
    assert [m["body"] for m in found] == ["three", "one"]
    limited = backend.query(
        api.messages.search_by_author, {"channel": general, "author": "ann", "limit": 1}
    )
    assert [m["body"] for m in limited] == ["three"]
    assert backend.query(api.messages.search_by_author, {"channel": general, "author": "eve"}) == []


def test_send_validates_its_input(backend: TestBackend, general: str) -> None:
    for body, code in (("", "EMPTY_MESSAGE"), ("x" * 2001, "MESSAGE_TOO_LONG")):
        with pytest.raises(ConvexError) as info:
            backend.mutation(api.messages.send, {"channel": general, "author": "ann", "body": body})
        assert info.value.data["code"] == code
    with pytest.raises(ConvexError) as info:
        backend.mutation(api.messages.send, {"channel": general, "author": " ", "body": "hi"})
    assert info.value.data["code"] == "INVALID_AUTHOR"
    # Argument validators reject wrong types and ids of other tables before the handler runs.
    with pytest.raises(FunctionError) as error:
        backend.mutation(api.messages.send, {"channel": general, "author": "ann", "body": 42})
    assert error.value.code == "ArgumentValidationError"
    message_id = send(backend, general, "ann", "hi")
    with pytest.raises(FunctionError) as error:
        backend.mutation(api.messages.send, {"channel": message_id, "author": "ann", "body": "hi"})
    assert error.value.code == "ArgumentValidationError"
    with pytest.raises(FunctionError) as error:
        backend.mutation(api.messages.send, {"channel": general, "body": "no author"})
    assert error.value.code == "ArgumentValidationError"
    assert len(backend.table("messages")) == 1


def test_sending_to_a_deleted_channel_fails(backend: TestBackend, general: str) -> None:
    backend.run(lambda ctx: ctx.db.delete(general))
    with pytest.raises(ConvexError) as info:
        backend.mutation(api.messages.send, {"channel": general, "author": "ann", "body": "hi"})
    assert info.value.data["code"] == "NO_SUCH_CHANNEL"


def test_a_subscribed_list_sees_new_messages(backend: TestBackend, general: str) -> None:
    subscription = backend.subscribe(
        api.messages.list, {"channel": general, "paginationOpts": {"numItems": 10, "cursor": None}}
    )
    assert subscription.value["page"] == []
    send(backend, general, "ann", "live!")
    assert [m["body"] for m in subscription.wait_for_change()["page"]] == ["live!"]
