"""Claim jobs (one Lua call for all queues), block until there may be work, record outcomes."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis

from ..config import Settings
from ..connection import translated
from ..errors import JobNotFound, LeaseLost, RedisUnavailable
from ..job import Claimed, Job
from ..keys import Keyspace
from ..registry import Task, lookup
from ..scripts import ClaimResult, Scripts
from .runner import CRASH, DEAD, OK, RETRY, TIMEOUT, Outcome

log = logging.getLogger("jobq.worker")


class Fetcher:
    """Claims for one worker and waits on the queues' markers when there is nothing to do."""

    def __init__(self, settings: Settings, queues: Sequence[str], worker_id: str,
                 scripts: Scripts, blocking: redis.Redis) -> None:
        self.settings = settings
        self.queues = list(queues)
        self.worker_id = worker_id
        self.scripts = scripts
        self.blocking = blocking
        keys = Keyspace(settings.prefix)
        self._markers = [keys.marker(q) for q in self.queues]
        self.last: ClaimResult | None = None

    def claim(self, count: int) -> list[Claimed]:
        """Lease up to `count` jobs; raises RedisUnavailable."""
        with translated(self.settings.redis_url):
            result = self.scripts.claim(self.queues, count, self.worker_id)
        for note in result.notes:
            log.warning("%s", note)
        self.last = result
        return result.jobs

    def due_within(self, seconds: float) -> bool:
        """Whether a scheduled job (of the last claim's view) is due within `seconds`."""
        r = self.last
        return r is not None and r.next_due_ms >= 0 and r.next_due_ms - r.now_ms <= seconds * 1000

    def wake(self) -> None:
        """Best effort: end a blocking wait at once (by setting the markers it waits on)."""
        try:
            with translated(self.settings.redis_url):
                self.scripts.client.zadd(self._markers[0], {"m": 0})
        except RedisUnavailable:
            pass

    def wait(self) -> None:
        """Block until a marker says there may be work, the next scheduled job is due,
        or block_s passes. Raises RedisUnavailable."""
        timeout = self.settings.block_s
        r = self.last
        if r is not None and r.next_due_ms >= 0:
            timeout = min(timeout, max(0.0, (r.next_due_ms - r.now_ms) / 1000))
        if timeout <= 0.001:
            return
        with translated(self.settings.redis_url):
            self.blocking.bzpopmin(self._markers, timeout=timeout)


class Recorder:
    """Turns an Outcome into the matching transition in Redis, then runs the task's callbacks.

    Writes are retried while Redis is unreachable (until the job's lease is certainly gone
    or the worker must stop now); a refused write (lease lost) is logged, never raised.
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

    def record(self, job: Claimed, outcome: Outcome) -> str:
        """Record `outcome` for `job`; returns the job's new state ('' if refused)."""
        task = lookup(job.task)
        state = self._retrying(lambda: self._write(job, outcome, task), job)
        if state in ("failed", "dead", "scheduled", "pending") or outcome.kind != OK:
            self.failed += 1
            log.warning("job %s (%s) %s -> %s: %s", job.id, job.task, outcome.kind, state,
                        (outcome.reason or outcome.error.strip().splitlines()[-1:] or [""])[0]
                        if outcome.error or outcome.reason else "")
        else:
            self.done += 1
        if task is not None and state:
            self._callback(task, job, state, outcome)
        return state

    def _write(self, job: Claimed, outcome: Outcome, task: Task[Any, Any] | None) -> str:
        if outcome.kind == OK:
            ttl = job.int_field("result_ttl_s", self.settings.result_ttl_s)
            self.scripts.complete(job, outcome.result_json, ttl, outcome.runtime_ms)
            return "completed"
        record = json.dumps({
            "attempt": job.int_field("retries", 0) + 1, "worker": self.worker_id,
            "started_ms": job.int_field("started_ms", 0), "outcome": outcome.kind,
            "runtime_ms": outcome.runtime_ms, "error": outcome.error[-4000:],
            "finished_ms": int(time.time() * 1000),
        })
        if outcome.kind == DEAD:
            return self.scripts.fail(job, "dead", error=outcome.error, reason=outcome.reason,
                                     attempt_json=record)
        if outcome.kind == CRASH:
            delay = self._backoff(job, task, None)
            return self.scripts.fail(job, "crash", delay_ms=int(delay * 1000), error=outcome.error,
                                     reason=outcome.reason, attempt_json=record)
        max_retries = job.int_field("max_retries", _opt(task, "max_retries",
                                                        self.settings.max_retries))
        if job.int_field("retries", 0) < max_retries:
            delay = self._backoff(job, task, outcome.delay_s if outcome.kind == RETRY else None)
            return self.scripts.fail(job, "retry", delay_ms=int(delay * 1000),
                                     error=outcome.error, attempt_json=record)
        reason = "timed out" if outcome.kind == TIMEOUT else "retries used up"
        return self.scripts.fail(job, "fail", error=outcome.error, reason=reason,
                                 attempt_json=record)

    def _backoff(self, job: Claimed, task: Task[Any, Any] | None, asked: float | None) -> float:
        if asked is not None:
            return max(0.0, asked)
        base = _opt(task, "retry_backoff_s", self.settings.retry_backoff_s)
        cap = _opt(task, "retry_backoff_max_s", self.settings.retry_backoff_max_s)
        exp = min(cap, base * 2 ** min(job.int_field("retries", 0), 30))
        # "Equal jitter": at least half the delay, so retries of a burst spread out but
        # never come back sooner than half the planned backoff.
        return float(exp / 2 + random.uniform(0, exp / 2))

    def _retrying(self, write: Callable[[], str], job: Claimed) -> str:
        pause = 0.05
        while True:
            try:
                with translated(self.settings.redis_url):
                    return write()
            except LeaseLost as exc:
                log.warning("%s (stale result dropped; the job runs elsewhere)", exc)
                return ""
            except JobNotFound:
                log.warning("job %s vanished while running (purged?); result dropped", job.id)
                return ""
            except RedisUnavailable as exc:
                if self.hard_stop.is_set():
                    log.error("giving up recording job %s: %s (its lease will bring it back)",
                              job.id, exc)
                    return ""
                log.warning("cannot record job %s yet: %s; retrying in %.1fs", job.id, exc, pause)
                self.hard_stop.wait(pause)
                pause = min(pause * 2, self.settings.reconnect_max_s)

    def _callback(self, task: Task[Any, Any], job: Claimed, state: str, outcome: Outcome) -> None:
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


def _opt(task: Task[Any, Any] | None, name: str, default: Any) -> Any:
    value = getattr(task.options, name, None) if task is not None else None
    return default if value is None else value
