"""The scheduler lease (model/leases.py, application/lease.py): one process at a time runs
scheduled functions and crons; another takes over after the holder stops renewing, and no job
runs twice or is lost across the failover. Driven with a ManualClock: nothing sleeps."""

from __future__ import annotations

import asyncio
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from convection.application.app import Application
from convection.application.lease import LeaseKeeper
from convection.application.scheduler import SCHEDULER_LEASE, SchedulerExecutor
from convection.clock import ManualClock
from convection.database import Database
from convection.database.transaction import SystemView
from convection.functions.identity import Identity
from convection.functions.loader import load_app
from convection.model.leases import Leases
from convection.model.scheduled_jobs import JobState, ScheduledJobs
from convection.persistence.memory import MemoryPersistence
from convection.persistence.sqlite import SqlitePersistence
from convection.server.compose import build_application

START = 1_704_067_200_000.0  # 2024-01-01T00:00:00Z
PERIOD = 9_000.0  # ms; a third is 3 s
ADMIN = Identity(kind="admin")

COUNTER = '''
from convection import internal, internal_mutation, mutation, query, v


@internal_mutation
def bump(ctx):
    doc = ctx.db.query("counters").first()
    if doc is None:
        ctx.db.insert("counters", {"n": 1})
    else:
        ctx.db.patch(doc["_id"], {"n": doc["n"] + 1})


@mutation(args={"n": v.number(), "delayMs": v.number()})
def schedule_bumps(ctx, n, delayMs):
    return [ctx.scheduler.run_after(delayMs, internal.counter.bump, {}) for _ in range(int(n))]


@query
def count(ctx):
    doc = ctx.db.query("counters").first()
    return 0 if doc is None else doc["n"]
'''


def write_app(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "counter.py").write_text(textwrap.dedent(COUNTER))
    return folder


def count(app: Application) -> int:
    txn = app.db.begin(read_only=True)
    doc = app.db.query(txn, "counters").first()
    return 0 if doc is None else int(doc["n"])


def states(app: Application, ids: list[str]) -> list[str]:
    txn = app.db.begin(read_only=True)
    out = []
    for job_id in ids:
        job = ScheduledJobs(SystemView(txn)).get(job_id)
        assert job is not None
        out.append(job.state.value)
    return out


def lease_holder(db: Database) -> str:
    txn = db.begin(read_only=True)
    lease = Leases(SystemView(txn)).get(SCHEDULER_LEASE)
    assert lease is not None
    return lease.holder


# --- the lease alone ----------------------------------------------------------------------------


@pytest.fixture
def db() -> Iterator[Database]:
    database = Database(MemoryPersistence(), clock=ManualClock(START))
    yield database
    database.close()


def keepers(db: Database) -> tuple[LeaseKeeper, LeaseKeeper, ManualClock]:
    from convection.model import leases

    leases.ensure_tables(db)
    clock = db.clock
    assert isinstance(clock, ManualClock)
    return (
        LeaseKeeper(db, "job", period_ms=PERIOD, holder="a"),
        LeaseKeeper(db, "job", period_ms=PERIOD, holder="b"),
        clock,
    )


def test_one_holder_renewal_and_fencing_times(db: Database) -> None:
    a, b, clock = keepers(db)
    assert a.refresh() and a.holds()
    assert not b.refresh() and not b.holds()
    # b tries again a third of a period later, or when a's lease expires, whichever is first.
    assert b.next_attempt_ms == START + PERIOD / 3
    assert a.next_attempt_ms == START + PERIOD / 3

    clock.set_ms(START + PERIOD / 3)  # a renews: its lease now runs until START + 4/3 P
    assert a.renewal_due() and a.refresh()
    clock.set_ms(START + PERIOD - 1)  # a's first lease is about to expire; the renewal counts
    assert a.holds()
    # a stops renewing: it stops counting itself the holder two thirds of a period after its
    # last renewal began, a third of a period before b may take the lease over.
    clock.set_ms(START + PERIOD / 3 + 2 * PERIOD / 3)
    assert not a.holds()
    assert not b.refresh()  # still a's lease for another third of a period
    assert b.next_attempt_ms == START + PERIOD / 3 + PERIOD  # = a's expiry
    clock.set_ms(b.next_attempt_ms)
    assert b.refresh() and b.holds()
    assert b.last_seen is not None and b.last_seen.epoch == 2
    # a comes back: the lease is b's now.
    assert not a.refresh() and not a.holds()


def test_a_renewal_during_a_storage_outage_warns_once_per_try_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A real outage: another connection holds SQLite's write lock past the busy timeout.
    import sqlite3

    from convection.model import leases
    from convection.persistence import sqlite as sqlite_store

    monkeypatch.setattr(sqlite_store, "SQLITE_BUSY_TIMEOUT_MS", 50)
    path = tmp_path / "db.sqlite3"
    database = Database(SqlitePersistence(path), clock=ManualClock(START))
    try:
        leases.ensure_tables(database)
        keeper = LeaseKeeper(database, "job", period_ms=PERIOD, holder="a")
        assert keeper.refresh() and keeper.holds()
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            assert isinstance(database.clock, ManualClock)
            database.clock.set_ms(START + PERIOD / 3)
            caplog.clear()
            with caplog.at_level("WARNING", logger="convection.lease"):
                assert keeper.refresh()  # the renewal failed; the lease it has still counts
            records = [r for r in caplog.records if r.name == "convection.lease"]
            assert len(records) == 1 and records[0].levelname == "WARNING"
            assert "renewing the 'job' lease failed" in records[0].getMessage()
            assert records[0].exc_info is None  # no traceback for a store that is down
            assert keeper.next_attempt_ms == START + 2 * PERIOD / 3  # retried a third later
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        database.clock.set_ms(START + 2 * PERIOD / 3)
        assert keeper.refresh() and keeper.holds()  # the store is back: renewed
    finally:
        database.close()


def test_release_hands_over_at_once(db: Database) -> None:
    a, b, _clock = keepers(db)
    assert a.refresh()
    assert not b.refresh()
    assert a.release()
    assert not a.holds()
    assert b.refresh() and b.holds()
    assert not a.release()  # not the holder any more: nothing written


def test_contenders_racing_get_one_holder(db: Database) -> None:
    from convection.model import leases

    leases.ensure_tables(db)
    contenders = [LeaseKeeper(db, "race", period_ms=PERIOD, holder=f"p{i}") for i in range(6)]
    barrier = threading.Barrier(len(contenders))
    results: dict[str, bool] = {}

    def contend(k: LeaseKeeper) -> None:
        barrier.wait()
        results[k.holder] = k.refresh()

    threads = [threading.Thread(target=contend, args=(k,)) for k in contenders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [h for h, won in results.items() if won]
    assert len(results) == len(contenders)
    assert len(winners) == 1
    assert lease_holder_of(db, "race") == winners[0]


def lease_holder_of(db: Database, name: str) -> str:
    txn = db.begin(read_only=True)
    lease = Leases(SystemView(txn)).get(name)
    assert lease is not None
    return lease.holder


# --- two executors of one application -------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Application]:
    database = Database(SqlitePersistence(tmp_path / "db.sqlite3"), clock=ManualClock(START))
    application = build_application(database, load_app(write_app(tmp_path / "convex")))
    yield application
    application.close()
    database.close()


def test_only_the_holder_runs_jobs_and_a_successor_finishes_them(app: Application) -> None:
    clock = app.db.clock
    assert isinstance(clock, ManualClock)
    first = SchedulerExecutor(app, lease_ms=PERIOD, holder="first")
    second = SchedulerExecutor(app, lease_ms=PERIOD, holder="second")

    async def scenario() -> None:
        now_ids = (await app.run_mutation("counter:schedule_bumps", {"n": 3, "delayMs": 0}, ADMIN)).value
        later_ids = (await app.run_mutation("counter:schedule_bumps", {"n": 4, "delayMs": 2 * PERIOD}, ADMIN)).value
        assert await first.run_due_jobs() == 3
        assert await second.run_due_jobs() == 0
        assert count(app) == 3
        # Both keep going for a while: the holder renews, the other stays idle.
        for step in range(1, 6):
            clock.set_ms(START + step * PERIOD / 3)
            assert await second.run_due_jobs() == 0
            assert await first.run_due_jobs() == 0
            assert lease_holder(app.db) == "first"
        # The holder dies (stops renewing, never releases). Jobs come due meanwhile.
        last_renewal = START + 5 * PERIOD / 3
        clock.set_ms(START + 2 * PERIOD)
        assert await second.run_due_jobs() == 0  # the dead holder's lease has not expired
        assert states(app, later_ids) == ["pending"] * 4
        clock.set_ms(last_renewal + PERIOD)
        assert await second.run_due_jobs() == 4
        assert lease_holder(app.db) == "second"
        assert count(app) == 7
        assert states(app, now_ids + later_ids) == ["success"] * 7
        # The old holder comes back: it is fenced off.
        assert await first.run_due_jobs() == 0

    asyncio.run(scenario())


# --- two applications (two Databases) on one SQLite file -------------------------------------


def open_app(path: Path, functions: Path, clock: ManualClock, holder: str) -> Application:
    database = Database(SqlitePersistence(path), clock=clock)
    # The test's lease period and holder name.
    return build_application(database, load_app(functions), lease_ms=PERIOD, holder=holder)


def test_two_processes_on_one_file_fail_over_exactly_once(tmp_path: Path) -> None:
    """Two Applications with Databases of their own on one SQLite file (what two processes
    sharing a data directory are): only the lease holder runs jobs; after the holder is
    killed (stops renewing without releasing) the other takes over once the lease period
    has passed and runs the pending jobs exactly once.

    The steps are ordered so the test holds whether or not a Database sees the other's
    commits promptly (cross-process tailing): everything ``b`` must know is committed before
    ``b`` opens, and the two never need to learn of each other's later commits."""
    path = tmp_path / "db.sqlite3"
    functions = write_app(tmp_path / "convex")
    clock = ManualClock(START)
    a = open_app(path, functions, clock, "a")
    b: Application | None = None

    async def scenario() -> None:
        nonlocal b
        first = (await a.run_mutation("counter:schedule_bumps", {"n": 3, "delayMs": 0}, ADMIN)).value
        soon = (await a.run_mutation("counter:schedule_bumps", {"n": 2, "delayMs": PERIOD / 2}, ADMIN)).value
        later = (await a.run_mutation("counter:schedule_bumps", {"n": 4, "delayMs": 3 * PERIOD}, ADMIN)).value
        assert await a.scheduler.run_due_jobs() == 3
        assert count(a) == 3

        b = open_app(path, functions, clock, "b")
        assert lease_holder(b.db) == "a"
        assert await b.scheduler.run_due_jobs() == 0  # a holds the lease

        # a is killed: no more renewals, no release, its connections just go.
        a.close()
        a.db.close()

        clock.set_ms(START + PERIOD / 2)  # the "soon" jobs are due; the lease has not expired
        assert await b.scheduler.run_due_jobs() == 0
        assert count(b) == 3
        clock.set_ms(START + PERIOD)  # a's lease expires: b takes over
        assert await b.scheduler.run_due_jobs() == 2
        assert lease_holder(b.db) == "b"
        clock.set_ms(START + 3 * PERIOD)
        assert await b.scheduler.run_due_jobs() == 4
        assert await b.scheduler.run_due_jobs() == 0
        assert count(b) == 9  # == jobs scheduled: none twice, none lost
        assert states(b, first + soon + later) == [JobState.SUCCESS.value] * 9

    try:
        asyncio.run(scenario())
    finally:
        if b is not None:
            b.close()
            b.db.close()


def test_a_graceful_stop_releases_the_lease(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    functions = write_app(tmp_path / "convex")
    clock = ManualClock(START)
    a = open_app(path, functions, clock, "a")
    try:

        async def scenario() -> None:
            await a.scheduler.run_due_jobs()
            assert lease_holder(a.db) == "a"
            await a.stop()
            assert lease_holder(a.db) == ""

        asyncio.run(scenario())
    finally:
        a.close()
        a.db.close()
    b = open_app(path, functions, clock, "b")
    try:

        async def take() -> None:
            await b.scheduler.run_due_jobs()

        asyncio.run(take())
        assert lease_holder(b.db) == "b"  # at once, without waiting for the lease period
    finally:
        b.close()
        b.db.close()


def test_an_idle_process_takes_over_when_the_holder_stops(app: Application) -> None:
    """Background loops: the idle executor watches the lease document, so the holder's
    release on a clean stop wakes it at once (the manual clock never moves here, so no
    lease period passes) and it runs what is due."""
    first = SchedulerExecutor(app, lease_ms=PERIOD, holder="first")
    second = SchedulerExecutor(app, lease_ms=PERIOD, holder="second")

    async def scenario() -> None:
        await first.start()
        try:
            await _until(lambda: first.lease.holds())
            await second.start()
            await _until(lambda: second.lease.last_seen is not None)
            assert not second.lease.holds()
            await first.stop()  # releases the lease
            await _until(lambda: second.lease.holds())
            ids = (await app.run_mutation("counter:schedule_bumps", {"n": 2, "delayMs": 0}, ADMIN)).value
            await _until(lambda: states(app, ids) == ["success", "success"])
            assert count(app) == 2
        finally:
            await first.stop()
            await second.stop()

    asyncio.run(scenario())


async def _until(check: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Poll ``check`` on the event loop (letting the executors' tasks run) until it holds."""
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(0.01)
