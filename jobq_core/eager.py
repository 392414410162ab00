"""Eager mode (Settings.eager): a Queue runs each job at enqueue, in the caller's thread.

Meant for users' unit tests: no Redis and no worker, but a worker's rules (see run_eagerly).
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING

from .job import COMPLETED, Job, JobSpec
from .registry import TaskOptions, lookup
from .runner import DEAD, FAIL, OK, UNKNOWN, Call, run

if TYPE_CHECKING:
    from .queue import Queue

log = logging.getLogger("jobq.eager")


def _is_number(raw: str | None) -> bool:
    try:
        return raw is not None and isinstance(json.loads(raw), int | float)
    except ValueError:
        return False


def run_eagerly(queue: Queue, spec: JobSpec) -> dict[str, str]:
    """Run the job of `spec` now, in this thread, without Redis; returns its final fields.

    The rules are a worker's: args go through JSON, an exception is retried up to
    max_retries (at once: backoff and Retry(delay_s) are not waited for), then the job is
    failed with its traceback (at once if it raises Fail); an unknown task is dead; the
    task's callbacks run. Delays, timeouts and max_length do not apply.
    """
    fields = dict(zip(spec.fields()[::2], spec.fields()[1::2], strict=True))
    fields.update(state="processing", enqueued_ms=str(_now_ms()), started_ms=str(_now_ms()))
    task = lookup(spec.task)
    task_retries = task.options.max_retries if task is not None else None
    max_retries = int(fields.get("max_retries", queue.settings.max_retries
                                 if task_retries is None else task_retries))
    while True:
        outcome = run(Call(spec.id, queue.name, fields), queue.settings.max_payload_bytes,
                      fields.update)
        if outcome.kind == OK:
            fields.update(state=COMPLETED, result=outcome.result_json)
            if _is_number(fields.get("progress")):  # as complete.lua: done reads 1.0
                fields["progress"] = "1.0"
            break
        fields["error"] = outcome.error
        if outcome.kind == DEAD:
            fields.update(state="dead", reason=outcome.reason)
            break
        if outcome.kind == UNKNOWN:  # no other worker to hand it to
            fields.update(state="dead", reason=f"unknown task {outcome.reason!r}")
            break
        if outcome.kind == FAIL:
            fields.update(state="failed", reason=outcome.reason)
            break
        if int(fields.get("retries", "0")) >= max_retries:
            fields.update(state="failed", reason="retries used up")
            break
        fields["retries"] = str(int(fields.get("retries", "0")) + 1)
    fields["finished_ms"] = str(_now_ms())
    if task is not None:
        _callback(queue, spec.id, fields, task.options)
    return fields


def _callback(queue: Queue, job_id: str, fields: dict[str, str], options: TaskOptions) -> None:
    state = fields["state"]
    fn, arg = {
        COMPLETED: (options.on_success, None),
        "failed": (options.on_failure, fields.get("error", "")),
        "dead": (options.on_dead, fields.get("reason", "")),
    }.get(state, (None, None))
    if fn is None:
        return
    try:
        fn(Job(queue, job_id, fields), json.loads(fields["result"]) if state == COMPLETED
           else arg)
    except Exception:  # as in a worker: a failing callback is logged, never fatal
        log.exception("callback of job %s raised", job_id)


def _now_ms() -> int:
    return int(time.time() * 1000)
