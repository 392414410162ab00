"""arq coroutines and WorkerSettings; max_jobs and poll_delay come from the harness per variant."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, ClassVar

from arq.connections import RedisSettings
from arq.worker import func

from bench import beacon


async def noop(ctx: dict[str, Any]) -> None:
    beacon.send()


async def sleep10ms(ctx: dict[str, Any]) -> None:
    await asyncio.sleep(0.01)
    beacon.send()


async def latency(ctx: dict[str, Any], t_enqueue: float) -> None:
    beacon.send(time.time() - t_enqueue)


class WorkerSettings:
    # anoop / asleep10ms: the asyncio figures' names for the same coroutines
    functions: ClassVar[list[Any]] = [
        noop, sleep10ms, latency, func(noop, name="anoop"), func(sleep10ms, name="asleep10ms")
    ]
    redis_settings = RedisSettings.from_dsn(os.environ["BENCH_REDIS_URL"])
    max_jobs = int(os.environ.get("BENCH_ARQ_MAX_JOBS", "10"))  # arq's default is 10
    poll_delay = float(os.environ.get("BENCH_ARQ_POLL_DELAY", "0.5"))  # arq's default is 0.5 s
