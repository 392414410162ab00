"""build_spec: a call of a task plus its JobOptions -> the JobSpec enqueue.lua writes.

Every option is checked here (ConfigError says which and why) and falls back to the task's
default, then to Settings. Used by Queue (every enqueue) and the scheduler (each tick).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from .config import Settings
from .dependencies import dependency_fields, parent_refs
from .errors import ConfigError, PayloadError
from .job import DEFER, MAX_PRIORITY, MIN_PRIORITY, JobSpec, dumps, encode_args, new_job_id
from .keys import require_job_id
from .limits import check_limit_key
from .options import JobOptions
from .registry import TaskOptions, resolve

NO_OPTIONS = JobOptions()
# Options stored as job fields, with the task default each falls back to, and whether the
# value is a whole number.
_NUMBERS: tuple[tuple[str, str | None, bool], ...] = (
    ("timeout_s", "timeout_s", False),
    ("max_retries", "max_retries", True),
    ("result_ttl_s", "result_ttl_s", True),
    ("retry_backoff_s", None, False),
)


def build_spec(queue: str, settings: Settings, task: object, args: Sequence[Any],
               kwargs: Mapping[str, Any], opts: JobOptions = NO_OPTIONS, *,
               check_args: bool = True) -> JobSpec:
    """The spec of `task(*args, **kwargs)` on `queue` with `opts`. Raises ConfigError (a
    bad option), PayloadError (arguments not JSON or too big), UnknownTask, and with
    `check_args` whatever a registered task's check_args raises for arguments its function
    cannot take."""
    name, t = resolve(task)
    d = t.options if t is not None else None
    args_json, kwargs_json = encode_args(args, kwargs, settings.max_payload_bytes)
    priority = _priority(opts.priority, d)
    options = _stored_options(opts, d, settings.max_payload_bytes)
    ttl = opts.ttl_s if opts.ttl_s is not None else (d.ttl_s if d else None)
    if ttl is not None and not _finite_non_negative(ttl):
        raise ConfigError(f"ttl_s must be a non-negative number, not {ttl!r}")
    ukey = _unique_key(opts.unique, opts.unique_key, name, args_json, kwargs_json)
    window = settings.unique_for_s if opts.unique_for_s is None else opts.unique_for_s
    if ukey:
        if not _finite_non_negative(window) or window <= 0:
            raise ConfigError(f"unique_for_s must be a positive number, not {window!r}")
        options["unique_key"] = ukey
    if opts.limit_key is not None:
        options["limit_key"] = check_limit_key(opts.limit_key)
    delay_ms = _delay_ms(opts.delay_s, opts.run_at)
    refs = parent_refs(opts.depends_on, queue)
    if refs:
        if delay_ms:
            raise ConfigError("give depends_on or delay_s/run_at, not both")
        options.update(dependency_fields(refs, opts.allow_failure))
        delay_ms = DEFER
    spec_id = require_job_id(opts.job_id) if opts.job_id is not None else new_job_id()
    if t is not None and check_args:  # last: a bad option is reported first
        t.check_args(args, kwargs)
    return JobSpec(
        id=spec_id, task=name, args_json=args_json, kwargs_json=kwargs_json,
        priority=priority, delay_ms=delay_ms,
        ttl_ms=int((ttl or 0) * 1000), options=options, unique_key=ukey,
        unique_ms=max(1, int(window * 1000)) if ukey else 0, depends_on=refs,
    )


def _priority(priority: int | None, d: TaskOptions | None) -> int:
    prio = priority if priority is not None else (d.priority if d else 0)
    if (not isinstance(prio, int) or isinstance(prio, bool)
            or not MIN_PRIORITY <= prio <= MAX_PRIORITY):
        raise ConfigError(f"priority must be an int from {MIN_PRIORITY} to {MAX_PRIORITY}")
    return int(prio)  # an IntEnum member is sent and stored as its number


def _stored_options(opts: JobOptions, d: TaskOptions | None, cap: int) -> dict[str, str]:
    """The numbers and the meta kept in the job's hash for the worker; PayloadError for a
    meta above `cap` bytes (the arguments' cap: a 5 MB meta was stored as given)."""
    options: dict[str, str] = {}
    for key, default_name, integral in _NUMBERS:
        chosen = getattr(opts, key)
        if chosen is None and d is not None and default_name is not None:
            chosen = getattr(d, default_name)
        if chosen is not None:
            if not _finite_non_negative(chosen):
                raise ConfigError(f"{key} must be a non-negative number, not {chosen!r}")
            options[key] = str(int(chosen) if integral else float(chosen))
    if opts.meta:
        if not isinstance(opts.meta, Mapping):
            raise ConfigError(f"meta must be a dict, not {type(opts.meta).__name__}")
        options["meta"] = meta = dumps(dict(opts.meta), "meta")
        size = len(meta) if meta.isascii() else len(meta.encode())
        if size > cap:
            raise PayloadError(f"meta of {size} bytes is above the cap of {cap} bytes "
                               "(Settings.max_payload_bytes / JOBQ_MAX_PAYLOAD_BYTES)")
    return options


def _finite_non_negative(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x >= 0


def _unique_key(unique: bool, unique_key: str | None, task: str, args_json: str,
                kwargs_json: str) -> str:
    if unique_key is not None:
        if not isinstance(unique_key, str) or not 1 <= len(unique_key) <= 200:
            raise ConfigError(f"unique_key must be a string of 1-200 characters, "
                              f"not {unique_key!r}")
        return unique_key
    if unique:
        digest = hashlib.sha256(f"{task}\0{args_json}\0{kwargs_json}".encode()).hexdigest()
        return f"auto:{digest[:32]}"
    return ""


def _delay_ms(delay_s: float | None, run_at: datetime | None) -> int:
    if delay_s is not None and run_at is not None:
        raise ConfigError("give delay_s or run_at, not both")
    if run_at is not None:
        if not isinstance(run_at, datetime):
            raise ConfigError("run_at must be a datetime")
        when = run_at if run_at.tzinfo else run_at.replace(tzinfo=UTC)
        # The due time is stored relative to Redis TIME; the difference to the local clock
        # is taken here, once, which is as good as the caller's idea of `run_at`.
        delay_s = max(0.0, when.timestamp() - time.time())
    if delay_s is None:
        return 0
    if not _finite_non_negative(delay_s):
        raise ConfigError(f"delay_s must be a non-negative number, not {delay_s!r}")
    return int(delay_s * 1000)
