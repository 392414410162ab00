"""taskiq on taskiq-redis's RedisStreamBroker: the broker the workers and producers share.

`taskiq worker bench.apps.taskiq_app:broker` imports this module; the tasks are named after the
asyncio figures' kinds. No result backend (taskiq's default: results are dropped), as Celery
runs here without one.
"""

from __future__ import annotations

import asyncio
import os

from taskiq_redis import RedisStreamBroker

from bench import beacon

broker = RedisStreamBroker(url=os.environ["BENCH_REDIS_URL"], queue_name="bench")


@broker.task(task_name="anoop")
async def anoop() -> None:
    beacon.send()


@broker.task(task_name="asleep10ms")
async def asleep10ms() -> None:
    await asyncio.sleep(0.01)
    beacon.send()
