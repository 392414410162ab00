"""Huey tasks on RedisHuey with its defaults (blocking BRPOP, results kept when not None)."""
# the library has no type hints, so its task decorators are untyped
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

import os
import time

from huey import RedisHuey

from bench import beacon

huey = RedisHuey("bench", url=os.environ["BENCH_REDIS_URL"])


@huey.task()
def noop() -> None:
    beacon.send()


@huey.task()
def sleep10ms() -> None:
    time.sleep(0.01)
    beacon.send()


@huey.task()
def latency(t_enqueue: float) -> None:
    beacon.send(time.time() - t_enqueue)
