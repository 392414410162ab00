"""jobq tasks, registered by ``@task`` as "bench.apps.jobq_app.<name>"."""

from __future__ import annotations

import asyncio
import time

from jobq_core import task

from bench import beacon


@task(queue="bench")
def noop() -> None:
    beacon.send()


@task(queue="bench")
def sleep10ms() -> None:
    time.sleep(0.01)
    beacon.send()


@task(queue="bench")
def latency(t_enqueue: float) -> None:
    beacon.send(time.time() - t_enqueue)


@task(queue="bench")
def mixed_long(seconds: float) -> None:
    """The mixed load's long job: reports -1 (not a no-op)."""
    time.sleep(seconds)
    beacon.send(-1.0)


@task(queue="bench")
def mixed_short() -> None:
    """The mixed load's no-op job: reports when it ended (wall clock)."""
    beacon.send(time.time())


@task(queue="bench")
async def anoop() -> None:
    """The asyncio figures' no-op job (a coroutine, for --pool async)."""
    beacon.send()


@task(queue="bench")
async def asleep10ms() -> None:
    await asyncio.sleep(0.01)
    beacon.send()
