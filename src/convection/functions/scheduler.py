"""``ctx.scheduler`` (docs/functions.md, docs/scheduling.md): ``run_after``, ``run_at``, ``cancel``.

In a mutation (:class:`MutationScheduler`) every call works in the mutation's own
transaction: the job row exists only if the mutation commits, and a canceled job stays
pending if it rolls back. In an action (:class:`ActionScheduler`) every call is awaitable and
commits at once in its own transaction, whatever the action does next.

Limits per mutation (transaction): ``SCHEDULER_MAX_SCHEDULED_PER_MUTATION_COUNT`` calls and
``SCHEDULER_MAX_ARGS_PER_MUTATION_BYTES`` of arguments; per job
``SCHEDULER_MAX_JOB_ARGS_BYTES``. Times are milliseconds since the epoch (numbers, integral
floats from JS included); ``datetime.timedelta`` / ``datetime.datetime`` are accepted (a naive
datetime is taken as UTC). A delay below zero means "now".

A function scheduled by a scheduled job that has been canceled is born canceled: the executor
marks the job it runs with :func:`running_job`.
"""

from __future__ import annotations

import contextvars
import datetime
import math
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from convection import knobs
from convection.database.transaction import SystemView, Transaction
from convection.errors import ConvectionError, LimitError
from convection.model.scheduled_jobs import SCHEDULED_FUNCTIONS_TABLE, JobState, ScheduledJobs
from convection.values.model import Int64, normalize, value_size

T = TypeVar("T")

_CURRENT_JOB: contextvars.ContextVar[str | None] = contextvars.ContextVar("convection_scheduled_job", default=None)


class SchedulerError(ConvectionError):
    """A scheduler call with a bad time, reference, id or arguments."""

    code = "InvalidSchedulerCall"


@contextmanager
def running_job(job_id: str | None) -> Iterator[None]:
    """Mark the code in this block (thread or task) as the execution of scheduled job
    ``job_id``: what it schedules is canceled if that job gets canceled."""
    token = _CURRENT_JOB.set(job_id)
    try:
        yield
    finally:
        _CURRENT_JOB.reset(token)


def current_job() -> str | None:
    return _CURRENT_JOB.get()


@dataclass(frozen=True)
class SchedulerServices:
    """What the scheduler ctx needs from the application.

    ``resolve(ref)`` returns the canonical path of the mutation or action ``ref`` names (or
    raises); ``now_ms()`` is the clock; ``run_transaction(fn)`` runs ``fn(system)`` on the
    system view of a fresh transaction off the event loop, commits it (retrying conflicts)
    and returns its result.
    """

    resolve: Callable[[Any], str]
    now_ms: Callable[[], float]
    run_transaction: Callable[[Callable[[SystemView], Any]], Awaitable[Any]]


# --- argument checks ------------------------------------------------------------------------


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SchedulerError(
            f"{what} must be a number of milliseconds (or a datetime.timedelta/datetime), got {value!r}"
        )
    number = float(value)
    if not math.isfinite(number):
        raise SchedulerError(f"{what} must be a finite number of milliseconds, got {value!r}")
    return number


def delay_ms(delay: Any) -> float:
    """``run_after``'s delay in milliseconds (never negative)."""
    if isinstance(delay, datetime.timedelta):
        return max(0.0, delay.total_seconds() * 1000.0)
    return max(0.0, _number(delay, "run_after(delay, ...): the delay"))


def time_ms(when: Any) -> float:
    """``run_at``'s time in milliseconds since the epoch."""
    if isinstance(when, datetime.datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        return float(when.timestamp()) * 1000.0
    if isinstance(when, Int64):
        return float(int(when))
    return _number(when, "run_at(time, ...): the time")


def _args(args: Any, path: str) -> dict[str, Any]:
    if args is None:
        return {}
    if not isinstance(args, dict):
        raise SchedulerError(f"Arguments of scheduled function {path!r} must be an object (dict), got {type(args).__name__}")
    normalized: dict[str, Any] = normalize(args)
    size = value_size(normalized)
    if size > knobs.SCHEDULER_MAX_JOB_ARGS_BYTES:
        raise LimitError(
            f"Arguments of scheduled function {path!r} are {size} bytes; the limit is "
            f"{knobs.SCHEDULER_MAX_JOB_ARGS_BYTES} bytes. Store large data in a table and pass its id.",
            code="ScheduledFunctionArgumentsTooLarge",
        )
    return normalized


class _Budget:
    __slots__ = ("bytes", "count")

    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0


# One budget per transaction: nested run_mutation calls share their caller's.
_BUDGETS: weakref.WeakKeyDictionary[Transaction, _Budget] = weakref.WeakKeyDictionary()


def _charge(txn: Transaction, args: dict[str, Any]) -> None:
    budget = _BUDGETS.get(txn)
    if budget is None:
        budget = _BUDGETS[txn] = _Budget()
    if budget.count >= knobs.SCHEDULER_MAX_SCHEDULED_PER_MUTATION_COUNT:
        raise LimitError(
            f"Too many functions scheduled by this mutation (limit: "
            f"{knobs.SCHEDULER_MAX_SCHEDULED_PER_MUTATION_COUNT}). Schedule one function that "
            "schedules the rest in batches.",
            code="TooManyFunctionsScheduled",
        )
    size = value_size(args)
    if budget.bytes + size > knobs.SCHEDULER_MAX_ARGS_PER_MUTATION_BYTES:
        raise LimitError(
            f"Too large total size of the arguments of functions scheduled by this mutation "
            f"(limit: {knobs.SCHEDULER_MAX_ARGS_PER_MUTATION_BYTES} bytes)",
            code="ScheduledFunctionsArgumentsTooLarge",
        )
    budget.count += 1
    budget.bytes += size


def schedule_in(
    system: SystemView, path: str, args: dict[str, Any], when_ms: float, now_ms: float, parent: str | None
) -> str:
    """Insert a job in ``system``'s transaction; born canceled if ``parent`` (the scheduled
    job this code runs as) has been canceled."""
    _charge(system.txn, args)
    model = ScheduledJobs(system)
    canceled = False
    if parent is not None:
        job = model.get(parent)
        canceled = job is not None and job.state is JobState.CANCELED
    return model.insert(path, args, when_ms, now_ms, canceled=canceled)


def _check_id(system: SystemView, job_id: Any) -> str:
    if not isinstance(job_id, str) or system.table_of_id(job_id) != SCHEDULED_FUNCTIONS_TABLE:
        raise SchedulerError(
            f"ctx.scheduler.cancel() takes the id of a scheduled function (returned by run_after/"
            f"run_at), got {job_id!r}"
        )
    return job_id


# --- ctx objects ------------------------------------------------------------------------------


class MutationScheduler:
    """``ctx.scheduler`` in mutations: part of the mutation's transaction."""

    def __init__(self, system: SystemView, services: SchedulerServices, parent: str | None) -> None:
        self._system = system
        self._services = services
        self._parent = parent

    def run_after(self, delay: Any, ref: Any, args: Any = None) -> str:
        """Run ``ref`` with ``args`` ``delay`` ms after this mutation; returns the job id."""
        d = delay_ms(delay)
        return self._schedule(ref, args, lambda now: now + d)

    def run_at(self, when: Any, ref: Any, args: Any = None) -> str:
        """Run ``ref`` with ``args`` at ``when`` (ms since the epoch, or a datetime)."""
        t = time_ms(when)
        return self._schedule(ref, args, lambda _now: t)

    def _schedule(self, ref: Any, args: Any, when: Callable[[float], float]) -> str:
        path = self._services.resolve(ref)
        checked = _args(args, path)
        now = self._system.now_ms
        return schedule_in(self._system, path, checked, when(now), now, self._parent)

    def cancel(self, job_id: Any) -> None:
        """Cancel a scheduled function: it will not run if it has not started (a running
        action finishes, but what it schedules afterwards is canceled)."""
        jid = _check_id(self._system, job_id)
        ScheduledJobs(self._system).cancel(jid, self._system.now_ms)


class ActionScheduler:
    """``ctx.scheduler`` in actions: every call commits at once, in its own transaction."""

    def __init__(self, services: SchedulerServices, parent: str | None) -> None:
        self._services = services
        self._parent = parent

    async def run_after(self, delay: Any, ref: Any, args: Any = None) -> str:
        d = delay_ms(delay)
        return await self._schedule(ref, args, lambda now: now + d)

    async def run_at(self, when: Any, ref: Any, args: Any = None) -> str:
        t = time_ms(when)
        return await self._schedule(ref, args, lambda _now: t)

    async def _schedule(self, ref: Any, args: Any, when: Callable[[float], float]) -> str:
        path = self._services.resolve(ref)
        checked = _args(args, path)
        parent = self._parent

        def run(system: SystemView) -> str:
            now = system.now_ms
            return schedule_in(system, path, checked, when(now), now, parent)

        job_id: str = await self._services.run_transaction(run)
        return job_id

    async def cancel(self, job_id: Any) -> None:
        def run(system: SystemView) -> None:
            ScheduledJobs(system).cancel(_check_id(system, job_id), system.now_ms)

        await self._services.run_transaction(run)


def decorate(ctx: Any, system: SystemView | None, services: SchedulerServices) -> None:
    """Install ``ctx.scheduler`` on a mutation or action ctx (queries have none). Called by
    the runner's ``decorate_ctx`` hook."""
    # A query ctx has no ``scheduler``; hasattr() would go through its __getattr__, which
    # builds a mistake explanation (with a stack walk) for every query run.
    if "scheduler" not in vars(ctx):
        return
    if system is not None:
        ctx.scheduler = MutationScheduler(system, services, current_job())
    else:
        ctx.scheduler = ActionScheduler(services, current_job())
