"""The read models of Inspector: what the dashboard, the API and `jobq info` show.

Plain frozen dataclasses built from what Redis holds, and the functions that build them
from a stored hash or a script's record (job_row, schedule_info); nothing here talks to
Redis.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import JobqError
from .escapes import escape, unescape
from .job import loads_or_raw
from .joblog import LogLine
from .limits import Limit
from .replies import ROW_FIELDS
from .schedule import Schedule

PREVIEW_BYTES = 200  # characters of args (head) and error (tail) a list row shows


@dataclass(frozen=True)
class JobRow:
    """One line of a job list: small fields plus a short preview of args and error."""

    id: str
    queue: str
    state: str
    task: str
    score: float  # pending order, lease deadline, due time or retention expiry (ms)
    enqueued_ms: int | None
    started_ms: int | None
    finished_ms: int | None
    retries: int
    worker: str
    reason: str
    args_preview: str
    error_preview: str
    exists: bool = True


@dataclass(frozen=True)
class JobPage:
    state: str
    queue: str
    total: int
    offset: int
    limit: int
    newest_first: bool
    rows: list[JobRow]
    scanned: int = 0  # for filtered pages: how many entries were examined


@dataclass(frozen=True)
class JobDetail:
    id: str
    queue: str
    fields: Mapping[str, str]
    attempts: list[dict[str, Any]]
    ttl_s: float | None  # seconds until the job's retention ends; None = kept until it ends

    @property
    def state(self) -> str:
        return self.fields.get("state", "")

    @property
    def requeues(self) -> int:
        """How often an operator requeued the job (what Admin.requeue_job checks)."""
        raw = self.fields.get("requeues", "0")
        return int(raw) if raw.isascii() and raw.isdigit() else 0

    def json_field(self, name: str) -> Any:
        return loads_or_raw(self.fields.get(name))


@dataclass(frozen=True)
class JobLog:
    """A job's captured output (Inspector.logs) from byte `offset` of its stored log: its
    whole lines, and `next_offset` to ask from for only the lines written since (a tail).
    `running`: the job is processing, so more may come."""

    id: str
    queue: str
    state: str
    lines: list[LogLine]
    offset: int
    next_offset: int
    size: int  # bytes stored so far (every attempt's lines)

    @property
    def running(self) -> bool:
        return self.state == "processing"


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    alive: bool  # False when its registry entry expired: the worker stopped beating
    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def current(self) -> list[str]:
        """The 'queue/id' of each job the worker runs (written by current_field)."""
        raw = self.fields.get("current", "")
        return [unescape(c, "%") for c in raw.split(",") if c]


def current_field(jobs: Iterable[tuple[str, str]]) -> str:
    """A worker's 'current' field for these (queue, id) pairs (read by WorkerInfo.current).
    The jobs are ','-separated, and another client may have stored a job under an id
    holding ',': written as %2C there, '%' as %25 (escapes.py: the other escapes of ids)."""
    return ",".join(f"{queue}/{escape(job_id, _plain_in_current, '%')}" for queue, job_id in jobs)


def _plain_in_current(c: str) -> bool:
    return c not in ",%"


@dataclass(frozen=True)
class HistoryPoint:
    minute_ms: int
    completed: int
    failed: int


@dataclass(frozen=True)
class ScheduleInfo:
    """A stored periodic schedule and what its scheduler did with it."""

    name: str
    schedule: Schedule | None  # None when stored malformed (see error)
    enabled: bool
    next_ms: int | None  # next tick; None while disabled
    last_tick_ms: int | None  # the last tick fired, and its job
    last_job_id: str
    last_fired_ms: int | None
    fired: int  # jobs created by ticks
    missed: int  # ticks given up under the missed policy (or because the queue was full)
    error: str = ""
    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def when(self) -> str:
        """'every 30s' or 'cron */5 * * * * (Europe/Berlin)'."""
        s = self.schedule
        if s is None:
            return "?"
        if s.every_s is not None:
            return f"every {s.every_s:g}s"
        return f"cron {s.cron} ({s.timezone})"


@dataclass(frozen=True)
class SchedulerInfo:
    """Who holds the scheduler leader lease (leader '' when nobody does)."""

    leader: str
    epoch: int
    since_ms: int | None
    renewed_ms: int | None
    lease_left_ms: int


@dataclass(frozen=True)
class LimitInfo:
    """A limit of a queue and how it is used right now."""

    limit: Limit
    running: int  # counted against the concurrency cap (ended jobs leave at the next claim)
    started: int  # starts in the current rate window
    parked: int  # jobs waiting for room
    wake_ms: int | None  # when parked jobs may have room: 0 = when a running job ends


@dataclass(frozen=True)
class Dependency:
    """One parent of a job: its ref ('queue/id'), its state ('' if gone), and whether the
    child still waits for it."""

    ref: str
    state: str
    waiting: bool


@dataclass(frozen=True)
class JobFilter:
    """What the job lists filter on: a task-name substring and a text substring found in
    the error, the reason or the args (both case-insensitive; empty matches everything)."""

    task: str = ""
    text: str = ""

    def __bool__(self) -> bool:
        return bool(self.task or self.text)

    def matches(self, row: JobRow) -> bool:
        if self.task and self.task.lower() not in row.task.lower():
            return False
        if self.text:
            hay = f"{row.error_preview}\n{row.reason}\n{row.args_preview}".lower()
            return self.text.lower() in hay
        return True


@dataclass(frozen=True)
class AuditEntry:
    """One operator action: who did what to how many jobs, when (ms since the epoch)."""

    at_ms: int
    actor: str
    action: str
    queue: str
    state: str
    count: int
    detail: str


@dataclass(frozen=True)
class AuditPage:
    total: int
    offset: int
    entries: list[AuditEntry]


def int_field(v: str | None) -> int | None:
    """A stored integer field; None when missing, empty or not a number."""
    try:
        return int(v) if v not in (None, "") else None
    except ValueError:
        return None


def _preview(text: str | None) -> str:
    if not text:
        return ""
    return text if len(text) <= PREVIEW_BYTES else text[:PREVIEW_BYTES] + "…"


def job_row(queue: str, rec: Sequence[Any], score: float, full_error: bool) -> JobRow:
    """A JobRow from a rows.lua record (see scripts.rows_page); `full_error` keeps the
    error as read, else only its last PREVIEW_BYTES characters."""
    n = len(ROW_FIELDS)
    f: dict[str, Any] = dict(zip(ROW_FIELDS, rec[2:2 + n], strict=True))
    args, args_len, err, err_len = rec[2 + n:2 + n + 4]
    # A field too big to read in a row is shown by its size.
    args_text = args if args else (f"<{args_len} bytes>" if args_len else "")
    err_text = err if err else (f"<{err_len} bytes of error text>" if err_len else "")
    return JobRow(
        id=str(rec[0]), queue=queue, state=f.get("state") or "", task=f.get("task") or "",
        score=score, enqueued_ms=int_field(f.get("enqueued_ms")),
        started_ms=int_field(f.get("started_ms")), finished_ms=int_field(f.get("finished_ms")),
        retries=int_field(f.get("retries")) or 0, worker=f.get("worker") or "",
        reason=f.get("reason") or "", args_preview=_preview(args_text),
        error_preview=err_text if full_error else err_text[-PREVIEW_BYTES:],
        exists=f.get("state") is not None)


@functools.lru_cache(maxsize=1024)
def _parsed_schedule(name: str, raw: str, enabled: bool) -> Schedule:
    # Validating a definition (croniter, zoneinfo) costs ~0.3 ms; a page of schedules polled
    # every few seconds re-reads the same definitions. Schedule is frozen, so sharing is safe.
    return Schedule.from_json(name, raw, enabled)


def schedule_info(name: str, f: Mapping[str, str]) -> ScheduleInfo:
    """A ScheduleInfo from a schedule's stored hash; a definition that does not parse gives
    schedule None and says why in `error`."""
    error = f.get("error", "")
    try:
        schedule: Schedule | None = _parsed_schedule(name, f.get("def", ""),
                                                     f.get("enabled") == "1")
    except JobqError as exc:
        schedule, error = None, error or str(exc)
    enabled = f.get("enabled") == "1"
    return ScheduleInfo(name, schedule, enabled,
                        int_field(f.get("next_ms")) if enabled else None,
                        int_field(f.get("last_tick_ms")), f.get("last_job_id", ""),
                        int_field(f.get("last_fired_ms")), int_field(f.get("fired")) or 0,
                        int_field(f.get("missed")) or 0, error, dict(f))
