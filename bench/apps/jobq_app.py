"""jobq tasks, registered by ``@task`` as "bench.apps.jobq_app.<name>"."""

from __future__ import annotations

import asyncio
import os
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
def crash_hold(key: str) -> None:
    """The crash scenario's victim: tells the producer its process id under `key` (the
    producer kills it), then waits to be killed. A crashed job is retried: the retry finds
    the key taken and ends at once."""
    import redis

    if redis.Redis.from_url(os.environ["BENCH_REDIS_URL"]).set(key, os.getpid(), nx=True):
        time.sleep(60)


@task(queue="bench")
def crash_probe() -> None:
    """The job queued behind the victim: reports when it began (wall clock)."""
    beacon.send(time.time())


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
