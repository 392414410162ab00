"""`current_job()`: what a running task knows about its own job, and how it reports progress."""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import JobqError

# Set by the runner around a task call; the saver writes meta/progress to the job's hash.
Saver = Callable[[Mapping[str, str]], None]


@dataclass
class JobContext:
    """The running job as its task sees it."""

    id: str
    queue: str
    task: str
    attempt: int
    meta: dict[str, Any] = field(default_factory=dict)
    _save: Saver | None = None

    def save_meta(self, **values: Any) -> None:
        """Merge `values` into the job's meta and store it (JSON) for the dashboard and API."""
        self.meta.update(values)
        self._write({"meta": json.dumps(self.meta, default=str)})

    def set_progress(self, progress: float | Mapping[str, Any]) -> None:
        """Store progress (a number such as 0.4, or a JSON-able dict)."""
        self._write({"progress": json.dumps(progress, default=str)})

    async def asave_meta(self, **values: Any) -> None:
        """save_meta for an `async def` task: the write runs in a thread, so the event loop
        (and every other job on it) goes on meanwhile."""
        self.meta.update(values)
        await self._awrite({"meta": json.dumps(self.meta, default=str)})

    async def aset_progress(self, progress: float | Mapping[str, Any]) -> None:
        """set_progress for an `async def` task, without blocking the event loop."""
        await self._awrite({"progress": json.dumps(progress, default=str)})

    async def _awrite(self, fields: Mapping[str, str]) -> None:
        if self._save is not None:
            await asyncio.to_thread(self._save, fields)

    def _write(self, fields: Mapping[str, str]) -> None:
        if self._save is not None:
            self._save(fields)


_current: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar(
    "jobq_current_job", default=None)


def current_job() -> JobContext:
    """The job the calling task is running for; raises JobqError outside a task."""
    ctx = _current.get()
    if ctx is None:
        raise JobqError("current_job() called outside a running jobq task")
    return ctx


def enter(ctx: JobContext) -> contextvars.Token[JobContext | None]:
    """Make `ctx` the current job; pass the result to leave() when the task returns."""
    return _current.set(ctx)


def leave(token: contextvars.Token[JobContext | None]) -> None:
    _current.reset(token)
