"""Dramatiq actors on its RedisBroker with the default middleware."""
# the library has no type hints, so its task decorators are untyped
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

import os
import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench import beacon

broker = RedisBroker(url=os.environ["BENCH_REDIS_URL"])
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bench")
def noop() -> None:
    beacon.send()


@dramatiq.actor(queue_name="bench")
def sleep10ms() -> None:
    time.sleep(0.01)
    beacon.send()


@dramatiq.actor(queue_name="bench")
def latency(t_enqueue: float) -> None:
    beacon.send(time.time() - t_enqueue)
