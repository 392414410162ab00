"""Admin actions for operators (dashboard, CLI): cancel, requeue, purge, pause.

Bulk actions work on a snapshot: the highest score present when the action starts bounds
it, and it proceeds in bounded batches, yielding progress, so it never runs one giant
script and never chases jobs that arrive while it runs.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import redis

from .config import Settings
from .connection import configure, redis_errors, translated
from .errors import ConfigError, InvalidState, JobNotFound
from .inspect import Inspector, JobFilter, JobRow
from .job import (
    DEFERRED_MS,
    PENDING,
    PRIORITY_BAND,
    PROCESSING,
    PURGE_STATES,
    REQUEUE_STATES,
    SCHEDULED,
)
from .keys import Keyspace, check_queue_name, require_job_id, valid_job_id
from .problems import PENDING_AGE_FIELD
from .queue import Queue
from .scripts import Scripts
from .workers import forget_stopped_workers

if TYPE_CHECKING:
    from .job import Job
    from .scheduler import Scheduler

# States each bulk action may act on.
BULK_ACTIONS: Mapping[str, frozenset[str]] = {
    "requeue": REQUEUE_STATES,
    "purge": PURGE_STATES,
    "cancel": frozenset({PENDING, SCHEDULED}),
}
AUDIT_MAX_ENTRIES = 10_000  # the audit log keeps this many newest records
BULK_TTL_S = 24 * 3600  # a bulk operation's record lives this long after its last step


@dataclass(frozen=True)
class Progress:
    done: int  # jobs acted on so far
    left: int  # jobs of the snapshot still to do


@dataclass(frozen=True)
class BulkOp:
    """A bulk action over the jobs of one state and queue present when it started.

    `total` is the size of that snapshot; `examined` how many of its entries were looked
    at, `done` how many jobs were acted on (fewer than examined when a filter is set),
    `left` how many entries of the snapshot are still to look at.
    """

    id: str
    queue: str
    state: str
    action: str
    task: str
    text: str
    actor: str
    total: int
    done: int
    examined: int
    left: int
    finished: bool
    started_ms: int
    updated_ms: int

    @property
    def filtered(self) -> bool:
        return bool(self.task or self.text)

    @property
    def percent(self) -> int:
        if self.finished or self.total <= 0:
            return 100
        return min(99, int(100 * (self.total - self.left) / self.total))


class Admin:
    def __init__(self, settings: Settings | None = None, *, url: str | None = None,
                 redis: redis.Redis | None = None) -> None:
        self.settings, self.client = configure(settings, url, redis)
        self.keys = Keyspace(self.settings.prefix)
        self.scripts = Scripts(self.client, self.settings)

    def queue(self, name: str) -> Queue:
        return Queue(name, settings=self.settings, redis=self.client)

    def cancel(self, queue: str, job_id: str) -> None:
        """Cancel a pending or scheduled job; raises JobNotFound or InvalidState."""
        check_queue_name(queue)
        self._translated_cancel(queue, require_job_id(job_id))

    @redis_errors
    def _translated_cancel(self, queue: str, job_id: str) -> None:
        from .dependencies import Dependencies

        self.scripts.cancel(queue, job_id)
        Dependencies(self.scripts).ended(queue, job_id, "cancelled")

    @redis_errors
    def requeue(self, queue: str, state: str, ids: Sequence[str]) -> int:
        """Move the given jobs of `state` back to pending; returns how many moved."""
        self._check(queue, state, REQUEUE_STATES, "requeue")
        ids = [require_job_id(i) for i in ids]
        moved = 0
        for i in range(0, len(ids), 500):
            moved += self.scripts.requeue(queue, state, ids[i:i + 500])[0]
        return moved

    @redis_errors
    def requeue_job(self, queue: str, job_id: str, state: str, seen_requeues: int) -> None:
        """Requeue one job as the operator saw it: still in `state` (one of REQUEUE_STATES)
        and requeued `seen_requeues` times so far. The rule the CLI, the pages and the API
        share: a repeated request (a retry, a double click) finds the count moved on and
        is refused rather than running a finished job again.

        Raises InvalidState when the state does not allow it or the job moved on since it
        was read (checked atomically in requeue.lua), JobNotFound when it is gone."""
        self._check(queue, state, REQUEUE_STATES, "requeue")
        require_job_id(job_id)
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
        self._check(queue, state, PURGE_STATES, "purge")
        ids = [require_job_id(i) for i in ids]
        deleted = 0
        for i in range(0, len(ids), 500):
            deleted += self.scripts.purge(queue, state, ids[i:i + 500])[0]
        return deleted

    def requeue_all(self, queue: str, state: str, batch: int = 500) -> Iterator[Progress]:
        """Requeue every job of `state` present now, in batches; yields progress."""
        self._check(queue, state, REQUEUE_STATES, "requeue")
        return self._bulk(self.scripts.requeue, queue, state, batch)

    def purge_all(self, queue: str, state: str, batch: int = 500) -> Iterator[Progress]:
        """Delete every job of `state` present now, in batches; yields progress."""
        self._check(queue, state, PURGE_STATES, "purge")
        since = self._arrivals_cutoff(queue, state)
        return self._bulk(partial(self.scripts.purge, since_ms=since), queue, state, batch)

    def _bulk(self, action: object, queue: str, state: str, batch: int) -> Iterator[Progress]:
        batch = max(1, min(int(batch), 5000))
        cutoff = self._snapshot(queue, state)
        done = 0
        if cutoff is None:
            yield Progress(0, 0)
            return
        before = float("inf")
        while True:
            moved, left = self._step(action, queue, state, cutoff, batch)
            done += moved
            yield Progress(done, left)
            # A batch may move nothing yet progress (ids whose hash expired are dropped), so
            # stop only when none are left or the count of those left stops shrinking.
            if left == 0 or left >= before:
                return
            before = left

    @redis_errors
    def _arrivals_cutoff(self, queue: str, state: str) -> int:
        """What bounds an "all" action on pending or scheduled jobs, where a job arriving later
        may score below the snapshot's top (higher priority, earlier due): the queue's seq
        counter for pending, the Redis time (ms) for scheduled; 0 for the other states (scored
        by retention, so the score cutoff suffices). See purge.lua."""
        if state == PENDING:
            return int(self.client.get(self.keys.seq(queue)) or 0)
        if state == SCHEDULED:
            sec, usec = self.client.time()
            return int(sec) * 1000 + int(usec) // 1000
        return 0

    def _arrived_later(self, state: str, since: int, row: JobRow) -> bool:
        if not since:
            return False
        if state == PENDING:
            return int(row.score) % PRIORITY_BAND > since
        return (row.enqueued_ms or 0) > since

    @redis_errors
    def _snapshot(self, queue: str, state: str) -> float | None:
        top = self.client.zrevrange(self.keys.state_set(queue, state), 0, 0, withscores=True)
        return float(top[0][1]) if top else None

    @redis_errors
    def _step(self, action: object, queue: str, state: str, cutoff: float,
              batch: int) -> tuple[int, int]:
        result: tuple[int, int] = action(queue, state, upto=cutoff, batch=batch)  # type: ignore[operator]
        return result

    def _check(self, queue: str, state: str, allowed: frozenset[str], verb: str) -> None:
        check_queue_name(queue)
        if state not in allowed:
            raise InvalidState(f"cannot {verb} {state} jobs; allowed: {', '.join(sorted(allowed))}")

    @redis_errors
    def prune_workers(self) -> int:
        """Forget registry entries of workers whose heartbeat stopped; returns how many."""
        ids = [str(w) for w in self.client.zrange(self.keys.workers(), 0, 999)]
        return forget_stopped_workers(self.client, self.keys, ids)

    # -- bulk operations over a snapshot, stepped in bounded requests ----------------------
    @redis_errors
    def start_bulk(self, queue: str, state: str, action: str, *, task: str = "",
                   text: str = "", actor: str = "") -> BulkOp:
        """Record a bulk `action` (requeue | purge | cancel) over the jobs of `state` now
        present (optionally only those matching task/text); run it with `step_bulk`.

        Raises ConfigError for an unknown action, InvalidState for a state it cannot act on.
        """
        allowed = BULK_ACTIONS.get(action)
        if allowed is None:
            raise ConfigError(f"unknown bulk action {action!r}; use {', '.join(BULK_ACTIONS)}")
        self._check(queue, state, allowed, action)
        cutoff = self._snapshot(queue, state)
        total = 0 if cutoff is None else int(
            self.client.zcount(self.keys.state_set(queue, state), "-inf", repr(cutoff)))
        op_id = secrets.token_hex(6)
        now = int(time.time() * 1000)
        fields: dict[str, Any] = {
            "queue": queue, "state": state, "action": action, "task": task[:200],
            "text": text[:200], "actor": actor[:100], "cutoff": repr(cutoff or 0.0),
            "cursor": "", "skip": 0, "total": total, "done": 0, "examined": 0, "left": total,
            "since_ms": self._arrivals_cutoff(queue, state),
            "finished": int(cutoff is None or total == 0), "started_ms": now, "updated_ms": now}
        key = self.keys.bulk(queue, op_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(key, mapping=_any(fields))
        pipe.expire(key, BULK_TTL_S)
        pipe.execute()
        return _bulk_op(op_id, {k: str(v) for k, v in fields.items()})

    @redis_errors
    def bulk_status(self, queue: str, op_id: str) -> BulkOp | None:
        """The bulk operation's progress, or None if unknown or expired."""
        check_queue_name(queue)
        if not valid_job_id(op_id):
            return None
        fields: Any = self.client.hgetall(self.keys.bulk(queue, op_id))
        return _bulk_op(op_id, fields) if fields else None

    @redis_errors
    def step_bulk(self, queue: str, op_id: str, *, budget_s: float = 0.25,
                  batch: int = 500) -> BulkOp:
        """Advance a bulk operation by batches of at most `batch` jobs for about `budget_s`
        seconds; returns its progress. A step that finds another step running returns at
        once. Raises JobNotFound if the operation is unknown or expired."""
        op = self.bulk_status(queue, op_id)
        if op is None:
            raise JobNotFound(f"bulk operation {op_id} not found (finished over a day ago?)")
        if op.finished:
            return op
        lock = self.keys.bulk_lock(queue, op_id)
        if not self.client.set(lock, "1", nx=True, px=int(max(budget_s, 1.0) * 10_000)):
            return op
        try:
            raw: Any = self.client.hgetall(self.keys.bulk(queue, op_id))
            cur: dict[str, str] = dict(raw)
            batch = max(1, min(int(batch), 5000))
            deadline = time.monotonic() + max(0.0, budget_s)
            while cur["finished"] != "1":
                self._bulk_batch(queue, cur, batch)
                if time.monotonic() >= deadline:
                    break
            cur["updated_ms"] = str(int(time.time() * 1000))
            key = self.keys.bulk(queue, op_id)
            pipe = self.client.pipeline(transaction=False)
            pipe.hset(key, mapping=_any(cur))
            pipe.expire(key, BULK_TTL_S)
            pipe.execute()
            return _bulk_op(op_id, cur)
        finally:
            self.client.delete(lock)

    def _bulk_batch(self, queue: str, cur: dict[str, str], batch: int) -> None:
        state, action, cutoff = cur["state"], cur["action"], float(cur["cutoff"])
        match = JobFilter(task=cur.get("task", ""), text=cur.get("text", ""))
        if not match and action in ("requeue", "purge"):
            # Unfiltered: the script takes the lowest entries up to the cutoff itself.
            if action == "requeue":
                moved, left = self.scripts.requeue(queue, state, upto=cutoff, batch=batch)
            else:
                moved, left = self.scripts.purge(queue, state, upto=cutoff, batch=batch,
                                                 since_ms=int(cur.get("since_ms", "0") or 0))
            # As in _bulk: a batch of expired ids moves nothing but still makes progress.
            before = int(cur["left"])
            cur["done"] = str(int(cur["done"]) + moved)
            cur["left"] = str(left)
            cur["examined"] = str(int(cur["total"]) - left)
            cur["finished"] = "1" if left == 0 or left >= before else "0"
            return
        # Filtered (or cancel): walk the snapshot by score with a cursor. Entries acted on
        # leave the set; `skip` counts the entries at the cursor's score that stayed.
        key = self.keys.state_set(queue, state)
        low = cur["cursor"] or "-inf"
        skip = int(cur["skip"])
        raw: Any = self.client.zrangebyscore(key, low, repr(cutoff), start=skip, num=batch,
                                        withscores=True)
        entries = [(str(m), float(sc)) for m, sc in raw]
        if not entries:
            cur.update(finished="1", left="0")
            return
        rows = Inspector(self.settings, redis=self.client).rows(queue, entries,
                                                                 full_error=bool(match.text))
        since = int(cur.get("since_ms", "0") or 0)
        hits = [r.id for r in rows if r.exists and match.matches(r)
                and not self._arrived_later(state, since, r)]
        done = self._act(queue, state, action, hits)
        last = entries[-1][1]
        hit_set = set(hits)
        stayed = sum(1 for m, sc in entries if sc == last and m not in hit_set)
        prev = float(cur["cursor"]) if cur["cursor"] else None
        new_skip = stayed + (skip if prev == last else 0)
        cur["skip"] = str(new_skip)
        cur["cursor"] = repr(last)
        cur["done"] = str(int(cur["done"]) + done)
        cur["examined"] = str(int(cur["examined"]) + len(entries))
        # Still to look at: entries from the cursor's score on, less those seen there.
        left = max(0, int(self.client.zcount(key, repr(last), repr(cutoff))) - new_skip)
        cur["left"] = str(left)
        cur["finished"] = "1" if len(entries) < batch or left == 0 else "0"

    def _act(self, queue: str, state: str, action: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        if action == "requeue":
            return self.scripts.requeue(queue, state, ids)[0]
        if action == "purge":
            return self.scripts.purge(queue, state, ids)[0]
        from .dependencies import Dependencies

        n = 0
        for job_id in ids:
            try:
                self.scripts.cancel(queue, job_id)
                n += 1
            except (InvalidState, JobNotFound):
                continue
            Dependencies(self.scripts).ended(queue, job_id, "cancelled")
        return n

    # -- jobs waiting out a retry backoff ---------------------------------------------------
    def kill(self, queue: str, job_id: str, actor: str = "") -> None:
        """Give up on a job waiting out a retry backoff: it goes to dead now (requeue brings
        it back). Raises JobNotFound, or InvalidState when it is not such a job."""
        from .dependencies import Dependencies

        check_queue_name(queue)
        require_job_id(job_id)
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
        require_job_id(job_id)
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
        require_job_id(job_id)
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
        deployment (e.g. gunicorn workers) signs with the same key."""
        key = self.keys.secret(name)
        self.client.set(key, secrets.token_urlsafe(32), nx=True)
        return str(self.client.get(key))

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
        from .scheduler import Scheduler

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


def _bulk_op(op_id: str, f: Mapping[str, str]) -> BulkOp:
    def num(name: str) -> int:
        try:
            return int(f.get(name) or 0)
        except ValueError:
            return 0

    return BulkOp(id=op_id, queue=f.get("queue", ""), state=f.get("state", ""),
                  action=f.get("action", ""), task=f.get("task", ""), text=f.get("text", ""),
                  actor=f.get("actor", ""), total=num("total"), done=num("done"),
                  examined=num("examined"), left=num("left"), finished=f.get("finished") == "1",
                  started_ms=num("started_ms"), updated_ms=num("updated_ms"))


def _any(mapping: Mapping[str, Any]) -> Any:
    # redis-py types `mapping` with an invariant key type that a dict[str, ...] never meets.
    return mapping


__all__ = ["BULK_ACTIONS", "Admin", "BulkOp", "ConfigError", "Progress"]

