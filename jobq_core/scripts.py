"""The Lua scripts, one per state transition, each behind one typed Python function.

Each script in lua/ is prefixed with the lua/_lib.lua helpers it uses (luasource.py) and
run with EVALSHA (loading it when the server's script cache was flushed, e.g. after a
restart). Negative return codes are one table, `Code`, shared by every script; `raise_for`
turns a code into its JobqError child, so callers see exceptions, never magic numbers."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from enum import IntEnum
from typing import TYPE_CHECKING, Any

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from .config import Settings
from .connection import is_cluster
from .errors import InvalidState, JobNotFound, JobqError, LeaseLost, QueueFull
from .grouping import Signature
from .job import Claimed, JobSpec
from .keys import Keyspace
from .luasource import names, source
from .replication import ACKED, arun, checked, run_acked, waits
from .replies import _FAILED, ClaimResult, Unknown, _claimed, _records
from .wire import Pinned, cluster_evalsha, evalsha, pipelined

if TYPE_CHECKING:
    from redis.asyncio import Redis as AsyncRedis

# Error groups a queue keeps (the least recently seen is dropped) and ids kept per group.
MAX_ERROR_GROUPS = 1000
MAX_GROUP_IDS = 100_000
_NO_GROUP = Signature("", "", "", "")


class Code(IntEnum):
    """The negative codes a script returns (per job, or for the whole call). Each has one
    meaning in every script; the header of each script says which it returns."""

    MISSING = -1  # the job does not exist
    LEASE_NOT_HELD = -2  # the caller no longer holds the job's lease
    QUEUE_FULL = -3  # the queue is at its max_length; nothing was written
    FENCED = -4  # a scheduler leader with a newer epoch fired this schedule
    WRONG_STATE = -5  # the job is in a state this transition does not start from
    SCHEDULE_CHANGED = -6  # the schedule was changed or deleted meanwhile


_ERRORS: dict[int, tuple[type[JobqError], str]] = {
    Code.MISSING: (JobNotFound, "job {job_id} not found"),
    Code.LEASE_NOT_HELD: (LeaseLost, "{what} of job {job_id} refused: this worker no longer "
                                     "holds its lease"),
    Code.QUEUE_FULL: (QueueFull, "queue {queue!r} is at its max_length; {count} job(s) refused, "
                                 "nothing was queued. Retry later or raise the limit."),
    Code.WRONG_STATE: (InvalidState, "job {job_id} is {state}; {what}"),
}


def raise_for(code: object, **context: object) -> None:
    """Raise the error `code` stands for, its message filled from `context` (job_id, what,
    queue, count, state as the message needs); return for any other reply."""
    error = _ERRORS.get(code) if isinstance(code, int) else None
    if error is not None:
        cls, message = error
        raise cls(message.format(**context))

def enqueue_reply(out: Any, queue: str, count: int) -> list[bool | str]:
    """enqueue.lua's reply for `count` jobs as Scripts.enqueue returns it (raises QueueFull)."""
    raise_for(out, queue=queue, count=count)
    return [x if isinstance(x, str) else bool(x) for x in out]


class Scripts:
    """Typed entry points to the Lua scripts for one client and keyspace."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.keys = Keyspace(settings.prefix)
        self._scripts: dict[str, Script] = {n: client.register_script(source(n))
                                          for n in names()}
        self._enqueue_keys: dict[str, list[str]] = {}  # per queue: building them is per call
        self.cluster = is_cluster(client)
        self.strict_replicas = True  # False (a worker's): too few replicas only warns
        self._requests = itertools.count(random.getrandbits(48))  # claim request ids

    def _run(self, name: str, keys: Sequence[str], args: Sequence[Any],
             client: redis.Redis | None = None, via: Pinned | None = None) -> Any:
        c = client or self.client
        script = self._scripts[name]
        if self.settings.wait_replicas and name in ACKED:
            return run_acked(c, name, script, keys, args, self.settings,
                             strict=self.strict_replicas)
        if self.cluster:  # straight to the node of the keys' slot (one slot per call)
            return cluster_evalsha(c, script, keys, args)
        if c.connection is not None:  # a single-connection client: its own locking path
            return script(keys=list(keys), args=list(args), client=c)
        try:
            if via is not None:
                return via.evalsha(script.sha, len(keys), (*keys, *args))
            return evalsha(c, script.sha, len(keys), (*keys, *args))
        except NoScriptError:  # a new server, or it lost its script cache (restart, FLUSH)
            c.script_load(script.script)
            return evalsha(c, script.sha, len(keys), (*keys, *args))

    # enqueue.lua
    def enqueue(self, queue: str, specs: Sequence[JobSpec],
                via: Pinned | None = None) -> list[bool | str]:
        """Write new jobs; returns per job True if created, False if the id already existed,
        or the id of the live job holding its unique key (then nothing was written).
        `via`: a connection of this client's pool kept by the caller (wire.Pinned)."""
        keys, argv = self.enqueue_call(queue, specs)
        return enqueue_reply(self._run("enqueue", keys, argv, via=via), queue, len(specs))

    def enqueue_call(self, queue: str, specs: Sequence[JobSpec]) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of enqueue.lua for `specs` (AsyncQueue sends them on its own client)."""
        k = self.keys
        argv: list[Any] = [len(specs)]
        last: JobSpec | None = None
        for s in specs:
            args = s.args_json if s.args_json != "[]" else ""
            if last is not None and s.same_options(last):
                argv += [s.id, "=", args]  # enqueue.lua: as the last full record
                continue
            fields = s.fields(with_args=False)
            argv += [s.id, "+", s.priority, s.delay_ms, s.ttl_ms, s.unique_key, s.unique_ms,
                     len(fields) // 2, *fields, args]
            last = s
        keys = self._enqueue_keys.get(queue)
        if keys is None:
            if len(self._enqueue_keys) >= 1000:  # a producer of many queue names
                self._enqueue_keys.clear()
            keys = self._enqueue_keys[queue] = [
                k.pending(queue), k.scheduled(queue), k.seq(queue), k.stats(queue),
                k.meta(queue), k.marker(queue), k.job_prefix(queue), k.unique_prefix(queue)]
        return keys, argv

    async def run_async(self, client: AsyncRedis, name: str, keys: Sequence[str],
                        args: Sequence[Any]) -> Any:
        """Script `name` on an asyncio client (EVALSHA, loading the script when the server
        does not have it; with WAIT as _run); the reply as _run gives it."""
        return await arun(client, name, self._scripts[name], keys, args, self.settings)

    # claim.lua
    def _claim_call(self, queues: Sequence[str], count: int, worker_id: str,
                    lease_ms: int = 0, request: str = "",
                    new: bool = False) -> tuple[list[str], list[Any]]:
        # `new`: `request` was never sent before (claim.lua's ARGV[8]), so the script skips
        # looking for the claim it would repeat. Only for a call that nothing re-sends by
        # itself: a client's retry (redis-py's policy, a cluster client's) sends the same
        # ARGV again, and that send must find the claim. So not for a new id made here.
        k, s = self.keys, self.settings
        keys: list[str] = []
        for q in queues:
            keys += [k.pending(q), k.processing(q), k.dead(q), k.stats(q), k.history(q),
                     k.marker(q), k.meta(q), k.job_prefix(q), k.scheduled(q), k.seq(q),
                     k.limits(q), k.limited(q), k.limit_prefix(q)]
        keys += [k.corrupt(q, "pending") for q in queues]
        keys.append(k.claim_record(queues[0], worker_id))
        return keys, [count, worker_id, lease_ms or s.lease_ms, s.dead_ttl_s * 1000,
                      s.history_minutes, s.batch_size, request or self.request_id(),
                      "1" if new else ""]

    def request_id(self) -> str:
        """A new claim request id (unique per worker id in practice: a random start, then
        counted)."""
        return f"{next(self._requests):x}"

    def claim(self, queues: Sequence[str], count: int, worker_id: str,
              client: redis.Redis | None = None, request: str = "") -> ClaimResult:
        """Lease up to `count` jobs from `queues` (first queue first). `request` (default: a
        new request_id()) makes the call idempotent: a claim sent again with the id of one
        whose reply was lost - by a retry, or by the caller after an error - claims nothing
        new and returns the jobs that one leased and still holds."""
        keys, argv = self._claim_call(queues, count, worker_id, request=request)
        return _claimed(self._run("claim", keys, argv, client), queues, worker_id)

    def wait_and_claim(self, markers: Sequence[str], timeout_s: float, queues: Sequence[str],
                       count: int, worker_id: str, client: redis.Redis,
                       lease_ms: int = 0, request: str = "", new: bool = False,
                       via: Pinned | None = None) -> ClaimResult | None:
        """Block on `markers` (BZPOPMIN) and claim as claim() the moment it returns, in one
        round trip: the claim is pipelined behind the blocking pop on `client`'s connection,
        so Redis runs it as soon as the pop is served (or timed out). `lease_ms` (default
        the settings' lease) is how long the claimed jobs are leased; `request` as claim()'s
        (a claim() sent under it after this one's reply was lost returns its jobs). `new`:
        `request` was never sent before (the pipeline is sent once, never retried, so the
        claim need not look for one it would repeat). `via`: a connection of `client`'s pool
        kept by the caller (wire.Pinned) to send it on. None when the server had lost the
        claim script (it is loaded again; nothing was claimed)."""
        keys, argv = self._claim_call(queues, count, worker_id, lease_ms, request, new)
        commands = (("BZPOPMIN", *markers, timeout_s),
                    ("EVALSHA", self._scripts["claim"].sha, len(keys), *keys, *argv),
                    *waits(self.settings))
        popped, out, *acked = (via.pipelined(*commands) if via is not None
                               else pipelined(client, *commands))
        checked(acked, self.settings, "claim.lua")
        if isinstance(out, NoScriptError):
            client.script_load(self._scripts["claim"].script)
            return None
        if isinstance(out, Exception):
            raise out
        result = _claimed(out, queues, worker_id)
        # A failed pop (a marker key of the wrong type) is raised only when the claim got
        # nothing: jobs it leased must reach the worker, which meets the error next time.
        if isinstance(popped, Exception) and not result.jobs:
            raise popped
        return result

    # extend.lua
    def extend(self, queue: str, leases: Sequence[tuple[str, str]],
               client: redis.Redis | None = None) -> list[str]:
        """Renew leases (id, token); returns the ids whose lease is no longer held."""
        argv: list[Any] = [self.settings.lease_ms]
        for job_id, token in leases:
            argv += [job_id, token]
        return list(self._run("extend", [self.keys.processing(queue), self.keys.job_prefix(queue)],
                              argv, client))

    # complete.lua
    def complete(self, job: Claimed, result_json: str, result_ttl_s: int, runtime_ms: int,
                 client: redis.Redis | None = None) -> None:
        """Mark a job completed; raises LeaseLost if the lease is no longer held."""
        code = self.complete_many(job.queue, [(job, result_json, result_ttl_s, runtime_ms, "")],
                                  client)[0]
        raise_for(code, job_id=job.id, what="completion")

    def complete_many(self, queue: str, done: Sequence[tuple[Claimed, str, int, int, str]],
                      client: redis.Redis | None = None) -> list[int]:
        """Mark jobs of one queue completed: (job, result JSON, result ttl s, runtime ms, logs).

        Returns a code per job: 1 done, 2 done and the job has dependents to resolve (see
        Dependencies.ended), Code.MISSING or Code.LEASE_NOT_HELD (that job was not changed).
        """
        k = self.keys
        argv: list[Any] = [self.settings.history_minutes, self.settings.runtime_minutes]
        for job, result_json, ttl_s, runtime_ms, logs in done:
            argv += [job.id, job.token, result_json, ttl_s * 1000, runtime_ms, logs]
        codes = self._run("complete", [k.processing(queue), k.completed(queue), k.stats(queue),
                                       k.history(queue), k.job_prefix(queue),
                                       k.runtime_prefix(queue)], argv, client)
        return [int(c) for c in codes]

    # fail.lua
    def fail(self, job: Claimed, outcome: str, *, delay_ms: int = 0, error: str = "",
             reason: str = "", attempt_json: str = "", group: Signature | None = None,
             runtime_ms: int | None = None, logs: str = "",
             client: redis.Redis | None = None) -> tuple[str, bool]:
        """Record a failed attempt; outcome is retry | fail | dead | crash. A job that ends
        failed or dead joins error group `group` (none when None); `logs`: Outcome.logs. An
        attempt that ran (`runtime_ms` not None) counts in its run-time histogram as a failure.

        Returns the state the job moved to, and whether it ended (failed, dead) with
        dependents to resolve. Raises LeaseLost if the lease is no longer held.
        """
        k, q, s = self.keys, job.queue, self.settings
        g = group or _NO_GROUP
        code = self._run("fail", [k.processing(q), k.scheduled(q), k.failed(q), k.dead(q),
                                  k.pending(q), k.seq(q), k.marker(q), k.stats(q), k.history(q),
                                  k.job(q, job.id), k.attempts(q, job.id), k.notify(q, job.id),
                                  k.error_groups(q), k.error_group_prefix(q),
                                  k.runtime_prefix(q), k.logs(q, job.id)],
                         [job.id, job.token, outcome, delay_ms, error, reason,
                          s.failed_ttl_s * 1000, s.dead_ttl_s * 1000, attempt_json,
                          s.history_minutes, s.max_deliveries, g.id, g.task, g.type,
                          g.message, MAX_ERROR_GROUPS, MAX_GROUP_IDS, s.runtime_minutes,
                          job.task, "" if runtime_ms is None else runtime_ms, logs], client)
        raise_for(code, job_id=job.id, what="failure report")
        return _FAILED[code]

    def append_logs(self, job_key: str, logs_key: str, token: str, text: str) -> int:
        """logs.lua: append a running job's captured output; 1, or a code: not ours."""
        return int(self._run("logs", [job_key, logs_key], [token, text]))

    # unknown.lua
    def unknown(self, job: Claimed, worker_id: str, *, grace_ms: int, known_delay_ms: int,
                unknown_delay_ms: int, client: redis.Redis | None = None) -> Unknown:
        """Hand back (to scheduled, later) or send to dead a job whose task `worker_id` does
        not know, as unknown.lua decides from the tasks the queue's live workers advertise.
        Raises LeaseLost if the lease is no longer held."""
        k, q, s = self.keys, job.queue, self.settings
        out = self._run("unknown", [k.processing(q), k.scheduled(q), k.dead(q), k.stats(q),
                                    k.history(q), k.job(q, job.id), k.notify(q, job.id),
                                    k.tasks(q), k.pending(q), k.marker(q)],
                        [job.id, job.token, worker_id, job.task, q, grace_ms, known_delay_ms,
                         unknown_delay_ms, s.dead_ttl_s * 1000, s.history_minutes], client)
        raise_for(out, job_id=job.id, what="hand-back")
        code, detail = int(out[0]), str(out[1])
        if code == 1:
            return Unknown(str(out[2]), known_by=detail)
        if code == 2:
            return Unknown("scheduled", grace_left_ms=int(detail))
        return Unknown("dead", reason=detail, dependents=bool(int(out[2])))

    # advertise.lua
    def advertise(self, queue: str, worker_id: str, ttl_ms: int, task_names: Sequence[str],
                  client: redis.Redis | None = None) -> None:
        """Say (for ttl_ms) which tasks `worker_id` runs for `queue`; ttl_ms 0 withdraws it."""
        self._run("advertise", [self.keys.tasks(queue)],
                  [worker_id, ttl_ms, ",".join(task_names)], client)

    # promote.lua
    def promote(self, queue: str) -> tuple[int, int]:
        """Move due scheduled jobs to pending; returns (moved, next due ms or -1)."""
        k = self.keys
        moved, nxt = self._run("promote", [k.scheduled(queue), k.pending(queue), k.seq(queue),
                                           k.marker(queue), k.job_prefix(queue)],
                               [self.settings.batch_size])
        return int(moved), int(nxt)

    # reap.lua
    def reap(self, queue: str, client: redis.Redis | None = None) -> list[tuple[str, str]]:
        """Hand jobs with expired leases back to pending (or dead); returns (id, new state)."""
        k, s = self.keys, self.settings
        flat = self._run("reap", [k.processing(queue), k.pending(queue), k.dead(queue),
                                  k.seq(queue), k.marker(queue), k.stats(queue),
                                  k.history(queue), k.job_prefix(queue), k.error_groups(queue),
                                  k.error_group_prefix(queue)],
                         [s.batch_size, s.max_deliveries, s.dead_ttl_s * 1000,
                          s.history_minutes, MAX_ERROR_GROUPS, MAX_GROUP_IDS], client)
        return list(zip(flat[::2], flat[1::2], strict=True))

    # trim.lua
    def trim(self, queue: str, client: redis.Redis | None = None) -> int:
        """Drop expired ids from the final-state zsets (bounded); returns how many."""
        k = self.keys
        return int(self._run("trim", [k.completed(queue), k.failed(queue), k.dead(queue),
                                      k.cancelled(queue)], [], client))

    # release.lua
    def release_many(self, queue: str, jobs: Sequence[Claimed],
                     client: redis.Redis | None = None) -> list[int]:
        """Hand leased jobs of one queue back to pending without counting lost leases, in one
        release.lua call (a queue's keys share its slot: also on a cluster; the caller splits
        a large batch, Fetcher.hand_back_many). Returns a code per job: 1 handed back,
        Code.MISSING or Code.LEASE_NOT_HELD (that job was not changed)."""
        k = self.keys
        argv = [x for job in jobs for x in (job.id, job.token)]
        codes = self._run("release", [k.processing(queue), k.pending(queue), k.marker(queue),
                                      k.job_prefix(queue)], argv, client)
        return [int(c) for c in codes]

    # cancel.lua
    def cancel(self, queue: str, job_id: str) -> None:
        """Cancel a pending or scheduled job; raises JobNotFound or InvalidState."""
        k = self.keys
        code = self._run("cancel", [k.pending(queue), k.scheduled(queue), k.cancelled(queue),
                                    k.stats(queue), k.job(queue, job_id), k.notify(queue, job_id)],
                         [job_id, self.settings.cancelled_ttl_s * 1000])
        if code == Code.WRONG_STATE:
            state = str(self.client.hget(k.job(queue, job_id), "state"))
            raise_for(code, job_id=job_id, state=state,
                      what="only pending or scheduled jobs can be cancelled")
        raise_for(code, job_id=job_id, what="cancel")

    # kill.lua
    def kill(self, queue: str, job_id: str, reason: str) -> None:
        """Move a job waiting out a retry backoff to dead; raises JobNotFound or InvalidState
        (not a retry waiting in scheduled)."""
        k = self.keys
        code = self._run("kill", [k.scheduled(queue), k.dead(queue), k.stats(queue),
                                  k.job(queue, job_id), k.notify(queue, job_id)],
                         [job_id, self.settings.dead_ttl_s * 1000, reason])
        if code == Code.WRONG_STATE:
            state = str(self.client.hget(k.job(queue, job_id), "state"))
            raise_for(code, job_id=job_id, state=state,
                      what="only a job waiting out a retry backoff can be killed")
        raise_for(code, job_id=job_id, what="kill")

    # requeue.lua
    def requeue(self, queue: str, state: str, ids: Sequence[str] = (), *,
                upto: float | None = None, batch: int = 0,
                seen_requeues: int | None = None) -> tuple[int, int]:
        """Move jobs of `state` back to pending: the given ids, or one batch up to a score;
        with `seen_requeues`, the one id given only if it has been requeued that often."""
        k = self.keys
        argv: list[Any] = [state, "ids", *ids] if upto is None else [state, "upto", upto, batch]
        if seen_requeues is not None:
            (job_id,) = ids
            argv = [state, "seen", job_id, seen_requeues]
        moved, left = self._run("requeue", [k.state_set(queue, state), k.pending(queue),
                                            k.seq(queue), k.marker(queue), k.stats(queue),
                                            k.job_prefix(queue), k.error_group_prefix(queue)],
                                argv)
        return int(moved), int(left)

    # purge.lua
    def purge(self, queue: str, state: str, ids: Sequence[str] = (), *,
              upto: float | None = None, batch: int = 0, since_ms: int = 0) -> tuple[int, int]:
        """Delete jobs of `state`: the given ids, or one batch up to a score (leaving jobs
        enqueued or requeued after `since_ms`, when given)."""
        k = self.keys
        argv: list[Any] = ([state, "ids", *ids] if upto is None
                           else [state, "upto", upto, batch, since_ms])
        deleted, left = self._run("purge", [k.state_set(queue, state), k.job_prefix(queue),
                                            k.error_group_prefix(queue)], argv)
        return int(deleted), int(left)

    # search.lua
    def search(self, queue: str, state: str, offset: int, count: int, *, newest_first: bool,
               task: str = "", text: str = "", limit: int = 50,
               ) -> tuple[int, list[tuple[str, float]]]:
        """Examine up to `count` entries of a state set from rank `offset` and return
        (entries examined, matching (id, score)) for the task/text filter. Read-only."""
        flat = self._run("search", [self.keys.state_set(queue, state), self.keys.job_prefix(queue)],
                         [offset, count, "1" if newest_first else "0", task.lower(),
                          text.lower(), limit])
        return int(flat[0]), [(str(flat[i]), float(flat[i + 1])) for i in range(1, len(flat), 2)]

    # rows.lua
    def rows_page(self, queue: str, state: str, offset: int, count: int, *,
                  newest_first: bool, whole_error: bool = False) -> tuple[int, list[list[Any]]]:
        """One page of list rows of a state set, from rank `offset`: (entries in the set,
        records). A record is id, score, the ROW_FIELDS values, args preview, args bytes,
        error text, error bytes (see the header of lua/rows.lua). Read-only."""
        flat = self._run("rows", [self.keys.state_set(queue, state), self.keys.job_prefix(queue)],
                         ["1" if whole_error else "0", "rank", offset, count,
                          "1" if newest_first else "0"])
        return int(flat[0]), _records(flat)

    def rows_of(self, queue: str, state: str, ids: Sequence[str], *,
                whole_error: bool = False) -> list[list[Any]]:
        """List row records (as rows_page, with '' scores) for the given job ids. Read-only."""
        if not ids:
            return []
        flat = self._run("rows", [self.keys.state_set(queue, state), self.keys.job_prefix(queue)],
                         ["1" if whole_error else "0", "ids", *ids])
        return _records(flat)

    # watch.lua
    def watch(self, queue: str, job_id: str) -> str | None:
        """Register a result waiter unless the job ended; returns its state (None: no job)."""
        state = self._run("watch", [self.keys.job(queue, job_id)], [])
        return str(state) if state else None

    # depend.lua
    def depend(self, parent_queue: str, parent_id: str, child_ref: str) -> str:
        """Register `child_ref` as waiting for a parent; returns 'waiting', the parent's final
        state if it already ended, or 'missing'."""
        k = self.keys
        return str(self._run("depend", [k.job(parent_queue, parent_id),
                                        k.dependents(parent_queue, parent_id)], [child_ref]))

    # resolve.lua
    def resolve(self, queue: str, job_id: str, ended: Sequence[tuple[str, str]],
                recheck_ms: int = 0) -> str:
        """Tell a deferred job how some parents ended: (parent ref, state) pairs. Returns its
        new state 'pending' | 'dead' | 'waiting', or 'gone' when it is not deferred."""
        k, s = self.keys, self.settings
        argv: list[Any] = [job_id, s.dead_ttl_s * 1000, s.history_minutes, recheck_ms]
        for parent, state in ended:
            argv += [parent, state]
        return str(self._run("resolve", [k.scheduled(queue), k.pending(queue), k.seq(queue),
                                         k.marker(queue), k.dead(queue), k.stats(queue),
                                         k.history(queue), k.job(queue, job_id),
                                         k.notify(queue, job_id)], argv))

    # lead.lua
    def lead(self, token: str, lease_ms: int, owner: str) -> tuple[int, int, int]:
        """Become or stay the scheduler leader; returns (epoch or 0, now ms, lease ms left)."""
        k = self.keys
        epoch, now, left = self._run("lead", [k.scheduler_leader(), k.scheduler_epoch()],
                                     [token, lease_ms, owner])
        return int(epoch), int(now), int(left)

    # resign.lua
    def resign(self, token: str) -> bool:
        """Give up the scheduler lease if this token holds it."""
        return bool(self._run("resign", [self.keys.scheduler_leader()], [token]))

    # advance.lua
    def advance(self, token: str, name: str, rev: str, next_ms: int, last_tick_ms: int,
                last_job_id: str, fired: int, missed: int) -> int:
        """Record a schedule's progress; 1 done, 0 not the leader, Code.SCHEDULE_CHANGED."""
        k = self.keys
        return int(self._run("advance", [k.scheduler_leader(), k.schedules(), k.schedule(name)],
                             [token, name, rev, next_ms, last_tick_ms, last_job_id, fired,
                              missed]))

    # fire.lua
    def fire(self, queue: str, schedule: str, tick_ms: int, epoch: int, spec: JobSpec) -> int:
        """Create the job of one tick: 1 created, 0 already fired, Code.QUEUE_FULL, or
        Code.FENCED (a newer leader fired)."""
        k = self.keys
        return int(self._run("fire", [k.pending(queue), k.scheduled(queue), k.seq(queue),
                                      k.stats(queue), k.meta(queue), k.marker(queue),
                                      k.job_prefix(queue), k.ticks(queue)],
                             [schedule, tick_ms, epoch, spec.id, spec.priority, spec.ttl_ms,
                              *spec.fields()]))
