"""Demo tasks and a producer for `jobq up --demo`: some fast, some slow, some failing."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from .config import Settings
from .errors import JobqError
from .queue import Queue
from .schedule import Schedule
from .scheduler import declare
from .task import task

# The demo's own queue: `jobq up` serves it, and the queue your own tasks use (`default`)
# stays yours.
DEMO_QUEUE = "demo"


@task(queue=DEMO_QUEUE, max_retries=2, retry_backoff_s=2.0)
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@task(queue=DEMO_QUEUE, max_retries=1)
def slow(seconds: float) -> str:
    """Sleep, reporting progress."""
    from .context import current_job

    steps = max(1, int(seconds * 4))
    for i in range(steps):
        time.sleep(seconds / steps)
        current_job().set_progress(round((i + 1) / steps, 2))
    return f"slept {seconds}s"


@task(queue=DEMO_QUEUE, max_retries=2, retry_backoff_s=1.0)
def flaky(p_fail: float) -> str:
    """Fail with probability p_fail."""
    if random.random() < p_fail:
        raise RuntimeError(f"demo failure (p={p_fail})")
    return "ok"


# A periodic demo job: stored by `jobq scheduler --import jobq_core.demo` (as `jobq up` runs it).
declare(Schedule("demo-every-30s", add, every_s=30, args=(20, 22)))


def produce(settings: Settings, stop_when: Callable[[], bool], period_s: float = 0.5) -> None:
    """Enqueue a mix of demo jobs every `period_s` until `stop_when()`."""
    q = Queue(DEMO_QUEUE, settings=settings)
    n = 0
    while not stop_when():
        n += 1
        try:
            q.enqueue(add, n, n)
            if n % 3 == 0:
                q.enqueue(flaky, 0.5)
            if n % 5 == 0:
                q.enqueue(slow, 2.0)
            if n % 7 == 0:
                q.enqueue_in(10.0, add, -n, 1)
            if n % 11 == 0:
                q.enqueue("demo.not_a_task")
        except JobqError as exc:
            print(f"demo producer: {exc}")
        time.sleep(period_s)
