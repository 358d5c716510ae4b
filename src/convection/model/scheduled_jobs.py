"""The ``_scheduled_functions`` system table: one document per scheduled function call.

User-visible fields (SEMANTICS.md §6.1), readable with ``ctx.db.system``::

    {_id, _creationTime, name, args: [argsObject], scheduledTime, completedTime?,
     state: {kind: "pending" | "inProgress" | "success" | "failed" (+ error) | "canceled"}}

Internal fields, for the executor:

* ``nextTs`` (ms) is set exactly while the job is pending or in progress; the index
  ``by_next_ts`` on it is the work queue. It is ``max(scheduledTime, now)`` at scheduling.
* ``argsChunks``: when the arguments are too large to sit in the document (over
  ``SCHEDULER_INLINE_ARGS_MAX_BYTES``, or nested too deep) they are stored as Convex JSON text
  split over documents of ``_scheduled_function_args`` and ``args`` is absent.

``completedTime`` is set exactly when the job is finished (success, failed, canceled); the
index ``by_completed_time`` drives retention.

State machine (:class:`JobState`)::

    pending --(mutation commits)--> success | failed
    pending --(action starts)--> inProgress --> success | failed
    pending | inProgress --(cancel)--> canceled
    finished states are final; completing a canceled job is a no-op.

Every method works inside the caller's :class:`Transaction`, so a job scheduled or canceled
by a mutation exists only if that mutation commits.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from convection import knobs
from convection.database.database import Database
from convection.database.query import Query
from convection.database.transaction import SystemView
from convection.errors import ConvectionError
from convection.values.json import dumps, loads
from convection.values.model import UNSET, value_size

SCHEDULED_FUNCTIONS_TABLE = "_scheduled_functions"
SCHEDULED_ARGS_TABLE = "_scheduled_function_args"
BY_NEXT_TS = "by_next_ts"
BY_COMPLETED_TIME = "by_completed_time"
ARGS_CHUNK_CHARS = 256 * 1024


class JobState(enum.Enum):
    """The ``state.kind`` of a scheduled job (transitions in the module docstring)."""

    PENDING = "pending"
    IN_PROGRESS = "inProgress"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCESS, JobState.FAILED, JobState.CANCELED)


class ScheduledJobError(ConvectionError):
    """A scheduled job cannot make the requested state change."""

    code = "InvalidScheduledJobState"


@dataclass(frozen=True)
class ScheduledJob:
    """One row of ``_scheduled_functions``, typed."""

    id: str
    name: str
    scheduled_time: float
    state: JobState
    error: str | None
    completed_time: float | None
    next_ts: float | None
    doc: dict[str, Any]

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ScheduledJob:
        state = doc.get("state") or {}
        completed = doc.get("completedTime")
        next_ts = doc.get("nextTs")
        return cls(
            id=doc["_id"],
            name=doc["name"],
            scheduled_time=float(doc["scheduledTime"]),
            state=JobState(state.get("kind", "pending")),
            error=state.get("error"),
            completed_time=None if completed is None else float(completed),
            next_ts=None if next_ts is None else float(next_ts),
            doc=doc,
        )


def ensure_tables(db: Database) -> None:
    """Create the tables and their indexes (idempotent; called at application start)."""
    db.ensure_system_table(
        SCHEDULED_FUNCTIONS_TABLE,
        {BY_NEXT_TS: ("nextTs",), BY_COMPLETED_TIME: ("completedTime",)},
    )
    db.ensure_system_table(SCHEDULED_ARGS_TABLE, {})



def _nesting(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_nesting(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_nesting(v) for v in value), default=0)
    return 0


class ScheduledJobs:
    """Typed access to ``_scheduled_functions`` inside one transaction, through its system view."""

    def __init__(self, system: SystemView) -> None:
        self.system = system
        self.txn = system.txn

    # --- reads -----------------------------------------------------------------------------
    def get(self, job_id: str) -> ScheduledJob | None:
        if self.txn.table_of_id(job_id) != SCHEDULED_FUNCTIONS_TABLE:
            return None
        doc = self.txn.get(job_id)
        return None if doc is None else ScheduledJob.from_doc(doc)

    def args_of(self, job: ScheduledJob) -> dict[str, Any]:
        """The argument object of a job (inline or reassembled from its chunks)."""
        if "args" in job.doc:
            args = job.doc["args"]
            return dict(args[0]) if args else {}
        parts: list[str] = []
        for chunk_id in job.doc.get("argsChunks", []):
            chunk = self.txn.get(chunk_id)
            if chunk is None:
                raise ScheduledJobError(f"The arguments of scheduled job {job.id} are missing")
            parts.append(chunk["data"])
        value = loads("".join(parts))
        return dict(value[0]) if value else {}

    def queue(self) -> Iterator[ScheduledJob]:
        """Pending and in-progress jobs in ``nextTs`` order (lazily: the transaction records
        only the consumed part of the index as read)."""
        q = Query(self.txn, SCHEDULED_FUNCTIONS_TABLE).with_index(BY_NEXT_TS, lambda r: r.gte("nextTs", 0.0))
        for doc in q:
            yield ScheduledJob.from_doc(doc)

    def finished_before(self, cutoff_ms: float, limit: int) -> list[ScheduledJob]:
        q = Query(self.txn, SCHEDULED_FUNCTIONS_TABLE).with_index(
            BY_COMPLETED_TIME, lambda r: r.gte("completedTime", 0.0).lt("completedTime", float(cutoff_ms))
        )
        return [ScheduledJob.from_doc(d) for d in q.take(limit)]

    # --- writes ----------------------------------------------------------------------------
    def insert(
        self, name: str, args: dict[str, Any], scheduled_time: float, now_ms: float, *, canceled: bool = False
    ) -> str:
        """Insert a job (``args`` already normalized). A job scheduled by a canceled job is
        born canceled."""
        doc: dict[str, Any] = {"name": name, "scheduledTime": float(scheduled_time)}
        wrapped = [args]
        if value_size(wrapped) <= knobs.SCHEDULER_INLINE_ARGS_MAX_BYTES and _nesting(wrapped) < knobs.MAX_DOCUMENT_NESTING_COUNT:
            doc["args"] = wrapped
        else:
            text = dumps(wrapped).decode()
            doc["argsChunks"] = [
                self.system.insert(SCHEDULED_ARGS_TABLE, {"data": text[i : i + ARGS_CHUNK_CHARS]})
                for i in range(0, len(text), ARGS_CHUNK_CHARS)
            ]
        if canceled:
            doc["state"] = {"kind": JobState.CANCELED.value}
            doc["completedTime"] = float(now_ms)
        else:
            doc["state"] = {"kind": JobState.PENDING.value}
            doc["nextTs"] = float(max(scheduled_time, now_ms))
        return self.system.insert(SCHEDULED_FUNCTIONS_TABLE, doc)

    def mark_in_progress(self, job_id: str) -> bool:
        """pending -> inProgress. Returns False (and changes nothing) if the job is gone or
        not pending."""
        job = self.get(job_id)
        if job is None or job.state is not JobState.PENDING:
            return False
        self.system.patch(job_id, {"state": {"kind": JobState.IN_PROGRESS.value}})
        return True

    def complete(
        self,
        job_id: str,
        state: JobState,
        now_ms: float,
        *,
        error: str | None = None,
        expect: JobState | None = None,
    ) -> bool:
        """Finish a pending or in-progress job (``expect``: only from that state). Returns
        whether the job changed; a job already finished (canceled meanwhile) is left alone."""
        if not state.finished:
            raise ScheduledJobError(f"{state.value!r} is not a final state of a scheduled job")
        job = self.get(job_id)
        if job is None or job.state.finished or (expect is not None and job.state is not expect):
            return False
        kind: dict[str, Any] = {"kind": state.value}
        if state is JobState.FAILED:
            kind["error"] = (error or "")[: knobs.MAX_LOG_LINE_LENGTH_COUNT]
        self.system.patch(job_id, {"state": kind, "completedTime": float(now_ms), "nextTs": UNSET})
        return True

    def cancel(self, job_id: str, now_ms: float) -> bool:
        """Cancel a pending or in-progress job; a no-op for finished or unknown jobs. A
        running action keeps running, but what it schedules from now on is canceled."""
        return self.complete(job_id, JobState.CANCELED, now_ms)

    def delete(self, job: ScheduledJob) -> None:
        for chunk_id in job.doc.get("argsChunks", []):
            if self.txn.get(chunk_id) is not None:
                self.system.delete(chunk_id)
        self.system.delete(job.id)
