"""The @task decorator and Task: a registered function that can enqueue calls of itself.

    @task(queue="emails", max_retries=5)
    def send(to: str) -> None: ...
    send.enqueue("a@example.com")

Task sits above Queue (it enqueues) and registers itself in the registry below it, which
the worker reads; the registry never builds a Queue.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, overload

from .aqueue import AsyncJob, AsyncQueue
from .config import Settings
from .job import Job
from .keys import check_queue_name
from .options import JobOptions
from .queue import Queue
from .registry import Callback, RegisteredTask, TaskOptions, check_task_name, register

P = ParamSpec("P")
R = TypeVar("R")

MAX_CACHED_QUEUES = 100  # Task.enqueue keeps at most this many Queue handles per process


class Task(RegisteredTask[P, R]):
    """A registered task: call it directly like the function, or `.enqueue()` it."""

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """Enqueue a call of this task on its queue, with the task's defaults."""
        return queue_for(self.options.queue).enqueue_call(self, args=args, kwargs=kwargs)

    def enqueue_call(self, args: Any = (), kwargs: dict[str, Any] | None = None,
                     **options: Any) -> Job:
        """Like Queue.enqueue_call on the task's queue (or `queue=` a Queue or name)."""
        target = options.pop("queue", None) or self.options.queue
        q = target if isinstance(target, Queue) else queue_for(target)
        return q.enqueue_with(self, JobOptions(**options), args, kwargs)

    async def aenqueue(self, *args: P.args, **kwargs: P.kwargs) -> AsyncJob:
        """enqueue() for asyncio code: awaited on an AsyncQueue of the task's queue (one per
        event loop, shared by the tasks of this process), so concurrent calls share writes."""
        return await async_queue_for(self.options.queue).enqueue_call(self, args, kwargs)


_queues: dict[str, Queue] = {}
_queues_lock = threading.Lock()


def queue_for(name: str) -> Queue:
    """A Queue for `name` under the settings of the environment, shared by every Task of
    this process: building one costs a client and its connection pool, so it is built
    again only when the settings changed (read anew on every call, as Queue(name) does)."""
    settings = Settings.from_env()
    q = _queues.get(name)
    if q is not None and q.settings == settings:
        return q
    with _queues_lock:
        if len(_queues) >= MAX_CACHED_QUEUES:
            _queues.clear()
        q = _queues[name] = Queue(name, settings=settings)
    return q


_async_queues: dict[tuple[str, int], AsyncQueue] = {}


def async_queue_for(name: str) -> AsyncQueue:
    """queue_for() for asyncio: an AsyncQueue per queue name and running event loop (its
    redis.asyncio client belongs to that loop), built again when the settings changed."""
    settings = Settings.from_env()
    key = (name, id(asyncio.get_running_loop()))
    q = _async_queues.get(key)
    if q is None or q.settings != settings:
        if len(_async_queues) >= MAX_CACHED_QUEUES:
            _async_queues.clear()
        q = _async_queues[key] = AsyncQueue(name, settings=settings)
    return q


@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...
@overload
def task(*, name: str | None = None, queue: str = "default", max_retries: int | None = None,
         timeout_s: float | None = None, priority: int = 0, ttl_s: float | None = None,
         result_ttl_s: int | None = None, retry_backoff_s: float | None = None,
         retry_backoff_max_s: float | None = None, on_success: Callback | None = None,
         on_failure: Callback | None = None, on_dead: Callback | None = None,
         ) -> Callable[[Callable[P, R]], Task[P, R]]: ...
def task(fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
         **options: Any) -> Any:
    """Register a function as a task named "module.qualname" (or `name`).

    Options are the task's defaults: queue, max_retries, timeout_s, priority, ttl_s,
    result_ttl_s, retry_backoff_s, retry_backoff_max_s, and callbacks on_success(job, result),
    on_failure(job, error_text), on_dead(job, reason) which run in the worker after the job
    ends (a failing callback is logged, never fatal).
    """
    opts = TaskOptions(**options)
    check_queue_name(opts.queue)

    def decorate(f: Callable[..., Any]) -> Task[Any, Any]:
        t: Task[Any, Any] = Task(check_task_name(name or f"{f.__module__}.{f.__qualname__}"),
                                 f, opts)
        register(t)
        return t

    return decorate(fn) if fn is not None else decorate
