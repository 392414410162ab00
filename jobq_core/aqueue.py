"""AsyncQueue: the producer API for asyncio apps, on redis.asyncio.

    aq = AsyncQueue("default")
    job = await aq.enqueue(add, 1, 2)
    await job.result(timeout_s=5)

Specs, their checks and the enqueue script's arguments are the sync Queue's own (an
AsyncQueue keeps a Queue for them that never sends a command); only the round trips are
awaited. Concurrent `enqueue`/`enqueue_call` calls are written together (group commit):
while one script call is in flight, the calls that arrive wait for it and then go out as
the next single call, so a busy app sends one script call per round trip, not one per job.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Unpack

from .config import Settings
from .connection import aconnect, translated
from .errors import ReplicationTimeout
from .follow import AsyncMasterCheck, follows
from .job import JobSpec, JobView
from .keys import check_queue_name, require_job_id
from .options import EnqueueOptions, JobOptions
from .queue import Queue
from .scripts import enqueue_reply
from .tracing import traced_enqueue

if TYPE_CHECKING:
    from redis.asyncio import Redis as AsyncRedis

BATCH = 1000  # most jobs in one script call, as Queue.enqueue_many
WAIT_CHUNK_S = 60.0  # longest single BLPOP of result(); a longer wait takes several


class AsyncJob(JobView):
    """The handle AsyncQueue returns: Job's properties, with `refresh()` and `result()`
    to await."""

    def __init__(self, queue: AsyncQueue, job_id: str, fields: Mapping[str, str] | None = None,
                 *, created: bool = False):
        super().__init__(job_id, fields, created=created)
        self.queue = queue

    @property
    def queue_name(self) -> str:
        return self.queue.name

    async def refresh(self) -> AsyncJob:
        """Read the job's fields again; raises JobNotFound if it no longer exists."""
        await self.queue._refresh(self)
        return self

    async def result(self, timeout_s: float = 5.0) -> Any:
        """Wait up to `timeout_s` for the job to end and return its result: the event loop
        goes on meanwhile, and nothing polls (it blocks on the notification the worker
        pushes when the job ends, as Job.result does). Raises JobFailed when the job ended
        failed, dead or cancelled, Timeout when it has not ended in time."""
        return await self.queue._wait_result(self, timeout_s)


class AsyncQueue:
    """A named queue in one Redis, for asyncio code: Queue's constructor and enqueue
    methods, awaited. `redis` shares a redis.asyncio client. Use it from one event loop
    (a redis.asyncio client belongs to the loop it first ran on)."""

    def __init__(self, name: str = "default", url: str | None = None, *,
                 settings: Settings | None = None,
                 redis: AsyncRedis | None = None) -> None:
        self.name = check_queue_name(name)
        base = settings or Settings.from_env()
        self.settings = base.replace(redis_url=url) if url else base
        self._own_client = redis is None
        self.client = redis if redis is not None else aconnect(self.settings)
        # Specs, codecs and script arguments: a sync Queue's, which never sends a command
        # here (redis-py connects on a client's first command).
        self._sync = Queue(self.name, settings=self.settings)
        # With Sentinel: the writes follow the master the sentinels name (see follow.py).
        self._follow = (AsyncMasterCheck(self.client, self.settings.sentinel_check_s)
                        if follows(self.client) and not self.settings.eager else None)
        self.keys = self._sync.keys
        self._waiter: AsyncRedis | None = None  # for BLPOP: a longer socket timeout
        self._registered = False
        # Group commit: calls waiting for the next script call, and the task writing them.
        self._waiting: list[tuple[JobSpec, asyncio.Future[Written]]] = []
        self._writer: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<AsyncQueue {self.name}>"

    async def aclose(self) -> None:
        """Close the clients this AsyncQueue opened (not one passed in as `redis`)."""
        if self._waiter is not None:
            await self._waiter.aclose()
        if self._own_client:
            await self.client.aclose()
        self._sync.client.close()

    # -- enqueue -------------------------------------------------------------------------
    async def enqueue(self, task: object, *args: Any, **kwargs: Any) -> AsyncJob:
        """Queue.enqueue, awaited; concurrent calls share script calls (see the module)."""
        spec = self._sync._plain_spec(task, args, kwargs, self._sync._templates)
        return await self._store(spec)

    async def enqueue_call(self, task: object, args: Sequence[Any] = (),
                           kwargs: Mapping[str, Any] | None = None,
                           **options: Unpack[EnqueueOptions]) -> AsyncJob:
        """Queue.enqueue_call, awaited (same options, same errors)."""
        return await self.enqueue_with(task, JobOptions(**options), args, kwargs)

    async def enqueue_with(self, task: object, options: JobOptions, args: Sequence[Any] = (),
                           kwargs: Mapping[str, Any] | None = None) -> AsyncJob:
        """Queue.enqueue_with, awaited: enqueue_call with its options as one JobOptions."""
        spec = self._sync._spec(task, args, kwargs or {}, options)
        return await self._store(spec)

    async def enqueue_many(self, calls: Iterable[Any]) -> list[AsyncJob]:
        """Queue.enqueue_many, awaited: every call is checked, then one script call per
        1,000 jobs."""
        templates: dict[Any, JobSpec] = {}
        return await self._store_many([self._sync._spec_from(call, templates) for call in calls])

    @traced_enqueue
    async def _store_many(self, specs: Sequence[JobSpec]) -> list[AsyncJob]:
        jobs: list[AsyncJob] = []
        for i in range(0, len(specs), BATCH):
            batch = specs[i:i + BATCH]
            jobs += [await self._job_of(spec, new) for spec, new in
                     zip(batch, await self._send(batch), strict=True)]
        return jobs

    @traced_enqueue
    async def _store(self, spec: JobSpec) -> AsyncJob:
        """Write one spec with whatever other calls are waiting; return once it is stored."""
        fut: asyncio.Future[Written] = asyncio.get_running_loop().create_future()
        # A caller cancelled meanwhile never reads its error: mark it read, not "never
        # retrieved".
        fut.add_done_callback(_retrieve)
        self._waiting.append((spec, fut))
        if self._writer is None or self._writer.done():
            # Nothing in flight: this call goes out at the loop's next turn (with any call
            # made in the same turn), no timer; later calls wait for this write to end.
            self._writer = asyncio.get_running_loop().create_task(self._write_waiting())
        # A caller cancelled while waiting cancels only its own future: its spec stays in
        # the write, which goes on for the others (the writer skips a future that is done).
        new = await fut
        if new is True:  # the common case, without another coroutine per job
            return self._created(spec)
        return await self._job_of(spec, new)

    async def _write_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:BATCH], self._waiting[BATCH:]
            try:
                created = await self._send([spec for spec, _ in batch])
            except BaseException as exc:  # reaches the callers of this batch, and only them
                for spec, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc.for_jobs([spec.id])
                                          if isinstance(exc, ReplicationTimeout) else exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, fut), new in zip(batch, created, strict=True):
                if not fut.done():
                    fut.set_result(new)

    async def _send(self, specs: Sequence[JobSpec]) -> Sequence[Written]:
        """One enqueue script call for `specs`; per spec what Scripts.enqueue returns (or,
        written by the sync Queue, its job)."""
        if self.settings.eager or any(spec.depends_on for spec in specs) or (
                self.settings.wait_replicas and self._sync.scripts.cluster):
            # Eager jobs run here and now; jobs with parents are registered with them by
            # the sync Queue's steps; a write and its WAIT on one cluster node's connection
            # need the sync client's per-node pools. In a thread, so the loop is not blocked.
            jobs = await asyncio.to_thread(self._sync._write_pooled, specs)
            return [AsyncJob(self, job.id, job.fields, created=job.created) for job in jobs]
        if self._follow is not None:
            await self._follow()
        with translated(self.settings.redis_url):
            if not self._registered:
                await self.client.sadd(self.keys.queues(), self.name)
                self._registered = True
            keys, argv = self._sync.scripts.enqueue_call(self.name, specs)
            try:
                out = await self._sync.scripts.run_async(self.client, "enqueue", keys, argv)
            except ReplicationTimeout as exc:
                exc.job_ids = [spec.id for spec in specs]
                raise
        return enqueue_reply(out, self.name, len(specs))

    def _created(self, spec: JobSpec) -> AsyncJob:
        """The handle of a job this call has just stored."""
        state = "scheduled" if spec.delay_ms != 0 else "pending"
        return AsyncJob(self, spec.id, {"state": state, "task": spec.task,
                                        "args": spec.args_json, "kwargs": spec.kwargs_json},
                        created=True)

    async def _job_of(self, spec: JobSpec, new: Written) -> AsyncJob:
        if isinstance(new, AsyncJob):
            return new
        if new is True:
            return self._created(spec)
        existing = spec.id if new is False else new
        return await self._fetch(existing) or AsyncJob(self, existing, {})

    # -- read ------------------------------------------------------------------------------
    async def job(self, job_id: str) -> AsyncJob | None:
        """The job with this id in this queue, or None (unknown or expired)."""
        require_job_id(job_id)
        return await self._fetch(job_id)

    async def _fetch(self, job_id: str) -> AsyncJob | None:
        import redis as sync_redis

        with translated(self.settings.redis_url):
            try:
                fields: dict[str, str] = await self.client.hgetall(  # type: ignore[assignment]
                    self.keys.job(self.name, job_id))
            except sync_redis.ResponseError:  # a key of another type under our name
                return None
        return AsyncJob(self, job_id, fields) if fields else None

    async def _refresh(self, job: AsyncJob) -> None:
        if self.settings.eager:  # an eager job ended before enqueue returned
            return
        fresh = await self._fetch(job.id)
        if fresh is None:
            raise job.not_found()
        job.fields = fresh.fields

    async def _wait_result(self, job: AsyncJob, timeout_s: float) -> Any:
        if self.settings.eager:
            return job.outcome()
        deadline = time.monotonic() + max(0.0, timeout_s)
        notify = self.keys.notify(self.name, job.id)
        scripts = self._sync.scripts
        with translated(self.settings.redis_url):
            while True:
                # watch.lua registers us as a waiter unless the job ended; the worker then
                # pushes to `notify` when it ends, so an end before BLPOP is not missed.
                state = await scripts.run_async(self.client, "watch",
                                                [self.keys.job(self.name, job.id)], [])
                left = job.wait_left(str(state) if state else "", deadline, timeout_s)
                if left is None:
                    await job.refresh()
                    return job.outcome()
                if self._waiter is None:
                    self._waiter = aconnect(self.settings.replace(block_s=WAIT_CHUNK_S),
                                            blocking=True)
                await self._waiter.blpop([notify], timeout=min(left, WAIT_CHUNK_S))


def _retrieve(fut: asyncio.Future[Written]) -> None:
    if not fut.cancelled():
        fut.exception()


# What writing one spec gave: enqueue.lua's answer (True: created, False: the id was
# taken, str: the id of the job holding its unique key), or the job the sync Queue wrote.
Written = AsyncJob | bool | str
