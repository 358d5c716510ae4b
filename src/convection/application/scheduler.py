"""The scheduler executor: runs due scheduled functions (``_scheduled_functions``) and cron
jobs (``_cron_jobs``, see application/crons.py) of one application (docs/scheduling.md).

One pass (:meth:`SchedulerExecutor._dispatch`) reads both work queues (``by_next_ts``) in one
snapshot and starts every due job not already running, up to
``SCHEDULER_EXECUTION_PARALLELISM_COUNT`` at once. The background loop then sleeps until the
next due time, a job finishing, or an invalidation of the read set of that pass (a job
inserted or changed: the executor subscribes to its own reads), whichever comes first. Time
comes from the database's clock, so tests drive everything with a ManualClock and
:meth:`run_due_jobs` without sleeping.

Guarantees:

* **Mutations, exactly once.** The job is re-read in the mutation's transaction (and staged
  ``inProgress`` there, so the mutation sees itself running); ``success`` is written in that
  same transaction, which is retried on conflicts without limit. A job canceled meanwhile is
  skipped. A user error discards the writes and records ``failed(message)`` in a new
  transaction. A crash before the commit leaves the job pending: it runs after restart.
* **Actions, at most once.** ``inProgress`` is committed first, then the action runs, then
  ``success``/``failed`` is recorded. A job found ``inProgress`` that this process is not
  running (the process died mid-action) is recorded ``failed("Transient error while
  executing action")``, never re-run.
* Scheduled functions run as the system: no user identity, internal functions allowed.
* Finished jobs and cron logs are deleted after ``SCHEDULED_JOB_RETENTION_MS``.

One process at a time (several processes or nodes sharing a store): only the holder of the
``scheduler`` lease (a document of ``_leases``, model/leases.py, held by
application/lease.py's :class:`LeaseKeeper`) reads the queues and starts jobs; every pass
first renews the lease when a third of its period (``SCHEDULER_LEASE_MS``) has gone by. A
process that does not hold it stays idle and tries again every third of a period, at the
holder's expiry, and whenever the lease document changes (it subscribes to it), so a
graceful stop (which releases the lease) hands over at once and a killed holder's work moves
within one lease period. Fencing is by time plus each job's own state: the holder counts
itself the holder only until two thirds of a period after its last renewal began, and checks
that inside every job's first transaction (a mutation's check, an action's ``inProgress``
commit); a mutation's completion commits with its effects, so even two processes racing on
one job cannot both apply it; an action found ``inProgress`` by the new holder is recorded
failed, never re-run (at most once).

Invariant: a key (job or cron id) is in ``_running`` from the moment its task is created
until its bookkeeping is committed, so an ``inProgress`` row not in ``_running`` is orphaned.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from convection import knobs
from convection.application.crons import CronRunner
from convection.application.lease import LeaseKeeper
from convection.application.workers import (
    RETRY_FOREVER,
    SKIPPED,
    TRANSIENT_ACTION_ERROR,
    WorkerHost,
    error_text,
)
from convection.database.readset import FrozenReadSet
from convection.database.retry import run_in_transaction
from convection.database.subscriptions import Subscription
from convection.database.transaction import SystemView
from convection.errors import StorageFailure
from convection.functions.calllog import call_origin
from convection.functions.loader import LoadedApp
from convection.functions.outcome import FunctionOutcome
from convection.functions.runner import FunctionCallError
from convection.functions.scheduler import SchedulerError, SchedulerServices, decorate, running_job
from convection.model import cron_jobs, leases, scheduled_jobs
from convection.model.cron_jobs import CronJob, CronJobs
from convection.model.scheduled_jobs import JobState, ScheduledJob, ScheduledJobs

log = logging.getLogger("convection.scheduler")

T = TypeVar("T")

SCHEDULER_LEASE = "scheduler"

@dataclass
class _Pass:
    """What one read of the queues found."""

    jobs: list[ScheduledJob] = field(default_factory=list)
    crons: list[CronJob] = field(default_factory=list)
    next_due: float | None = None
    saturated: bool = False
    read_set: FrozenReadSet | None = None
    ts: int = 0


class SchedulerExecutor:
    """Runs the scheduled functions and crons of ``app``.

    Lifecycle: constructed with the application (creates the system tables); ``start()``
    syncs crons and starts the background loop; ``stop()`` cancels the loop and the runs in
    flight (an action cut short is recorded failed at the next start). Without ``start``,
    tests call :meth:`run_due_jobs` / :meth:`finish_scheduled_functions`.
    """

    def __init__(
        self,
        app: WorkerHost,
        *,
        parallelism: int | None = None,
        lease_ms: float | None = None,
        holder: str | None = None,
        lease: LeaseKeeper | None = None,
    ) -> None:
        """``lease``: the lease that decides whether this process runs jobs (the composition
        root passes it); else one of ``SCHEDULER_LEASE`` with ``lease_ms`` and ``holder``."""
        self.app = app
        self.db = app.db
        self.clock = app.db.clock
        self.parallelism = parallelism or knobs.SCHEDULER_EXECUTION_PARALLELISM_COUNT
        scheduled_jobs.ensure_tables(self.db)
        cron_jobs.ensure_tables(self.db)
        leases.ensure_tables(self.db)
        # Only the holder of this lease runs jobs (module docstring, "One process at a time").
        self.lease = lease or LeaseKeeper(
            self.db, SCHEDULER_LEASE, period_ms=lease_ms or knobs.SCHEDULER_LEASE_MS, holder=holder
        )
        self.crons = CronRunner(self, may_run=self.lease.holds)
        self.services = SchedulerServices(
            resolve=self._resolve, now_ms=self.clock.now_ms, run_transaction=self._run_transaction
        )
        self._running: dict[str, asyncio.Task[None]] = {}
        self._threads: set[concurrent.futures.Future[Any]] = set()
        self._threads_lock = threading.Lock()
        self._failures: dict[str, tuple[int, float]] = {}  # key -> (failures, retry at ms)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._subscription: Subscription | None = None
        self._next_prune_ms = -math.inf
        self._last: _Pass = _Pass()

    # --- hooks for the application ----------------------------------------------------------
    def decorate_ctx(self, ctx: Any, system: SystemView | None) -> None:
        """Install ``ctx.scheduler`` (the runner's ``decorate_ctx`` hook)."""
        decorate(ctx, system, self.services)

    def sync_crons(self, loaded: LoadedApp) -> None:
        """Make ``_cron_jobs`` match ``loaded.crons`` (blocking; called on every push)."""
        self.crons.sync(loaded)
        self.wake()

    def cron_logs(self, name: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        return self.crons.logs(name, limit)

    def _resolve(self, ref: Any) -> str:
        try:
            spec = self.app.runner.resolve(ref, None, None)
        except FunctionCallError as exc:
            raise SchedulerError(f"Cannot schedule {ref!r}: {exc.message}") from None
        if spec.kind not in ("mutation", "action"):
            raise SchedulerError(
                f"Cannot schedule {spec.path!r}: it is a {spec.kind}; only mutations and actions "
                "can be scheduled."
            )
        return spec.path

    async def _run_transaction(self, fn: Callable[[SystemView], Any]) -> Any:
        return await self.in_thread(lambda: self.transact(fn))

    def transact(self, fn: Callable[[SystemView], T]) -> T:
        """Run ``fn`` on the system view of a transaction and commit it, retrying conflicts
        without limit."""
        return run_in_transaction(self.db, lambda txn: fn(SystemView(txn)), max_retries=RETRY_FOREVER)[0]

    async def in_thread(self, fn: Callable[[], T]) -> T:
        """Run blocking work on the application's worker threads. Tracked so that ``stop()``
        can wait for it: a cancelled task does not stop its thread, and the database must
        not close under it."""
        cf = self.app.executor.submit(fn)
        with self._threads_lock:
            self._threads.add(cf)
        cf.add_done_callback(self._forget_thread)
        return await asyncio.wrap_future(cf)

    def _forget_thread(self, cf: concurrent.futures.Future[Any]) -> None:
        with self._threads_lock:
            self._threads.discard(cf)

    # --- lifecycle --------------------------------------------------------------------------
    def _bind(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._wake is None:
            self._loop = loop
            self._wake = asyncio.Event()
        return self._wake

    async def start(self, *, background: bool = True) -> None:
        """Sync crons with the code in force, then (``background``) run the executor loop."""
        self._bind()
        await self.in_thread(lambda: self.crons.sync(self.app.loaded))
        if background and self._loop_task is None:
            self._loop_task = asyncio.create_task(self._run_loop(), name="convection-scheduler")

    async def stop(self, *, release: bool = True) -> None:
        """Stop the loop and the runs in flight, then (``release``) give the lease up so that
        another process takes over at once instead of after the lease period."""
        task, self._loop_task = self._loop_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        running = list(self._running.values())
        for t in running:
            t.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        with self._threads_lock:
            threads = list(self._threads)
        if threads:
            await asyncio.gather(*(asyncio.wrap_future(f) for f in threads), return_exceptions=True)
        if self._subscription is not None:
            self._subscription.close()
            self._subscription = None
        if release:
            try:
                await self.in_thread(self.lease.release)
            except Exception:
                log.exception("could not release the scheduler lease; it expires on its own")

    def wake(self) -> None:
        """Make the background loop re-read its queues now (thread-safe)."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        try:
            loop.call_soon_threadsafe(wake.set)
        except RuntimeError:  # loop closed
            pass

    async def _run_loop(self) -> None:
        wake = self._bind()
        errors = 0
        while True:
            wake.clear()
            try:
                await self._dispatch(subscribe=True)
                await self._maybe_prune()
                errors = 0
                timeout = self._timeout()
            except asyncio.CancelledError:
                raise
            except StorageFailure as exc:
                # The store is failing: the committer logs its state changes; no traceback
                # per pass. Back off as for any failure.
                self.db.committer.storage_failed(exc)
                errors += 1
            except Exception:
                log.exception("scheduler pass failed")
                errors += 1
                timeout = min(0.5 * 2.0 ** min(errors, 10), 60.0)
            # Not asyncio.wait_for: on 3.11 it swallows a cancel that races with the wake-up.
            try:
                async with asyncio.timeout(timeout):
                    await wake.wait()
            except TimeoutError:
                pass

    def _timeout(self) -> float | None:
        now = self.clock.now_ms()
        cap = min(knobs.SCHEDULER_PRUNE_INTERVAL_MS, self.lease.next_attempt_ms - now) / 1000.0
        last = self._last
        if last.saturated or last.next_due is None:
            return max(0.0, cap)
        return max(0.0, min(cap, (last.next_due - now) / 1000.0))

    # --- passes -----------------------------------------------------------------------------
    def _read_queues(self, now: float, busy: frozenset[str], capacity: int) -> _Pass:
        txn = self.db.begin(read_only=True)
        system = SystemView(txn)
        found = _Pass()

        def later(ts: float) -> None:
            if found.next_due is None or ts < found.next_due:
                found.next_due = ts

        for job in ScheduledJobs(system).queue():
            assert job.next_ts is not None
            if job.next_ts > now:
                later(job.next_ts)
                break
            if job.id in busy:
                continue
            if len(found.jobs) >= capacity:
                found.saturated = True
                break
            found.jobs.append(job)
        for cron in CronJobs(system).queue():
            if cron.next_ts > now:
                later(cron.next_ts)
                break
            if cron.id in busy:
                continue
            if len(found.jobs) + len(found.crons) >= capacity:
                found.saturated = True
                break
            found.crons.append(cron)
        found.read_set = txn.reads.freeze()
        found.ts = txn.begin_ts
        return found

    async def _hold_lease(self) -> bool:
        """Renew (or try to take) the lease when due, or at once when it was last seen free;
        whether this process holds it."""
        if self.lease.renewal_due() or self.lease.seen_free():
            await self.in_thread(self.lease.refresh)
        return self.lease.holds()

    async def _dispatch(self, *, subscribe: bool = False) -> int:
        """Start every due job that is not running (up to the parallelism), if this process
        holds the lease. Returns how many were started."""
        self._bind()
        if not await self._hold_lease():
            # Idle: wake when the lease is due for another try, or released (subscription).
            self._last = _Pass()
            if subscribe:
                read_set, ts = await self.in_thread(self.lease.watch)
                self._resubscribe(read_set, ts)
                if self.lease.seen_free():  # released or expired since the last try
                    self.wake()
            return 0
        now = self.clock.now_ms()
        blocked = {k for k, (_, at) in self._failures.items() if at > now}
        busy = frozenset(self._running) | blocked
        capacity = self.parallelism - len(self._running)
        found = await self.in_thread(lambda: self._read_queues(now, busy, capacity))
        for _, at in self._failures.values():
            if at > now and (found.next_due is None or at < found.next_due):
                found.next_due = at
        self._last = found
        if subscribe and found.read_set is not None:
            self._resubscribe(found.read_set, found.ts)
        started = 0
        for job in found.jobs:
            if job.id not in self._running and len(self._running) < self.parallelism:
                self._start(job.id, self._run_job(job))
                started += 1
        for cron in found.crons:
            if cron.id not in self._running and len(self._running) < self.parallelism:
                self._start(cron.id, self.crons.run(cron))
                started += 1
        return started

    def _resubscribe(self, read_set: FrozenReadSet, ts: int) -> None:
        if self._subscription is not None:
            self._subscription.close()
        self._subscription = sub = self.db.subscribe(read_set, ts)
        sub.set_callback(self.wake)

    def _start(self, key: str, coro: Coroutine[Any, Any, None]) -> None:
        self._running[key] = asyncio.create_task(self._guard(key, coro), name=f"convection-job-{key}")

    async def _guard(self, key: str, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
            self._failures.pop(key, None)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A system error (not a user error: those are recorded as failed runs). Retry the
            # job later with backoff rather than spinning on it.
            count = self._failures.get(key, (0, 0.0))[0] + 1
            delay = min(500.0 * 2 ** min(count, 20), 2 * 3600_000.0)
            self._failures[key] = (count, self.clock.now_ms() + delay)
            log.exception("scheduled job %s failed with a system error; retrying in %.1f s", key, delay / 1000)
        finally:
            self._running.pop(key, None)
            if self._wake is not None:
                self._wake.set()

    # --- test and admin drivers -------------------------------------------------------------
    async def run_due_jobs(self) -> int:
        """Run everything due at the clock's current time (jobs, crons, and what they make
        due now) to completion. Returns the number of runs started."""
        ran = 0
        while True:
            started = await self._dispatch()
            ran += started
            tasks = list(self._running.values())
            if not tasks:
                if not started:
                    break
                continue
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        await self._maybe_prune()
        return ran

    def next_scheduled_time(self) -> float | None:
        """The due time of the earliest pending scheduled function (crons excluded)."""
        txn = self.db.begin(read_only=True)
        system = SystemView(txn)
        for job in ScheduledJobs(system).queue():
            if job.state is JobState.PENDING:
                return job.next_ts
        return None

    async def run_next(self, advance_to: Callable[[float], None]) -> int:
        """One round of "finish scheduled functions": run what is due; if nothing was, move
        time (``advance_to(ms)``) to the next pending scheduled function and run what is due
        then. Returns the number of runs (0: nothing is pending)."""
        ran = await self.run_due_jobs()
        if ran:
            return ran
        nxt = await self.in_thread(self.next_scheduled_time)
        if nxt is None:
            return 0
        if nxt > self.clock.now_ms():
            advance_to(nxt)
        return await self.run_due_jobs()

    async def finish_scheduled_functions(
        self, advance_to: Callable[[float], None], *, max_rounds: int = 1000
    ) -> int:
        """Run scheduled functions until none is pending, moving time (``advance_to(ms)``)
        to each next one's due time; includes jobs scheduled by jobs."""
        total = 0
        for _ in range(max_rounds):
            total += await self.run_due_jobs()
            nxt = await self.in_thread(self.next_scheduled_time)
            if nxt is None:
                return total
            if nxt > self.clock.now_ms():
                advance_to(nxt)
        raise SchedulerError(
            f"Scheduled functions were still pending after {max_rounds} rounds: functions keep "
            "scheduling functions.",
            code="SchedulerNotSettled",
        )

    # --- scheduled functions ----------------------------------------------------------------
    async def _run_job(self, job: ScheduledJob) -> None:
        if job.state is JobState.IN_PROGRESS:
            await self.in_thread(lambda: self._fail_orphan(job))
            return
        spec = self.app.loaded.get(job.name)
        if spec is not None and spec.kind == "action":
            await self._run_action_job(job)
        else:
            await self.in_thread(lambda: self._run_mutation_job(job))

    def _fail_orphan(self, job: ScheduledJob) -> None:
        if not self.lease.holds():
            return
        now = self.clock.now_ms()
        changed = self.transact(
            lambda system: ScheduledJobs(system).complete(
                job.id, JobState.FAILED, now, error=TRANSIENT_ACTION_ERROR, expect=JobState.IN_PROGRESS
            )
        )
        if changed:
            log.warning("scheduled action %s (%s) was interrupted; recorded as failed", job.id, job.name)

    def _job_args(self, job: ScheduledJob) -> dict[str, Any]:
        txn = self.db.begin(read_only=True)
        system = SystemView(txn)
        return ScheduledJobs(system).args_of(job)

    def _run_mutation_job(self, job: ScheduledJob) -> None:
        args = self._job_args(job)

        def check_first(system: SystemView) -> FunctionOutcome | None:
            # Fencing: a process that may have lost the lease leaves the job pending for the
            # new holder. Staged inProgress: visible only inside this transaction.
            if not self.lease.holds():
                return SKIPPED
            return None if ScheduledJobs(system).mark_in_progress(job.id) else SKIPPED

        def before_commit(system: SystemView, outcome: FunctionOutcome) -> None:
            ScheduledJobs(system).complete(job.id, JobState.SUCCESS, self.clock.now_ms())

        with running_job(job.id), call_origin("scheduled", job.name):
            outcome = self.app.runner.run_mutation(
                job.name, args, None, check_first=check_first, before_commit=before_commit,
                max_retries=RETRY_FOREVER,
            )
        if outcome is SKIPPED or outcome.success:
            return
        message = error_text(outcome)
        now = self.clock.now_ms()
        self.transact(
            lambda system: ScheduledJobs(system).complete(
                job.id, JobState.FAILED, now, error=message, expect=JobState.PENDING
            )
        )

    async def _run_action_job(self, job: ScheduledJob) -> None:
        def begin(system: SystemView) -> dict[str, Any] | None:
            model = ScheduledJobs(system)
            if not self.lease.holds() or not model.mark_in_progress(job.id):
                return None
            return model.args_of(job)

        args = await self.in_thread(lambda: self.transact(begin))
        if args is None:
            return
        with running_job(job.id), call_origin("scheduled", job.name):
            outcome = await self.app.runner.run_action(job.name, args, None, self.app.host)
        state = JobState.SUCCESS if outcome.success else JobState.FAILED
        message = None if outcome.success else error_text(outcome)
        now = self.clock.now_ms()
        await self.in_thread(
            lambda: self.transact(
                lambda system: ScheduledJobs(system).complete(
                    job.id, state, now, error=message, expect=JobState.IN_PROGRESS
                )
            )
        )

    # --- retention --------------------------------------------------------------------------
    async def _maybe_prune(self) -> None:
        now = self.clock.now_ms()
        if now < self._next_prune_ms or not self.lease.holds():
            return
        self._next_prune_ms = now + knobs.SCHEDULER_PRUNE_INTERVAL_MS
        await self.in_thread(lambda: self.prune(now))

    def prune(self, now_ms: float) -> int:
        """Delete finished jobs and cron logs older than the retention (blocking)."""
        cutoff = now_ms - knobs.SCHEDULED_JOB_RETENTION_MS
        batch = knobs.SCHEDULER_PRUNE_BATCH_COUNT
        total = 0
        while True:

            def run(system: SystemView) -> int:
                model = ScheduledJobs(system)
                old = model.finished_before(cutoff, batch)
                for job in old:
                    model.delete(job)
                return len(old) + CronJobs(system).prune_logs(cutoff, batch)

            n = self.transact(run)
            total += n
            if n < batch:
                return total
