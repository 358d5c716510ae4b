"""The cron system tables: ``_cron_jobs`` (one document per cron of ``convex/crons.py``,
with its next run) and ``_cron_job_logs`` (one document per finished or skipped run).

``_cron_jobs``: ``{name, udfPath, args: [argsObject], schedule, state: "pending" |
"inProgress", nextTs, prevTs?}``; indexes ``by_name`` and ``by_next_ts`` (the work queue).
``state`` is ``inProgress`` only while an action run is under way (a mutation run finishes in
the transaction that runs it). ``schedule`` is the JSON form of functions/crons.py.

``_cron_job_logs``: ``{name, ts (the run's due time), udfPath, args, status, logLines,
executionTime (s)}`` with ``status`` one of ``{kind: "success"}``, ``{kind: "failed",
error}``, ``{kind: "canceled", numCanceled}`` (runs skipped because they were missed);
index ``by_name_and_ts``.

Next run times (:func:`next_run_ms`, all UTC, as Convex): an interval job first runs when it
is deployed, then every interval after its previous due time; the other schedules run at the
next matching minute strictly after the previous due time (or after now for a new job).
Missed runs are never caught up: after a run, due times already in the past are skipped and
counted (:func:`advance`).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from convection import knobs
from convection.database.catalog import BY_CREATION_TIME
from convection.database.database import Database
from convection.database.query import Query
from convection.database.transaction import SystemView
from convection.errors import ConvectionError
from convection.values.json import dumps

CRON_JOBS_TABLE = "_cron_jobs"
CRON_LOGS_TABLE = "_cron_job_logs"
BY_NAME = "by_name"
BY_NEXT_TS = "by_next_ts"
BY_NAME_AND_TS = "by_name_and_ts"
PENDING = "pending"
IN_PROGRESS = "inProgress"
_MAX_SKIP_STEPS = 10_000


class CronScheduleError(ConvectionError):
    """A stored cron schedule cannot be evaluated."""

    code = "InvalidCronSchedule"


def ensure_tables(db: Database) -> None:
    """Create the tables and their indexes (idempotent; commits of their own)."""
    db.ensure_system_table(CRON_JOBS_TABLE, {BY_NAME: ("name",), BY_NEXT_TS: ("nextTs",)})
    db.ensure_system_table(CRON_LOGS_TABLE, {BY_NAME_AND_TS: ("name", "ts")})


# --- schedules ----------------------------------------------------------------------------


def cron_expression(schedule: dict[str, Any]) -> str | None:
    """The five-field cron expression of a schedule (None for intervals)."""
    kind = schedule.get("type")
    if kind == "interval":
        return None
    if kind == "cron":
        return str(schedule["cronExpr"])
    minute = int(schedule.get("minuteUTC", 0))
    if kind == "hourly":
        return f"{minute} * * * *"
    hour = int(schedule.get("hourUTC", 0))
    if kind == "daily":
        return f"{minute} {hour} * * *"
    if kind == "weekly":
        return f"{minute} {hour} * * {int(schedule['dayOfWeek'])}"
    if kind == "monthly":
        return f"{minute} {hour} {int(schedule['day'])} * *"
    raise CronScheduleError(f"Unknown cron schedule type {kind!r} in {schedule!r}")


def next_run_ms(schedule: dict[str, Any], prev_ms: float | None, now_ms: float) -> float:
    """The due time after ``prev_ms`` (the previous due time), or the first due time of a
    job deployed at ``now_ms`` when ``prev_ms`` is None."""
    expr = cron_expression(schedule)
    if expr is None:
        seconds = float(schedule["seconds"])
        return now_ms if prev_ms is None else prev_ms + seconds * 1000.0
    from croniter import croniter

    base = now_ms if prev_ms is None else prev_ms
    start = datetime.datetime.fromtimestamp(base / 1000.0, tz=datetime.UTC)
    try:
        nxt = croniter(expr, start).get_next(datetime.datetime)
    except Exception as exc:  # croniter raises several types for bad expressions
        raise CronScheduleError(f"Cannot compute the next run of cron schedule {expr!r}: {exc}") from exc
    return float(nxt.timestamp() * 1000.0)


def advance(schedule: dict[str, Any], due_ms: float, now_ms: float) -> tuple[float, int, float | None]:
    """After the run due at ``due_ms`` (finished at ``now_ms``): the next due time not in the
    past, how many due times in between were skipped, and the first skipped one."""
    nxt = next_run_ms(schedule, due_ms, now_ms)
    if nxt >= now_ms:
        return nxt, 0, None
    first = nxt
    if cron_expression(schedule) is None:
        step = float(schedule["seconds"]) * 1000.0
        n = math.ceil((now_ms - nxt) / step)
        return nxt + n * step, n, first
    skipped = 0
    while nxt < now_ms:
        skipped += 1
        if skipped >= _MAX_SKIP_STEPS:
            # Down for a very long time: jump (the count is then a lower bound).
            nxt = next_run_ms(schedule, now_ms, now_ms)
            break
        nxt = next_run_ms(schedule, nxt, now_ms)
    return nxt, skipped, first


# --- rows ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CronJob:
    """One row of ``_cron_jobs``, typed. ``version`` identifies the exact revision read
    (a run proceeds only if the row is unchanged since it was picked)."""

    id: str
    name: str
    udf_path: str
    args: dict[str, Any]
    schedule: dict[str, Any]
    state: str
    next_ts: float
    prev_ts: float | None
    doc: dict[str, Any]

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> CronJob:
        args = doc.get("args") or [{}]
        prev = doc.get("prevTs")
        return cls(
            id=doc["_id"],
            name=doc["name"],
            udf_path=doc["udfPath"],
            args=dict(args[0]),
            schedule=dict(doc["schedule"]),
            state=doc.get("state", PENDING),
            next_ts=float(doc["nextTs"]),
            prev_ts=None if prev is None else float(prev),
            doc=doc,
        )

    @property
    def version(self) -> bytes:
        return dumps(self.doc)


def spec_fields(udf_path: str, args: dict[str, Any], schedule: dict[str, Any]) -> dict[str, Any]:
    return {"udfPath": udf_path, "args": [args], "schedule": schedule}


class CronJobs:
    """Typed access to the cron tables inside one transaction, through its system view."""

    def __init__(self, system: SystemView) -> None:
        self.system = system
        self.txn = system.txn

    def get(self, job_id: str) -> CronJob | None:
        doc = self.txn.get(job_id)
        return None if doc is None else CronJob.from_doc(doc)

    def all(self) -> list[CronJob]:
        return [CronJob.from_doc(d) for d in Query(self.txn, CRON_JOBS_TABLE).with_index(BY_NAME)]

    def queue(self) -> Iterator[CronJob]:
        """Every cron job in ``nextTs`` order (lazily)."""
        q = Query(self.txn, CRON_JOBS_TABLE).with_index(BY_NEXT_TS, lambda r: r.gte("nextTs", 0.0))
        for doc in q:
            yield CronJob.from_doc(doc)

    def insert(self, name: str, fields: dict[str, Any], next_ts: float) -> str:
        return self.system.insert(
            CRON_JOBS_TABLE, {"name": name, **fields, "state": PENDING, "nextTs": float(next_ts)}
        )

    def replace_spec(self, job: CronJob, fields: dict[str, Any], next_ts: float) -> None:
        self.system.replace(job.id, {"name": job.name, **fields, "state": PENDING, "nextTs": float(next_ts)})

    def delete(self, job: CronJob) -> None:
        self.system.delete(job.id)

    def mark_in_progress(self, job: CronJob) -> CronJob:
        self.system.patch(job.id, {"state": IN_PROGRESS})
        new = self.get(job.id)
        assert new is not None
        return new

    def finish_run(self, job: CronJob, now_ms: float) -> int:
        """After a run (or a run given up on): set the next due time, skipping missed ones;
        log the skipped runs. Returns how many were skipped."""
        nxt, skipped, first = advance(job.schedule, job.next_ts, now_ms)
        if skipped:
            assert first is not None
            self.log(job, {"kind": "canceled", "numCanceled": float(skipped)}, [], 0.0, ts=first)
        self.system.patch(job.id, {"state": PENDING, "prevTs": job.next_ts, "nextTs": float(nxt)})
        return skipped

    def log(
        self,
        job: CronJob,
        status: dict[str, Any],
        log_lines: list[str],
        execution_time_s: float,
        *,
        ts: float | None = None,
    ) -> str:
        lines: list[str] = []
        budget = knobs.CRON_LOG_MAX_LOG_BYTES
        for line in log_lines:
            if len(line) > budget:
                break
            lines.append(line)
            budget -= len(line)
        return self.system.insert(
            CRON_LOGS_TABLE,
            {
                "name": job.name,
                "ts": float(job.next_ts if ts is None else ts),
                "udfPath": job.udf_path,
                "args": [job.args],
                "status": status,
                "logLines": lines,
                "logLinesTruncated": len(lines) < len(log_lines),
                "executionTime": float(execution_time_s),
            },
        )

    def logs(self, name: str | None, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` run logs (of one job, or of every job), newest first."""
        if name is None:
            q = Query(self.txn, CRON_LOGS_TABLE).order("desc")
        else:
            q = Query(self.txn, CRON_LOGS_TABLE).with_index(BY_NAME_AND_TS, lambda r: r.eq("name", name)).order("desc")
        return q.take(limit)

    def prune_logs(self, cutoff_ms: float, limit: int) -> int:
        """Delete up to ``limit`` logs written before ``cutoff_ms``."""
        q = Query(self.txn, CRON_LOGS_TABLE).with_index(BY_CREATION_TIME, lambda r: r.lt("_creationTime", float(cutoff_ms)))
        old = q.take(limit)
        for doc in old:
            self.system.delete(doc["_id"])
        return len(old)
