"""Rate and concurrency limits, shared by all workers of a queue."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import redis

from jobq_core import ConfigError, Queue, Settings
from jobq_core.limits import Limit
from tests import tasks
from tests.helpers import drain, kill_group, start_worker, wait_for_lines, worker_thread

pytestmark = pytest.mark.cluster  # also on the Redis Cluster (tests/conftest.py)


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = cur = 0
    for _, delta in events:
        cur += delta
        best = max(best, cur)
    return best


def test_concurrency_limit_of_3_holds_under_4_worker_processes(
        queue: Queue, settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "running").mkdir()
    queue.set_limit(tasks.limited, concurrency=3)
    jobs = queue.enqueue_many([(tasks.limited, (str(tmp_path), 0.25)) for _ in range(16)])
    procs = [start_worker(settings, "-c", "2", "--pool", "thread") for _ in range(4)]
    try:
        lines = wait_for_lines(tmp_path / "ledger", len(jobs), timeout_s=60)
    finally:
        for p in procs:
            kill_group(p, signal.SIGTERM)
        for p in procs:
            p.wait(30)
    rows = [line.split() for line in lines]
    assert max(int(seen) for _, _, seen in rows) == 3  # as the tasks saw it ...
    assert max_overlap([(float(s), float(e)) for s, e, _ in rows]) == 3  # ... and timed it
    workers = {j.refresh().fields["worker"].rsplit(":", 1)[0] for j in jobs}
    assert len(workers) >= 2
    assert all(j.status == "completed" for j in jobs)


def test_over_the_limit_jobs_do_not_block_other_tasks(queue: Queue, settings: Settings) -> None:
    queue.set_limit(tasks.sleep_for, concurrency=1)
    slow = [queue.enqueue(tasks.sleep_for, 0.3) for _ in range(3)]
    fast = [queue.enqueue(tasks.add, i, i) for i in range(5)]
    drain(settings, concurrency=3)
    for j in slow + fast:
        assert j.refresh().status == "completed"
    starts = sorted(int(j.fields["started_ms"]) for j in slow)
    ends = sorted(int(j.fields["finished_ms"]) for j in slow)
    assert all(s >= e for s, e in zip(starts[1:], ends, strict=False))  # one at a time
    assert max(int(j.fields["finished_ms"]) for j in fast) < starts[1]


def test_rate_limit_over_a_sliding_window(queue: Queue, settings: Settings) -> None:
    queue.set_limit(tasks.add, rate=5, per_s=1)
    jobs = [queue.enqueue(tasks.add, i, i) for i in range(12)]
    with worker_thread(settings, concurrency=4):
        for j in jobs:
            j.result(timeout_s=10)
    starts = sorted(int(j.refresh().fields["started_ms"]) for j in jobs)
    for s in starts:
        assert sum(1 for t in starts if s - 1000 < t <= s) <= 5
    assert starts[-1] - starts[0] >= 2000  # 5 now, 5 a second later, 2 after that


def test_limit_key_groups_jobs_of_different_tasks(queue: Queue, r: redis.Redis) -> None:
    queue.set_limit("api.example.com", concurrency=1)
    a = queue.enqueue_call(tasks.add, args=(1, 1), limit_key="api.example.com")
    b = queue.enqueue_call(tasks.echo, args=(1,), limit_key="api.example.com")
    c = queue.enqueue(tasks.echo, 2)
    got = queue.scripts.claim(["default"], 10, "w1")
    assert [j.id for j in got.jobs] == [a.id, c.id]
    assert got.jobs[0].fields["limit"] == "api.example.com"
    assert r.zrange(queue.keys.limit_parked("default", "api.example.com"), 0, -1) == [b.id]


def test_parked_jobs_wait_without_waking_anyone(queue: Queue, r: redis.Redis) -> None:
    queue.set_limit(tasks.add, concurrency=1)
    first = queue.enqueue(tasks.add, 0, 0)
    assert [j.id for j in queue.scripts.claim(["default"], 1, "w1").jobs] == [first.id]
    rest = [queue.enqueue(tasks.add, i, i) for i in range(3)]
    r.delete(queue.keys.marker("default"))
    got = queue.scripts.claim(["default"], 5, "w2")
    assert got.jobs == [] and got.next_due_ms == -1
    assert queue.count("pending") == 0
    assert r.zcard(queue.keys.limit_parked("default", "tests.tasks.add")) == 3
    assert r.exists(queue.keys.marker("default")) == 0  # idle workers stay asleep
    for j in rest:
        assert j.refresh().status == "pending"
    # The running job ends: the next claim releases exactly one parked job, the oldest.
    r.hset(queue.keys.job("default", first.id), "state", "completed")
    assert [j.id for j in queue.scripts.claim(["default"], 5, "w2").jobs] == [rest[0].id]


def test_rate_limited_jobs_report_when_to_wake(queue: Queue) -> None:
    queue.set_limit(tasks.add, rate=1, per_s=30)
    queue.enqueue(tasks.add, 1, 1)
    queue.enqueue(tasks.add, 2, 2)
    first = queue.scripts.claim(["default"], 5, "w1")
    assert len(first.jobs) == 1
    due = first.next_due_ms - first.now_ms
    assert 29_000 <= due <= 30_000


def test_removing_a_limit_releases_parked_jobs(queue: Queue, settings: Settings) -> None:
    queue.set_limit(tasks.add, concurrency=1)
    queue.scripts.claim(["default"], 1, "w1")  # nothing yet
    holder = queue.enqueue(tasks.add, 0, 0)
    queue.scripts.claim(["default"], 1, "w1")
    rest = [queue.enqueue(tasks.add, i, i) for i in range(3)]
    assert queue.scripts.claim(["default"], 5, "w2").jobs == []
    queue.remove_limit(tasks.add)
    got = queue.scripts.claim(["default"], 5, "w2")
    assert {j.id for j in got.jobs} == {j.id for j in rest}
    assert holder.refresh().status == "processing"


def test_cancelled_parked_job_is_dropped(queue: Queue, r: redis.Redis) -> None:
    queue.set_limit(tasks.add, concurrency=1)
    queue.enqueue(tasks.add, 0, 0)
    queue.scripts.claim(["default"], 1, "w1")
    parked = queue.enqueue(tasks.add, 1, 1)
    assert queue.scripts.claim(["default"], 1, "w2").jobs == []
    assert parked.cancel()
    queue.remove_limit(tasks.add)
    assert queue.scripts.claim(["default"], 5, "w2").jobs == []
    assert r.zcard(queue.keys.limit_parked("default", "tests.tasks.add")) == 0


def test_limits_are_listed_and_validated(queue: Queue) -> None:
    queue.set_limit(tasks.add, concurrency=2, rate=10, per_s=1.5)
    queue.set_limit("k", rate=3)
    assert queue.limits() == [Limit("k", 0, 3, 60.0), Limit("tests.tasks.add", 2, 10, 1.5)]
    with pytest.raises(ConfigError):
        queue.set_limit(tasks.add)
    with pytest.raises(ConfigError):
        queue.set_limit(tasks.add, concurrency=-1)
    with pytest.raises(ConfigError):
        queue.enqueue_call(tasks.add, args=(1, 1), limit_key="")
