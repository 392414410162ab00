"""The hooks every worker installs (job dependencies, limits) and the embedded scheduler.

They live with the worker that installs them; the services they drive (Dependencies,
the limits hash, Scheduler) know nothing of workers.
"""

from __future__ import annotations

import threading
from typing import Any

from ..connection import translated
from ..dependencies import Dependencies
from ..hooks import WorkerContext, WorkerHook
from ..job import FINAL_STATES, Claimed
from ..scheduler import Scheduler, declared


class DependencyHook(WorkerHook):
    """Resolves the dependents of jobs this worker ended; sweeps its queues' deferred jobs."""

    def after_job(self, ctx: WorkerContext, job: Claimed, state: str) -> None:
        if state in FINAL_STATES and job.fields.get("dependents"):
            with translated(ctx.settings.redis_url):
                Dependencies(ctx.scripts).ended(job.queue, job.id, state)

    def after_beat(self, ctx: WorkerContext) -> None:
        deps = Dependencies(ctx.scripts)
        with translated(ctx.settings.redis_url):
            for queue in ctx.queues:
                deps.sweep(queue)


class LimitHook(WorkerHook):
    """When a job counted against a concurrency cap ends, wake the queue's workers: the
    parked jobs of its key can have the place (claim.lua releases them)."""

    def after_job(self, ctx: WorkerContext, job: Claimed, state: str) -> None:
        if job.fields.get("limit"):
            client: Any = ctx.client
            with translated(ctx.settings.redis_url):
                client.zadd(ctx.scripts.keys.marker(job.queue), {"m": 0})


class SchedulerHook(WorkerHook):
    """Runs a scheduler in a thread of a worker (`Worker(..., with_scheduler=True)`)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def after_start(self, ctx: WorkerContext) -> None:
        scheduler = Scheduler(ctx.settings, name=f"{ctx.worker_id}/scheduler")
        self.thread = threading.Thread(target=scheduler.run, args=(self.stop, declared()),
                                       name="jobq-scheduler", daemon=True)
        self.thread.start()

    def before_stop(self, ctx: WorkerContext) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(ctx.settings.socket_timeout_s + 2)


def builtin_hooks(with_scheduler: bool) -> list[WorkerHook]:
    """Hooks every worker runs (job dependencies, limits), and the embedded scheduler."""
    hooks: list[WorkerHook] = [DependencyHook(), LimitHook()]
    if with_scheduler:
        hooks.append(SchedulerHook())
    return hooks
