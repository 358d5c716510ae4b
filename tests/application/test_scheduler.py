"""Scheduled functions (SEMANTICS.md §6.1): ctx.scheduler in mutations and actions, the
executor's exactly-once / at-most-once guarantees, cancel, limits, retention. Driven with the
TestBackend's manual clock: nothing here sleeps."""

from __future__ import annotations

import asyncio
import datetime
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from convection import knobs
from convection.application.app import Application
from convection.clock import ManualClock
from convection.database import Database
from convection.database.retry import run_in_transaction
from convection.database.transaction import SystemView
from convection.errors import ConvectionError, ConvexError
from convection.functions.identity import Identity
from convection.functions.loader import load_app
from convection.model.scheduled_jobs import (
    SCHEDULED_FUNCTIONS_TABLE,
    JobState,
    ScheduledJobs,
)
from convection.persistence.sqlite import SqlitePersistence
from convection.server.compose import build_application
from convection.testing import TestBackend
from convection.testing.backend import FunctionError

JOBS = '''
import datetime
from convection import ConvexError, action, internal, internal_action, internal_mutation, mutation, query, v

HOOKS = []  # callables run once by slow_log (a concurrent commit "during" the mutation)


@internal_mutation(args={"name": v.string()})
def log_event(ctx, name):
    ident = ctx.auth.get_user_identity()
    mine = [d for d in ctx.db.system.query("_scheduled_functions").collect() if d["name"] == "jobs:log_event"]
    ctx.db.insert("events", {"name": name, "user": None if ident is None else ident.subject,
                             "states": [d["state"]["kind"] for d in mine]})
    print("logged", name)
    return name


@internal_mutation(args={"name": v.string()})
def slow_log(ctx, name):
    while HOOKS:
        HOOKS.pop()()
    ctx.db.insert("events", {"name": name})


@internal_mutation(args={"name": v.string()})
def failing(ctx, name):
    ctx.db.insert("events", {"name": name})
    raise RuntimeError("boom " + name)


@internal_mutation
def big_args(ctx, **args):
    ctx.db.insert("events", {"name": "big", "size": len(args["blob"])})


@mutation(args={"name": v.string(), "delay": v.any()})
def schedule(ctx, name, delay):
    return ctx.scheduler.run_after(delay, internal.jobs.log_event, {"name": name})


@mutation(args={"name": v.string(), "when": v.any()})
def schedule_at(ctx, name, when):
    return ctx.scheduler.run_at(when, "jobs:log_event", {"name": name})


@mutation(args={"name": v.string()})
def schedule_then_fail(ctx, name):
    ctx.scheduler.run_after(0, internal.jobs.log_event, {"name": name})
    raise ConvexError("no")


@mutation(args={"path": v.string(), "name": v.string()})
def schedule_path(ctx, path, name):
    return ctx.scheduler.run_after(0, path, {"name": name})


@mutation(args={"id": v.id("_scheduled_functions")})
def cancel(ctx, id):
    ctx.scheduler.cancel(id)


@internal_mutation(args={"n": v.number()})
def chain(ctx, n):
    ctx.db.insert("events", {"name": f"chain{int(n)}"})
    if n > 0:
        ctx.scheduler.run_after(1000, internal.jobs.chain, {"n": n - 1})


@query(args={"id": v.id("_scheduled_functions")})
def job(ctx, id):
    return ctx.db.system.get(id)


@query
def jobs(ctx):
    return ctx.db.system.query("_scheduled_functions").collect()


@query
def events(ctx):
    return [e["name"] for e in ctx.db.query("events").collect()]


@action(args={"name": v.string()})
async def schedule_from_action(ctx, name):
    job_id = await ctx.scheduler.run_after(datetime.timedelta(seconds=1), internal.jobs.log_event, {"name": name})
    raise RuntimeError("the action fails, the job stays")


@action(args={"id": v.string()})
async def cancel_from_action(ctx, id):
    await ctx.scheduler.cancel(id)


@internal_action(args={"name": v.string()})
async def act(ctx, name):
    await ctx.run_mutation(internal.jobs.log_event, {"name": name})
    return name


@internal_action(args={"name": v.string()})
async def act_failing(ctx, name):
    raise ValueError("action " + name)


@internal_mutation
def cancel_running_acts(ctx):
    for d in ctx.db.system.query("_scheduled_functions").collect():
        if d["name"] == "jobs:act_cancels_itself" and d["state"]["kind"] == "inProgress":
            ctx.scheduler.cancel(d["_id"])


@internal_action
async def act_cancels_itself(ctx):
    await ctx.run_mutation(internal.jobs.cancel_running_acts, {})
    # The job is canceled now: what it schedules is born canceled; it keeps running.
    await ctx.scheduler.run_after(0, internal.jobs.log_event, {"name": "child"})
    await ctx.run_mutation(internal.jobs.log_event, {"name": "after cancel"})


@mutation
def schedule_act_cancels_itself(ctx):
    return ctx.scheduler.run_after(0, internal.jobs.act_cancels_itself, {})


@mutation(args={"name": v.string()})
def schedule_action(ctx, name):
    return ctx.scheduler.run_after(0, internal.jobs.act, {"name": name})


@mutation(args={"name": v.string()})
def schedule_failing(ctx, name):
    return ctx.scheduler.run_after(0, internal.jobs.failing, {"name": name})


@mutation(args={"name": v.string()})
def schedule_failing_action(ctx, name):
    return ctx.scheduler.run_after(0, internal.jobs.act_failing, {"name": name})
'''


def write_app(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "jobs.py").write_text(textwrap.dedent(JOBS))
    return folder


START = 1_704_067_200_000.0  # 2024-01-01T00:00:00Z


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[TestBackend]:
    with TestBackend(write_app(tmp_path / "convex"), start_time_ms=START) as b:
        yield b


def job_doc(backend: TestBackend, job_id: str) -> dict[str, Any]:
    doc = backend.query("jobs:job", {"id": job_id})
    assert doc is not None
    return doc  # type: ignore[no-any-return]


def state(backend: TestBackend, job_id: str) -> str:
    return job_doc(backend, job_id)["state"]["kind"]  # type: ignore[no-any-return]


# --- scheduling from mutations ----------------------------------------------------------------


def test_run_after_from_a_mutation_runs_when_due(backend: TestBackend) -> None:
    job_id = backend.mutation("jobs:schedule", {"name": "a", "delay": 1500.0})
    doc = job_doc(backend, job_id)
    assert doc["name"] == "jobs:log_event"
    assert doc["args"] == [{"name": "a"}]
    assert doc["scheduledTime"] == START + 1500
    assert doc["state"] == {"kind": "pending"}
    assert "completedTime" not in doc
    assert backend.query("jobs:jobs")[0]["_id"] == job_id

    backend.advance_time(1499)
    assert backend.query("jobs:events") == []
    backend.advance_time(1)
    assert backend.query("jobs:events") == ["a"]
    doc = job_doc(backend, job_id)
    assert doc["state"] == {"kind": "success"}
    assert doc["completedTime"] == START + 1500
    # The mutation saw itself in progress (staged in its own transaction).
    assert backend.table("events")[0]["states"] == ["inProgress"]
    backend.advance_time(10_000)
    assert backend.query("jobs:events") == ["a"]  # exactly once


def test_time_forms(backend: TestBackend) -> None:
    a = backend.mutation("jobs:schedule", {"name": "int", "delay": 10})
    b = backend.mutation("jobs:schedule", {"name": "neg", "delay": -50})
    c = backend.mutation("jobs:schedule_at", {"name": "at", "when": START + 20})
    d = backend.mutation("jobs:schedule_at", {"name": "past", "when": START - 1000})
    assert [job_doc(backend, j)["scheduledTime"] for j in (a, b, c, d)] == [START + 10, START, START + 20, START - 1000]

    def direct(ctx: Any) -> list[str]:
        s = ctx.scheduler
        return [
            s.run_after(datetime.timedelta(seconds=2), "jobs:log_event", {"name": "td"}),
            s.run_at(datetime.datetime(2024, 1, 1, 0, 0, 3, tzinfo=datetime.UTC), "jobs:log_event", {"name": "dt"}),
            s.run_at(datetime.datetime(2024, 1, 1, 0, 0, 4), "jobs:log_event", {"name": "naive"}),
        ]

    ids = backend.run(direct)
    assert [job_doc(backend, j)["scheduledTime"] for j in ids] == [START + 2000, START + 3000, START + 4000]
    backend.advance_time(0)
    assert sorted(backend.query("jobs:events")) == ["neg", "past"]
    assert backend.finish_scheduled_functions() == 5
    assert backend.query("jobs:events")[2:] == ["int", "at", "td", "dt", "naive"]
    assert backend.now_ms() == START + 4000


@pytest.mark.parametrize("bad", ["soon", True, float("nan"), float("inf"), None])
def test_bad_times_are_rejected(backend: TestBackend, bad: Any) -> None:
    with pytest.raises(ConvectionError) as info:
        backend.run(lambda ctx: ctx.scheduler.run_after(bad, "jobs:log_event", {"name": "x"}))
    assert info.value.code == "InvalidSchedulerCall"
    with pytest.raises(ConvectionError) as info:
        backend.run(lambda ctx: ctx.scheduler.run_at(bad, "jobs:log_event", {"name": "x"}))
    assert info.value.code == "InvalidSchedulerCall"


def test_bad_references_and_arguments_are_rejected(backend: TestBackend) -> None:
    for ref in ("jobs:events", "jobs:nope", "nope"):
        with pytest.raises(ConvectionError) as info:
            backend.run(lambda ctx, ref=ref: ctx.scheduler.run_after(0, ref, {}))
        assert info.value.code == "InvalidSchedulerCall"
    with pytest.raises(ConvectionError) as info:
        backend.run(lambda ctx: ctx.scheduler.run_after(0, "jobs:log_event", ["not", "an", "object"]))
    assert info.value.code == "InvalidSchedulerCall"
    with pytest.raises(FunctionError) as err:
        backend.mutation("jobs:schedule_path", {"path": "jobs:events", "name": "q"})
    assert "only mutations and actions can be scheduled" in err.value.message
    assert backend.query("jobs:jobs") == []


def test_a_failing_mutation_schedules_nothing(backend: TestBackend) -> None:
    with pytest.raises(ConvexError):
        backend.mutation("jobs:schedule_then_fail", {"name": "x"})
    assert backend.query("jobs:jobs") == []
    assert backend.finish_scheduled_functions() == 0
    assert backend.query("jobs:events") == []


def test_scheduled_functions_run_without_identity(backend: TestBackend) -> None:
    backend.with_identity(subject="alice").mutation("jobs:schedule", {"name": "u", "delay": 0})
    backend.finish_scheduled_functions()
    assert backend.table("events")[0]["user"] is None


def test_limits_per_mutation(backend: TestBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(knobs, "SCHEDULER_MAX_SCHEDULED_PER_MUTATION_COUNT", 3)

    def many(ctx: Any) -> None:
        for i in range(4):
            ctx.scheduler.run_after(0, "jobs:log_event", {"name": str(i)})

    with pytest.raises(ConvectionError) as info:
        backend.run(many)
    assert info.value.code == "TooManyFunctionsScheduled"
    assert backend.query("jobs:jobs") == []

    monkeypatch.setattr(knobs, "SCHEDULER_MAX_SCHEDULED_PER_MUTATION_COUNT", 1000)
    monkeypatch.setattr(knobs, "SCHEDULER_MAX_ARGS_PER_MUTATION_BYTES", 250)

    def total(ctx: Any) -> None:
        for _ in range(3):
            ctx.scheduler.run_after(0, "jobs:log_event", {"name": "x" * 100})

    with pytest.raises(ConvectionError) as info:
        backend.run(total)
    assert info.value.code == "ScheduledFunctionsArgumentsTooLarge"

    monkeypatch.setattr(knobs, "SCHEDULER_MAX_JOB_ARGS_BYTES", 50)
    with pytest.raises(ConvectionError) as info:
        backend.run(lambda ctx: ctx.scheduler.run_after(0, "jobs:log_event", {"name": "x" * 100}))
    assert info.value.code == "ScheduledFunctionArgumentsTooLarge"


def test_large_arguments_are_stored_beside_the_job(backend: TestBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(knobs, "SCHEDULER_INLINE_ARGS_MAX_BYTES", 100)
    blob = "y" * 600_000  # more than one chunk
    job_id = backend.run(lambda ctx: ctx.scheduler.run_after(0, "jobs:big_args", {"blob": blob}))
    assert "args" not in job_doc(backend, job_id)
    backend.finish_scheduled_functions()
    assert state(backend, job_id) == "success"
    assert backend.table("events")[0]["size"] == 600_000


# --- scheduling from actions ------------------------------------------------------------------


def test_scheduling_from_an_action_is_immediate(backend: TestBackend) -> None:
    with pytest.raises(FunctionError):
        backend.action("jobs:schedule_from_action", {"name": "from action"})
    [doc] = backend.query("jobs:jobs")
    assert doc["scheduledTime"] == START + 1000
    backend.advance_time(1000)
    assert backend.query("jobs:events") == ["from action"]

    job_id = backend.mutation("jobs:schedule", {"name": "later", "delay": 5000})
    backend.action("jobs:cancel_from_action", {"id": job_id})
    assert state(backend, job_id) == "canceled"


# --- the executor -----------------------------------------------------------------------------


def test_jobs_scheduled_by_jobs(backend: TestBackend) -> None:
    backend.run(lambda ctx: ctx.scheduler.run_after(0, "jobs:chain", {"n": 3}))
    assert backend.finish_scheduled_functions() == 4
    assert backend.query("jobs:events") == ["chain3", "chain2", "chain1", "chain0"]
    assert backend.now_ms() == START + 3000
    assert {d["state"]["kind"] for d in backend.query("jobs:jobs")} == {"success"}


def test_user_error_records_failed_and_discards_writes(backend: TestBackend) -> None:
    job_id = backend.mutation("jobs:schedule_failing", {"name": "f"})
    backend.finish_scheduled_functions()
    doc = job_doc(backend, job_id)
    assert doc["state"]["kind"] == "failed"
    assert "boom f" in doc["state"]["error"]
    assert not doc["state"]["error"].startswith("[Request ID")
    assert doc["completedTime"] == START
    assert backend.query("jobs:events") == []
    backend.advance_time(60_000)
    assert backend.query("jobs:events") == []  # never retried


def test_cancel_before_the_run(backend: TestBackend) -> None:
    job_id = backend.mutation("jobs:schedule", {"name": "c", "delay": 1000})
    backend.mutation("jobs:cancel", {"id": job_id})
    doc = job_doc(backend, job_id)
    assert doc["state"] == {"kind": "canceled"} and doc["completedTime"] == START
    assert backend.finish_scheduled_functions() == 0
    backend.advance_time(5000)
    assert backend.query("jobs:events") == []
    backend.mutation("jobs:cancel", {"id": job_id})  # canceling again is a no-op
    assert state(backend, job_id) == "canceled"


def test_cancel_during_a_mutation_run_wins(backend: TestBackend) -> None:
    """A cancel that commits while the scheduled mutation runs makes its commit conflict;
    the retry sees the job canceled and does not run it: no writes, no success."""
    job_id = backend.run(lambda ctx: ctx.scheduler.run_after(0, "jobs:slow_log", {"name": "s"}))

    def cancel_now() -> None:
        run_in_transaction(backend.db, lambda txn: ScheduledJobs(SystemView(txn)).cancel(job_id, backend.now_ms()))

    backend.module("jobs").HOOKS.append(cancel_now)
    backend.finish_scheduled_functions()
    assert state(backend, job_id) == "canceled"
    assert backend.query("jobs:events") == []


def test_a_conflicting_scheduled_mutation_is_retried_and_runs_once(backend: TestBackend) -> None:
    job_id = backend.run(lambda ctx: ctx.scheduler.run_after(0, "jobs:slow_log", {"name": "s"}))

    def touch_job() -> None:  # a concurrent write of the job row the run has read
        def patch(txn: Any) -> None:
            SystemView(txn).patch(job_id, {"state": {"kind": "pending"}})

        run_in_transaction(backend.db, patch)

    backend.module("jobs").HOOKS.append(touch_job)
    backend.finish_scheduled_functions()
    assert state(backend, job_id) == "success"
    assert backend.query("jobs:events") == ["s"]


def test_cancel_during_an_action_run(backend: TestBackend) -> None:
    job_id = backend.mutation("jobs:schedule_act_cancels_itself", {})
    backend.finish_scheduled_functions()
    assert state(backend, job_id) == "canceled"  # stays canceled after the action finished
    assert backend.query("jobs:events") == ["after cancel"]  # it kept running
    [child] = [d for d in backend.query("jobs:jobs") if d["name"] == "jobs:log_event"]
    assert child["state"] == {"kind": "canceled"}  # what it scheduled is canceled


def test_scheduled_actions(backend: TestBackend) -> None:
    ok = backend.mutation("jobs:schedule_action", {"name": "act"})
    bad = backend.mutation("jobs:schedule_failing_action", {"name": "x"})
    assert backend.finish_scheduled_functions() == 2
    assert state(backend, ok) == "success"
    assert backend.query("jobs:events") == ["act"]
    doc = job_doc(backend, bad)
    assert doc["state"]["kind"] == "failed" and "action x" in doc["state"]["error"]


def test_action_at_most_once_after_a_crash(backend: TestBackend) -> None:
    """A job left inProgress (the process died mid-action) is recorded failed, not re-run."""
    job_id = backend.mutation("jobs:schedule_action", {"name": "crashed"})
    run_in_transaction(backend.db, lambda txn: ScheduledJobs(SystemView(txn)).mark_in_progress(job_id))
    assert state(backend, job_id) == "inProgress"
    backend.advance_time(0)
    doc = job_doc(backend, job_id)
    assert doc["state"] == {"kind": "failed", "error": "Transient error while executing action"}
    assert backend.query("jobs:events") == []
    assert backend.finish_scheduled_functions() == 0


def test_finished_jobs_are_pruned_after_the_retention(backend: TestBackend) -> None:
    done = backend.mutation("jobs:schedule", {"name": "old", "delay": 0})
    backend.advance_time(0)
    assert state(backend, done) == "success"
    backend.advance_time(knobs.SCHEDULED_JOB_RETENTION_MS - 1)
    assert backend.query("jobs:job", {"id": done}) is not None
    pending = backend.mutation("jobs:schedule", {"name": "far", "delay": 10**12})
    backend.advance_time(knobs.SCHEDULER_PRUNE_INTERVAL_MS)
    assert backend.query("jobs:job", {"id": done}) is None
    assert state(backend, pending) == "pending"  # pending jobs are never pruned


def test_parallel_runs_are_bounded(backend: TestBackend) -> None:
    executor = backend.app.scheduler
    executor.parallelism = 2
    for i in range(5):
        backend.mutation("jobs:schedule", {"name": str(i), "delay": 0})
    assert backend.finish_scheduled_functions() == 5
    assert sorted(backend.query("jobs:events")) == ["0", "1", "2", "3", "4"]


# --- the background loop ----------------------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Application]:
    db = Database(SqlitePersistence(tmp_path / "db.sqlite3"), clock=ManualClock(START), secret=b"s")
    application = build_application(db, load_app(write_app(tmp_path / "convex")))
    yield application
    application.close()
    db.close()


async def _wait_for_events(app: Application, count: int) -> list[str]:
    """Wait (on invalidations, not sleeps) until the events table has ``count`` rows."""
    loop = asyncio.get_running_loop()
    while True:
        txn = app.db.begin(read_only=True)
        names = [d["name"] for d in app.db.query(txn, "events")]
        if len(names) >= count:
            return names
        woken = asyncio.Event()
        sub = app.db.subscribe(txn.reads.freeze(), txn.begin_ts)
        sub.set_callback(lambda: loop.call_soon_threadsafe(woken.set))
        try:
            await asyncio.wait_for(woken.wait(), 30)
        finally:
            sub.close()


async def test_the_loop_wakes_up_on_new_jobs_and_stops(app: Application) -> None:
    await app.start()
    try:
        out = await app.run_mutation("jobs:schedule", {"name": "bg", "delay": 0}, Identity(kind="admin"))
        assert out.success
        assert await _wait_for_events(app, 1) == ["bg"]
    finally:
        await app.stop()
    txn = app.db.begin(read_only=True)
    job = ScheduledJobs(SystemView(txn)).get(out.value)
    assert job is not None and job.state is JobState.SUCCESS
    assert txn.db.catalog.table_number(SCHEDULED_FUNCTIONS_TABLE) is not None
