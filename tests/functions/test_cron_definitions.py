from __future__ import annotations

from typing import Any

import pytest

from convection.functions.crons import Crons, InvalidCronJob
from convection.functions.decorators import ConvexFunction, internal_mutation, query
from convection.functions.paths import InvalidFunctionReference
from convection.functions.references import api, internal


def test_schedules_in_json_form() -> None:
    crons = Crons()
    crons.interval("every 30s", {"seconds": 30}, internal.a.b)
    crons.interval("every 5m", {"minutes": 5}, internal.a.b)
    crons.interval("every day", {"hours": 24.0}, internal.a.b)
    crons.cron("report", "0  9 * * *", "reports:daily", {"kind": "x"})
    crons.hourly("hourly", {"minuteUTC": 15}, api.a.b)
    crons.daily("digest", {"hourUTC": 9, "minuteUTC": 0}, api.mail.digest, {"n": 1})
    crons.weekly("weekly", {"dayOfWeek": "Monday", "hourUTC": 17, "minuteUTC": 30}, api.a.b)
    crons.monthly("bill", {"day": 1, "hourUTC": 16, "minuteUTC": 0}, api.a.b)
    schedules = {job.name: job.schedule for job in crons}
    assert schedules == {
        "every 30s": {"type": "interval", "seconds": 30},
        "every 5m": {"type": "interval", "seconds": 300},
        "every day": {"type": "interval", "seconds": 86400},
        "report": {"type": "cron", "cronExpr": "0 9 * * *"},
        "hourly": {"type": "hourly", "minuteUTC": 15},
        "digest": {"type": "daily", "hourUTC": 9, "minuteUTC": 0},
        "weekly": {"type": "weekly", "dayOfWeek": 1, "hourUTC": 17, "minuteUTC": 30},
        "bill": {"type": "monthly", "day": 1, "hourUTC": 16, "minuteUTC": 0},
    }
    assert len(crons) == 8
    assert crons.jobs["report"].function_path == "reports:daily"
    assert crons.jobs["report"].args == {"kind": "x"}
    assert crons.jobs["every 30s"].args == {}
    assert crons.jobs["digest"].function_path == "mail:digest"


def test_function_path_is_resolved_lazily() -> None:
    @internal_mutation
    def cleanup(ctx: Any) -> None:
        return None

    crons = Crons()
    crons.interval("cleanup", {"minutes": 1}, cleanup)
    job = crons.jobs["cleanup"]
    with pytest.raises(InvalidFunctionReference, match="no path"):
        job.function_path  # noqa: B018
    cleanup.path = "maintenance:cleanup"  # what the loader does
    assert job.function_path == "maintenance:cleanup"


def test_names_unique_and_valid() -> None:
    crons = Crons()
    crons.interval("it's a-name_1", {"seconds": 1}, api.a.b)
    with pytest.raises(InvalidCronJob, match="twice") as info:
        crons.interval("it's a-name_1", {"seconds": 2}, api.a.b)
    assert info.value.code == "InvalidCronJob"
    for bad in ("", "semi;colon", "caf\u00e9", 3):
        with pytest.raises(InvalidCronJob, match="name"):
            crons.interval(bad, {"seconds": 1}, api.a.b)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "schedule",
    [
        {},
        {"seconds": 0},
        {"minutes": -1},
        {"seconds": 1.5},
        {"seconds": True},
        {"seconds": "5"},
        {"seconds": 1, "minutes": 1},
        {"days": 1},
        [("seconds", 1)],
    ],
)
def test_invalid_intervals(schedule: Any) -> None:
    with pytest.raises(InvalidCronJob):
        Crons().interval("x", schedule, api.a.b)


@pytest.mark.parametrize("expr", ["61 * * * *", "* * * *", "* * * * * *", "@daily", "nope", 5])
def test_invalid_cron_expressions(expr: Any) -> None:
    with pytest.raises(InvalidCronJob):
        Crons().cron("x", expr, api.a.b)


@pytest.mark.parametrize(
    ("method", "schedule"),
    [
        ("hourly", {"minuteUTC": 60}),
        ("hourly", {"minuteUTC": -1}),
        ("hourly", {}),
        ("hourly", {"minuteUTC": 1, "hourUTC": 2}),
        ("daily", {"hourUTC": 24, "minuteUTC": 0}),
        ("daily", {"hourUTC": 1}),
        ("weekly", {"dayOfWeek": "funday", "hourUTC": 1, "minuteUTC": 0}),
        ("weekly", {"dayOfWeek": 1, "hourUTC": 1, "minuteUTC": 0}),
        ("monthly", {"day": 0, "hourUTC": 1, "minuteUTC": 0}),
        ("monthly", {"day": 32, "hourUTC": 1, "minuteUTC": 0}),
        ("monthly", {"day": 1.5, "hourUTC": 1, "minuteUTC": 0}),
    ],
)
def test_invalid_calendar_schedules(method: str, schedule: dict[str, Any]) -> None:
    with pytest.raises(InvalidCronJob):
        getattr(Crons(), method)("x", schedule, api.a.b)


def test_invalid_references_and_args() -> None:
    crons = Crons()
    with pytest.raises(InvalidCronJob, match="not-a-path"):
        crons.interval("a", {"seconds": 1}, "not-a-path")
    with pytest.raises(InvalidCronJob, match=r"api\.orders"):
        crons.interval("b", {"seconds": 1}, api.orders)
    with pytest.raises(InvalidCronJob, match="expected a function reference"):
        crons.interval("c", {"seconds": 1}, 42)  # type: ignore[arg-type]

    @query
    def q(ctx: Any) -> None:
        return None

    assert isinstance(q, ConvexFunction)
    with pytest.raises(InvalidCronJob, match="query"):
        crons.interval("d", {"seconds": 1}, q)
    with pytest.raises(InvalidCronJob, match="object"):
        crons.interval("e", {"seconds": 1}, api.a.b, ["x"])  # type: ignore[arg-type]
    with pytest.raises(InvalidCronJob, match="invalid arguments"):
        crons.interval("f", {"seconds": 1}, api.a.b, {"$bad": 1})
    assert len(crons) == 0
