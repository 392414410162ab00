"""Job dependencies: deferred jobs that wait for their parents, and groups (fan-out / fan-in).

A job enqueued with `depends_on=[...]` is written *deferred*: status "scheduled", scored
DEFERRED_MS + the time of its next check in its queue's scheduled zset (so time never
promotes it), with a field 'dep:<parent ref>' per parent still to hear from. It is then
registered with each parent (depend.lua, in the parent's queue). When a parent ends,
resolve.lua (in the child's queue) releases the child to pending once every parent ended,
or sends it to dead "dependency failed" when a parent did not complete (unless the child
has allow_failure); a child sent to dead takes its own dependents with it, transitively.

Parents and children may be in different queues, hence different cluster slots, so ending
a parent and resolving its children are two steps: the worker that ended the parent takes
the second at once (worker.builtin_hooks.DependencyHook), also for a dependent added while
the parent ran (complete.lua and fail.lua say the job has dependents; the claim's copy of
its fields predates them). When that step does not happen (a crash in between, a parent
that died of lease expiry or was cancelled by a script), every worker's heartbeat sweeps
the deferred jobs
due for a check and reads their parents' states; checks back off from 1 s to 60 s with the
job's age, so a child never waits forever and an idle flow costs almost nothing.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, JobNotFound
from .job import DEFERRED_MS, FINAL_STATES, JSON_ERRORS, Job, JobView
from .keys import check_queue_name, require_job_id
from .scripts import Scripts

if TYPE_CHECKING:
    from .queue import Queue

MIN_CHECK_MS, MAX_CHECK_MS = 1_000, 60_000


def job_ref(queue: str, job_id: str) -> str:
    """The 'queue/id' string naming a job across queues."""
    return f"{queue}/{job_id}"


def parse_ref(ref: str, default_queue: str) -> tuple[str, str]:
    """(queue, id) of 'queue/id', or of a bare id in `default_queue`; raises ConfigError."""
    queue, sep, job_id = ref.rpartition("/")
    return check_queue_name(queue if sep else default_queue), require_job_id(job_id)


def parent_refs(depends_on: object, default_queue: str) -> tuple[str, ...]:
    """Normalise `depends_on` (a Job, a Group, an id, 'queue/id', or a list of them) to refs."""
    items: Iterable[object]
    if depends_on is None:
        return ()
    if isinstance(depends_on, JobView | Group | str):
        items = [depends_on]
    elif isinstance(depends_on, Iterable):
        items = depends_on
    else:
        raise ConfigError(f"depends_on takes jobs, job ids or 'queue/id' refs, not {depends_on!r}")
    refs: list[str] = []
    for item in items:
        if isinstance(item, JobView):  # a Job, or an AsyncQueue's AsyncJob
            refs.append(job_ref(item.queue_name, item.id))
        elif isinstance(item, Group):
            refs += [job_ref(j.queue.name, j.id) for j in item.all_jobs]
        elif isinstance(item, str):
            refs.append(job_ref(*parse_ref(item, default_queue)))
        else:
            raise ConfigError(f"depends_on takes jobs, job ids or 'queue/id' refs, not {item!r}")
    return tuple(dict.fromkeys(refs))


def dependency_fields(refs: Sequence[str], allow_failure: bool) -> dict[str, str]:
    """Hash fields of a job written deferred on `refs`."""
    fields = {"depends_on": json.dumps(list(refs)), "deps_left": str(len(refs))}
    fields.update({f"dep:{ref}": "1" for ref in refs})
    if allow_failure:
        fields["allow_failure"] = "1"
    return fields


class Dependencies:
    """Registers deferred jobs with their parents and resolves them when parents end."""

    def __init__(self, scripts: Scripts) -> None:
        self.scripts = scripts
        self.client = scripts.client
        self.keys = scripts.keys

    def check_parents(self, refs: Iterable[str]) -> None:
        """Raise JobNotFound naming the first parent that does not exist."""
        parents = [parse_ref(ref, "default") for ref in dict.fromkeys(refs)]
        pipe = self.client.pipeline(transaction=False)
        for q, job_id in parents:
            pipe.exists(self.keys.job(q, job_id))
        for (q, job_id), found in zip(parents, pipe.execute(), strict=True):
            if not found:
                raise JobNotFound(f"depends_on names job {job_id} in queue {q!r}, which does "
                                  "not exist (never enqueued, or its retention ended)")

    def register(self, queue: str, job_id: str, refs: Sequence[str]) -> str:
        """Register a freshly written deferred job with its parents; returns its state."""
        child = job_ref(queue, job_id)
        ended = []
        for ref in refs:
            pq, pid = parse_ref(ref, queue)
            state = self.scripts.depend(pq, pid, child)
            if state != "waiting":
                ended.append((ref, state))
        if not ended:
            return "scheduled"
        return self._resolve(queue, job_id, ended)

    def ended(self, queue: str, job_id: str, state: str) -> None:
        """Job `job_id` ended in `state`: resolve its dependents, and theirs if they die."""
        todo = deque([(queue, job_id, state)])
        while todo:
            q, jid, st = todo.popleft()
            key = self.keys.dependents(q, jid)
            for child in sorted(str(c) for c in self.client.smembers(key)):
                cq, cid = parse_ref(child, q)
                if self.scripts.resolve(cq, cid, [(job_ref(q, jid), st)]) == "dead":
                    todo.append((cq, cid, "dead"))
            self.client.delete(key)

    def sweep(self, queue: str, limit: int = 100) -> int:
        """Check up to `limit` deferred jobs of `queue` that are due for a check against
        their parents' states; returns how many were released or sent to dead."""
        now = _server_ms(self.client)
        due: Any = self.client.zrangebyscore(self.keys.scheduled(queue), DEFERRED_MS,
                                             DEFERRED_MS + now, start=0, num=limit)
        changed = 0
        for job_id in due:
            raw = self.client.hmget(self.keys.job(queue, job_id), ["depends_on", "enqueued_ms"])
            refs, enqueued = _loads_refs(raw[0]), int(raw[1] or now)
            ended = self._parent_states(queue, refs)
            age = max(0, now - enqueued)
            recheck = min(MAX_CHECK_MS, max(MIN_CHECK_MS, age // 4))
            state = self._resolve(queue, job_id, ended, recheck)
            changed += state in ("pending", "dead")
        return changed

    def _parent_states(self, queue: str, refs: Sequence[str]) -> list[tuple[str, str]]:
        pipe = self.client.pipeline(transaction=False)
        for ref in refs:
            pq, pid = parse_ref(ref, queue)
            pipe.hget(self.keys.job(pq, pid), "state")
        states = pipe.execute(raise_on_error=False)
        ended = []
        for ref, state in zip(refs, states, strict=True):
            if not isinstance(state, str):
                ended.append((ref, "missing"))
            elif state in FINAL_STATES:
                ended.append((ref, state))
        return ended

    def _resolve(self, queue: str, job_id: str, ended: Sequence[tuple[str, str]],
                 recheck_ms: int = 0) -> str:
        state = self.scripts.resolve(queue, job_id, ended, recheck_ms)
        if state == "dead":
            self.ended(queue, job_id, "dead")
        return state


def _loads_refs(raw: object) -> list[str]:
    try:
        refs = json.loads(raw) if isinstance(raw, str) else []
    except JSON_ERRORS:
        return []
    return [r for r in refs if isinstance(r, str)] if isinstance(refs, list) else []


def _server_ms(client: Any) -> int:
    try:
        sec, usec = client.time()
        return int(sec) * 1000 + int(usec) // 1000
    except Exception:  # a client without TIME (a proxy): the local clock is good enough here
        return int(time.time() * 1000)


@dataclass
class Group:
    """Jobs enqueued together, and the callback job that waits for all of them."""

    jobs: list[Job]
    callback: Job | None = None

    @property
    def all_jobs(self) -> list[Job]:
        return [*self.jobs, *([self.callback] if self.callback else [])]

    def results(self, timeout_s: float = 5.0) -> list[Any]:
        """Results of the group's jobs in order (not the callback); raises JobFailed/Timeout."""
        deadline = time.monotonic() + timeout_s
        return [job.result(timeout_s=max(0.0, deadline - time.monotonic())) for job in self.jobs]


def group(queue: Queue, calls: Iterable[Any], callback: object | None = None, *,
          callback_args: Sequence[Any] = (), callback_kwargs: Mapping[str, Any] | None = None,
          allow_failure: bool = False, group_id: str | None = None,
          callback_queue: str | None = None, **callback_options: Any) -> Group:
    """Fan out `calls` (as Queue.enqueue_many takes them) and fan in with `callback`.

    The jobs go to `queue`, except a call given as a dict with a "queue" key, which goes to
    that queue; the callback goes to `callback_queue` (default `queue`). The queues may be
    on different Redis Cluster nodes: the callback waits on each job in its own slot.

    The callback job depends on every job of the group: it runs once all completed (or all
    ended, with `allow_failure`), else goes to dead "dependency failed". Its meta holds
    {"group": ['queue/id', ...]} so the callback task can look the jobs up.

    With `group_id`, the jobs are '<group_id>:<n>' (n counts from 0; a call that names its
    own job_id keeps it) and the callback '<group_id>:callback': calling group() again with
    the same arguments, e.g. after the producer crashed half way, writes only the jobs that
    are missing and registers the callback with its parents again, so no job is doubled or
    left waiting. How far a call got is kept in `queue`'s slot for the longest retention of
    a job (Settings.dead_ttl_s, 30 days by default) after the call: a group written whole
    is not written again in that time, though its jobs ran and their retention ended (the
    handles returned may then name jobs that no longer exist); later, the same group_id
    starts a new group. A call repeated after its jobs were all written but not the
    callback, when one of them is gone, raises JobNotFound (how it ended is not known, so
    the callback cannot wait for it): use a new group_id. A repeat with another number of
    calls raises ConfigError.
    """
    record: _GroupRecord | None = None
    if group_id is not None:
        require_job_id(f"{group_id}:callback")
        calls = [_with_id(call, f"{group_id}:{n}") for n, call in enumerate(calls)]
        callback_options.setdefault("job_id", f"{group_id}:callback")
        record = _GroupRecord(queue, group_id, len(calls))
        if record.reached == "written":
            return record.handles(calls, callback_options["job_id"] if callback else None,
                                  callback_queue)
    if record is not None and record.reached == "fanned":
        jobs = record.handles(calls).jobs
    else:
        jobs = _fan_out(queue, calls)
        if record is not None:
            record.reach("fanned")
    if callback is None:
        if record is not None:
            record.reach("written")
        return Group(jobs)
    refs = [job_ref(j.queue.name, j.id) for j in jobs]
    meta = {**callback_options.pop("meta", {}), "group": refs}
    home = _other(queue, callback_queue or queue.name)
    try:
        cb = home.enqueue_call(callback, args=callback_args, kwargs=callback_kwargs,
                               depends_on=jobs, allow_failure=allow_failure, meta=meta,
                               **callback_options)
    except JobNotFound as exc:
        if record is None:
            raise
        raise record.gone(exc) from exc
    if record is not None:
        record.reach("written")
    return Group(jobs, cb)


class _GroupRecord:
    """How far group(group_id=...) got writing one group (Keyspace.group): '' nothing yet
    (or a call stopped during the fan-out: the jobs missing are written), 'fanned' every
    job written, 'written' the callback too. Kept for the longest retention of a job."""

    def __init__(self, queue: Queue, group_id: str, n: int) -> None:
        self.queue = queue
        self.group_id = group_id
        self.key = queue.keys.group(queue.name, group_id)
        s = queue.settings
        self.keep_ms = max(s.result_ttl_s, s.failed_ttl_s, s.dead_ttl_s) * 1000
        pipe = queue.client.pipeline(transaction=False)
        pipe.hsetnx(self.key, "n", n)
        pipe.hsetnx(self.key, "started_ms", int(time.time() * 1000))
        pipe.pexpire(self.key, self.keep_ms)
        pipe.hmget(self.key, ["n", "fanned", "written"])
        *_, (stored_n, fanned, written) = pipe.execute()
        if int(stored_n) != n:
            raise ConfigError(f"group_id {group_id!r} names a group of {stored_n} jobs; this "
                              f"call has {n}. Use a new group_id for another group.")
        self.reached = "written" if written else "fanned" if fanned else ""

    def gone(self, exc: JobNotFound) -> JobNotFound:
        """The error for a job of the group found gone when the callback is written."""
        return JobNotFound(f"group {self.group_id!r}: its jobs were written by an earlier "
                           f"call that stopped before the callback, and one has since gone "
                           f"({exc}); how it ended is unknown, so the callback cannot wait "
                           "for it. Run the group under a new group_id.")

    def reach(self, stage: str) -> None:
        pipe = self.queue.client.pipeline(transaction=False)
        pipe.hset(self.key, stage, "1")
        pipe.pexpire(self.key, self.keep_ms)
        pipe.execute()

    def handles(self, calls: Iterable[Any], callback_id: str | None = None,
                callback_queue: str | None = None) -> Group:
        """The group's jobs as handles, read where they exist, without writing any."""
        jobs = [self._handle(c.get("queue", self.queue.name) if isinstance(c, Mapping)
                             else self.queue.name, c["job_id"] if isinstance(c, Mapping)
                             else "") for c in calls]
        cb = None if callback_id is None else self._handle(callback_queue or self.queue.name,
                                                           callback_id)
        return Group(jobs, cb)

    def _handle(self, queue: str, job_id: str) -> Job:
        q = _other(self.queue, check_queue_name(queue))
        return q.job(job_id) or Job(q, job_id, {})


def _fan_out(queue: Queue, calls: Iterable[Any]) -> list[Job]:
    """Enqueue `calls` with one enqueue_many per queue they name; the jobs in call order."""
    by_queue: dict[str, list[tuple[int, Any]]] = {}
    n = 0
    for n, call in enumerate(calls, 1):
        name = queue.name
        if isinstance(call, Mapping) and "queue" in call:
            call = dict(call)
            name = check_queue_name(call.pop("queue"))
        by_queue.setdefault(name, []).append((n - 1, call))
    jobs: list[Job | None] = [None] * n
    for name, items in by_queue.items():
        written = _other(queue, name).enqueue_many([call for _, call in items])
        for (i, _), job in zip(items, written, strict=True):
            jobs[i] = job
    return [job for job in jobs if job is not None]


def _other(queue: Queue, name: str) -> Queue:
    """`queue` itself, or queue `name` on the same settings and client."""
    if name == queue.name:
        return queue
    return type(queue)(name, settings=queue.settings, redis=queue.client)


def _with_id(call: Any, job_id: str) -> Any:
    """An enqueue_many call (see Queue.enqueue_many) as a dict with `job_id` set, unless it
    names one; anything else is passed on for enqueue_many to refuse."""
    if isinstance(call, tuple | list) and 1 <= len(call) <= 3:
        task, args, kwargs = (*call, (), None)[:3] if len(call) < 3 else call
        return {"task": task, "args": args or (), "kwargs": kwargs or {}, "job_id": job_id}
    if isinstance(call, Mapping):
        return {"job_id": job_id, **call}
    return call
