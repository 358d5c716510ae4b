"""Short queries and mutations run on the event loop (application/inline.py): same answers,
commits awaited, a conflicting or lane-blocked attempt redone in the pool, a slow function
sent back to the pool, a runaway inline query still ended by its time limit."""

from __future__ import annotations

import asyncio
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from convection import knobs
from convection.application.inline import InlinePolicy
from convection.application.interface import ANONYMOUS
from convection.server.app import Deployment, open_deployment

FUNCTIONS = '''
from convection import mutation, query

@query
def count(ctx, spin=False):
    while spin:
        pass
    return len(ctx.db.query("things").collect())

@mutation
def add(ctx, x):
    return ctx.db.insert("things", {"x": x})
'''


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    folder = tmp_path / "convex"
    folder.mkdir()
    (folder / "calls.py").write_text(textwrap.dedent(FUNCTIONS))
    dep = open_deployment(folder, tmp_path / "data")
    # A generous bound, so a loaded test machine does not keep the short calls in the pool;
    # the runaway query below (300 ms time limit) still exceeds it.
    dep.app.inline.max_s = 0.2
    yield dep
    dep.close()


async def _learn(dep: Deployment) -> None:
    """Enough short runs of both paths that the policy runs them inline."""
    app = dep.app
    for i in range(5):
        assert (await app.run_mutation("calls:add", {"x": i}, ANONYMOUS)).success
        assert (await app.run_query("calls:count", {}, ANONYMOUS)).success
    assert app.inline.allows("calls:add") and app.inline.allows("calls:count")


async def test_short_calls_run_inline_with_the_same_answers(deployment: Deployment) -> None:
    app = deployment.app
    await _learn(deployment)
    before = app.inline.inline_runs
    out = await app.run_mutation("calls:add", {"x": 99}, ANONYMOUS)
    assert out.success and out.ts is not None and out.ts == app.latest_ts()
    q = await app.run_query("calls:count", {}, ANONYMOUS)
    assert q.success and q.value == 6
    assert app.inline.inline_runs == before + 2
    # An idempotent resend is answered from the stored result, inline too.
    first = await app.run_mutation("calls:add", {"x": 7}, ANONYMOUS, idempotency_key=("s", 1))
    again = await app.run_mutation("calls:add", {"x": 7}, ANONYMOUS, idempotency_key=("s", 1))
    assert first.success and again.success and again.value == first.value
    assert (await app.run_query("calls:count", {}, ANONYMOUS)).value == 7


async def test_inline_mutation_waits_for_the_lane_in_the_pool(deployment: Deployment) -> None:
    """Another thread holds the serialized lane: the inline attempt must not block the loop;
    it is redone in a worker thread, which waits for the lane and then commits once."""
    app = deployment.app
    await _learn(deployment)
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        assert app.db.committer.hold_order(30)
        held.set()
        release.wait(60)
        app.db.committer.release_order()

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert await asyncio.to_thread(held.wait, 30)
        pool_runs = app.inline.pool_runs
        call = asyncio.create_task(app.run_mutation("calls:add", {"x": 1000}, ANONYMOUS))
        # The loop stays free while the mutation waits for the lane: other work runs, and
        # the call is still waiting once it reached the pool (its attempt came back OrderHeld).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while app.inline.pool_runs == pool_runs and app.lanes.running("calls:add") == 0:
            assert loop.time() < deadline, "the mutation never went to the pool"
            await asyncio.sleep(0)
        assert not call.done()
        release.set()
        out = await asyncio.wait_for(call, 60)
    finally:
        release.set()
        t.join(30)
    assert out.success
    assert app.inline.pool_runs == pool_runs + 1
    assert (await app.run_query("calls:count", {}, ANONYMOUS)).value == 6  # applied once


async def test_a_runaway_inline_query_is_ended_by_its_time_limit(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = deployment.app
    await _learn(deployment)
    monkeypatch.setattr(knobs, "QUERY_TIMEOUT_MS", 300)
    before = app.inline.inline_runs
    out = await asyncio.wait_for(app.run_query("calls:count", {"spin": True}, ANONYMOUS), 60)
    assert not out.success and "timed out" in (out.error_message or "")
    assert app.inline.inline_runs == before + 1
    # That run was long: the path goes back to the worker pool.
    assert not app.inline.allows("calls:count")
    assert (await app.run_query("calls:count", {}, ANONYMOUS)).value == 5


def test_policy_learns_and_forgets() -> None:
    p = InlinePolicy(1000)
    for _ in range(2):
        p.observe("a:f", 0.0001, 0.0002, False)
    assert not p.allows("a:f")
    p.observe("a:f", 0.0001, 0.0002, False)
    assert p.allows("a:f")
    p.observe("a:f", 0.5, 0.5, True)  # much CPU
    assert not p.allows("a:f")
    assert not InlinePolicy(0).allows("a:f")


def test_policy_catches_blocking_runs_and_trusts_them_less_each_time() -> None:
    p = InlinePolicy(1000)
    for _ in range(3):
        p.observe("a:sleepy", 0.0001, 0.0003, False)
    assert p.allows("a:sleepy")
    p.observe("a:sleepy", 0.0001, 0.2, True)  # little CPU, but it held the loop 200 ms
    assert not p.allows("a:sleepy")
    for n in range(6):  # one strike: twice the short runs are needed
        assert not p.allows("a:sleepy"), n
        p.observe("a:sleepy", 0.0001, 0.0003, False)
    assert p.allows("a:sleepy")
    p.observe("a:sleepy", 0.0001, 0.2, False)  # blocked in the pool too: back to learning
    assert not p.allows("a:sleepy")
    # Wall time that is only waiting for the GIL or a core under load (< 50 ms) is no strike.
    for _ in range(6):
        p.observe("a:sleepy", 0.0001, 0.01, False)
    assert p.allows("a:sleepy")
    p.observe("a:sleepy", 0.0001, 0.01, True)
    assert p.allows("a:sleepy")


async def test_a_long_wait_for_the_commit_does_not_keep_a_short_mutation_in_the_pool(
    deployment: Deployment, tmp_path: Path
) -> None:
    # While another connection holds SQLite's write lock, every commit waits; the function
    # itself stays short. The policy judges a pool run by its function's time, so the path
    # is still learned as short (judged by the whole call, the wait kept it in the pool).
    import sqlite3

    app = deployment.app
    assert (await app.run_mutation("calls:add", {"x": 0}, ANONYMOUS)).success  # table exists
    app.inline._fast.clear()
    app.inline._strikes.clear()
    for i in range(3):
        assert not app.inline.allows("calls:add")
        blocker = sqlite3.connect(tmp_path / "data" / "db.sqlite3", isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN EXCLUSIVE")
        release = threading.Timer(0.3, lambda b=blocker: (b.execute("ROLLBACK"), b.close()))
        release.start()
        try:
            assert (await app.run_mutation("calls:add", {"x": i + 1}, ANONYMOUS)).success
        finally:
            release.join()
    assert app.inline.allows("calls:add")
