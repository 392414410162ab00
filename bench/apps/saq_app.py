"""SAQ coroutines and the worker settings `saq bench.apps.saq_app.settings` reads.

The jobs are registered under the asyncio figures' kind names (SAQ takes (name, function)
pairs); concurrency comes from the harness per variant (SAQ's default is 10).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from saq import Queue

from bench import beacon


async def noop(ctx: dict[str, Any]) -> None:
    beacon.send()


async def sleep10ms(ctx: dict[str, Any]) -> None:
    await asyncio.sleep(0.01)
    beacon.send()


queue = Queue.from_url(os.environ["BENCH_REDIS_URL"], name="bench")

settings: dict[str, Any] = {
    "queue": queue,
    "functions": [("anoop", noop), ("asleep10ms", sleep10ms)],
    "concurrency": int(os.environ.get("BENCH_SAQ_CONCURRENCY", "10")),  # SAQ's default is 10
}
