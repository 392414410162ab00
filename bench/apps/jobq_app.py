"""jobq tasks, registered by ``@task`` as "bench.apps.jobq_app.<name>"."""

from __future__ import annotations

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
