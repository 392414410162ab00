"""Run one job in the current process or thread and describe how it ended (an Outcome).

The runner never raises for anything the job does: every exception, a wrong payload, an
unknown task or an unserialisable result becomes an Outcome the worker records.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .context import JobContext, Saver, enter, leave
from .errors import ArgumentError, Fail, PayloadError, Retry, UnknownTask
from .job import decode_call, dumps
from .registry import TASK_NAME_RE, get_task

OK, ERROR, RETRY, DEAD, CRASH, TIMEOUT = "ok", "error", "retry", "dead", "crash", "timeout"
FAIL = "fail"  # failed for good: no retry can help (Fail raised, arguments that do not fit)
UNKNOWN = "unknown"  # the task is not registered here (reason: its name); not an attempt


class JobTimeout(BaseException):
    """Raised inside a running task when it exceeds its timeout (not an Exception, so a
    task's broad `except Exception` does not swallow it)."""


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended: kind is ok | error | retry | fail | dead | crash | timeout, or
    unknown (the task is not registered here: not an attempt, the job was not run)."""

    kind: str
    result_json: str = ""
    error: str = ""
    reason: str = ""
    delay_s: float | None = None
    runtime_ms: int = 0


@dataclass(frozen=True)
class Call:
    """What a pool needs to run one job: plain strings, so it crosses a process pipe."""

    id: str
    queue: str
    fields: Mapping[str, str]


def run(call: Call, max_result_bytes: int, save: Saver | None = None) -> Outcome:
    """Run the task of `call` and return its Outcome; never raises (but JobTimeout)."""
    name = call.fields.get("task", "")
    try:
        task = get_task(name)
    except UnknownTask as exc:
        if not TASK_NAME_RE.match(name):  # no worker can ever know it: no grace to wait out
            return Outcome(DEAD, error=str(exc), reason=f"unknown task {name!r}: not a valid "
                           "task name")
        return Outcome(UNKNOWN, error=str(exc), reason=name)
    try:
        args, kwargs = decode_call(call.fields)
    except PayloadError as exc:
        return Outcome(DEAD, error=str(exc), reason=str(exc))
    try:
        task.check_args(args, kwargs)
    except ArgumentError as exc:  # binding can never succeed: another attempt would not help
        return Outcome(FAIL, error=f"jobq.ArgumentError: {exc}", reason=str(exc))
    started = time.monotonic()
    token = enter(_context(call, name, save))
    try:
        value = task.fn(*args, **kwargs)
    except Retry as exc:
        return Outcome(RETRY, error=_tb(), delay_s=exc.delay_s, runtime_ms=_ms(started))
    except Fail as exc:
        return Outcome(FAIL, error=_tb(), reason=str(exc)[:1000] or "Fail raised by the task",
                       runtime_ms=_ms(started))
    except JobTimeout:
        return Outcome(TIMEOUT, error="jobq.Timeout: the job exceeded its timeout_s and was "
                       "interrupted", runtime_ms=_ms(started))
    except BaseException:  # a task's SystemExit/KeyboardInterrupt is its failure, not ours
        return Outcome(ERROR, error=_tb(), runtime_ms=_ms(started))
    finally:
        leave(token)
    return _returned(value, max_result_bytes, _ms(started))


def _context(call: Call, name: str, save: Saver | None) -> JobContext:
    """What the task sees as current_job(): its meta (a bad one reads as empty)."""
    meta: Any = {}
    if call.fields.get("meta"):
        try:
            meta = json.loads(call.fields["meta"])
        except json.JSONDecodeError:
            meta = {}
    return JobContext(id=call.id, queue=call.queue, task=name,
                      attempt=int(call.fields.get("retries", "0") or 0) + 1,
                      meta=meta if isinstance(meta, dict) else {}, _save=save)


def _returned(value: Any, max_result_bytes: int, runtime: int) -> Outcome:
    """The Outcome of a task that returned `value`: OK with its JSON, or an error when it
    is not JSON or above the result cap."""
    try:
        result = dumps(value, "the task's return value")
    except PayloadError as exc:
        return Outcome(ERROR, error=f"jobq.PayloadError: {exc}", runtime_ms=runtime)
    if len(result) > max_result_bytes:
        return Outcome(ERROR, error=f"jobq.PayloadError: result of {len(result)} bytes is above "
                       f"the cap of {max_result_bytes} bytes", runtime_ms=runtime)
    return Outcome(OK, result_json=result, runtime_ms=runtime)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _tb() -> str:
    # Bound the stored traceback: a recursion error can produce megabytes.
    text = traceback.format_exc()
    return text if len(text) <= 20_000 else text[:5_000] + "\n...\n" + text[-15_000:]
