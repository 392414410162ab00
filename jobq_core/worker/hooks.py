"""Worker hooks: optional behaviour hangs on these instead of on branches in the worker loop.

A hook overrides the methods it needs; every method is a no-op by default. The worker calls
them through `Hooks`, which logs a failing hook and carries on: a hook is never fatal.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..job import Claimed

if TYPE_CHECKING:
    from .supervisor import Worker

log = logging.getLogger("jobq.worker")


class WorkerHook:
    """Base class of worker hooks (dependencies, limits, the embedded scheduler ...)."""

    def after_start(self, worker: Worker) -> None:
        """The worker registered and is about to claim its first jobs."""

    def after_job(self, worker: Worker, job: Claimed, state: str) -> None:
        """A job's outcome was recorded; `state` is its new state ('' if the write was refused).

        Called in the thread that records outcomes, before the job leaves the pool (so a
        burst worker sees what a hook enqueued); keep it short.
        """

    def after_beat(self, worker: Worker) -> None:
        """A heartbeat round ended (called in the heartbeat thread)."""

    def before_stop(self, worker: Worker) -> None:
        """The worker stopped claiming and is about to hand back what is left."""


class Hooks:
    """Calls every hook in order, logging (never raising) what a hook raises."""

    def __init__(self, hooks: Sequence[WorkerHook]) -> None:
        self.hooks = list(hooks)

    def after_start(self, worker: Worker) -> None:
        self._call("after_start", worker)

    def after_job(self, worker: Worker, job: Claimed, state: str) -> None:
        self._call("after_job", worker, job, state)

    def after_beat(self, worker: Worker) -> None:
        self._call("after_beat", worker)

    def before_stop(self, worker: Worker) -> None:
        self._call("before_stop", worker)

    def _call(self, name: str, *args: Any) -> None:
        for hook in self.hooks:
            try:
                getattr(hook, name)(*args)
            except Exception:
                log.exception("worker hook %s.%s raised", type(hook).__name__, name)
