"""Run-time histograms per task: written by complete.lua and fail.lua as jobs settle, read
(with their quantiles) by jobq_core.runtimes."""

from __future__ import annotations

import time

import redis

from jobq_core import Queue, Settings
from jobq_core.inspect import Inspector
from jobq_core.keys import Keyspace
from jobq_core.runtimes import (
    BUCKETS_MS,
    RunTimes,
    lifetime_runtimes,
    queue_runtimes,
    task_runtimes,
)
from tests import tasks
from tests.helpers import drain, settle_with_runtimes


def test_quantiles_land_in_the_right_buckets(settings: Settings, queue: Queue) -> None:
    # 90 jobs of 3 ms (bucket 2-5 ms), 9 of 150 ms (100-200 ms), 1 of 15 min (+Inf), and
    # two failed attempts of 40 ms (20-50 ms).
    settle_with_runtimes(settings, queue, [3] * 90 + [150] * 9 + [900_000], failing_ms=[40, 40])
    insp = Inspector(settings)
    (row,) = task_runtimes(insp, minutes=5)
    assert (row.queue, row.task) == ("default", "tests.tasks.add")
    assert row.count == 102 and row.failures == 2
    assert row.sum_ms == 90 * 3 + 9 * 150 + 900_000 + 80
    assert row.buckets[BUCKETS_MS.index(5)] == 90
    assert row.buckets[BUCKETS_MS.index(50)] == 2
    assert row.buckets[BUCKETS_MS.index(200)] == 9
    assert row.buckets[-1] == 1
    assert row.p50 is not None and 2 < row.p50 <= 5
    assert row.p95 is not None and 100 < row.p95 <= 200
    assert row.p99 is not None and 100 < row.p99 <= 200
    assert row.quantile(1.0) == BUCKETS_MS[-1]  # +Inf reads as the last bound
    (total,) = queue_runtimes([row, RunTimes("default", "other", (1,) + (0,) * 19, 1, 1)])
    assert (total.task, total.count, total.failures) == ("", 103, 3)


def test_worker_counts_every_attempt_that_ran(settings: Settings, queue: Queue) -> None:
    queue.enqueue(tasks.sleep_for, 0.03)
    queue.enqueue(tasks.boom)  # max_retries=2: three attempts, each a failure
    began = time.monotonic()
    drain(settings)
    drained_ms = (time.monotonic() - began) * 1000
    rows = {r.task: r for r in task_runtimes(Inspector(settings))}
    slept = rows["tests.tasks.sleep_for"]
    assert slept.count == 1 and slept.failures == 0
    # The 30 ms sleep lands in the (20, 50] ms bucket or a later one, depending on the load
    # (it took 62 ms once), bounded by the whole drain's wall time.
    bound = min(b for b in BUCKETS_MS if b >= drained_ms)
    assert slept.p50 is not None and 20 < slept.p50 <= bound
    assert (rows["tests.tasks.boom"].count, rows["tests.tasks.boom"].failures) == (3, 3)


def test_memory_is_a_bounded_ring(settings: Settings, queue: Queue, r: redis.Redis) -> None:
    settings = settings.replace(runtime_minutes=3)
    keys = Keyspace(settings.prefix)
    while Inspector(settings).server_time_ms() % 60_000 > 58_000:
        time.sleep(0.1)  # the writes below must fall in the minute read here
    minute = Inspector(settings).server_time_ms() // 60000
    slot = keys.runtime("default", minute % 3)
    # What the slot held one turn of the ring ago: overwritten, not added to.
    r.hset(slot, mapping={"m": minute - 3, "tests.tasks.add|0": 500, "gone|3": 7})
    settle_with_runtimes(settings, queue, [3] * 300)
    held = r.hgetall(slot)
    assert held == {"m": str(minute), "tests.tasks.add|2": "300", "tests.tasks.add|sum": "900"}
    assert 0 < r.pttl(slot) <= 3 * 60_000  # an idle queue's ring expires
    # The ring never has more than runtime_minutes hashes, and reads skip a stale one.
    r.hset(keys.runtime("default", (minute - 1) % 3), mapping={"m": minute - 4, "x|0": 1})
    (row,) = task_runtimes(Inspector(settings), minutes=60)
    assert row.count == 300
    ring = set(r.keys(keys.runtime_prefix("default") + "*")) - {keys.runtime_total("default")}
    assert len(ring) <= 3
    # The lifetime totals (for /metrics) keep the overwritten minute's attempts.
    (total,) = lifetime_runtimes(Inspector(settings))
    assert total.count == 300 and total.buckets[BUCKETS_MS.index(5)] == 300
