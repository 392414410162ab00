"""The producer API: enqueue jobs, look them up, wait for results, cancel."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Unpack

import redis

from .config import Settings
from .connection import configure, connect, redis_errors, translated
from .dependencies import Dependencies
from .eager import run_eagerly
from .errors import (
    ConfigError,
    InvalidState,
    ReplicationTimeout,
)
from .follow import MasterCheck, follows
from .groupcommit import GroupCommit
from .job import (
    CANCELLED,
    STATES,
    Job,
    JobSpec,
    encode_args,
    new_job_id,
)
from .keys import Keyspace, check_queue_name, require_job_id
from .limits import Limit, limit_key_of
from .options import EnqueueOptions, JobOptions
from .registry import lookup
from .scripts import Scripts
from .spec import NO_OPTIONS, build_spec
from .tracing import traced_enqueue
from .wire import Pinned


class Queue:
    """A named queue in one Redis.

    `url` falls back to Settings (JOBQ_REDIS_URL, then REDIS_URL). Pass `settings` to share
    one configuration, or `redis` to share a client (and its connection pool).
    """

    def __init__(self, name: str = "default", url: str | None = None, *,
                 settings: Settings | None = None, redis: redis.Redis | None = None) -> None:
        self.name = check_queue_name(name)
        self.settings, self.client = configure(settings, url, redis)
        self.keys = Keyspace(self.settings.prefix)
        self.scripts = Scripts(self.client, self.settings)
        self._registered = False
        # Registered tasks' defaults as a spec, for calls without per-call options.
        self._templates: dict[Any, JobSpec] = {}
        # Single enqueues from threads sharing this Queue share script calls, written on a
        # connection the group keeps when the client is this Queue's own (a shared client's
        # pool is not ours to hold a connection of; a cluster client has a pool per node).
        self._pinned = Pinned(self.client) if redis is None and not self.scripts.cluster else None
        # With Sentinel, each write first has the sentinels asked which server is master (at
        # most every sentinel_check_s): the group's write is then another method, so the
        # write of a Queue on one Redis runs exactly what it did without Sentinel.
        # (In eager mode no write reaches Redis: nothing to follow.)
        self._follow = (MasterCheck(self.client, self._pinned, self.settings.sentinel_check_s)
                        if follows(self.client) and not self.settings.eager else None)
        self._group = GroupCommit(self._write_kept if self._follow is None
                                  else self._write_followed)

    def __repr__(self) -> str:
        return f"<Queue {self.name}>"

    # -- enqueue -------------------------------------------------------------------------
    def enqueue(self, task: object, *args: Any, **kwargs: Any) -> Job:
        """Enqueue `task(*args, **kwargs)`; task is a registered task/function or its name."""
        return self._write_one(self._plain_spec(task, args, kwargs, self._templates))

    def enqueue_call(self, task: object, args: Sequence[Any] = (),
                     kwargs: Mapping[str, Any] | None = None,
                     **options: Unpack[EnqueueOptions]) -> Job:
        """Enqueue one job with options; returns its Job (status pending or scheduled).

        `options`: any of JobOptions' fields by name (priority, timeout_s, ttl_s,
        result_ttl_s, max_retries, retry_backoff_s, job_id, delay_s, run_at, meta, unique,
        unique_key, unique_for_s, depends_on, allow_failure, limit_key), each as described
        there; one it does not have is a TypeError.

        Raises PayloadError (args not JSON / above the size cap), UnknownTask (a callable
        that is not registered), ConfigError (bad option), QueueFull, RedisUnavailable.
        When `job_id` names an existing job, nothing is written and that job is returned.

        Unique jobs: with `unique_key` (or `unique=True`, which hashes task, args and kwargs
        into a key), while a job holding the same key in this queue is pending, scheduled or
        processing, nothing is written and that job is returned. The key is held at most
        `unique_for_s` (default Settings.unique_for_s) and is free as soon as its job ends.

        Dependencies: with `depends_on` (a Job, a Group, a job id of this queue, a
        'queue/id' ref, or a list of them) the job waits deferred (status "scheduled") until
        every parent ended; it then goes to pending if all completed, else to dead with
        reason "dependency failed" (with `allow_failure`: to pending whatever they did).
        Raises JobNotFound if a parent does not exist.

        Limits: the job counts against the limit (set_limit) of `limit_key`, by default
        against the limit of its task name.
        """
        return self.enqueue_with(task, JobOptions(**options), args, kwargs)

    def enqueue_with(self, task: object, options: JobOptions, args: Sequence[Any] = (),
                     kwargs: Mapping[str, Any] | None = None) -> Job:
        """enqueue_call with the options as one JobOptions (as the CLI and Task build them)."""
        return self._write_one(self._spec(task, args, kwargs or {}, options))

    def enqueue_in(self, delay_s: float, task: object, *args: Any, **kwargs: Any) -> Job:
        """Enqueue to run after `delay_s` seconds (state scheduled until then)."""
        return self.enqueue_call(task, args=args, kwargs=kwargs, delay_s=delay_s)

    def enqueue_at(self, run_at: datetime, task: object, *args: Any, **kwargs: Any) -> Job:
        """Enqueue to run at `run_at` (timezone-aware; naive means UTC)."""
        return self.enqueue_call(task, args=args, kwargs=kwargs, run_at=run_at)

    def enqueue_many(self, calls: Iterable[Any]) -> list[Job]:
        """Enqueue many jobs in one round trip per 1,000.

        Each call is `(task, args)`, `(task, args, kwargs)` or a dict with the keyword
        arguments of enqueue_call (`task`, `args`, `kwargs`, `priority`, ...). Every call is
        validated before anything is written.
        """
        templates: dict[Any, JobSpec] = {}
        return self._write_many([self._spec_from(call, templates) for call in calls])

    @traced_enqueue
    def _write_many(self, specs: Sequence[JobSpec]) -> list[Job]:
        jobs: list[Job] = []
        for i in range(0, len(specs), 1000):
            jobs += self._write_pooled(specs[i:i + 1000])
        return jobs

    def _spec_from(self, call: Any, templates: dict[Any, JobSpec]) -> JobSpec:
        # (task, args[, kwargs]) first: the common case, and cheaper than the Mapping ABC check
        if isinstance(call, tuple | list) and 1 <= len(call) <= 3:
            task, args, kwargs = (*call, (), None)[:3] if len(call) < 3 else call
            return self._plain_spec(task, args or (), kwargs or {}, templates)
        if isinstance(call, Mapping):
            opts = dict(call)
            task = opts.pop("task", None)
            if task is None:
                raise ConfigError(f"enqueue_many: call {call!r} has no 'task'")
            args, kwargs = opts.pop("args", ()), opts.pop("kwargs", None) or {}
            return self._spec(task, args, kwargs, JobOptions.of(opts, "enqueue_many"))
        raise ConfigError(f"enqueue_many: expected (task, args[, kwargs]) or a dict, not {call!r}")

    def _plain_spec(self, task: object, args: Sequence[Any], kwargs: Mapping[str, Any],
                    templates: dict[Any, JobSpec]) -> JobSpec:
        """The spec of a call without per-call options: its task's defaults (resolved and
        checked once per task, kept in `templates`) plus its own id and arguments."""
        try:
            base = templates.get(task)
        except TypeError:  # unhashable: not a task; _spec says what is wrong with it
            return self._spec(task, args, kwargs)
        if base is None:
            base = self._spec(task, (), {}, check_args=False)
            if templates is not self._templates or lookup(base.task) is not None:
                # A name not registered (yet) in this process is not remembered across
                # calls: once its module is imported, the task's defaults apply.
                templates[task] = base
        registered = lookup(base.task)
        if registered is not None:
            registered.check_args(args, kwargs)
        args_json, kwargs_json = encode_args(args, kwargs, self.settings.max_payload_bytes)
        return JobSpec(id=new_job_id(), task=base.task, args_json=args_json,
                       kwargs_json=kwargs_json, priority=base.priority, delay_ms=base.delay_ms,
                       ttl_ms=base.ttl_ms, options=base.options)

    def _spec(self, task: object, args: Sequence[Any], kwargs: Mapping[str, Any],
              opts: JobOptions = NO_OPTIONS, check_args: bool = True) -> JobSpec:
        return build_spec(self.name, self.settings, task, args, kwargs, opts,
                          check_args=check_args)

    @traced_enqueue
    def _write_one(self, spec: JobSpec) -> Job:
        """Write one job, in a script call shared with concurrent callers (_GroupCommit)
        unless it needs more than the enqueue script (eager mode, dependencies)."""
        if self.settings.eager or spec.depends_on:
            return self._write_pooled([spec])[0]
        return self._group.write(spec)

    def _write_kept(self, specs: Sequence[JobSpec]) -> list[Job]:
        """_write on the group's kept connection (GroupCommit calls it, one caller at a time).
        A method, not a partial with a keyword: that cost a lone enqueue 0.4 us before its
        send."""
        return self._write(specs, self._pinned)

    def _write_followed(self, specs: Sequence[JobSpec]) -> list[Job]:
        """_write_kept on a Sentinel URL: to the master the sentinels name (MasterCheck)."""
        follow = self._follow
        if follow is not None:  # always, when this is the group's write
            follow()
        return self._write(specs, self._pinned)

    def _write_pooled(self, specs: Sequence[JobSpec]) -> list[Job]:
        """_write on the client's pool (not the group's connection), on a Sentinel URL to
        the master the sentinels name (MasterCheck)."""
        if self._follow is not None:
            self._follow()
        return self._write(specs)

    @redis_errors
    def _write(self, specs: Sequence[JobSpec], via: Pinned | None = None) -> list[Job]:
        if self.settings.eager:
            return [Job(self, spec.id, run_eagerly(self, spec), created=True) for spec in specs]

        deps = None
        for spec in specs:  # a loop, not any(generator): this runs before every send
            if spec.depends_on:
                deps = Dependencies(self.scripts)
                deps.check_parents(ref for spec in specs for ref in spec.depends_on)
                break
        if not self._registered:
            # The queue registry is global (outside the queue's cluster slot), so it is
            # written here once per Queue object rather than inside the script.
            self.client.sadd(self.keys.queues(), self.name)
            self._registered = True
        try:
            created = self.scripts.enqueue(self.name, specs, via)
        except ReplicationTimeout as exc:
            exc.job_ids = [spec.id for spec in specs]
            raise
        jobs = []
        for spec, new in zip(specs, created, strict=True):
            if new is True:
                state = "scheduled" if spec.delay_ms != 0 else "pending"
                if deps is not None and spec.depends_on:
                    # Written first, registered second: a parent ending in between is seen
                    # by depend.lua (it returns the final state) or by the deferred sweep.
                    state = deps.register(self.name, spec.id, spec.depends_on)
                jobs.append(Job(self, spec.id, {"state": state, "task": spec.task,
                                                "args": spec.args_json,
                                                "kwargs": spec.kwargs_json}, created=True))
            else:
                if new is False and deps is not None and spec.depends_on:
                    # The same job enqueued again (a retry after a crash between writing it
                    # and registering it with its parents, maybe in other slots): register
                    # again. depend.lua and resolve.lua count each parent once, so a job
                    # registered before is neither released twice nor lost.
                    deps.register(self.name, spec.id, spec.depends_on)
                existing = spec.id if new is False else new
                jobs.append(self._fetch(existing) or Job(self, existing, {}))
        return jobs

    # -- read ------------------------------------------------------------------------------
    @redis_errors
    def job(self, job_id: str) -> Job | None:
        """The job with this id in this queue, or None (unknown or expired)."""
        require_job_id(job_id)
        return self._fetch(job_id)

    def _fetch(self, job_id: str) -> Job | None:
        try:
            fields: dict[str, str] = self.client.hgetall(  # type: ignore[assignment]
                self.keys.job(self.name, job_id))
        except redis.ResponseError:  # a key of another type under our name: treat as absent
            return None
        return Job(self, job_id, fields) if fields else None

    @redis_errors
    def _refresh(self, job: Job) -> None:
        if self.settings.eager:  # an eager job ended before enqueue returned
            return
        fresh = self._fetch(job.id)
        if fresh is None:
            raise job.not_found()
        job.fields = fresh.fields

    def _wait_result(self, job: Job, timeout_s: float) -> Any:
        if self.settings.eager:
            return _outcome(job)
        deadline = time.monotonic() + max(0.0, timeout_s)
        notify = self.keys.notify(self.name, job.id)
        waiter: redis.Redis | None = None
        with translated(self.settings.redis_url):
            try:
                while True:
                    left = job.wait_left(self.scripts.watch(self.name, job.id), deadline,
                                         timeout_s)
                    if left is None:
                        job.refresh()
                        return _outcome(job)
                    if waiter is None:
                        waiter = connect(self.settings.replace(block_s=min(left, 60.0)),
                                         blocking=True)
                    # The watch registered us; completion pushes to `notify`, so a finish
                    # that happens before BLPOP starts is not missed.
                    waiter.blpop([notify], timeout=min(left, 60.0))
            finally:
                if waiter is not None:
                    waiter.close()

    # -- admin -----------------------------------------------------------------------------
    @redis_errors
    def cancel(self, job_id: str) -> bool:
        """Cancel a pending or scheduled job. False if it is in another state.

        Raises JobNotFound when there is no such job.
        """
        if self.settings.eager:
            return False  # eager jobs have ended by the time anyone can cancel them
        try:
            self.scripts.cancel(self.name, require_job_id(job_id))
        except InvalidState:
            return False
        Dependencies(self.scripts).ended(self.name, job_id, CANCELLED)
        return True

    @redis_errors
    def count(self, state: str = "pending") -> int:
        """Number of jobs of this queue in `state` (O(1))."""
        if state not in STATES:
            raise ConfigError(f"unknown state {state!r}; states are {', '.join(STATES)}")
        return int(self.client.zcard(self.keys.state_set(self.name, state)))

    def __len__(self) -> int:
        return self.count("pending")

    @redis_errors
    def set_max_length(self, max_length: int | None) -> None:
        """Refuse enqueues beyond `max_length` pending jobs (QueueFull); None removes it."""
        if max_length is None or max_length <= 0:
            self.client.hdel(self.keys.meta(self.name), "max_length")
        else:
            self.client.hset(self.keys.meta(self.name), "max_length", int(max_length))

    @redis_errors
    def pause(self) -> None:
        """Stop workers claiming from this queue; enqueues are still accepted."""
        self.client.hset(self.keys.meta(self.name), "paused", "1")

    @redis_errors
    def resume(self) -> None:
        """Let workers claim from this queue again."""
        self.client.hdel(self.keys.meta(self.name), "paused")
        self.client.zadd(self.keys.marker(self.name), {"m": 0})

    @redis_errors
    def set_limit(self, key: object, *, concurrency: int = 0, rate: int = 0,
                  per_s: float = 60.0) -> Limit:
        """Cap the jobs of `key` (a task, or a string jobs give as limit_key) in this queue,
        for all workers: at most `concurrency` processing at once, at most `rate` started per
        `per_s` seconds. Jobs over the limit wait (parked) without holding up other jobs.
        Replaces an earlier limit of the key; raises ConfigError for a bad value."""
        limit = Limit(limit_key_of(key), concurrency, rate, per_s)
        self._write_limit(limit.key, limit.encode())
        return limit

    @redis_errors
    def remove_limit(self, key: object) -> None:
        """Remove the limit of `key`; its parked jobs go back to pending."""
        self._write_limit(limit_key_of(key), None)

    def _write_limit(self, key: str, encoded: str | None) -> None:
        pipe = self.client.pipeline()
        if encoded is None:
            pipe.hdel(self.keys.limits(self.name), key)
        else:
            pipe.hset(self.keys.limits(self.name), key, encoded)
        # Parked jobs of the key are looked at again by the next claim, which we wake.
        pipe.zadd(self.keys.limited(self.name), {key: 0}, xx=True)
        pipe.zadd(self.keys.marker(self.name), {"m": 0})
        pipe.execute()

    @redis_errors
    def limits(self) -> list[Limit]:
        """The limits set on this queue, by key."""
        raw: Any = self.client.hgetall(self.keys.limits(self.name))
        found = (Limit.decode(k, v) for k, v in sorted(raw.items()))
        return [limit for limit in found if limit is not None]

    @redis_errors
    def is_paused(self) -> bool:
        return self.client.hget(self.keys.meta(self.name), "paused") == "1"


def _outcome(job: Job) -> Any:
    return job.outcome()
