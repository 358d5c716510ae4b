"""What the dashboard reads and does beyond the generic admin operations (docs/dashboard.md):
the schema with its indexes and backfill progress, the functions, the scheduled functions
(and cancelling one), the crons with their logs. Reached through :class:`Admin`
(``application/admin.py``), which checks the caller is an admin; ``server/dashboard.py`` only
turns these answers into HTTP responses.

Everything here is blocking (call it from a worker thread). Documents and arguments come back
as Convex encoded JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from convection.application.deployed_code import AdminError
from convection.database.query import Query
from convection.database.transaction import SystemView
from convection.errors import ConvectionError
from convection.model.cron_jobs import CronJobs
from convection.model.scheduled_jobs import SCHEDULED_FUNCTIONS_TABLE, ScheduledJob, ScheduledJobs
from convection.values.json import to_convex_json

if TYPE_CHECKING:
    from convection.application.app import Application


class Inspection:
    """The dashboard's reads of one application (module docstring)."""

    def __init__(self, app: Application) -> None:
        self.app = app

    def functions(self) -> list[dict[str, Any]]:
        return self.app.loaded.function_paths_json()

    def schema(self) -> dict[str, Any]:
        """``{"hasSchema", "schemaValidation", "tables": [...]}`` (docs/dashboard.md)."""
        db = self.app.db
        schema = db.schema
        ts = db.latest_ts()
        names = {n for n in db.catalog.tables() if not n.startswith("_")}
        if schema is not None:
            names.update(schema.tables)
        tables = []
        for name in sorted(names):
            tdef = schema.tables.get(name) if schema is not None else None
            number = db.catalog.table_number(name)
            count = _count(db.persistence.table_documents(number, ts)) if number is not None else 0
            live = db.catalog.indexes_of(name) if number is not None else {}
            indexes = []
            for ix in live.values():
                entry: dict[str, Any] = {"name": ix.name, "fields": list(ix.fields), "state": ix.state}
                if ix.state != "enabled":
                    # Backfill progress: the index entries written so far against the documents.
                    entry["progress"] = {"done": _count(db.persistence.index_scan(ix.index_id, b"", None, ts)), "total": count}
                indexes.append(entry)
            declared = {ix["name"] for ix in indexes}
            if tdef is not None:
                for d in tdef.indexes:
                    if d.name not in declared:
                        indexes.append({"name": d.name, "fields": list(d.fields), "state": "staged" if d.staged else "pending"})
            tables.append({
                "name": name,
                "documents": count,
                "validator": tdef.document_validator.to_json() if tdef is not None else None,
                "indexes": sorted(indexes, key=lambda i: (i["name"] != "by_creation_time", i["name"] != "by_id", i["name"])),
                "searchIndexes": [ix.to_json() for ix in tdef.search_indexes] if tdef is not None else [],
                "vectorIndexes": [ix.to_json() for ix in tdef.vector_indexes] if tdef is not None else [],
            })
        return {
            "hasSchema": schema is not None,
            "schemaValidation": bool(schema is not None and schema.schema_validation),
            "tables": tables,
        }

    def _read(self) -> SystemView:
        return SystemView(self.app.db.begin(read_only=True))

    def scheduled_functions(self, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` scheduled functions, newest first."""
        system = self._read()
        model = ScheduledJobs(system)
        docs = Query(system.txn, SCHEDULED_FUNCTIONS_TABLE).order("desc").take(limit)
        return [_job_json(model, ScheduledJob.from_doc(d)) for d in docs]

    def cancel_scheduled_function(self, job_id: str) -> bool:
        """Cancel a pending scheduled function; False when it already finished. AdminError
        ``NotFound`` when there is no such job."""
        scheduler = self.app.scheduler
        now_ms = self.app.db.clock.now_ms

        def cancel(system: SystemView) -> bool:
            model = ScheduledJobs(system)
            if model.get(job_id) is None:
                raise AdminError(f"No scheduled function with id {job_id!r}", code="NotFound")
            return model.cancel(job_id, now_ms())

        canceled = scheduler.transact(cancel)
        scheduler.wake()
        return canceled

    def cron_jobs(self, limit: int) -> dict[str, Any]:
        """``{"crons": [...], "logs": [...]}``: every cron job and the newest ``limit`` logs."""
        jobs = CronJobs(self._read()).all()
        crons = [
            {
                "name": c.name,
                "udfPath": c.udf_path,
                "args": to_convex_json(c.args),
                "schedule": to_convex_json(c.schedule),
                "state": c.state,
                "nextTs": c.next_ts,
                "prevTs": c.prev_ts,
            }
            for c in jobs
        ]
        logs = [to_convex_json(doc) for doc in self.app.cron_logs(None, limit)]
        return {"crons": crons, "logs": logs}


def _count(rows: Any) -> int:
    n = 0
    for row in rows:
        rev = row[1] if isinstance(row, tuple) else row
        if rev.value is not None:
            n += 1
    return n


def _job_json(model: ScheduledJobs, job: ScheduledJob) -> dict[str, Any]:
    try:
        args: Any = to_convex_json(model.args_of(job))
    except ConvectionError:
        args = None
    state: dict[str, Any] = {"kind": job.state.value}
    if job.error is not None:
        state["error"] = job.error
    return {
        "id": job.id,
        "name": job.name,
        "args": args,
        "scheduledTime": job.scheduled_time,
        "completedTime": job.completed_time,
        "state": state,
    }
