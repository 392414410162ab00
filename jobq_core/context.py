"""`current_job()`: what a running task knows about its own job, and how it reports progress."""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import JobqError, PayloadError

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
    # Largest meta or progress write in bytes (0: no cap). The runner sets the cap of the
    # producer's meta and of the result (Settings.max_payload_bytes): here, in the one place
    # every pool's writes pass, not in each pool's saver.
    _max_bytes: int = 0

    def save_meta(self, **values: Any) -> None:
        """Merge `values` into the job's meta and store it (JSON) for the dashboard and API.

        Raises PayloadError, storing and merging nothing, when the meta's JSON would be above
        Settings.max_payload_bytes: the task's own error, as any it raises."""
        encoded = self._encoded({**self.meta, **values}, "meta")
        self.meta.update(values)
        self._write({"meta": encoded})

    def set_progress(self, progress: float | Mapping[str, Any]) -> None:
        """Store progress (a number such as 0.4, or a JSON-able dict); PayloadError as for
        save_meta."""
        self._write({"progress": self._encoded(progress, "progress")})

    async def asave_meta(self, **values: Any) -> None:
        """save_meta for an `async def` task: the write runs in a thread, so the event loop
        (and every other job on it) goes on meanwhile."""
        encoded = self._encoded({**self.meta, **values}, "meta")
        self.meta.update(values)
        await self._awrite({"meta": encoded})

    async def aset_progress(self, progress: float | Mapping[str, Any]) -> None:
        """set_progress for an `async def` task, without blocking the event loop."""
        await self._awrite({"progress": self._encoded(progress, "progress")})

    def _encoded(self, value: Any, what: str) -> str:
        text = json.dumps(value, default=str)  # ensure_ascii: its length is its size in bytes
        if self._max_bytes and len(text) > self._max_bytes:
            raise PayloadError(f"{what} of {len(text)} bytes is above the cap of "
                               f"{self._max_bytes} bytes (Settings.max_payload_bytes / "
                               "JOBQ_MAX_PAYLOAD_BYTES); nothing was stored")
        return text

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
