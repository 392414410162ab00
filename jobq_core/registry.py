"""The task registry: name -> the callable a worker may run (the @task decorator is in task.py).

A worker only runs tasks registered in its own process (by importing their modules), so
a job can never make a worker import or call something by a name stored in Redis.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Generic, ParamSpec, TypeVar

from .errors import ArgumentError, ConfigError, UnknownTask

P = ParamSpec("P")
R = TypeVar("R")

# Matched with fullmatch (`$` would let a trailing newline through).
TASK_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_<>][A-Za-z0-9_<>]*)*")
Callback = Callable[..., object]


def check_task_name(name: str) -> str:
    if not isinstance(name, str) or len(name) > 200 or not TASK_NAME_RE.fullmatch(name):
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
class RegisteredTask(Generic[P, R]):
    """A registered task as the registry and the worker see it: its name, its function and
    its defaults; calling it calls the function. jobq_core.task.Task adds enqueueing."""

    name: str
    fn: Callable[P, R]
    options: TaskOptions = field(default_factory=TaskOptions)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def check_args(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise ArgumentError, naming the task and the mismatch, unless the function can be
        called with `args` and `kwargs`. A positional-only call is checked by counting
        (it runs on every enqueue and every job); anything else is bound."""
        shape = self._shape
        if shape.signature is None:
            return
        n = len(args)
        if not kwargs and shape.plain and shape.least <= n and (shape.most < 0 or n <= shape.most):
            return
        try:
            shape.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ArgumentError(f"task {self.name!r} cannot take these arguments: {exc} "
                                f"(it is {shape.shown})") from None

    @cached_property
    def _shape(self) -> _Shape:
        # Computed once per task (cached_property writes the instance dict directly, which a
        # frozen dataclass allows).
        return _Shape.of(self.fn)


@dataclass(frozen=True)
class _Shape:
    """What a call needs to fit a function: its signature (None: it has none to check) and,
    for calls without keyword arguments, how many positional ones it takes."""

    signature: inspect.Signature | None
    shown: str = ""  # the function's name and parameters, without annotations, for errors
    least: int = 0  # positional arguments without a default
    most: int = -1  # positional parameters in all; -1 with *args
    plain: bool = True  # no keyword-only parameter without a default

    @classmethod
    def of(cls, fn: Callable[..., Any]) -> _Shape:
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):  # some builtins and C callables have none
            return cls(None)
        least = most = 0
        var, plain = False, True
        for p in sig.parameters.values():
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                most += 1
                if p.default is p.empty:
                    least = most
            elif p.kind is p.VAR_POSITIONAL:
                var = True
            elif p.kind is p.KEYWORD_ONLY and p.default is p.empty:
                plain = False
        bare = sig.replace(parameters=[p.replace(annotation=p.empty)
                                       for p in sig.parameters.values()],
                           return_annotation=sig.empty)
        shown = f"{getattr(fn, '__name__', 'the function')}{bare}"
        return cls(sig, shown, least, -1 if var else most, plain)


_TASKS: dict[str, RegisteredTask[Any, Any]] = {}


def register(t: RegisteredTask[Any, Any]) -> None:
    """Add `t` to the registry; raises ConfigError when its name is taken by another
    function (the same function registered again, e.g. on a module reload, is fine)."""
    existing = _TASKS.get(t.name)
    if existing is not None and existing.fn is not t.fn and _code(existing.fn) != _code(t.fn):
        raise ConfigError(f"task name {t.name!r} is already registered to another function")
    _TASKS[t.name] = t


def _code(f: Callable[..., Any]) -> object:
    return getattr(f, "__code__", f)


def get_task(name: str) -> RegisteredTask[Any, Any]:
    """The task registered under `name`; raises UnknownTask."""
    try:
        return _TASKS[name]
    except KeyError:
        raise UnknownTask(f"unknown task {name!r}: no module imported by this process "
                          "registers it (check --import)") from None


def lookup(name: str) -> RegisteredTask[Any, Any] | None:
    return _TASKS.get(name)


def registered() -> dict[str, RegisteredTask[Any, Any]]:
    """A copy of the registry: name -> Task."""
    return dict(_TASKS)


def resolve(ref: object) -> tuple[str, RegisteredTask[Any, Any] | None]:
    """Name and (if registered here) Task for a Task, a registered function, or a name."""
    if isinstance(ref, RegisteredTask):
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
