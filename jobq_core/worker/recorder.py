"""Record outcomes: each job's Outcome becomes its transition in Redis (complete, fail,
retry, dead), then the task's callbacks run. Used by the settler (settler.py) in batches."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from ..config import Settings
from ..connection import translated
from ..errors import JobNotFound, LeaseLost, RedisUnavailable
from ..grouping import signature
from ..job import Claimed, Job
from ..registry import RegisteredTask, lookup
from ..runner import CRASH, DEAD, FAIL, OK, RETRY, TIMEOUT, UNKNOWN, Outcome
from ..scripts import Code, Scripts

log = logging.getLogger("jobq.worker")
# When a job's task is not registered here, it is handed back this much later: soon while a
# live worker of the queue knows the task (it should take it), less often while none does
# (the worker would otherwise claim it again and again until the grace period ends).
UNKNOWN_KNOWN_DELAY_MS = 1_000
UNKNOWN_NONE_DELAY_MS = 5_000
# Hand-backs of a task no live worker knows are logged as a warning at most once this often per
# queue and task, the rest at debug level: each such job comes back every 5 s for the whole
# grace (25 lines a job at 120 s), and `jobq up --demo`'s unknown-task jobs made three quarters
# of its console. The move to dead is always a warning.
UNKNOWN_WARN_EVERY_S = 60.0
T = TypeVar("T")


class Recorder:
    """Turns Outcomes into the matching transitions in Redis, then runs the task's callbacks.

    Completions of a batch go in one script call per queue. Writes are retried while Redis
    is unreachable (until the worker must stop now); a refused write (lease lost) is
    logged, never raised: the job belongs to another worker by then.
    """

    def __init__(self, settings: Settings, scripts: Scripts, worker_id: str,
                 hard_stop: threading.Event, make_job: Callable[[Claimed], Job]) -> None:
        self.settings = settings
        self.scripts = scripts
        self.worker_id = worker_id
        self.hard_stop = hard_stop
        self.make_job = make_job
        self.done = 0
        self.failed = 0
        self._unknown_warned: dict[tuple[str, str], float] = {}  # (queue, task) -> monotonic

    def record(self, job: Claimed, outcome: Outcome) -> str:
        """Record one outcome; returns the job's new state ('' if refused)."""
        return self.record_many([(job, outcome)])[0][1]

    def record_many(self, items: Sequence[tuple[Claimed, Outcome]]) -> list[tuple[Claimed, str]]:
        """Record outcomes; returns each job as the write found it and its new state ('' where
        the write was refused). A job the write found with dependents comes back with the
        'dependents' field set, also when they registered after the claim read its fields."""
        states = [""] * len(items)
        found = [job for job, _ in items]
        completions: dict[str, list[int]] = defaultdict(list)
        for i, (job, outcome) in enumerate(items):
            if outcome.kind == OK:
                completions[job.queue].append(i)
                continue
            try:
                state, dependents = self._retrying(job.id, partial(self._fail, job, outcome)) \
                    or ("", False)
            except Exception:  # one job's record must not lose the rest of the batch
                log.exception("recording the outcome of job %s failed (its lease will "
                              "bring it back)", job.id)
                continue
            states[i] = state
            if dependents:
                found[i] = _with_dependents(job)
        for queue, idx in completions.items():
            batch = [(items[i][0], items[i][1].result_json,
                      items[i][0].int_field("result_ttl_s", self.settings.result_ttl_s),
                      items[i][1].runtime_ms, items[i][1].logs) for i in idx]
            codes = self._retrying(queue, partial(self.scripts.complete_many, queue, batch))
            for i, code in zip(idx, codes or [0] * len(idx), strict=True):
                if code in (1, 2):
                    states[i] = "completed"
                    if code == 2:
                        found[i] = _with_dependents(items[i][0])
                elif code == Code.LEASE_NOT_HELD:
                    log.warning("completion of job %s refused: this worker no longer holds "
                                "its lease (stale result dropped; the job runs elsewhere)",
                                items[i][0].id)
                elif code == Code.MISSING:
                    log.warning("job %s vanished while running (purged?); result dropped",
                                items[i][0].id)
        for (job, outcome), state in zip(items, states, strict=True):
            self._after(job, outcome, state)
        return list(zip(found, states, strict=True))

    def _after(self, job: Claimed, outcome: Outcome, state: str) -> None:
        if state == "completed":
            self.done += 1
        elif outcome.kind == UNKNOWN:  # _unknown logged it; a hand-back is no failure
            self.failed += state == "dead"
        elif state:
            self.failed += 1
            lines = outcome.error.strip().splitlines()
            log.warning("job %s (%s) %s -> %s: %s", job.id, job.task, outcome.kind, state,
                        outcome.reason or (lines[-1] if lines else ""))
        task = lookup(job.task)
        if task is not None and state:
            self._callback(task, job, state, outcome)

    def _unknown(self, job: Claimed) -> tuple[str, bool]:
        """A job whose task this worker does not know: hand it back or send it to dead."""
        s = self.settings
        res = self.scripts.unknown(job, self.worker_id, grace_ms=int(s.unknown_task_grace_s * 1000),
                                   known_delay_ms=UNKNOWN_KNOWN_DELAY_MS,
                                   unknown_delay_ms=UNKNOWN_NONE_DELAY_MS)
        if res.known_by:
            log.info("job %s: task %r is not registered here; handed back for a worker that "
                     "knows it (%s)", job.id, job.task, res.known_by)
        elif res.state == "scheduled":
            log.log(self._unknown_level(job),
                    "job %s: task %r is not registered here nor advertised by any live worker "
                    "of queue %r; handed back (dead in %.0f s unless one starts; more of this "
                    "within %.0f s at debug level)", job.id, job.task, job.queue,
                    res.grace_left_ms / 1000, UNKNOWN_WARN_EVERY_S)
        else:
            log.warning("job %s -> dead: %s", job.id, res.reason)
        return res.state, res.dependents

    def _unknown_level(self, job: Claimed) -> int:
        """WARNING for the first hand-back of the job's queue and task in
        UNKNOWN_WARN_EVERY_S, DEBUG for the others."""
        now, key = time.monotonic(), (job.queue, job.task)
        if now - self._unknown_warned.get(key, -math.inf) < UNKNOWN_WARN_EVERY_S:
            return logging.DEBUG
        if len(self._unknown_warned) >= 1000:  # bounded: task names come from job data
            self._unknown_warned.clear()
        self._unknown_warned[key] = now
        return logging.WARNING

    def _fail(self, job: Claimed, outcome: Outcome) -> tuple[str, bool]:
        if outcome.kind == UNKNOWN:
            return self._unknown(job)
        task = lookup(job.task)
        record = json.dumps({
            "attempt": job.int_field("retries", 0) + 1, "worker": self.worker_id,
            "started_ms": job.int_field("started_ms", 0), "outcome": outcome.kind,
            "runtime_ms": outcome.runtime_ms, "error": outcome.error[-4000:],
            "finished_ms": int(time.time() * 1000),
        })
        # The group of a failure that may end the job (a retry joins none): grouping.py.
        group = signature(job.task, outcome.error, outcome.reason)
        # DEAD comes from a call that could not start (runner.prepare): no run time to count.
        fail = partial(self.scripts.fail, job, attempt_json=record, logs=outcome.logs,
                       runtime_ms=None if outcome.kind == DEAD else outcome.runtime_ms)
        if outcome.kind == DEAD:
            return fail("dead", error=outcome.error, reason=outcome.reason, group=group)
        if outcome.kind == FAIL:
            return fail("fail", error=outcome.error, reason=outcome.reason, group=group)
        if outcome.kind == CRASH:
            delay = self._backoff(job, task, None)
            return fail("crash", delay_ms=int(delay * 1000), error=outcome.error,
                        reason=outcome.reason, group=group)
        max_retries = job.int_field("max_retries", _opt(task, "max_retries",
                                                        self.settings.max_retries))
        if job.int_field("retries", 0) < max_retries:
            delay = self._backoff(job, task, outcome.delay_s if outcome.kind == RETRY else None)
            return fail("retry", delay_ms=int(delay * 1000), error=outcome.error)
        reason = "timed out" if outcome.kind == TIMEOUT else "retries used up"
        return fail("fail", error=outcome.error, reason=reason, group=group)

    def _backoff(self, job: Claimed, task: RegisteredTask[Any, Any] | None,
                 asked: float | None) -> float:
        # Retry(delay_s) comes from task code: anything but a number of seconds (inf, nan)
        # gets the planned backoff rather than breaking the recording.
        if asked is not None and math.isfinite(asked):
            return max(0.0, asked)
        base = job.float_field("retry_backoff_s",
                               _opt(task, "retry_backoff_s", self.settings.retry_backoff_s))
        cap = _opt(task, "retry_backoff_max_s", self.settings.retry_backoff_max_s)
        exp = min(cap, base * 2 ** min(job.int_field("retries", 0), 30))
        # "Equal jitter": at least half the delay, so retries of a burst spread out but
        # never come back sooner than half the planned backoff.
        return float(exp / 2 + random.uniform(0, exp / 2))

    def _retrying(self, what: str, write: Callable[[], T]) -> T | None:
        pause = 0.05
        while True:
            try:
                with translated(self.settings.redis_url):
                    return write()
            except LeaseLost as exc:
                log.warning("%s (stale result dropped; the job runs elsewhere)", exc)
                return None
            except JobNotFound:
                log.warning("job %s vanished while running (purged?); result dropped", what)
                return None
            except RedisUnavailable as exc:
                if self.hard_stop.is_set():
                    log.error("giving up recording %s: %s (its lease will bring it back)",
                              what, exc)
                    return None
                log.warning("cannot record %s yet: %s; retrying in %.1fs", what, exc, pause)
                self.hard_stop.wait(pause)
                pause = min(pause * 2, self.settings.reconnect_max_s)

    def _callback(self, task: RegisteredTask[Any, Any], job: Claimed, state: str,
                  outcome: Outcome) -> None:
        opts = task.options
        fn, arg = {
            "completed": (opts.on_success, outcome.result_json),
            "failed": (opts.on_failure, outcome.error),
            "dead": (opts.on_dead, outcome.reason or outcome.error),
        }.get(state, (None, None))
        if fn is None:
            return
        try:
            value: Any = json.loads(arg) if state == "completed" and arg else arg
            fn(self.make_job(job), value)
        except Exception:
            log.exception("callback %s of job %s raised", getattr(fn, "__name__", fn), job.id)


def _with_dependents(job: Claimed) -> Claimed:
    # The claim read the job's fields before a dependent registered with it (depend.lua):
    # the DependencyHook looks for this field.
    if job.fields.get("dependents"):
        return job
    return dataclasses.replace(job, fields={**job.fields, "dependents": "1"})


def _opt(task: RegisteredTask[Any, Any] | None, name: str, default: Any) -> Any:
    value = getattr(task.options, name, None) if task is not None else None
    return default if value is None else value
