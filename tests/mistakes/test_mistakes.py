"""Every common mistake explains itself (issue 17.3): the message names the rule, where it was
broken (``file:line`` of the user's code) and what to do, and the error has a stable code.

The functions of ``app/convex/tasks.py`` each make one mistake, marked ``# MISTAKE: <name>``
on the line the message must point at; they run in the real engine (TestBackend)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from convection.testing import TestBackend

TASKS = Path(__file__).parent / "app" / "convex" / "tasks.py"


def where(mistake: str) -> str:
    """``tasks.py:<line>`` of the line marked ``# MISTAKE: <mistake>``, as messages show it."""
    for number, line in enumerate(TASKS.read_text().splitlines(), start=1):
        if f"# MISTAKE: {mistake}" in line:
            return f"{os.path.relpath(TASKS)}:{number}"
    raise AssertionError(f"no line marked {mistake!r}")


class Failure:
    def __init__(self, code: str | None, message: str) -> None:
        self.code = code
        self.message = message


def fails(backend: TestBackend, kind: str, path: str) -> Failure:
    """Call through the application facade (as the HTTP and sync protocols do): the outcome's
    code and the message a client receives."""
    run = backend.app.run_query if kind == "query" else backend.app.run_action
    outcome = backend.run_async(run(path, {}, backend.identity))
    assert not outcome.success, outcome
    return Failure(outcome.error_code, outcome.error_message)


@pytest.fixture
def backend(convection_backend: TestBackend) -> TestBackend:
    convection_backend.mutation("tasks:add", {"text": "write tests"})
    return convection_backend


def test_a_mutation_called_from_a_query(backend: TestBackend) -> None:
    error = fails(backend, "query", "tasks:calls_mutation")
    assert error.code == "MutationInQuery"
    assert "Queries are read-only" in error.message
    assert where("run_mutation") in error.message
    assert "tasks:calls_mutation" in error.message
    assert "from an action with await ctx.run_mutation" in error.message


def test_an_insert_in_a_query(backend: TestBackend) -> None:
    error = fails(backend, "query", "tasks:inserts")
    assert error.code == "WriteInQuery"
    assert "Queries are read-only: ctx.db.insert" in error.message
    assert where("insert") in error.message
    assert "@mutation" in error.message


def test_a_pythonic_filter(backend: TestBackend) -> None:
    error = fails(backend, "query", "tasks:pythonic_filter")
    assert error.code == "InvalidFilter"
    assert "the lambda never sees a document" in error.message
    assert where("filter") in error.message
    assert "q.eq(q.field('done'), value)" in error.message


def test_a_pythonic_filter_by_attribute(backend: TestBackend) -> None:
    error = fails(backend, "query", "tasks:attribute_filter")
    assert error.code == "InvalidFilter"
    assert "q.done is not a field of a document" in error.message
    assert where("attribute") in error.message
    assert "q.eq(q.field('done'), value)" in error.message


def test_a_python_comparison_in_a_filter(backend: TestBackend) -> None:
    # q.field("done") == False would otherwise be Python's identity test: always False, so
    # the query would silently return nothing.
    error = fails(backend, "query", "tasks:operator_filter")
    assert error.code == "InvalidFilter"
    assert where("operator") in error.message
    assert 'q.eq(q.field("done"), False)' in error.message


def test_a_datetime_returned(backend: TestBackend) -> None:
    error = fails(backend, "query", "tasks:returns_datetime")
    assert error.code == "InvalidValue"
    assert "datetime is not a supported Convex value at due" in error.message
    assert where("datetime") in error.message
    assert "value.timestamp() * 1000" in error.message


def test_a_set_returned(backend: TestBackend) -> None:
    error = fails(backend, "query", "tasks:returns_set")
    assert error.code == "InvalidValue"
    assert "set is not a supported Convex value at tags" in error.message
    assert where("set") in error.message
    assert "sorted(value)" in error.message


def test_a_plain_def_action_calling_run_query(backend: TestBackend) -> None:
    error = fails(backend, "action", "tasks:sync_action")
    assert error.code == "AwaitInSyncAction"
    assert "declared with a plain `def`" in error.message
    assert where("sync action") in error.message
    assert "`async def`" in error.message and "`await ctx.run_query(...)`" in error.message


def test_a_missing_await(backend: TestBackend) -> None:
    error = fails(backend, "action", "tasks:missing_await")
    assert error.code == "MissingAwait"
    assert f"Missing `await` at {where('missing await')}" in error.message
    assert "asyncio" not in error.message  # no frames of the event loop


def test_a_coroutine_returned(backend: TestBackend) -> None:
    error = fails(backend, "action", "tasks:returns_coroutine")
    assert error.code == "InvalidValue"
    assert "did you forget `await`?" in error.message
    assert where("returned coroutine") in error.message


def test_a_vector_index_searched_in_a_query(backend: TestBackend) -> None:
    error = fails(backend, "query", "tasks:vector_in_query")
    assert error.code == "VectorSearchOutsideAction"
    assert "documents.by_embedding is declared as a vector index" in error.message
    assert "vector search runs only in actions" in error.message
    assert where("with_search_index") in error.message
    assert "await ctx.vector_search('documents', 'by_embedding'" in error.message


def test_ctx_vector_search_in_a_query(backend: TestBackend) -> None:
    error = fails(backend, "query", "tasks:vector_search_in_query")
    assert error.code == "VectorSearchOutsideAction"
    assert "Vector search runs only in actions" in error.message
    assert where("ctx.vector_search") in error.message


def test_ctx_db_in_an_action(backend: TestBackend) -> None:
    error = fails(backend, "action", "tasks:db_in_action")
    assert error.code == "DbInAction"
    assert where("db in action") in error.message
    assert "await ctx.run_query" in error.message


def test_the_right_way_still_works(backend: TestBackend) -> None:
    assert [t["text"] for t in backend.query("tasks:list_all", {})] == ["write tests"]
