"""Schedule: validation, storage form and tick arithmetic (no server)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from jobq_core import ArgumentError, ConfigError, JobqError
from jobq_core.schedule import Schedule
from tests import tasks


def ms(*args: int, tz: str = "UTC") -> int:
    return int(datetime(*args, tzinfo=ZoneInfo(tz)).timestamp() * 1000)  # type: ignore[misc]


def test_interval_ticks_are_multiples_since_the_epoch() -> None:
    s = Schedule("s", "t.x", every_s=60)
    assert s.next_after(ms(2026, 1, 1, 12, 0, 30)) == ms(2026, 1, 1, 12, 1)
    assert s.next_after(ms(2026, 1, 1, 12, 1)) == ms(2026, 1, 1, 12, 2)  # strictly after
    assert s.last_at_or_before(ms(2026, 1, 1, 12, 1)) == ms(2026, 1, 1, 12, 1)
    assert s.job_id(1000) == "sched:s:1000"


def test_cron_in_a_timezone_across_spring_forward() -> None:
    s = Schedule("s", "t.x", cron="30 2 * * *", timezone="Europe/Berlin")
    first = s.next_after(ms(2027, 3, 28, 0, 30, tz="Europe/Berlin"))
    assert first == ms(2027, 3, 28, 3, 0, tz="Europe/Berlin")  # 02:30 does not exist that day
    assert s.next_after(first) == ms(2027, 3, 29, 2, 30, tz="Europe/Berlin")
    assert s.last_at_or_before(s.next_after(first)) == s.next_after(first)


def test_plan_fires_due_ticks_on_time() -> None:
    s = Schedule("s", "t.x", every_s=1)
    late = s.plan(10_000, 12_500)  # grace is the period, 1 s: 10 s and 11 s are missed
    assert (late.ticks, late.missed, late.next_ms) == ([12_000], 2, 13_000)
    on_time = s.plan(12_000, 12_400)
    assert on_time.ticks == [12_000] and on_time.missed == 0 and on_time.next_ms == 13_000
    assert s.plan(13_000, 12_400).ticks == []


def test_missed_ticks_skip_or_run_once() -> None:
    skip = Schedule("s", "t.x", every_s=60)
    now = ms(2026, 1, 1, 12, 10, 5)
    plan = skip.plan(ms(2026, 1, 1, 12, 0), now)  # down for ten minutes
    assert plan.ticks == [ms(2026, 1, 1, 12, 10)]  # 5 s late: within the 60 s grace
    assert plan.missed == 10 and plan.next_ms == ms(2026, 1, 1, 12, 11)
    once = Schedule("s", "t.x", every_s=60, missed="run_once")
    plan = once.plan(ms(2026, 1, 1, 12, 0), now)
    assert plan.ticks == [ms(2026, 1, 1, 12, 9), ms(2026, 1, 1, 12, 10)]
    assert plan.missed == 9


def test_grace_defaults_to_the_period_capped_at_a_minute() -> None:
    assert Schedule("s", "t.x", every_s=5).grace_ms(0) == 5000
    assert Schedule("s", "t.x", every_s=3600).grace_ms(0) == 60_000
    assert Schedule("s", "t.x", every_s=5, grace_s=0.5).grace_ms(0) == 500
    cron = Schedule("s", "t.x", cron="*/5 * * * *")
    assert cron.plan(ms(2026, 1, 1, 0, 0), ms(2026, 1, 1, 1, 0, 30)).missed == 12


def test_json_round_trip_and_task_resolution() -> None:
    s = Schedule("s", tasks.add, every_s=2, args=(1, 2), options={"priority": 5})
    assert s.task == "tests.tasks.add" and s.queue == "default"
    back = Schedule.from_json("s", s.to_json())
    assert back == s
    c = Schedule("c", "t.x", cron="0 3 * * *", timezone="Asia/Tokyo", queue="low")
    assert Schedule.from_json("c", c.to_json()) == c


@pytest.mark.parametrize("kwargs", [
    {"every_s": 60, "cron": "* * * * *"},
    {},
    {"every_s": 0.5},
    {"cron": "not a cron"},
    {"every_s": 60, "timezone": "Mars/Olympus"},
    {"every_s": 60, "missed": "all"},
    {"every_s": 60, "options": {"job_id": "x"}},
    {"every_s": 60, "args": (object(),)},
    {"every_s": 60, "queue": "bad queue"},
])
def test_invalid_schedules_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(JobqError):
        Schedule("s", "t.x", **kwargs)  # type: ignore[arg-type]


def test_invalid_names_are_refused() -> None:
    with pytest.raises(ConfigError):
        Schedule("has space", "t.x", every_s=60)
    with pytest.raises(ConfigError):
        Schedule.from_json("s", "{not json")


def test_now_is_only_used_through_arguments() -> None:
    s = Schedule("s", "t.x", cron="0 0 1 1 *")
    assert s.next_after(ms(2026, 6, 1)) == int(datetime(2027, 1, 1, tzinfo=UTC).timestamp() * 1000)


def test_six_field_cron_has_seconds_first() -> None:
    # The common 6-field form (Quartz, Spring, node-cron): second minute hour day month
    # weekday. "*/5 * * * * *" is every five seconds, not every second.
    s = Schedule("s", "t.x", cron="*/5 * * * * *")
    start = ms(2026, 1, 1)
    assert s.next_after(start) - start == 5_000
    assert s.plan(start + 5_000, start + 10_000).ticks == [start + 5_000, start + 10_000]
    at_30 = Schedule("s", "t.x", cron="30 0 3 * * *")  # 03:00:30 every day
    assert s.last_at_or_before(start) == start
    assert at_30.next_after(start) == ms(2026, 1, 1, 3, 0, 30)


@pytest.mark.parametrize(("cron", "says"), [
    ("* * * *", "4 fields"),
    ("0 0 0 1 1 * 2030", "7 fields"),
    ("0 3 * * * 30", "second minute hour day month weekday"),  # seconds last: refused
])
def test_cron_field_count_errors_say_which_form(cron: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        Schedule("s", "t.x", cron=cron)


def test_arguments_that_do_not_fit_the_registered_task_are_refused() -> None:
    with pytest.raises(ArgumentError, match="missing a required argument: 'b'"):
        Schedule("s", tasks.add, every_s=60, args=(1,))
    assert Schedule("s", tasks.add, every_s=60, args=(1,), kwargs={"b": 2}).args == (1,)
