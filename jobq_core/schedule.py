"""Schedule: what a periodic job is and when its ticks fall (no Redis here).

    Schedule("cleanup", "myapp.tasks.cleanup", cron="0 3 * * *", timezone="Europe/Berlin")
    Schedule("ping", ping, every_s=30, args=("db",), queue="high", missed="run_once")

Ticks are absolute times in ms: multiples of `every_s` since the Unix epoch, or the times
the cron expression matches in `timezone` (croniter). Every process computes the same ticks,
so a tick's job id `sched:<name>:<tick ms>` is the same whichever scheduler fires it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from .errors import ConfigError
from .job import JSON_ERRORS, dumps, short_error
from .keys import check_queue_name
from .options import schedule_option_names
from .registry import resolve

SCHEDULE_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")  # fullmatch only
MISSED_POLICIES = ("skip", "run_once")
# Enqueue options a schedule may set on the jobs it makes (as Queue.enqueue_call takes them).
JOB_OPTIONS = schedule_option_names()
MAX_TICKS_PER_STEP = 100  # on-time ticks fired per schedule per scheduler step
MAX_MISSED_COUNTED = 10_000  # cron ticks counted one by one when reporting missed runs
DEFAULT_GRACE_MS = 60_000


def check_schedule_name(name: object) -> str:
    if not isinstance(name, str) or not SCHEDULE_NAME_RE.fullmatch(name):
        raise ConfigError(f"invalid schedule name {name!r}: use 1-64 letters, digits, '_', '.', "
                          "'-'")
    return name


CRON_FORMS = ("5 fields: minute hour day month weekday, or 6 with seconds first: "
              "second minute hour day month weekday")


def _seconds_first(cron: str) -> bool:
    # croniter reads a sixth field as seconds *last*; jobq takes the form Quartz, Spring
    # and node-cron use, seconds first, so "*/5 * * * * *" is every five seconds.
    return len(cron.split()) == 6


def check_cron(name: str, cron: object) -> str:
    """`cron` if it is a valid 5-field expression, a 6-field one with seconds first, or a
    nickname (@hourly, @daily ...); raises ConfigError saying which forms are accepted."""
    if not isinstance(cron, str):
        raise ConfigError(f"schedule {name!r}: cron must be a string, not {cron!r}")
    n = len(cron.split())
    if not (n in (5, 6) or (n == 1 and cron.strip().startswith("@"))):
        raise ConfigError(f"schedule {name!r}: cron {cron!r} has {n} fields; it takes "
                          f"{CRON_FORMS}")
    if not croniter.is_valid(cron, second_at_beginning=_seconds_first(cron)):
        raise ConfigError(f"schedule {name!r}: invalid cron expression {cron!r} (it takes "
                          f"{CRON_FORMS})")
    return cron


@dataclass(frozen=True)
class Plan:
    """What a scheduler step does for one due schedule."""

    ticks: list[int]  # ticks to fire now, oldest first
    missed: int  # ticks given up under the missed policy (capped for cron)
    next_ms: int  # the schedule's next tick after these


@dataclass(frozen=True)
class Schedule:
    """A periodic job: `task` with `args`/`kwargs` on `queue`, every `every_s` seconds or on a
    `cron` expression in `timezone`: 5 fields (minute hour day month weekday), or 6 with
    seconds first (second minute hour day month weekday: "*/5 * * * * *" is every 5 s).

    `missed` says what happens to ticks more than `grace_s` late (no scheduler was running, or
    leadership was changing): "skip" drops them, "run_once" fires the latest one once. Ticks
    late by less than `grace_s` (default: the period, at most 60 s) still fire, one job each.
    `options` are enqueue options for every job (priority, timeout_s, ttl_s, result_ttl_s,
    max_retries, retry_backoff_s, meta, limit_key). `enabled` applies when the schedule is
    first stored; afterwards enable()/disable() decide. Raises ConfigError when invalid.
    """

    name: str
    task: Any
    every_s: float | None = None
    cron: str | None = None
    timezone: str = "UTC"
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue: str | None = None
    missed: str = "skip"
    grace_s: float | None = None
    enabled: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_schedule_name(self.name)
        name, registered = resolve(self.task)
        object.__setattr__(self, "task", name)
        if self.queue is None:
            object.__setattr__(self, "queue", registered.options.queue if registered
                               else "default")
        check_queue_name(str(self.queue))
        object.__setattr__(self, "args", tuple(self.args))
        object.__setattr__(self, "kwargs", dict(self.kwargs))
        object.__setattr__(self, "options", dict(self.options))
        if registered is not None:  # every tick would fail: refuse it when it is declared
            registered.check_args(self.args, self.kwargs)
        dumps([self.args, self.kwargs, self.options], f"schedule {self.name!r} args/options")
        unknown = set(self.options) - JOB_OPTIONS
        if unknown:
            raise ConfigError(f"schedule {self.name!r}: unknown job options {sorted(unknown)}; "
                              f"allowed: {sorted(JOB_OPTIONS)}")
        if (self.every_s is None) == (self.cron is None):
            raise ConfigError(f"schedule {self.name!r}: give every_s or cron (exactly one)")
        if self.every_s is not None and (isinstance(self.every_s, bool) or not isinstance(
                self.every_s, int | float) or not math.isfinite(self.every_s)
                or self.every_s < 1):
            raise ConfigError(f"schedule {self.name!r}: every_s must be at least 1 second")
        if self.cron is not None:
            check_cron(self.name, self.cron)
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ConfigError(f"schedule {self.name!r}: unknown timezone {self.timezone!r}") \
                from None
        if self.missed not in MISSED_POLICIES:
            raise ConfigError(f"schedule {self.name!r}: missed must be one of "
                              f"{', '.join(MISSED_POLICIES)}, not {self.missed!r}")
        if self.grace_s is not None and (not isinstance(self.grace_s, int | float)
                                         or not math.isfinite(self.grace_s) or self.grace_s < 0):
            raise ConfigError(f"schedule {self.name!r}: grace_s must be a non-negative number")

    # -- storage -------------------------------------------------------------------------
    def to_json(self) -> str:
        """The definition as stored in Redis (without `enabled`, which is state)."""
        d: dict[str, Any] = {"task": self.task, "queue": self.queue, "args": list(self.args),
                             "kwargs": self.kwargs, "timezone": self.timezone,
                             "missed": self.missed, "grace_s": self.grace_s,
                             "options": self.options}
        d["every_s" if self.every_s is not None else "cron"] = (
            self.every_s if self.every_s is not None else self.cron)
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, name: str, raw: str, enabled: bool = True) -> Schedule:
        """Rebuild a stored schedule; raises ConfigError if it is malformed."""
        try:
            d = json.loads(raw)
            return cls(name=name, task=d["task"], every_s=d.get("every_s"), cron=d.get("cron"),
                       timezone=d.get("timezone", "UTC"), args=d.get("args", ()),
                       kwargs=d.get("kwargs") or {}, queue=d.get("queue"),
                       missed=d.get("missed", "skip"), grace_s=d.get("grace_s"),
                       enabled=enabled, options=d.get("options") or {})
        except (*JSON_ERRORS, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"schedule {name!r} is stored malformed: "
                              f"{short_error(exc)}") from None

    # -- ticks ---------------------------------------------------------------------------
    def job_id(self, tick_ms: int) -> str:
        """The deterministic id of the job of one tick."""
        return f"sched:{self.name}:{tick_ms}"

    def next_after(self, ms: int) -> int:
        """The first tick strictly after `ms`."""
        if self.every_s is not None:
            every = self._every_ms
            return (ms // every + 1) * every
        start = datetime.fromtimestamp(ms / 1000, ZoneInfo(self.timezone))
        nxt: datetime = self._croniter(start).get_next(datetime)
        return int(nxt.timestamp() * 1000)

    def last_at_or_before(self, ms: int) -> int:
        """The last tick at or before `ms`."""
        if self.every_s is not None:
            return ms // self._every_ms * self._every_ms
        start = datetime.fromtimestamp((ms + 1) / 1000, ZoneInfo(self.timezone))
        prev: datetime = self._croniter(start).get_prev(datetime)
        return int(prev.timestamp() * 1000)

    def grace_ms(self, around_ms: int) -> int:
        if self.grace_s is not None:
            return int(self.grace_s * 1000)
        period = self.next_after(around_ms) - self.last_at_or_before(around_ms)
        return min(DEFAULT_GRACE_MS, max(1, period))

    def plan(self, next_ms: int, now_ms: int) -> Plan:
        """The ticks to fire at `now_ms` when the next unfired tick is `next_ms`."""
        if next_ms > now_ms:
            return Plan([], 0, next_ms)
        ticks: list[int] = []
        missed = 0
        t = next_ms
        cutoff = now_ms - self.grace_ms(now_ms)
        if t < cutoff:
            last_missed = max(t, self.last_at_or_before(cutoff))
            missed = self._count(t, last_missed)
            if self.missed == "run_once":
                ticks.append(last_missed)
                missed -= 1
            t = self.next_after(last_missed)
        while t <= now_ms and len(ticks) < MAX_TICKS_PER_STEP:
            ticks.append(t)
            t = self.next_after(t)
        return Plan(ticks, missed, t)

    def _count(self, first: int, last: int) -> int:
        """Ticks from `first` to `last` inclusive (both ticks), capped for cron."""
        if self.every_s is not None:
            return (last - first) // self._every_ms + 1
        n, t = 1, first
        while t < last and n < MAX_MISSED_COUNTED:
            t = self.next_after(t)
            n += 1
        return n

    def _croniter(self, start: datetime) -> croniter:
        assert self.cron is not None
        return croniter(self.cron, start, second_at_beginning=_seconds_first(self.cron))

    @property
    def _every_ms(self) -> int:
        assert self.every_s is not None
        return max(1, round(self.every_s * 1000))
