"""The seam between the application facade and its background workers (the scheduler and
cron executors): :class:`WorkerHost` is the application as a worker sees it, and
:class:`JobRuntime` is what the cron runner needs from the executor that drives it. Workers
depend on these protocols, never on ``application/app.py`` or on each other's concretes, so
``app -> scheduler -> crons`` has no way back. Also the job-run vocabulary both share.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Protocol, TypeVar

from convection.clock import Clock
from convection.database.database import Database
from convection.database.transaction import SystemView
from convection.functions.calllog import NOT_RUN
from convection.functions.context import ActionHost
from convection.functions.loader import LoadedApp
from convection.functions.outcome import FunctionOutcome
from convection.functions.runner import Runner

T = TypeVar("T")

TRANSIENT_ACTION_ERROR = "Transient error while executing action"
RETRY_FOREVER = sys.maxsize
# Returned by a run's check_first when the job changed before it could run (canceled, ...).
# The call log leaves out outcomes with this code: the function did not run.
SKIPPED = FunctionOutcome(success=True, error_code=NOT_RUN)


def error_text(outcome: FunctionOutcome) -> str:
    """The message recorded for a failed run: the client-facing error without the request
    id prefix."""
    msg = outcome.error_message
    if msg.startswith("[Request ID: "):
        _head, sep, rest = msg.partition("] ")
        if sep:
            msg = rest
            if msg.startswith("Server Error\n"):
                msg = msg[len("Server Error\n") :]
    return msg.strip() or "Server Error"


class WorkerHost(Protocol):
    """What a background worker may use of the application (``Application`` implements it).
    ``runner`` and ``loaded`` change when new code is pushed: read them per run."""

    @property
    def db(self) -> Database: ...

    @property
    def runner(self) -> Runner: ...

    @property
    def loaded(self) -> LoadedApp: ...

    @property
    def host(self) -> ActionHost: ...

    @property
    def executor(self) -> Executor: ...

    @property
    def on_log(self) -> Callable[[str, str, list[str]], None] | None: ...


class JobRuntime(Protocol):
    """What the cron runner needs from the executor that drives it (``SchedulerExecutor``)."""

    @property
    def app(self) -> WorkerHost: ...

    @property
    def db(self) -> Database: ...

    @property
    def clock(self) -> Clock: ...

    def transact(self, fn: Callable[[SystemView], T]) -> T:
        """Run ``fn`` on the system view of a transaction and commit, retrying conflicts."""
        ...

    async def in_thread(self, fn: Callable[[], T]) -> T:
        """Run blocking work on a worker thread that ``stop()`` waits for."""
        ...


__all__ = [
    "RETRY_FOREVER",
    "SKIPPED",
    "TRANSIENT_ACTION_ERROR",
    "JobRuntime",
    "WorkerHost",
    "error_text",
]
