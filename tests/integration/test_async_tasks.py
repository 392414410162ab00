"""`async def` tasks in the process and thread pools: each runs on its thread's event loop."""

from __future__ import annotations

import pytest

from jobq_core import JobFailed, Queue, Settings
from tests import tasks
from tests.helpers import drain

pytestmark = pytest.mark.cluster  # also on the Redis Cluster (tests/conftest.py)


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_async_tasks_run_in_the_sync_pools(settings: Settings, queue: Queue, pool: str) -> None:
    ok = queue.enqueue(tasks.async_add, 1, 2)
    bad = queue.enqueue(tasks.async_boom, "nope")
    ctx = queue.enqueue(tasks.async_context)
    drain(settings, pool=pool, concurrency=1)
    assert ok.result(timeout_s=1) == 3
    with pytest.raises(JobFailed, match="ValueError: nope"):
        bad.result(timeout_s=1)
    assert ctx.result(timeout_s=1) == [ctx.id, ctx.id]
    ctx.refresh()
    assert ctx.meta == {"stage": "async"} and ctx.progress == {"step": 3, "of": 4}


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_one_loop_per_thread_is_reused(settings: Settings, queue: Queue, pool: str) -> None:
    jobs = [queue.enqueue(tasks.async_loop_id) for _ in range(3)]
    drain(settings, pool=pool, concurrency=1)
    seen = {tuple(j.result(timeout_s=1)) for j in jobs}
    assert len(seen) == 1, seen  # the same loop in the same thread, not asyncio.run per job


def test_async_task_timeout_in_the_thread_pool(settings: Settings, queue: Queue) -> None:
    slow = queue.enqueue_call(tasks.async_sleep_log, args=("/dev/null", 30), timeout_s=0.3)
    after = queue.enqueue(tasks.async_add, 1, 1)
    drain(settings, concurrency=1)
    assert slow.refresh().status == "failed" and "Timeout" in slow.error
    assert after.result(timeout_s=1) == 2  # the thread's loop still serves the next job
