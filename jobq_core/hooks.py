"""Worker hooks: optional behaviour hangs on these instead of on branches in the worker loop.

A hook overrides the methods it needs; every method is a no-op by default. The worker calls
them through `Hooks`, which logs a failing hook and carries on: a hook is never fatal. A hook
that talks to Redis raises its errors translated (connection.translated), so that Redis being
away is one line in the log, not a traceback.

Hooks see the worker through a `WorkerContext` (its id, queues, settings, client and
scripts), not the Worker object, so this module sits below everything a hook may use.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import RedisUnavailable
from .job import Claimed

if TYPE_CHECKING:
    import redis

    from .config import Settings
    from .scripts import Scripts

log = logging.getLogger("jobq.worker")


@dataclass(frozen=True)
class WorkerContext:
    """What a hook may know about the worker that calls it."""

    worker_id: str
    queues: Sequence[str]
    settings: Settings
    client: redis.Redis
    scripts: Scripts


class WorkerHook:
    """Base class of worker hooks (dependencies, limits, the embedded scheduler ...)."""

    def after_start(self, ctx: WorkerContext) -> None:
        """The worker registered and is about to claim its first jobs."""

    def after_job(self, ctx: WorkerContext, job: Claimed, state: str) -> None:
        """A job's outcome was recorded; `state` is its new state ('' if the write was refused).

        Called in the thread that records outcomes, before the job leaves the pool (so a
        burst worker sees what a hook enqueued); keep it short.
        """

    def after_beat(self, ctx: WorkerContext) -> None:
        """A heartbeat round ended (called in the heartbeat thread)."""

    def before_stop(self, ctx: WorkerContext) -> None:
        """The worker stopped claiming and is about to hand back what is left."""


class Hooks:
    """Calls every hook in order with one context, logging (never raising) what a hook
    raises."""

    def __init__(self, ctx: WorkerContext, hooks: Sequence[WorkerHook]) -> None:
        self.ctx = ctx
        self.hooks = list(hooks)

    def after_start(self) -> None:
        self._call("after_start")

    def after_job(self, job: Claimed, state: str) -> None:
        self._call("after_job", job, state)

    def after_beat(self) -> None:
        self._call("after_beat")

    def before_stop(self) -> None:
        self._call("before_stop")

    def _call(self, name: str, *args: Any) -> None:
        for hook in self.hooks:
            try:
                getattr(hook, name)(self.ctx, *args)
            except RedisUnavailable as exc:
                # Redis is down or failing over: the worker says so once a beat with what
                # to do; a traceback from each hook at each beat would only bury that line.
                log.warning("worker hook %s.%s skipped: %s", type(hook).__name__, name, exc)
            except Exception:
                log.exception("worker hook %s.%s raised", type(hook).__name__, name)
