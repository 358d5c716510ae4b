"""Cron jobs: keeping ``_cron_jobs`` in step with ``convex/crons.py`` and running one due
cron (docs/scheduling.md). The executor loop (application/scheduler.py) picks due crons.

* **Sync** (every push and at start): jobs are matched by name; a new job is inserted with
  its first due time, a job whose function, arguments or schedule changed is reset (new due
  time, pending), a job no longer defined is deleted. Unchanged jobs keep their next run.
* **A run** proceeds only if the job's row is unchanged since it was picked (so a re-sync or
  another run in between wins), with the same exactly-once (mutations) / at-most-once
  (actions) rules as scheduled functions. At most one run of a job at a time: the row is
  ``inProgress`` while an action runs and the executor never starts a job it is running.
* After a run the next due time is the first one not in the past: missed runs are skipped,
  never caught up, and logged as ``canceled(numCanceled)``. Every run is logged in
  ``_cron_job_logs`` with its status and log lines.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from convection.application.workers import (
    RETRY_FOREVER,
    SKIPPED,
    TRANSIENT_ACTION_ERROR,
    JobRuntime,
    error_text,
)
from convection.database.transaction import SystemView
from convection.functions.calllog import call_origin
from convection.functions.loader import LoadedApp
from convection.functions.outcome import FunctionOutcome
from convection.model.cron_jobs import (
    IN_PROGRESS,
    PENDING,
    CronJob,
    CronJobs,
    next_run_ms,
    spec_fields,
)
from convection.values.json import dumps
from convection.values.model import normalize

log = logging.getLogger("convection.crons")


class CronRunner:
    """The cron half of the executor: sync, run one cron, read logs."""

    def __init__(self, executor: JobRuntime, *, may_run: Callable[[], bool] = lambda: True) -> None:
        self.executor = executor
        # The executor's fencing check (it holds the scheduler lease), asked in each run's
        # first transaction.
        self.may_run = may_run

    @property
    def _now(self) -> float:
        return self.executor.clock.now_ms()

    # --- sync -------------------------------------------------------------------------------
    def sync(self, loaded: LoadedApp) -> dict[str, list[str]]:
        """Make ``_cron_jobs`` match ``loaded.crons``; returns the names added, changed and
        removed (blocking)."""
        wanted: dict[str, dict[str, Any]] = {}
        for spec in loaded.crons or []:
            wanted[spec.name] = spec_fields(spec.function_path, normalize(spec.args), normalize(spec.schedule))
        now = self._now

        def run(system: SystemView) -> dict[str, list[str]]:
            model = CronJobs(system)
            report: dict[str, list[str]] = {"added": [], "changed": [], "removed": []}
            existing: dict[str, CronJob] = {}
            for job in model.all():
                if job.name in existing or job.name not in wanted:
                    model.delete(job)
                    report["removed"].append(job.name)
                else:
                    existing[job.name] = job
            for name, fields in wanted.items():
                first = next_run_ms(fields["schedule"], None, now)
                cur = existing.get(name)
                if cur is None:
                    model.insert(name, fields, first)
                    report["added"].append(name)
                elif dumps(fields) != dumps(spec_fields(cur.udf_path, cur.args, cur.schedule)):
                    model.replace_spec(cur, fields, first)
                    report["changed"].append(name)
            return report

        report = self.executor.transact(run)
        if any(report.values()):
            log.info("crons synced: %s", report)
        return report

    def logs(self, name: str | None, limit: int) -> list[dict[str, Any]]:
        return CronJobs(SystemView(self.executor.db.begin(read_only=True))).logs(name, limit)

    # --- runs -------------------------------------------------------------------------------
    async def run(self, cron: CronJob) -> None:
        ex = self.executor
        if cron.state == IN_PROGRESS:
            await ex.in_thread(lambda: self._fail_orphan(cron))
            return
        spec = ex.app.loaded.get(cron.udf_path)
        if spec is not None and spec.kind == "action":
            await self._run_action(cron)
        else:
            await ex.in_thread(lambda: self._run_mutation(cron))

    @staticmethod
    def _unchanged(system: SystemView, cron: CronJob) -> bool:
        cur = CronJobs(system).get(cron.id)
        return cur is not None and cur.version == cron.version

    def _fail_orphan(self, cron: CronJob) -> None:
        now = self._now

        def run(system: SystemView) -> bool:
            if not self.may_run() or not self._unchanged(system, cron):
                return False
            model = CronJobs(system)
            model.log(cron, {"kind": "failed", "error": TRANSIENT_ACTION_ERROR}, [], 0.0)
            model.finish_run(cron, now)
            return True

        if self.executor.transact(run):
            self._report(cron, f"failed: {TRANSIENT_ACTION_ERROR}")

    def _run_mutation(self, cron: CronJob) -> None:
        ex = self.executor
        started = time.perf_counter()

        def check_first(system: SystemView) -> FunctionOutcome | None:
            if not self.may_run():  # fencing: see SchedulerExecutor._run_mutation_job
                return SKIPPED
            return None if self._unchanged(system, cron) and cron.state == PENDING else SKIPPED

        def before_commit(system: SystemView, outcome: FunctionOutcome) -> None:
            model = CronJobs(system)
            model.log(cron, {"kind": "success"}, outcome.log_lines, time.perf_counter() - started)
            model.finish_run(cron, self._now)

        with call_origin("cron", cron.udf_path):
            outcome = ex.app.runner.run_mutation(
                cron.udf_path, cron.args, None, check_first=check_first, before_commit=before_commit,
                max_retries=RETRY_FOREVER,
            )
        if outcome is SKIPPED:
            return
        if not outcome.success:
            message = error_text(outcome)
            elapsed = time.perf_counter() - started
            now = self._now

            def record(system: SystemView) -> None:
                if self._unchanged(system, cron):
                    model = CronJobs(system)
                    model.log(cron, {"kind": "failed", "error": message}, outcome.log_lines, elapsed)
                    model.finish_run(cron, now)

            ex.transact(record)
            self._report(cron, f"failed: {message}")
        else:
            self._report(cron, "success")

    async def _run_action(self, cron: CronJob) -> None:
        ex = self.executor

        def begin(system: SystemView) -> CronJob | None:
            if not self.may_run() or not self._unchanged(system, cron) or cron.state != PENDING:
                return None
            return CronJobs(system).mark_in_progress(cron)

        marked = await ex.in_thread(lambda: ex.transact(begin))
        if marked is None:
            return
        started = time.perf_counter()
        with call_origin("cron", cron.udf_path):
            outcome = await ex.app.runner.run_action(cron.udf_path, cron.args, None, ex.app.host)
        elapsed = time.perf_counter() - started
        status: dict[str, Any] = (
            {"kind": "success"} if outcome.success else {"kind": "failed", "error": error_text(outcome)}
        )
        now = self._now

        def finish(system: SystemView) -> None:
            if self._unchanged(system, marked):
                model = CronJobs(system)
                model.log(marked, status, outcome.log_lines, elapsed)
                model.finish_run(marked, now)

        await ex.in_thread(lambda: ex.transact(finish))
        self._report(cron, "success" if outcome.success else f"failed: {status['error']}")

    def _report(self, cron: CronJob, what: str) -> None:
        on_log = self.executor.app.on_log
        line = f"[CRON] {cron.name!r} ({cron.udf_path}): {what}"
        log.info("%s", line)
        if on_log is not None:
            on_log(cron.udf_path, "cron", [line])
