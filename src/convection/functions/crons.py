"""Cron job definitions of ``convex/crons.py`` (``crons = Crons()``).

Each call validates its arguments at once (so a mistake points at the line in crons.py) and
records a :class:`CronJobSpec`: a unique name, a schedule in Convex's JSON form, a function
reference and the argument object. The function path is resolved lazily (the referenced
module may not be loaded yet while crons.py runs). Running the jobs is the scheduler's job.

Schedules (all times UTC, ``dayOfWeek`` 0 = Sunday as in cron):

- ``{"type": "interval", "seconds": n}`` (minutes and hours are converted to seconds)
- ``{"type": "cron", "cronExpr": "m h dom mon dow"}``
- ``{"type": "hourly", "minuteUTC": m}``
- ``{"type": "daily", "hourUTC": h, "minuteUTC": m}``
- ``{"type": "weekly", "dayOfWeek": d, "hourUTC": h, "minuteUTC": m}``
- ``{"type": "monthly", "day": d, "hourUTC": h, "minuteUTC": m}``
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from convection.errors import ConvectionError
from convection.functions.decorators import ConvexFunction
from convection.functions.paths import canonical_path
from convection.functions.references import FunctionReference, function_path
from convection.values.model import normalize

DAYS_OF_WEEK: tuple[str, ...] = (
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
)
_NAME_RE = re.compile(r"[A-Za-z0-9_ '\-]+")
_INTERVAL_UNITS: dict[str, int] = {"seconds": 1, "minutes": 60, "hours": 3600}

FunctionRef: TypeAlias = str | FunctionReference | ConvexFunction


class InvalidCronJob(ConvectionError):
    """A cron job definition is malformed (name, schedule, reference or arguments)."""

    code = "InvalidCronJob"


@dataclass(frozen=True)
class CronJobSpec:
    """One cron job: ``schedule`` is the JSON form above, ``args`` the argument object as
    given (a valid Convex object; the function's args validator converts it when run)."""

    name: str
    schedule: dict[str, Any]
    ref: str | FunctionReference | ConvexFunction
    args: dict[str, Any]

    @property
    def function_path(self) -> str:
        """The canonical path of the function to run (resolved now, not at definition)."""
        return function_path(self.ref)


class Crons:
    """The cron table of a deployment, filled by ``convex/crons.py`` at import.

    ``jobs`` keeps definition order; names are unique.
    """

    def __init__(self) -> None:
        self.jobs: dict[str, CronJobSpec] = {}

    def __iter__(self) -> Any:
        return iter(self.jobs.values())

    def __len__(self) -> int:
        return len(self.jobs)

    def __repr__(self) -> str:
        return f"<Crons {list(self.jobs)}>"

    # --- schedules -------------------------------------------------------------------------

    def interval(
        self,
        name: str,
        schedule: Mapping[str, Any],
        ref: FunctionRef,
        args: Mapping[str, Any] | None = None,
    ) -> None:
        """Run every n seconds, minutes or hours (exactly one), starting at deploy."""
        where = f"Cron job {name!r}"
        schedule = _mapping(schedule, where, "{'minutes': 5}")
        given = [unit for unit in _INTERVAL_UNITS if schedule.get(unit) is not None]
        unknown = set(schedule) - set(_INTERVAL_UNITS)
        if len(given) != 1 or unknown:
            raise InvalidCronJob(
                f"{where}: an interval needs exactly one of 'seconds', 'minutes' or 'hours', "
                f"got {dict(schedule)!r}."
            )
        unit = given[0]
        n = _integer(schedule[unit], f"{where}: interval {unit}")
        if n <= 0:
            raise InvalidCronJob(f"{where}: interval {unit} must be greater than 0, got {n}.")
        seconds = n * _INTERVAL_UNITS[unit]
        self._add(name, {"type": "interval", "seconds": seconds}, ref, args)

    def cron(
        self,
        name: str,
        cron_expr: str,
        ref: FunctionRef,
        args: Mapping[str, Any] | None = None,
    ) -> None:
        """Run on a classic five-field cron schedule ``"m h dom mon dow"`` (UTC)."""
        where = f"Cron job {name!r}"
        if not isinstance(cron_expr, str) or len(cron_expr.split()) != 5:
            raise InvalidCronJob(
                f"{where}: {cron_expr!r} is not a cron expression with five fields "
                "'minute hour day-of-month month day-of-week' (e.g. '0 9 * * *')."
            )
        from croniter import croniter  # imported lazily: only crons.py needs it

        if not croniter.is_valid(cron_expr):
            raise InvalidCronJob(
                f"{where}: {cron_expr!r} is not a valid cron expression "
                "('minute hour day-of-month month day-of-week', e.g. '0 9 * * *')."
            )
        self._add(name, {"type": "cron", "cronExpr": " ".join(cron_expr.split())}, ref, args)

    def hourly(
        self,
        name: str,
        schedule: Mapping[str, Any],
        ref: FunctionRef,
        args: Mapping[str, Any] | None = None,
    ) -> None:
        """Run every hour at ``minuteUTC``."""
        where = f"Cron job {name!r}"
        schedule = _mapping(schedule, where, "{'minuteUTC': 0}")
        _only(schedule, {"minuteUTC"}, where)
        minute = _ranged(schedule, "minuteUTC", 0, 59, where)
        self._add(name, {"type": "hourly", "minuteUTC": minute}, ref, args)

    def daily(
        self,
        name: str,
        schedule: Mapping[str, Any],
        ref: FunctionRef,
        args: Mapping[str, Any] | None = None,
    ) -> None:
        """Run every day at ``hourUTC:minuteUTC``."""
        where = f"Cron job {name!r}"
        schedule = _mapping(schedule, where, "{'hourUTC': 9, 'minuteUTC': 0}")
        _only(schedule, {"hourUTC", "minuteUTC"}, where)
        hour = _ranged(schedule, "hourUTC", 0, 23, where)
        minute = _ranged(schedule, "minuteUTC", 0, 59, where)
        self._add(name, {"type": "daily", "hourUTC": hour, "minuteUTC": minute}, ref, args)

    def weekly(
        self,
        name: str,
        schedule: Mapping[str, Any],
        ref: FunctionRef,
        args: Mapping[str, Any] | None = None,
    ) -> None:
        """Run every week on ``dayOfWeek`` ("monday", ...) at ``hourUTC:minuteUTC``."""
        where = f"Cron job {name!r}"
        schedule = _mapping(
            schedule, where, "{'dayOfWeek': 'monday', 'hourUTC': 9, 'minuteUTC': 0}"
        )
        _only(schedule, {"dayOfWeek", "hourUTC", "minuteUTC"}, where)
        day_name = schedule.get("dayOfWeek")
        if not isinstance(day_name, str) or day_name.lower() not in DAYS_OF_WEEK:
            raise InvalidCronJob(
                f"{where}: dayOfWeek must be a day name like 'monday', got {day_name!r}."
            )
        hour = _ranged(schedule, "hourUTC", 0, 23, where)
        minute = _ranged(schedule, "minuteUTC", 0, 59, where)
        day = DAYS_OF_WEEK.index(day_name.lower())
        self._add(
            name,
            {"type": "weekly", "dayOfWeek": day, "hourUTC": hour, "minuteUTC": minute},
            ref,
            args,
        )

    def monthly(
        self,
        name: str,
        schedule: Mapping[str, Any],
        ref: FunctionRef,
        args: Mapping[str, Any] | None = None,
    ) -> None:
        """Run every month on ``day`` (1-31; skipped in shorter months) at the given time."""
        where = f"Cron job {name!r}"
        schedule = _mapping(schedule, where, "{'day': 1, 'hourUTC': 9, 'minuteUTC': 0}")
        _only(schedule, {"day", "hourUTC", "minuteUTC"}, where)
        day = _ranged(schedule, "day", 1, 31, where)
        hour = _ranged(schedule, "hourUTC", 0, 23, where)
        minute = _ranged(schedule, "minuteUTC", 0, 59, where)
        self._add(
            name,
            {"type": "monthly", "day": day, "hourUTC": hour, "minuteUTC": minute},
            ref,
            args,
        )

    # --- shared ----------------------------------------------------------------------------

    def _add(
        self,
        name: str,
        schedule: dict[str, Any],
        ref: FunctionRef,
        args: Mapping[str, Any] | None,
    ) -> None:
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise InvalidCronJob(
                f"Invalid cron job name {name!r}: use ASCII letters, digits, spaces, '_', '-' "
                "and apostrophes."
            )
        if name in self.jobs:
            raise InvalidCronJob(f"Cron job name {name!r} is used twice; names must be unique.")
        where = f"Cron job {name!r}"
        _check_ref(ref, where)
        if args is None:
            args = {}
        if not isinstance(args, Mapping):
            raise InvalidCronJob(
                f"{where}: the arguments must be an object (dict), got {type(args).__name__}."
            )
        try:
            normalize(dict(args))  # validates; the function's validator converts later
        except ConvectionError as exc:
            raise InvalidCronJob(f"{where}: invalid arguments: {exc}") from exc
        self.jobs[name] = CronJobSpec(name, schedule, ref, copy.deepcopy(dict(args)))


def _check_ref(ref: Any, where: str) -> None:
    if isinstance(ref, str):
        try:
            canonical_path(ref)
        except ConvectionError as exc:
            raise InvalidCronJob(f"{where}: {exc}") from exc
    elif isinstance(ref, FunctionReference):
        try:
            ref.path  # noqa: B018 - validates the reference's shape
        except ConvectionError as exc:
            raise InvalidCronJob(f"{where}: {exc}") from exc
    elif isinstance(ref, ConvexFunction):
        if ref.kind not in ("mutation", "action"):
            raise InvalidCronJob(
                f"{where}: crons run mutations and actions, but {ref!r} is a {ref.kind}."
            )
    else:
        raise InvalidCronJob(
            f"{where}: expected a function reference (internal.module.name), a decorated "
            f"mutation/action or a path string, got {type(ref).__name__}."
        )


def _mapping(schedule: Any, where: str, example: str) -> Mapping[str, Any]:
    if not isinstance(schedule, Mapping):
        raise InvalidCronJob(
            f"{where}: the schedule must be a dict like {example}, got {schedule!r}."
        )
    return schedule


def _only(schedule: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(schedule) - allowed)
    if unknown:
        raise InvalidCronJob(
            f"{where}: unknown schedule field(s) {', '.join(map(repr, unknown))}; "
            f"expected {', '.join(sorted(allowed))}."
        )


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidCronJob(f"{what} must be an integer, got {value!r}.")
    if isinstance(value, float) and not value.is_integer():
        raise InvalidCronJob(f"{what} must be an integer, got {value!r}.")
    return int(value)


def _ranged(schedule: Mapping[str, Any], key: str, low: int, high: int, where: str) -> int:
    if key not in schedule:
        raise InvalidCronJob(f"{where}: the schedule needs {key!r} ({low}-{high}).")
    n = _integer(schedule[key], f"{where}: {key}")
    if not low <= n <= high:
        raise InvalidCronJob(f"{where}: {key} must be from {low} to {high}, got {n}.")
    return n
