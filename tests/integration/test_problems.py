"""Problems (jobq_core.problems) against a real server: each check found, and gone when the
cause is."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from jobq_core import Queue, Schedule, Scheduler, Settings
from jobq_core.admin import Admin
from jobq_core.inspect import Inspector
from jobq_core.problems import Problem, find_problems
from tests import tasks
from tests.helpers import drain, kill_group, start_worker, worker_thread


def kinds(settings: Settings) -> dict[str, list[Problem]]:
    out: dict[str, list[Problem]] = {}
    for p in find_problems(Inspector(settings)):
        out.setdefault(p.kind, []).append(p)
    return out


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll `check` until true; returns the seconds it took (fails past the deadline)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if check():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout_s}s")


@pytest.fixture
def fast(settings: Settings) -> Settings:
    """Heartbeats of 0.25 s: a stopped worker's registry entry expires 0.75 s after its last
    beat (heartbeat_s * worker_ttl_factor), which bounds how soon it can be called lost."""
    return dataclasses.replace(settings, heartbeat_s=0.25, lease_s=3.0)


def test_nothing_wrong_means_no_problems(settings: Settings, queue: Queue) -> None:
    queue.enqueue(tasks.add, 1, 2)
    drain(settings)
    assert find_problems(Inspector(settings)) == []


def test_queue_with_pending_jobs_and_no_worker_is_flagged(settings: Settings,
                                                         queue: Queue) -> None:
    Queue("nobody", settings=settings).enqueue(tasks.add, 1, 2)
    with worker_thread(settings, ("default",)):
        queue.enqueue(tasks.add, 1, 1).result(timeout_s=10)
        found = kinds(settings)
    assert [p.queue for p in found["no_worker"]] == ["nobody"]
    p = found["no_worker"][0]
    assert p.severity == "error" and "jobq worker -q nobody" in p.act
    assert p.target == {"page": "jobs", "state": "pending", "queue": "nobody"}


def test_killed_worker_flagged_within_2s_and_until_its_job_is_back(fast: Settings,
                                                                  queue: Queue) -> None:
    proc = start_worker(fast, "-q", "default")
    try:
        job = queue.enqueue(tasks.sleep_for, 60)
        wait_until(lambda: job.refresh().status == "processing", 20, "job claimed")
        holder = job.fields["worker"]
    finally:
        kill_group(proc)
        proc.wait(10)

    def lost() -> list[Problem]:
        return [p for p in find_problems(Inspector(fast))
                if p.kind == "lost_worker" and p.worker == holder and p.jobs]

    took = wait_until(lambda: bool(lost()), 2.0, "lost worker flagged")
    assert took <= 2.0
    p = lost()[0]
    assert [j.id for j in p.jobs] == [job.id] and p.severity == "error"
    assert "no live worker serves default" in p.summary
    # The registry forgets the worker soon; the problem stays while its job is processing,
    # here past its lease end too (no worker serves the queue, so no reaper runs).
    deadline = time.monotonic() + fast.lease_s + 1
    while time.monotonic() < deadline:
        assert lost(), "the lost worker's problem vanished while its job was processing"
        time.sleep(0.2)
    assert job.refresh().status == "processing"
    assert Admin(fast).release_orphan("default", job.id, holder) == "pending"
    assert lost() == []


def test_lost_worker_reaped_by_a_live_worker_says_when(fast: Settings, queue: Queue) -> None:
    proc = start_worker(fast, "-q", "default")
    try:
        job = queue.enqueue(tasks.sleep_for, 1)
        wait_until(lambda: job.refresh().status == "processing", 20, "job claimed")
    finally:
        kill_group(proc)
        proc.wait(10)
    with worker_thread(fast, ("default",)):  # a live worker on default: its heartbeat reaps
        wait_until(lambda: "lost_worker" in kinds(fast), 2.0, "lost worker flagged")
        p = next(p for p in kinds(fast)["lost_worker"] if p.jobs)
        assert "a reaper hands them back in about" in p.summary and p.jobs[0].reaper_live
        wait_until(lambda: not any(p.jobs for p in kinds(fast).get("lost_worker", [])),
                   fast.lease_s + 3, "the job handed back by the reaper")
        assert job.result(timeout_s=10) == 1


def test_paused_age_and_threshold_per_queue(settings: Settings, queue: Queue,
                                            r: redis.Redis) -> None:
    queue.enqueue(tasks.add, 1, 2)
    queue.pause()
    found = kinds(settings)
    assert "paused" in found and "no_worker" not in found and "pending_age" not in found
    r.hset(Inspector(settings).keys.meta("default"), "pending_age_warn_s", "0.05")
    time.sleep(0.1)  # the head job must be older than 50 ms: this is the age measured
    found = kinds(settings)
    assert found["pending_age"][0].queue == "default"
    assert "threshold" in found["pending_age"][0].summary


def test_failure_rate(settings: Settings) -> None:
    q = Queue("flaky", settings=settings)
    for i in range(12):
        q.enqueue(tasks.boom_once, f"bad {i}")
    q.enqueue(tasks.add, 1, 1)
    drain(settings, ("flaky",))
    p = kinds(settings)["failure_rate"][0]
    assert p.queue == "flaky" and p.value > 0.9 and "12 failed" in p.summary


def test_overdue_schedule(settings: Settings) -> None:
    sched = Scheduler(settings)
    sched.add(Schedule("tick", tasks.add, every_s=10, args=(1, 2)))
    past = Inspector(settings).server_time_ms() - 60_000
    sched.client.hset(sched.keys.schedule("tick"), "next_ms", past)
    sched.client.zadd(sched.keys.schedules(), {"tick": past})
    p = kinds(settings)["schedule_late"][0]
    assert p.schedule == "tick" and "no scheduler is running" in p.summary


@pytest.fixture
def server_config(r: redis.Redis) -> Iterator[redis.Redis]:
    old = r.config_get("maxmemory*")
    yield r
    r.config_set("maxmemory-policy", old["maxmemory-policy"])
    r.config_set("maxmemory", old["maxmemory"])


def test_redis_eviction_and_memory(settings: Settings, server_config: redis.Redis) -> None:
    server_config.config_set("maxmemory-policy", "allkeys-lru")
    used = int(server_config.info("memory")["used_memory"])
    server_config.config_set("maxmemory", int(used / 0.9))
    found = kinds(settings)
    assert "noeviction" in found["redis_eviction"][0].act
    assert found["redis_memory"][0].value >= 0.8


def test_schedule_whose_latest_job_failed(settings: Settings, queue: Queue) -> None:
    sched = Scheduler(settings)
    sched.add(Schedule("nightly", tasks.boom_once, every_s=3600, queue="default"))
    job = queue.enqueue(tasks.boom_once, "upstream down")
    drain(settings)
    assert "schedule_failing" not in kinds(settings)
    sched.client.hset(sched.keys.schedule("nightly"), "last_job_id", job.id)  # as a tick does
    p = kinds(settings)["schedule_failing"][0]
    assert p.schedule == "nightly" and job.id in p.summary and "ended failed" in p.summary
    assert p.target == {"page": "jobs", "state": "failed", "queue": "default"}
