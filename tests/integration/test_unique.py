"""Unique jobs: one live job per unique key in a queue."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from jobq_core import Queue, Settings
from tests import tasks
from tests.helpers import drain

pytestmark = pytest.mark.cluster  # also on the Redis Cluster (tests/conftest.py)


def test_thousand_concurrent_enqueues_of_one_key_make_one_job(settings: Settings) -> None:
    def enqueue_many(n: int) -> set[str]:
        q = Queue("default", settings=settings)
        return {q.enqueue_call(tasks.add, args=(1, 2), unique_key="report:42").id
                for _ in range(n)}

    with ThreadPoolExecutor(8) as pool:
        ids = set().union(*pool.map(enqueue_many, [125] * 8))
    q = Queue("default", settings=settings)
    assert len(ids) == 1
    assert q.count("pending") == 1
    job = q.job(ids.pop())
    assert job is not None and job.fields["unique_key"] == "report:42"
    assert int(q.client.hget(q.keys.stats("default"), "enqueued") or 0) == 1


def test_unique_true_hashes_task_and_args(queue: Queue) -> None:
    a = queue.enqueue_call(tasks.add, args=(1, 2), unique=True)
    b = queue.enqueue_call(tasks.add, args=(1, 2), unique=True)
    c = queue.enqueue_call(tasks.add, args=(2, 1), unique=True)
    d = queue.enqueue_call(tasks.echo, args=(1, 2), unique=True)
    assert a.id == b.id
    assert len({a.id, c.id, d.id}) == 3
    assert b.status == "pending"


def test_key_is_free_again_once_the_job_ended(queue: Queue, settings: Settings) -> None:
    first = queue.enqueue_call(tasks.add, args=(1, 2), unique_key="k")
    drain(settings)
    assert first.refresh().status == "completed"
    second = queue.enqueue_call(tasks.add, args=(1, 2), unique_key="k")
    assert second.id != first.id and second.status == "pending"


def test_scheduled_and_processing_jobs_hold_the_key(queue: Queue, r: redis.Redis) -> None:
    delayed = queue.enqueue_call(tasks.add, args=(1, 2), unique_key="k", delay_s=60)
    assert queue.enqueue_call(tasks.add, args=(1, 2), unique_key="k").id == delayed.id
    r.hset(queue.keys.job("default", delayed.id), "state", "processing")
    assert queue.enqueue_call(tasks.add, args=(1, 2), unique_key="k").id == delayed.id
    assert queue.cancel(delayed.id) is False  # processing now: not cancellable
    r.hset(queue.keys.job("default", delayed.id), "state", "failed")
    assert queue.enqueue_call(tasks.add, args=(1, 2), unique_key="k").id != delayed.id


def test_cancelled_job_frees_its_key(queue: Queue) -> None:
    first = queue.enqueue_call(tasks.add, args=(1, 2), unique_key="k")
    assert first.cancel()
    assert queue.enqueue_call(tasks.add, args=(1, 2), unique_key="k").id != first.id


def test_window_bounds_how_long_the_key_is_held(queue: Queue) -> None:
    first = queue.enqueue_call(tasks.add, args=(1, 2), unique_key="k", unique_for_s=0.05)
    time.sleep(0.1)  # the window itself is what is tested
    second = queue.enqueue_call(tasks.add, args=(1, 2), unique_key="k")
    assert second.id != first.id
    assert queue.count("pending") == 2


def test_one_batch_with_a_repeated_key_makes_one_job(queue: Queue) -> None:
    jobs = queue.enqueue_many([{"task": tasks.add, "args": (i, i), "unique_key": "batch"}
                               for i in range(5)])
    assert len({j.id for j in jobs}) == 1
    assert queue.count("pending") == 1


def test_unique_keys_are_per_queue(settings: Settings) -> None:
    a = Queue("a", settings=settings).enqueue_call(tasks.add, args=(1, 2), unique_key="k")
    b = Queue("b", settings=settings).enqueue_call(tasks.add, args=(1, 2), unique_key="k")
    assert a.id != b.id
