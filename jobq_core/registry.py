"""Tasks: the registry of callables workers may run, and the @task decorator.

A worker only runs tasks registered in its own process (by importing their modules), so
a job can never make a worker import or call something by a name stored in Redis.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from .errors import ConfigError, UnknownTask

if TYPE_CHECKING:
    from .job import Job

P = ParamSpec("P")
R = TypeVar("R")

TASK_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_<>][A-Za-z0-9_<>]*)*$")
Callback = Callable[..., object]


def check_task_name(name: str) -> str:
    if not isinstance(name, str) or len(name) > 200 or not TASK_NAME_RE.match(name):
        raise ConfigError(f"invalid task name {name!r}: expected a dotted Python name "
                          "like 'myapp.tasks.add'")
    return name


@dataclass(frozen=True)
class TaskOptions:
    """Per-task defaults; a job's own options (enqueue_call) win over these."""

    queue: str = "default"
    max_retries: int | None = None
    timeout_s: float | None = None
    priority: int = 0
    ttl_s: float | None = None
    result_ttl_s: int | None = None
    retry_backoff_s: float | None = None
    retry_backoff_max_s: float | None = None
    on_success: Callback | None = None
    on_failure: Callback | None = None
    on_dead: Callback | None = None


@dataclass(frozen=True)
class Task(Generic[P, R]):
    """A registered task: call it directly like the function, or `.enqueue()` it."""

    name: str
    fn: Callable[P, R]
    options: TaskOptions = field(default_factory=TaskOptions)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """Enqueue a call of this task on its queue, with the task's defaults."""
        from .queue import Queue

        return Queue(self.options.queue).enqueue_call(self, args=args, kwargs=kwargs)

    def enqueue_call(self, args: Any = (), kwargs: dict[str, Any] | None = None,
                     **options: Any) -> Job:
        """Like Queue.enqueue_call on the task's queue (or `queue=` a Queue or name)."""
        from .queue import Queue

        target = options.pop("queue", None) or self.options.queue
        q = target if isinstance(target, Queue) else Queue(target)
        return q.enqueue_call(self, args=args, kwargs=kwargs, **options)


_TASKS: dict[str, Task[Any, Any]] = {}


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
    from .keys import check_queue_name

    opts = TaskOptions(**options)
    check_queue_name(opts.queue)

    def register(f: Callable[..., Any]) -> Task[Any, Any]:
        task_name = check_task_name(name or f"{f.__module__}.{f.__qualname__}")
        existing = _TASKS.get(task_name)
        if existing is not None and existing.fn is not f and _code(existing.fn) != _code(f):
            raise ConfigError(f"task name {task_name!r} is already registered to another function")
        t: Task[Any, Any] = Task(task_name, f, opts)
        _TASKS[task_name] = t
        return t

    return register(fn) if fn is not None else register


def _code(f: Callable[..., Any]) -> object:
    return getattr(f, "__code__", f)


def get_task(name: str) -> Task[Any, Any]:
    """The task registered under `name`; raises UnknownTask."""
    try:
        return _TASKS[name]
    except KeyError:
        raise UnknownTask(f"unknown task {name!r}: no module imported by this process "
                          "registers it (check --import)") from None


def lookup(name: str) -> Task[Any, Any] | None:
    return _TASKS.get(name)


def registered() -> dict[str, Task[Any, Any]]:
    """A copy of the registry: name -> Task."""
    return dict(_TASKS)


def resolve(ref: object) -> tuple[str, Task[Any, Any] | None]:
    """Name and (if registered here) Task for a Task, a registered function, or a name."""
    if isinstance(ref, Task):
        return ref.name, ref
    if isinstance(ref, str):
        return check_task_name(ref), _TASKS.get(ref)
    if callable(ref):
        for t in _TASKS.values():
            if t.fn is ref:
                return t.name, t
        qual = f"{getattr(ref, '__module__', '?')}.{getattr(ref, '__qualname__', ref)}"
        raise UnknownTask(f"{qual} is not a registered task: decorate it with @jobq_core.task")
    raise ConfigError(f"expected a task, a registered function or a task name, not {ref!r}")
