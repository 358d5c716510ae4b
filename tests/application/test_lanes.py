"""No starvation (issue 12.3): calls of one function path hold only part of the worker pool.

The stuck queries below really block their worker thread (a ``time.sleep`` loop polling a
flag file the test creates at the end), as a function stuck in a blocking call does."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from convection import knobs
from convection.application.interface import ANONYMOUS
from convection.application.lanes import Lanes
from convection.server.app import Deployment, open_deployment

FUNCTIONS = '''
import os, time
from convection import mutation, query

@query
def stuck(ctx, flag, started, n):
    open(os.path.join(started, str(n)), "w").close()
    while not os.path.exists(flag):
        time.sleep(0.005)
    return n

@query
def fast(ctx):
    return "fast"

@mutation
def write(ctx):
    return ctx.db.insert("things", {"x": 1})
'''


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    monkeypatch.setattr(knobs, "QUERY_TIMEOUT_MS", 300_000)  # the stuck ones wait for the test
    folder = tmp_path / "convex"
    folder.mkdir()
    (folder / "calls.py").write_text(textwrap.dedent(FUNCTIONS))
    dep = open_deployment(folder, tmp_path / "data")
    yield dep
    dep.close()


async def test_unrelated_calls_complete_while_one_path_is_stuck(deployment: Deployment, tmp_path: Path) -> None:
    app = deployment.app
    pool = app.executor._max_workers
    flag = tmp_path / "release"
    started = tmp_path / "started"
    started.mkdir()
    stuck = [
        asyncio.create_task(app.run_query("calls:stuck", {"flag": str(flag), "started": str(started), "n": n}, ANONYMOUS))
        for n in range(pool + 4)  # more than the whole pool (20 of 16)
    ]
    try:
        # Wait (with a deadline) until the stuck path holds every thread it may hold.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120
        while len(list(started.iterdir())) < app.lanes.limit:
            assert loop.time() < deadline, "the stuck queries did not start"
            await asyncio.sleep(0.01)
        assert app.lanes.running("calls:stuck") == app.lanes.limit < pool
        # An unrelated query and a mutation are answered while all of them are still stuck.
        fast = await asyncio.wait_for(app.run_query("calls:fast", {}, ANONYMOUS), 120)
        assert fast.success and fast.value == "fast"
        write = await asyncio.wait_for(app.run_mutation("calls:write", {}, ANONYMOUS), 120)
        assert write.success
        assert not any(task.done() for task in stuck)
        assert len(list(started.iterdir())) == app.lanes.limit  # the rest wait without a thread
    finally:
        flag.touch()
        outcomes = await asyncio.wait_for(asyncio.gather(*stuck), 120)
    assert sorted(o.value for o in outcomes) == list(range(pool + 4))
    assert app.lanes.running("calls:stuck") == 0 and app.lanes.waiting("calls:stuck") == 0


async def test_lanes_are_fifo_and_survive_cancellation() -> None:
    lanes = Lanes(2)
    gate = asyncio.Event()
    order: list[int] = []

    async def job(n: int) -> int:
        order.append(n)
        await gate.wait()
        return n

    tasks = [asyncio.create_task(lanes.run("k", lambda n=n: job(n))) for n in range(5)]  # type: ignore[misc]
    for _ in range(5):
        await asyncio.sleep(0)
    assert order == [0, 1] and lanes.running("k") == 2 and lanes.waiting("k") == 3
    tasks[2].cancel()  # a waiter leaves the queue without taking a slot
    await asyncio.sleep(0)
    assert lanes.waiting("k") == 2
    gate.set()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert done[0] == 0 and done[1] == 1 and isinstance(done[2], asyncio.CancelledError)
    assert done[3:] == [3, 4] and order == [0, 1, 3, 4]
    assert lanes.running("k") == 0 and lanes._lanes == {}
