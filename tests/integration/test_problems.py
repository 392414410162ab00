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


def test_killed_worker_flagged_within_2s_with_the_default_heartbeat(settings: Settings,
                                                                   queue: Queue) -> None:
    # Issue 18's bar with the default heartbeat (5 s): the registry entry alone keeps a
    # killed worker "alive" for 15 s; its named connections close with its process. Lease
    # 10 s (the least a 5 s heartbeat allows) so the reaper returns the job in the test.
    from dashboard import create_app

    s = settings.replace(heartbeat_s=Settings().heartbeat_s, lease_s=10.0)
    assert s.worker_ttl_factor == Settings().worker_ttl_factor
    web = create_app(s).test_client()
    procs = [start_worker(s, "-q", "default", "--name", "doomed")]
    try:
        job = queue.enqueue(tasks.sleep_for, 60)  # still running when it is killed
        wait_until(lambda: job.refresh().status == "processing", 20, "job claimed")
        assert job.fields["worker"] == "doomed"
        procs.append(start_worker(s, "-q", "default", "--name", "reaper"))  # reaps it later
        wait_until(lambda: "reaper" in {w.id for w in Inspector(s).workers() if w.alive}, 20,
                   "the second worker registered")

        def shown() -> bool:
            api = [p for p in web.get("/api/problems").get_json()["problems"]
                   if p["kind"] == "lost_worker" and p["worker"] == "doomed"]
            html = web.get("/").get_data(as_text=True)
            return any(j["id"] == job.id for p in api for j in p["jobs"]) and \
                "worker doomed stopped beating" in html and job.id in html

        assert not shown()
        kill_group(procs[0])
        procs[0].wait(10)
        wait_until(shown, 2.0, "the killed worker on /api/problems and the overview")

        def back() -> bool:
            job.refresh()
            return job.status != "processing" or job.fields.get("worker") != "doomed"

        # Stays until the reaper (the live worker's heartbeat) has handed the job back.
        deadline = time.monotonic() + s.lease_s + 2 * s.heartbeat_s
        while not back():
            assert time.monotonic() < deadline, "the job was not handed back"
            assert shown() or back(), "the problem vanished while the job was held"
            time.sleep(0.1)
        assert job.refresh().retries == 0 and job.fields["lost"] == "1"  # reaped, not failed
    finally:
        for p in procs:
            kill_group(p)
            p.wait(10)


def test_lost_workers_go_by_heartbeat_age_where_client_list_is_refused(
        settings: Settings, queue: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    # A managed Redis may deny or rename CLIENT LIST: readers then go by the registry
    # entries' age alone, as before, and still answer.
    import jobq_core.workers

    def refused(*args: object, **kwargs: object) -> None:
        raise redis.exceptions.NoPermissionError("no permissions to run 'client|list'")

    with worker_thread(settings, ("default",)):
        queue.enqueue(tasks.add, 1, 1).result(timeout_s=10)
        insp = Inspector(settings)
        monkeypatch.setattr(redis.Redis, "client_list", refused)
        assert jobq_core.workers.connected_names(insp.client) is None
        assert [w.alive for w in insp.workers()] == [True]
        assert "lost_worker" not in kinds(settings)


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
