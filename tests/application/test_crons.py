"""Cron jobs (SEMANTICS.md §6.2): every schedule form, missed runs skipped (not caught up),
run logs, sync on push (add/change/remove), at-most-once actions. Manual clock, no sleeps."""

from __future__ import annotations

import datetime
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from convection.database.retry import run_in_transaction
from convection.database.transaction import SystemView
from convection.functions.loader import load_app
from convection.model.cron_jobs import CRON_JOBS_TABLE, CronJobs, advance, next_run_ms
from convection.testing import TestBackend

TICKS = '''
from convection import internal_action, internal_mutation, query, internal, v

@internal_mutation(args={"name": v.string()})
def tick(ctx, name):
    print("tick", name)
    ctx.db.insert("ticks", {"name": name, "at": ctx.now})

@internal_mutation
def broken(ctx):
    ctx.db.insert("ticks", {"name": "broken", "at": ctx.now})
    raise RuntimeError("cron failure")

@internal_action(args={"name": v.string()})
async def tick_action(ctx, name):
    await ctx.run_mutation(internal.ticks.tick, {"name": name})

@query
def ticks(ctx):
    return [t["name"] for t in ctx.db.query("ticks").collect()]
'''

ALL_FORMS = '''
from convection import Crons, internal
crons = Crons()
crons.interval("every minute", {"minutes": 1}, internal.ticks.tick, {"name": "interval"})
crons.cron("quarter hours", "*/15 * * * *", internal.ticks.tick, {"name": "cron"})
crons.hourly("hourly", {"minuteUTC": 30}, internal.ticks.tick, {"name": "hourly"})
crons.daily("daily", {"hourUTC": 9, "minuteUTC": 5}, internal.ticks.tick, {"name": "daily"})
crons.weekly("weekly", {"dayOfWeek": "wednesday", "hourUTC": 12, "minuteUTC": 0}, internal.ticks.tick, {"name": "weekly"})
crons.monthly("monthly", {"day": 15, "hourUTC": 18, "minuteUTC": 45}, internal.ticks.tick, {"name": "monthly"})
'''

START = 1_704_067_200_000.0  # Monday 2024-01-01T00:00:00Z
MIN = 60_000.0
HOUR = 60 * MIN
DAY = 24 * HOUR


def utc(*parts: int) -> float:
    return datetime.datetime(*parts, tzinfo=datetime.UTC).timestamp() * 1000  # type: ignore[misc]


def write_app(folder: Path, crons: str | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ticks.py").write_text(textwrap.dedent(TICKS))
    path = folder / "crons.py"
    if crons is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(textwrap.dedent(crons))
    return folder


def make_backend(tmp_path: Path, crons: str | None) -> TestBackend:
    return TestBackend(write_app(tmp_path / "convex", crons), start_time_ms=START)


def push(backend: TestBackend, crons: str | None) -> None:
    backend.app.set_app(load_app(write_app(backend.functions_dir, crons)))


def cron_rows(backend: TestBackend) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in backend.table(CRON_JOBS_TABLE)}


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[TestBackend]:
    with make_backend(tmp_path, ALL_FORMS) as b:
        yield b


# --- schedules (pure) -------------------------------------------------------------------------


def test_next_run_of_every_form() -> None:
    now = utc(2023, 2, 28, 8, 35)
    assert next_run_ms({"type": "interval", "seconds": 60.0}, None, now) == now
    assert next_run_ms({"type": "interval", "seconds": 60.0}, now, now) == now + MIN
    hourly = {"type": "hourly", "minuteUTC": 5}
    assert next_run_ms(hourly, None, now) == utc(2023, 2, 28, 9, 5)
    assert next_run_ms(hourly, utc(2023, 2, 28, 9, 5), now) == utc(2023, 2, 28, 10, 5)
    daily = {"type": "daily", "hourUTC": 8, "minuteUTC": 30}
    assert next_run_ms(daily, None, now) == utc(2023, 3, 1, 8, 30)
    weekly = {"type": "weekly", "dayOfWeek": 2, "hourUTC": 12, "minuteUTC": 30}  # Tuesday
    assert next_run_ms(weekly, None, now) == utc(2023, 2, 28, 12, 30)
    assert next_run_ms(weekly, utc(2023, 2, 28, 12, 30), now) == utc(2023, 3, 7, 12, 30)
    monthly = {"type": "monthly", "day": 1, "hourUTC": 12, "minuteUTC": 30}
    assert next_run_ms(monthly, None, now) == utc(2023, 3, 1, 12, 30)
    assert next_run_ms(monthly, utc(2023, 3, 1, 12, 30), now) == utc(2023, 4, 1, 12, 30)
    cron = {"type": "cron", "cronExpr": "0 18 * * 1,5"}
    assert next_run_ms(cron, None, now) == utc(2023, 3, 3, 18, 0)
    assert next_run_ms({"type": "monthly", "day": 31, "hourUTC": 0, "minuteUTC": 0}, None, utc(2023, 4, 1)) == utc(2023, 5, 31)


def test_advance_skips_missed_runs() -> None:
    interval = {"type": "interval", "seconds": 60.0}
    assert advance(interval, START, START + 10) == (START + MIN, 0, None)
    assert advance(interval, START, START + 5.5 * MIN) == (START + 6 * MIN, 5, START + MIN)
    assert advance(interval, START, START + 2 * MIN) == (START + 2 * MIN, 1, START + MIN)
    hourly = {"type": "hourly", "minuteUTC": 0}
    assert advance(hourly, START, START + 3.5 * HOUR) == (START + 4 * HOUR, 3, START + HOUR)


# --- runs -------------------------------------------------------------------------------------


def test_every_form_runs_at_its_time(backend: TestBackend) -> None:
    rows = cron_rows(backend)
    assert set(rows) == {"every minute", "quarter hours", "hourly", "daily", "weekly", "monthly"}
    assert rows["every minute"]["nextTs"] == START  # an interval first runs at deploy
    assert rows["quarter hours"]["nextTs"] == START + 15 * MIN
    assert rows["hourly"]["nextTs"] == START + 30 * MIN
    assert rows["daily"]["nextTs"] == START + 9 * HOUR + 5 * MIN
    assert rows["weekly"]["nextTs"] == utc(2024, 1, 3, 12)
    assert rows["monthly"]["nextTs"] == utc(2024, 1, 15, 18, 45)
    assert rows["daily"]["udfPath"] == "ticks:tick" and rows["daily"]["args"] == [{"name": "daily"}]

    backend.advance_time(0)
    assert backend.query("ticks:ticks") == ["interval"]
    backend.advance_time(MIN)
    assert backend.query("ticks:ticks") == ["interval", "interval"]
    for _ in range(14):
        backend.advance_time(MIN)
    assert backend.query("ticks:ticks").count("cron") == 1
    assert backend.query("ticks:ticks").count("interval") == 16

    # Walk through the month a minute at a time would be slow: jump to each due time.
    for name, due in (("hourly", START + 30 * MIN), ("daily", START + 9 * HOUR + 5 * MIN),
                      ("weekly", utc(2024, 1, 3, 12)), ("monthly", utc(2024, 1, 15, 18, 45))):
        before = backend.query("ticks:ticks").count(name)
        backend.advance_time(due - backend.now_ms())
        assert backend.query("ticks:ticks").count(name) == before + 1, name
    rows = cron_rows(backend)
    # Jumping to Jan 15 made the Jan 10 run late: it ran once, at Jan 15 (no catch-up).
    assert rows["weekly"]["nextTs"] == utc(2024, 1, 17, 12)
    late = backend.app.cron_logs("weekly")[0]
    assert late["status"] == {"kind": "success"} and late["ts"] == utc(2024, 1, 10, 12)
    assert rows["monthly"]["nextTs"] == utc(2024, 2, 15, 18, 45)
    assert rows["monthly"]["prevTs"] == utc(2024, 1, 15, 18, 45)


def test_missed_runs_are_skipped_and_logged(tmp_path: Path) -> None:
    with make_backend(tmp_path, '''
        from convection import Crons, internal
        crons = Crons()
        crons.interval("every minute", {"minutes": 1}, internal.ticks.tick, {"name": "i"})
    ''') as backend:
        backend.advance_time(0)
        backend.advance_time(MIN)
        assert backend.query("ticks:ticks") == ["i", "i"]
        backend.advance_time(5.5 * MIN)  # down for a while: one late run, no catch-up
        assert backend.query("ticks:ticks") == ["i", "i", "i"]
        [row] = backend.table(CRON_JOBS_TABLE)
        assert row["nextTs"] == START + 7 * MIN
        logs = backend.app.cron_logs("every minute")
        assert logs[0]["status"] == {"kind": "canceled", "numCanceled": 4.0}
        assert logs[0]["ts"] == START + 3 * MIN
        assert [log["status"]["kind"] for log in logs] == ["canceled", "success", "success", "success"]
        assert logs[1]["ts"] == START + 2 * MIN and logs[1]["logLines"] == ["[LOG] tick i"]
        backend.advance_time(0.5 * MIN)
        assert backend.query("ticks:ticks") == ["i", "i", "i", "i"]


def test_failures_and_actions_are_logged(tmp_path: Path) -> None:
    with make_backend(tmp_path, '''
        from convection import Crons, internal
        crons = Crons()
        crons.interval("broken", {"seconds": 30}, internal.ticks.broken)
        crons.interval("act", {"seconds": 30}, internal.ticks.tick_action, {"name": "a"})
    ''') as backend:
        backend.advance_time(0)
        assert backend.query("ticks:ticks") == ["a"]  # the broken run's write is discarded
        [broken] = backend.app.cron_logs("broken")
        assert broken["status"]["kind"] == "failed" and "cron failure" in broken["status"]["error"]
        assert broken["udfPath"] == "ticks:broken"
        [act] = backend.app.cron_logs("act")
        assert act["status"] == {"kind": "success"}
        assert len(backend.app.cron_logs()) == 2
        backend.advance_time(30_000)
        assert backend.query("ticks:ticks") == ["a", "a"]
        assert cron_rows(backend)["act"]["state"] == "pending"


def test_an_interrupted_cron_action_is_failed_not_rerun(tmp_path: Path) -> None:
    with make_backend(tmp_path, '''
        from convection import Crons, internal
        crons = Crons()
        crons.interval("act", {"hours": 1}, internal.ticks.tick_action, {"name": "a"})
    ''') as backend:
        [row] = backend.table(CRON_JOBS_TABLE)

        def crash(txn: Any) -> None:
            model = CronJobs(SystemView(txn))
            job = model.get(row["_id"])
            assert job is not None
            model.mark_in_progress(job)

        run_in_transaction(backend.db, crash)
        backend.advance_time(0)
        assert backend.query("ticks:ticks") == []
        [log] = backend.app.cron_logs("act")
        assert log["status"] == {"kind": "failed", "error": "Transient error while executing action"}
        [row] = backend.table(CRON_JOBS_TABLE)
        assert row["state"] == "pending" and row["nextTs"] == START + HOUR
        backend.advance_time(HOUR)
        assert backend.query("ticks:ticks") == ["a"]


def test_sync_on_push_adds_changes_and_removes(tmp_path: Path) -> None:
    with make_backend(tmp_path, '''
        from convection import Crons, internal
        crons = Crons()
        crons.interval("keep", {"minutes": 10}, internal.ticks.tick, {"name": "keep"})
        crons.interval("change", {"minutes": 10}, internal.ticks.tick, {"name": "change"})
        crons.interval("remove", {"minutes": 10}, internal.ticks.tick, {"name": "remove"})
    ''') as backend:
        backend.advance_time(0)
        assert sorted(backend.query("ticks:ticks")) == ["change", "keep", "remove"]
        backend.advance_time(MIN)
        before = cron_rows(backend)
        push(backend, '''
            from convection import Crons, internal
            crons = Crons()
            crons.interval("keep", {"minutes": 10}, internal.ticks.tick, {"name": "keep"})
            crons.daily("change", {"hourUTC": 6, "minuteUTC": 0}, internal.ticks.tick, {"name": "changed"})
            crons.interval("new", {"minutes": 10}, internal.ticks.tick, {"name": "new"})
        ''')
        after = cron_rows(backend)
        assert set(after) == {"keep", "change", "new"}
        assert after["keep"] == before["keep"]  # untouched: same revision, same next run
        assert after["change"]["_id"] == before["change"]["_id"]
        assert after["change"]["schedule"] == {"type": "daily", "hourUTC": 6.0, "minuteUTC": 0.0}
        assert after["change"]["nextTs"] == START + 6 * HOUR
        assert after["new"]["nextTs"] == START + MIN
        backend.advance_time(0)
        assert backend.query("ticks:ticks")[3:] == ["new"]
        backend.advance_time(9 * MIN)
        assert sorted(backend.query("ticks:ticks")[4:]) == ["keep"]
        backend.advance_time(6 * HOUR)
        assert "changed" in backend.query("ticks:ticks")
        assert "remove" not in backend.query("ticks:ticks")[3:]

        push(backend, None)  # crons.py deleted: every job goes
        assert backend.table(CRON_JOBS_TABLE) == []
        assert backend.app.cron_logs("keep")  # the logs stay (until the retention)


def test_changing_only_the_arguments_is_a_change(tmp_path: Path) -> None:
    text = '''
        from convection import Crons, internal
        crons = Crons()
        crons.hourly("h", {"minuteUTC": 0}, internal.ticks.tick, {"name": "%s"})
    '''
    with make_backend(tmp_path, text % "one") as backend:
        push(backend, text % "one")
        first = cron_rows(backend)["h"]
        push(backend, text % "two")
        second = cron_rows(backend)["h"]
        assert second["args"] == [{"name": "two"}] and second["_id"] == first["_id"]
        backend.advance_time(HOUR)
        assert backend.query("ticks:ticks") == ["two"]
