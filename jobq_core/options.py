"""JobOptions: the options of one job, one typed object for every way in.

Queue.enqueue_call takes them as keyword arguments, enqueue_many as the keys of a dict,
a Schedule as its `options`, the CLI as flags (declared from the fields here), and
spec.build_spec turns them, with the task's defaults, into what enqueue.lua writes. None
means "the task's default, else the Settings default".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import cache
from typing import Any, TypedDict

from .errors import ConfigError


def _about(help: str, *, cli: Any = None, schedule: bool = False) -> dict[str, Any]:
    """A JobOptions field's metadata: `help` for the CLI flag (with `cli` its type: int,
    float, str, bool for a flag, list for a repeatable one, dict for JSON; None: no flag),
    `schedule` whether a Schedule may set it on the jobs it makes."""
    return {"help": help, "cli": cli, "schedule": schedule}


@dataclass(slots=True)
class JobOptions:
    """A job's options (each described by the flag text below); see Queue.enqueue_call.

    Treat as immutable. Not frozen: a frozen dataclass's __init__ costs 3.5 times as much,
    and enqueue_call builds one per call."""

    priority: int | None = field(default=None, metadata=_about(
        "-100..100; higher runs first [the task's, else 0].", cli=int, schedule=True))
    timeout_s: float | None = field(default=None, metadata=_about(
        "Time limit of one attempt.", cli=float, schedule=True))
    ttl_s: float | None = field(default=None, metadata=_about(
        "Give up (dead) if not started within this time.", cli=float, schedule=True))
    result_ttl_s: int | None = field(default=None, metadata=_about(
        "How long to keep the result.", cli=int, schedule=True))
    max_retries: int | None = field(default=None, metadata=_about(
        "Retries after a failed attempt.", cli=int, schedule=True))
    retry_backoff_s: float | None = field(default=None, metadata=_about(
        "Base of the exponential retry backoff.", cli=float, schedule=True))
    job_id: str | None = field(default=None, metadata=_about(
        "Use this id (an existing job with it is returned unchanged).", cli=str))
    delay_s: float | None = field(default=None, metadata=_about(
        "Run after this many seconds (scheduled).", cli=float))
    run_at: datetime | None = field(default=None, metadata=_about(
        "Run at this time (timezone-aware; naive means UTC)."))
    meta: Mapping[str, Any] | None = field(default=None, metadata=_about(
        "Metadata (JSON object).", cli=dict, schedule=True))
    unique: bool = field(default=False, metadata=_about(
        "Write nothing while a job of the same task and arguments is live.", cli=bool))
    unique_key: str | None = field(default=None, metadata=_about(
        "Write nothing while a job holding this key is live.", cli=str))
    unique_for_s: float | None = field(default=None, metadata=_about(
        "Hold the unique key at most this long [Settings.unique_for_s].", cli=float))
    depends_on: Any = field(default=None, metadata=_about(
        "Wait until this job ('queue/id', or an id in this queue) ended; repeatable.",
        cli=list))
    allow_failure: bool = field(default=False, metadata=_about(
        "With --depends-on: run even if a job depended on did not complete.", cli=bool))
    limit_key: str | None = field(default=None, metadata=_about(
        "Count against the limit of this key [the task name].", cli=str, schedule=True))

    @classmethod
    def of(cls, options: Mapping[str, Any], where: str) -> JobOptions:
        """JobOptions from a mapping of option names; ConfigError naming `where` for a name
        that is not an option."""
        unknown = sorted(set(options) - option_names())
        if unknown:
            raise ConfigError(f"{where}: unknown option(s) {', '.join(unknown)}; options are "
                              f"{', '.join(sorted(option_names()))}")
        return cls(**options)


class EnqueueOptions(TypedDict, total=False):
    """JobOptions as keyword arguments: what Queue.enqueue_call and AsyncQueue.enqueue_call
    take besides the call (`**options: Unpack[EnqueueOptions]`), so type checkers check each
    by name and type while both methods pass them on in one JobOptions(**options).
    tests/unit/test_options.py keeps it field for field, type for type, with JobOptions."""

    priority: int | None
    timeout_s: float | None
    ttl_s: float | None
    result_ttl_s: int | None
    max_retries: int | None
    retry_backoff_s: float | None
    job_id: str | None
    delay_s: float | None
    run_at: datetime | None
    meta: Mapping[str, Any] | None
    unique: bool
    unique_key: str | None
    unique_for_s: float | None
    depends_on: Any
    allow_failure: bool
    limit_key: str | None


@cache
def option_names() -> frozenset[str]:
    return frozenset(f.name for f in fields(JobOptions))


@cache
def schedule_option_names() -> frozenset[str]:
    """The options a Schedule may set on the jobs it makes (not ids, delays, dependencies or
    uniqueness: each tick makes exactly one job, at once)."""
    return frozenset(f.name for f in fields(JobOptions) if f.metadata["schedule"])
