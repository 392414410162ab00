"""Celery app on the Redis broker, tuned as Celery's "Optimizing" guide says for short tasks."""
# the library has no type hints, so its task decorators are untyped
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

import os
import time

from celery import Celery

from bench import beacon

app = Celery("bench", broker=os.environ["BENCH_REDIS_URL"])
app.conf.update(
    task_default_queue="bench",
    # no result backend: nothing here reads results, and the guide says to ignore them then
    task_ignore_result=True,
    # "if you have lots of short tasks ... you want this number to be large. Say 64, or 128"
    worker_prefetch_multiplier=64,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")
def noop() -> None:
    beacon.send()


@app.task(name="bench.sleep10ms")
def sleep10ms() -> None:
    time.sleep(0.01)
    beacon.send()


@app.task(name="bench.latency")
def latency(t_enqueue: float) -> None:
    beacon.send(time.time() - t_enqueue)
