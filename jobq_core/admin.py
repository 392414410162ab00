"""Admin actions for operators (dashboard, CLI): cancel, requeue, purge, pause, limits,
schedules, orphans and the audit log. Actions over every job of a state are in bulk.py
(Admin.bulk); Admin keeps their entry points.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import redis

from .bulk import BULK_ACTIONS, Bulk, BulkOp, Progress, check_state
from .config import Settings
from .connection import configure, redis_errors, translated
from .dependencies import Dependencies
from .errors import ConfigError, InvalidState, JobNotFound
from .job import DEFERRED_MS, PROCESSING, PURGE_STATES, REQUEUE_STATES, SCHEDULED
from .keys import (
    AUDIT_MAX_ENTRIES,
    Keyspace,
    LegacyKeyspace,
    check_queue_name,
    require_stored_job_id,
)
from .problems import PENDING_AGE_FIELD
from .queue import Queue
from .scheduler import Scheduler
from .scripts import Scripts
from .workers import forget_stopped_workers

if TYPE_CHECKING:
    from .job import Job



class Admin:
    """Operator actions on one Redis; raises JobqError children (see each method)."""

    def __init__(self, settings: Settings | None = None, *, url: str | None = None,
                 redis: redis.Redis | None = None) -> None:
        self.settings, self.client = configure(settings, url, redis)
        self.keys = Keyspace(self.settings.prefix)
        self.scripts = Scripts(self.client, self.settings)
        self.bulk = Bulk(self.settings, self.client, self.scripts)

    def queue(self, name: str) -> Queue:
        return Queue(name, settings=self.settings, redis=self.client)

    def cancel(self, queue: str, job_id: str) -> None:
        """Cancel a pending or scheduled job; raises JobNotFound or InvalidState."""
        check_queue_name(queue)
        self._translated_cancel(queue, require_stored_job_id(job_id))

    @redis_errors
    def _translated_cancel(self, queue: str, job_id: str) -> None:
        self.scripts.cancel(queue, job_id)
        Dependencies(self.scripts).ended(queue, job_id, "cancelled")

    @redis_errors
    def requeue(self, queue: str, state: str, ids: Sequence[str]) -> int:
        """Move the given jobs of `state` back to pending; returns how many moved."""
        check_state(queue, state, REQUEUE_STATES, "requeue")
        return _in_batches(self.scripts.requeue, queue, state, ids)

    @redis_errors
    def requeue_job(self, queue: str, job_id: str, state: str, seen_requeues: int) -> None:
        """Requeue one job as the operator saw it: still in `state` (one of REQUEUE_STATES)
        and requeued `seen_requeues` times so far. The rule the CLI, the pages and the API
        share: a repeated request (a retry, a double click) finds the count moved on and
        is refused rather than running a finished job again.

        Raises InvalidState when the state does not allow it or the job moved on since it
        was read (checked atomically in requeue.lua), JobNotFound when it is gone."""
        check_state(queue, state, REQUEUE_STATES, "requeue")
        require_stored_job_id(job_id)
        if seen_requeues < 0:
            raise ConfigError("seen_requeues is the job's requeue count: 0 or more")
        if self.scripts.requeue(queue, state, [job_id], seen_requeues=seen_requeues)[0]:
            return
        now, count = self.client.hmget(self.keys.job(queue, job_id), ["state", "requeues"])
        if now is None:
            raise JobNotFound(f"no job {job_id} in queue {queue}")
        if str(now) != state:
            raise InvalidState(f"job {job_id} is {now!s}, not {state}; nothing was changed")
        raise InvalidState(f"job {job_id} was requeued since it was read ({int(count or 0)} "
                           f"requeues, not {seen_requeues}); nothing was changed. Read it "
                           "again to requeue it once more")

    @redis_errors
    def purge(self, queue: str, state: str, ids: Sequence[str]) -> int:
        """Delete the given jobs of `state`; returns how many were deleted."""
        check_state(queue, state, PURGE_STATES, "purge")
        return _in_batches(self.scripts.purge, queue, state, ids)

    def requeue_all(self, queue: str, state: str, batch: int = 500) -> Iterator[Progress]:
        """Requeue every job of `state` present now, in batches; yields progress."""
        return self.bulk.requeue_all(queue, state, batch)

    def purge_all(self, queue: str, state: str, batch: int = 500) -> Iterator[Progress]:
        """Delete every job of `state` present now, in batches; yields progress."""
        return self.bulk.purge_all(queue, state, batch)

    def start_bulk(self, queue: str, state: str, action: str, *, task: str = "",
                   text: str = "", actor: str = "") -> BulkOp:
        """Record a bulk `action` over the jobs of `state` now present (see Bulk.start)."""
        return self.bulk.start(queue, state, action, task=task, text=text, actor=actor)

    def bulk_status(self, queue: str, op_id: str) -> BulkOp | None:
        """The bulk operation's progress, or None if unknown or expired."""
        return self.bulk.status(queue, op_id)

    def step_bulk(self, queue: str, op_id: str, *, budget_s: float = 0.25,
                  batch: int = 500) -> BulkOp:
        """Advance a bulk operation for about `budget_s` seconds (see Bulk.step)."""
        return self.bulk.step(queue, op_id, budget_s=budget_s, batch=batch)

    @redis_errors
    def prune_workers(self) -> int:
        """Forget registry entries of workers whose heartbeat stopped; returns how many."""
        ids = [str(w) for w in self.client.zrange(self.keys.workers(), 0, 999)]
        return forget_stopped_workers(self.client, self.keys, ids)

    # -- jobs waiting out a retry backoff ---------------------------------------------------
    def kill(self, queue: str, job_id: str, actor: str = "") -> None:
        """Give up on a job waiting out a retry backoff: it goes to dead now (requeue brings
        it back). Raises JobNotFound, or InvalidState when it is not such a job."""
        check_queue_name(queue)
        require_stored_job_id(job_id)
        with translated(self.settings.redis_url):
            self.scripts.kill(queue, job_id, f"killed by {actor or 'an operator'} while "
                                             "waiting to retry")
            Dependencies(self.scripts).ended(queue, job_id, "dead")

    @redis_errors
    def retry_now(self, queue: str, job_id: str) -> None:
        """Run a job waiting out a retry backoff now rather than at its due time (the retry
        count is kept: this is the same retry, earlier). Raises InvalidState when it is not
        such a job."""
        check_queue_name(queue)
        require_stored_job_id(job_id)
        key = self.keys.job(queue, job_id)
        with self.client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key, self.keys.scheduled(queue))  # type: ignore[no-untyped-call]
                values: Any = pipe.hmget(key, ["state", "retries"])
                state, retries = values
                due = pipe.zscore(self.keys.scheduled(queue), job_id)
                if state != SCHEDULED or not str(retries or "0").isdigit() or \
                        int(retries or 0) < 1 or due is None or due >= DEFERRED_MS:
                    raise InvalidState(f"job {job_id} is {state or 'gone'}, not waiting out a "
                                       "retry backoff")
                pipe.multi()
                # Due at 0: the promote below moves it first (it takes the earliest due).
                pipe.zadd(self.keys.scheduled(queue), {job_id: 0}, xx=True)
                pipe.execute()
            except redis.WatchError:
                raise InvalidState(f"job {job_id} changed meanwhile; look again") from None
        self.scripts.promote(queue)

    # -- orphans, audit, secrets -----------------------------------------------------------
    @redis_errors
    def release_orphan(self, queue: str, job_id: str, worker: str) -> str:
        """Hand back a processing job whose worker stopped beating, now rather than when its
        lease runs out; the lost lease counts as for any reaped job. Returns the job's new
        state (pending, or dead when it was poison). Raises InvalidState when the job is not
        processing on `worker`, or `worker` is still alive."""
        check_queue_name(queue)
        require_stored_job_id(job_id)
        if self.client.exists(self.keys.worker(worker)):
            raise InvalidState(f"worker {worker} is still beating; its job keeps its lease")
        key = self.keys.job(queue, job_id)
        with self.client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key)  # type: ignore[no-untyped-call]
                values: Any = pipe.hmget(key, ["state", "worker"])
                state, holder = values
                if state != PROCESSING or holder != worker:
                    raise InvalidState(f"job {job_id} is {state or 'gone'} (worker "
                                       f"{holder or '-'}), not processing on {worker}")
                pipe.multi()
                # A lease deadline of 0 has expired: the reap script below takes it first.
                pipe.zadd(self.keys.processing(queue), {job_id: 0}, xx=True)
                pipe.execute()
            except redis.WatchError:
                raise InvalidState(f"job {job_id} changed meanwhile; look again") from None
        for reaped, new_state in self.scripts.reap(queue):
            if reaped == job_id:
                return str(new_state)
        raise InvalidState(f"job {job_id} was not handed back (it finished meanwhile?)")

    @redis_errors
    def record(self, actor: str, action: str, *, queue: str = "", state: str = "",
               count: int = 0, detail: str = "") -> None:
        """Append an operator action to the audit log (capped at AUDIT_MAX_ENTRIES)."""
        entry = json.dumps({"at_ms": int(time.time() * 1000), "actor": actor[:100],
                            "action": action[:100], "queue": queue[:64], "state": state[:32],
                            "count": int(count), "detail": detail[:500]})
        pipe = self.client.pipeline(transaction=False)
        pipe.lpush(self.keys.audit(), entry)
        pipe.ltrim(self.keys.audit(), 0, AUDIT_MAX_ENTRIES - 1)
        pipe.execute()

    @redis_errors
    def shared_secret(self, name: str) -> str:
        """A random secret stored in Redis, created on first use, so that every process of a
        deployment (e.g. gunicorn workers) signs with the same key. Where an older jobq
        stored one (key layout 1) and this layout has none yet, that one is taken: a
        dashboard that starts before the layout migration could run (layout.py) must not
        create a new key, which the migration would then keep (every login signed with the
        old one invalid)."""
        key = self.keys.secret(name)
        value = self.client.get(key)
        if value is None:
            old = self.client.get(LegacyKeyspace(self.keys.prefix).secret(name))
            self.client.set(key, old or secrets.token_urlsafe(32), nx=True)
            value = self.client.get(key)
        return str(value)

    def pause(self, queue: str) -> None:
        self.queue(queue).pause()

    def resume(self, queue: str) -> None:
        self.queue(queue).resume()

    @redis_errors
    def set_pending_age_warn(self, queue: str, seconds: float | None) -> None:
        """The age of a queue's next pending job past which `jobq doctor` and the overview
        raise a problem (0 = never); None returns to Settings.pending_age_warn_s."""
        check_queue_name(queue)
        if seconds is None:
            self.client.hdel(self.keys.meta(queue), PENDING_AGE_FIELD)
        elif seconds < 0 or seconds != seconds or seconds == float("inf"):
            raise ConfigError(f"the pending age threshold is seconds, 0 or more, not {seconds}")
        else:
            self.client.hset(self.keys.meta(queue), PENDING_AGE_FIELD, f"{seconds:g}")

    # -- limits and schedules (the read side is Inspector.limits / schedules) ---------------
    def set_limit(self, queue: str, key: str, *, concurrency: int = 0, rate: int = 0,
                  per_s: float = 60.0) -> None:
        """Cap the jobs of `key` (a task name or a limit_key) in `queue`; see Queue.set_limit."""
        self.queue(queue).set_limit(key, concurrency=concurrency, rate=rate, per_s=per_s)

    def remove_limit(self, queue: str, key: str) -> None:
        self.queue(queue).remove_limit(key)

    def scheduler(self) -> Scheduler:
        """The schedule manager (add, enable, disable, run_now, delete) on this client."""
        return Scheduler(self.settings, redis=self.client)

    def enable_schedule(self, name: str) -> None:
        """Raises ScheduleNotFound."""
        self.scheduler().enable(name)

    def disable_schedule(self, name: str) -> None:
        """Raises ScheduleNotFound."""
        self.scheduler().disable(name)

    def run_schedule_now(self, name: str) -> Job:
        """Enqueue one job of the schedule now; raises ScheduleNotFound."""
        return self.scheduler().run_now(name)

    def delete_schedule(self, name: str) -> bool:
        return self.scheduler().delete(name)


__all__ = ["AUDIT_MAX_ENTRIES", "BULK_ACTIONS", "Admin", "BulkOp", "ConfigError", "Progress"]


def _in_batches(script: Callable[[str, str, Sequence[str]], tuple[int, int]], queue: str,
                state: str, ids: Sequence[str]) -> int:
    """Run the requeue or purge `script` over `ids` (each checked first), 500 ids a call
    (each call is one bounded script run); returns how many jobs they moved in all."""
    ids = [require_stored_job_id(i) for i in ids]
    return sum(script(queue, state, ids[i:i + 500])[0] for i in range(0, len(ids), 500))
