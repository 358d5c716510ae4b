"""TestBackend (API.md §8) driven the way an app's tests use it."""

from __future__ import annotations

import asyncio
import datetime
import importlib.util
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from convection import ConvexError, api, internal
from convection.errors import ModuleLoadError
from convection.testing import FunctionError, TestBackend

APP = Path(__file__).parent / "app" / "convex"


@pytest.fixture
def backend(convection_backend: TestBackend) -> TestBackend:
    return convection_backend


# --- calls ----------------------------------------------------------------------------------


def test_query_mutation_action_by_string_reference_and_function_object(backend: TestBackend) -> None:
    assert backend.query("counter:get", {"name": "a"}) == 0
    assert backend.mutation(api.counter.increment, {"name": "a"}) == 1
    increment = backend.module("counter").increment
    assert backend.mutation(increment, {"name": "a"}) == 2
    assert backend.query(backend.module("counter").get, {"name": "a"}) == 2
    assert backend.action(api.counter.bump, {"name": "a", "times": 3}) == 5
    assert backend.action("counter:sync_total") == "plain def action"


def test_function_objects_imported_by_file_path_are_recognized(backend: TestBackend) -> None:
    # A test may import a module of the functions folder itself: its function objects were
    # never registered by the backend's loader, but their file and name say where they live.
    spec = importlib.util.spec_from_file_location("_counter_copy", APP / "counter.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.increment.path is None
    assert backend.mutation(module.increment, {"name": "z"}) == 1
    assert backend.query(module.get, {"name": "z"}) == 1


def test_args_default_to_empty_object(backend: TestBackend) -> None:
    assert backend.query(internal.notes.count_all) == 0
    assert backend.query("notes:count_all", None) == 0


def test_convex_error_carries_data_and_logs(backend: TestBackend) -> None:
    user = backend.with_identity(subject="ann")
    with pytest.raises(ConvexError) as info:
        user.mutation(api.notes.add, {"text": "  "})
    assert info.value.data == {"code": "EMPTY", "message": "a note needs text"}
    assert info.value.log_lines == ["[LOG] adding   "]  # type: ignore[attr-defined]
    with pytest.raises(ConvexError) as info:
        backend.query(api.notes.mine)  # the backend itself has no user identity
    assert info.value.data == {"code": "UNAUTHENTICATED"}
    assert backend.table("notes") == []  # the failed mutation wrote nothing


def test_other_errors_are_function_errors_with_the_message(backend: TestBackend) -> None:
    with pytest.raises(FunctionError, match="kaboom") as info:
        backend.mutation(api.notes.explode)
    assert info.value.code == "FunctionError"
    assert info.value.error_type == "RuntimeError"
    assert any("about to fail" in line for line in info.value.log_lines)


def test_argument_and_return_validation(backend: TestBackend) -> None:
    user = backend.with_identity(subject="ann")
    with pytest.raises(FunctionError) as info:
        user.mutation(api.notes.add, {"text": 5})
    assert info.value.code == "ArgumentValidationError"
    assert "text" in info.value.message
    with pytest.raises(FunctionError) as info:
        user.mutation(api.notes.add, {"text": "x", "extra": 1})
    assert info.value.code == "ArgumentValidationError"
    with pytest.raises(FunctionError) as info:
        backend.query(api.notes.wrong_return)
    assert info.value.code == "ReturnsValidationError"


def test_unknown_function_and_wrong_kind(backend: TestBackend) -> None:
    with pytest.raises(FunctionError) as info:
        backend.query("notes:nope")
    assert info.value.code == "FunctionNotFound"
    with pytest.raises(FunctionError) as info:
        backend.mutation(api.counter.get, {"name": "a"})
    assert info.value.code == "WrongFunctionKind"
    with pytest.raises(FunctionError) as info:
        backend.query("not a path!")
    assert info.value.code in ("FunctionNotFound", "InvalidFunctionPath")


def test_internal_functions_are_reachable_from_tests(backend: TestBackend) -> None:
    backend.mutation(internal.notes.add_for, {"owner": "x", "text": "hi"})
    assert backend.query(internal.notes.count_all) == 1
    user = backend.with_identity(subject="ann")
    assert user.query(internal.notes.count_all) == 1
    assert user.action(api.counter.bump, {"name": "n", "times": 1}) == 1
    assert backend.action(api.counter.notes_total) == 1


# --- identity -------------------------------------------------------------------------------


def test_with_identity_sets_user_identity(backend: TestBackend) -> None:
    assert backend.query(api.notes.whoami) is None
    ann = backend.with_identity(
        subject="ann", issuer="https://auth.example", email="ann@example.com", given_name="Ann", role="admin"
    )
    assert ann.query(api.notes.whoami) == {
        "subject": "ann",
        "issuer": "https://auth.example",
        "tokenIdentifier": "https://auth.example|ann",
        "email": "ann@example.com",
        "givenName": "Ann",
        "role": "admin",
    }
    default = backend.with_identity()
    who = default.query(api.notes.whoami)
    assert who["tokenIdentifier"] == "https://convection.test|test-user"


def test_identities_see_their_own_data(backend: TestBackend) -> None:
    ann = backend.with_identity(subject="ann")
    bob = backend.with_identity(subject="bob")
    ann.mutation(api.notes.add, {"text": "ann's"})
    bob.mutation(api.notes.add, {"text": "bob's"})
    assert [n["text"] for n in ann.query(api.notes.mine)] == ["ann's"]
    assert [n["text"] for n in bob.query(api.notes.mine)] == ["bob's"]
    assert ann.backend is backend


# --- subscriptions --------------------------------------------------------------------------


def test_subscription_value_follows_commits(backend: TestBackend) -> None:
    sub = backend.subscribe(api.counter.get, {"name": "a"})
    assert sub.value == 0
    backend.mutation(api.counter.increment, {"name": "a"})
    assert sub.value == 1
    backend.mutation(api.counter.increment, {"name": "a"})
    assert sub.wait_for_change() == 2


def test_wait_for_change_returns_next_result(backend: TestBackend) -> None:
    sub = backend.subscribe(api.counter.get, {"name": "a"})
    backend.mutation(api.counter.increment, {"name": "a"})
    assert sub.wait_for_change() == 1
    # A write outside the read set does not change the result: nothing to wait for.
    backend.mutation(api.counter.increment, {"name": "b"})
    with pytest.raises(TimeoutError):
        sub.wait_for_change(timeout=0)
    assert sub.value == 1


def test_wait_for_change_is_woken_by_a_commit_from_another_thread(backend: TestBackend) -> None:
    sub = backend.subscribe(api.counter.get, {"name": "a"})
    started = threading.Event()

    def writer() -> None:
        started.wait()
        backend.mutation(api.counter.increment, {"name": "a"})

    thread = threading.Thread(target=writer)
    thread.start()
    started.set()
    try:
        assert sub.wait_for_change(timeout=30) == 1
    finally:
        thread.join()


def test_updates_iterates_changes(backend: TestBackend) -> None:
    user = backend.with_identity(subject="ann")
    with user.subscribe(api.notes.mine) as sub:
        assert sub.value == []
        updates = sub.updates()
        user.mutation(api.notes.add, {"text": "one"})
        assert [n["text"] for n in next(updates)] == ["one"]
        user.mutation(api.notes.add, {"text": "two"})
        assert [n["text"] for n in next(updates)] == ["one", "two"]


def test_subscription_to_a_failing_query_raises_on_value(backend: TestBackend) -> None:
    sub = backend.subscribe(api.notes.mine)
    with pytest.raises(ConvexError):
        _ = sub.value
    assert sub.outcome.success is False
    sub.close()
    sub.close()


def test_action_commits_invalidate_subscriptions(backend: TestBackend) -> None:
    sub = backend.subscribe(api.counter.get, {"name": "c"})
    backend.action(api.counter.bump, {"name": "c", "times": 2})
    assert sub.wait_for_change() == 2


# --- time and scheduler hooks ---------------------------------------------------------------


def test_manual_clock(backend: TestBackend) -> None:
    t0 = backend.query(api.notes.now)
    assert t0 == backend.now_ms()
    assert backend.query(api.notes.now) == t0  # time does not move by itself
    sub = backend.subscribe(api.notes.now)
    backend.advance_time(1500)
    assert backend.query(api.notes.now) == t0 + 1500
    assert sub.wait_for_change() == t0 + 1500
    backend.advance_time(datetime.timedelta(seconds=2))
    assert backend.query(api.notes.now) == t0 + 3500
    with pytest.raises(ValueError):
        backend.advance_time(-1)


def test_start_time_is_configurable() -> None:
    with TestBackend(APP, start_time_ms=1_000_000.0) as b:
        assert b.query(api.notes.now) == 1_000_000.0
        b.mutation(api.counter.increment, {"name": "a"})
        assert b.table("counters")[0]["_creationTime"] >= 1_000_000.0


def test_finish_scheduled_functions_runs_hooks_until_idle(backend: TestBackend) -> None:
    assert backend.finish_scheduled_functions() == 0  # no scheduler installed
    pending = [3]

    def hook(b: TestBackend) -> int:
        assert b is backend
        if pending[0] == 0:
            return 0
        pending[0] -= 1
        b.mutation(api.counter.increment, {"name": "sched"})
        return 1

    async def async_hook(b: TestBackend) -> int:
        outcome = await b.app.run_query("counter:get", {"name": "sched"}, b.identity)
        seen.append(outcome.value)
        return 0

    seen: list[float] = []
    backend.scheduler_hooks.append(hook)
    backend.scheduler_hooks.append(async_hook)
    assert backend.finish_scheduled_functions() == 3
    assert backend.query(api.counter.get, {"name": "sched"}) == 3
    assert seen == [1, 2, 3, 3]


def test_finish_scheduled_functions_gives_up_on_endless_scheduling(backend: TestBackend) -> None:
    backend.scheduler_hooks.append(lambda b: 1)
    with pytest.raises(FunctionError) as info:
        backend.finish_scheduled_functions(max_rounds=5)
    assert info.value.code == "TooManyRounds"


def test_time_hooks_run_after_the_clock_moved(backend: TestBackend) -> None:
    start = backend.now_ms()
    seen: list[float] = []
    backend.time_hooks.append(lambda b: seen.append(b.now_ms()))
    backend.advance_time(10)
    assert seen == [start + 10]


# --- data helpers ---------------------------------------------------------------------------


def test_run_table_and_get(backend: TestBackend) -> None:
    note_id = backend.run(
        lambda ctx: ctx.db.insert("notes", {"owner": "x", "text": "seeded", "done": False})
    )
    assert backend.get(note_id)["text"] == "seeded"
    backend.mutation(api.notes.finish, {"id": note_id})
    assert [(n["text"], n["done"]) for n in backend.table("notes")] == [("seeded", True)]
    assert backend.run(lambda ctx: ctx.db.get(note_id)["done"]) is True
    assert backend.table("nonexistent") == []
    ann = backend.with_identity(subject="ann")
    assert ann.run(lambda ctx: ctx.auth.get_user_identity().subject) == "ann"


def test_run_rejects_coroutine_functions(backend: TestBackend) -> None:
    async def seed(ctx: object) -> None:
        return None

    with pytest.raises(TypeError):
        backend.run(seed)


# --- lifecycle ------------------------------------------------------------------------------


def test_close_deletes_the_store_and_is_idempotent() -> None:
    backend = TestBackend(APP)
    data_dir = backend.data_dir
    backend.mutation(api.counter.increment, {"name": "a"})
    assert data_dir.exists()
    backend.close()
    backend.close()
    assert backend.closed
    assert not data_dir.exists()
    with pytest.raises(Exception) as info:
        backend.query(api.counter.get, {"name": "a"})
    assert getattr(info.value, "code", None) == "BackendClosed"


def test_backends_are_isolated() -> None:
    with TestBackend(APP) as one, TestBackend(APP) as two:
        one.mutation(api.counter.increment, {"name": "a"})
        assert one.query(api.counter.get, {"name": "a"}) == 1
        assert two.query(api.counter.get, {"name": "a"}) == 0


def test_missing_folder_raises_module_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModuleLoadError):
        TestBackend(tmp_path / "nope")


async def test_usable_from_async_tests(backend: TestBackend) -> None:
    await asyncio.sleep(0)  # running inside the test's own event loop
    assert backend.mutation(api.counter.increment, {"name": "a"}) == 1


def test_not_collected_as_a_test_class() -> None:
    assert TestBackend.__test__ is False


# --- the pytest plugin ----------------------------------------------------------------------


def _project(root: Path) -> None:
    for folder, answer in (("convex", "default"), ("other", "option"), ("from_ini", "ini")):
        (root / folder).mkdir()
        (root / folder / "where.py").write_text(
            "from convection import query\n\n\n"
            f"@query\ndef name(ctx):\n    return {answer!r}\n"
        )
    (root / "tests").mkdir()
    (root / "tests" / "test_where.py").write_text(
        textwrap.dedent(
            """
            import os

            def test_where(convection_backend):
                assert convection_backend.query("where:name") == os.environ["EXPECTED"]
            """
        )
    )


@pytest.mark.parametrize(
    ("extra_args", "ini", "expected"),
    [
        ([], None, "default"),
        (["--convection-functions", "other"], None, "option"),
        ([], "from_ini", "ini"),
    ],
)
def test_plugin_finds_the_functions_folder(
    tmp_path: Path, extra_args: list[str], ini: str | None, expected: str
) -> None:
    _project(tmp_path)
    lines = ["[pytest]", "filterwarnings = error", "asyncio_default_fixture_loop_scope = function"]
    if ini is not None:
        lines.append(f"convection_functions = {ini}")
    (tmp_path / "pytest.ini").write_text("\n".join(lines) + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra_args],
        cwd=tmp_path,
        env={**__import__("os").environ, "EXPECTED": expected},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
