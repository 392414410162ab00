"""Pool bookkeeping: held jobs, their leases and aborts (worker/pool.py)."""

from __future__ import annotations

import threading
import time
from typing import Any, cast

import pytest

from jobq_core import Queue, Settings, Worker, task
from jobq_core.job import Claimed
from jobq_core.worker.pool import Pool
from tests import tasks
from tests.helpers import drain, worker_thread

GATE = threading.Event()


@task(name="tests.pool.wait_gate")
def wait_gate() -> str:
    """Return once the test opens GATE (polled, so an injected exception lands at once)."""
    while not GATE.wait(0.01):
        pass
    return "through"


def test_same_job_id_in_two_queues_both_complete(settings: Settings) -> None:
    # Job ids are unique per queue only: a worker serving both queues can hold "same-id"
    # of queue a and "same-id" of queue b at once, and must keep track of both.
    GATE.clear()
    a, b = Queue("a", settings=settings), Queue("b", settings=settings)
    ja = a.enqueue_call(tasks.add, args=(1, 1), job_id="same-id")
    jb = b.enqueue_call(wait_gate, job_id="same-id")
    with worker_thread(settings, ["a", "b"], concurrency=2):
        assert ja.result(timeout_s=10) == 2
        GATE.set()
        assert jb.result(timeout_s=10) == "through"
    # Its first run's outcome was recorded: no lost lease, no second delivery.
    assert "lost" not in jb.refresh().fields and jb.fields["deliveries"] == "1"


STARTS: list[str] = []
ONE_STARTED, TWO_STARTED = threading.Event(), threading.Event()


@task(name="tests.pool.block_on_gate")
def block_on_gate() -> str:
    """Block in C on GATE (an injected exception cannot land until it opens)."""
    STARTS.append("start")
    (ONE_STARTED if len(STARTS) == 1 else TWO_STARTED).set()
    GATE.wait(30)
    return "through"


def test_stale_outcome_does_not_drop_the_jobs_new_run(settings: Settings, queue: Queue) -> None:
    # A thread job blocked in C keeps running after its lease is lost; the same worker can
    # claim the job again meanwhile. The old run's outcome must not settle the new run.
    from jobq_core.keys import Keyspace
    from jobq_core.scripts import Scripts

    GATE.clear()
    STARTS.clear()
    ONE_STARTED.clear()
    TWO_STARTED.clear()
    job = queue.enqueue(block_on_gate)
    keys = Keyspace(settings.prefix)
    with worker_thread(settings, concurrency=2):
        assert ONE_STARTED.wait(10)
        queue.client.zadd(keys.processing("default"), {job.id: 0})  # its lease runs out
        assert Scripts(queue.client, settings).reap("default") == [(job.id, "pending")]
        assert TWO_STARTED.wait(10)  # claimed again by this worker while the first run blocks
        GATE.set()
        assert job.result(timeout_s=10) == "through"
    job.refresh()
    assert job.fields["deliveries"] == "2" and job.fields["lost"] == "1"


WORKER: list[Worker] = []
NEXT_STARTED = threading.Event()
# What the on_success callback saw. The recorder logs and swallows a callback's exceptions,
# so an assert inside it could never fail the test: the test asserts on this afterwards.
HOOK_SAW: list[str] = []


@task(name="tests.pool.next_job")
def next_job() -> str:
    NEXT_STARTED.set()
    return wait_gate.fn()


def _beat_while_next_job_runs(job: object, result: object) -> None:
    # Runs in the settler after the first job's completion was written and before it is let
    # go: the slot is already running the next job. A heartbeat then finds the first job's
    # lease gone (it completed) and aborts it.
    if not NEXT_STARTED.wait(10):
        HOOK_SAW.append("the next job never started")
        return
    try:
        WORKER[0].heartbeat.beat()
    except Exception as exc:
        HOOK_SAW.append(f"beat raised {exc!r}")
        return
    HOOK_SAW.append("beat while the next job ran")


@task(name="tests.pool.first_job", on_success=_beat_while_next_job_runs)
def first_job() -> int:
    return 1


def test_aborting_a_finished_job_leaves_the_slots_next_job_alone(settings: Settings,
                                                                  queue: Queue) -> None:
    GATE.clear()
    NEXT_STARTED.clear()
    HOOK_SAW.clear()
    first = queue.enqueue(first_job)
    nxt = queue.enqueue(next_job)
    with worker_thread(settings, concurrency=1, prefetch=1) as w:
        WORKER[:] = [w]
        assert first.result(timeout_s=10) == 1
        GATE.set()
        assert nxt.result(timeout_s=10) == "through"
    assert HOOK_SAW == ["beat while the next job ran"]
    assert nxt.refresh().retries == 0 and nxt.error == ""



def test_an_interrupt_landing_as_the_job_ends_does_not_kill_the_slot(
        settings: Settings, queue: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    # A thread job's timeout is an exception its timer injects into the slot thread. If the
    # timer fires as the job returns, the exception lands in the slot's own code after the
    # task, where the slot cancels the timer: simulate exactly that landing spot.
    import ctypes

    from jobq_core.runner import JobTimeout
    from jobq_core.worker import slots

    fired: list[int] = []

    class LateTimer(threading.Timer):
        def cancel(self) -> None:
            if not fired:
                fired.append(1)
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(threading.get_ident()), ctypes.py_object(JobTimeout))
            super().cancel()

    monkeypatch.setattr(slots.threading, "Timer", LateTimer)
    job = queue.enqueue_call(tasks.add, args=(2, 2), timeout_s=60)
    with worker_thread(settings, concurrency=1):
        assert job.result(timeout_s=10) == 4
        assert queue.enqueue(tasks.add, 3, 3).result(timeout_s=10) == 6
    assert fired


def test_claims_refill_half_the_prefetch_room_at_a_time(settings: Settings, queue: Queue,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # A claim's fixed cost (one script call, the queue's bookkeeping) is most of the Redis
    # work per job when claims are small: a worker with prefetch P refills in batches of at
    # least P/2, not one job each time a job settles.
    from jobq_core.worker.fetch import Fetcher, Submit

    asked: list[int] = []
    claim = Fetcher.claim

    def spy(self: Fetcher, count: int, submit: Submit | None = None) -> list[object]:
        asked.append(count)
        return claim(self, count, submit)  # type: ignore[return-value]

    monkeypatch.setattr(Fetcher, "claim", spy)
    queue.enqueue_many([(tasks.add, (i, i)) for i in range(300)])
    assert drain(settings, concurrency=1, prefetch=16) == 300
    assert len(asked) < 300 / 8 and min(asked) >= 8, asked


def test_settler_gathers_outcomes_while_other_jobs_are_held(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # One completion script call for many jobs: while more jobs are held than the settler
    # has outcomes for, it waits (up to SETTLE_WAIT_S) for theirs; with none held it records
    # at once.
    import redis as redis_lib

    from jobq_core.job import Claimed
    from jobq_core.runner import OK, Outcome
    from jobq_core.worker import pool as pool_mod
    from jobq_core.worker import settler

    monkeypatch.setattr(settler, "SETTLE_WAIT_S", 30.0)
    batches: list[list[str]] = []
    recorded = threading.Event()

    def on_done(items: object) -> None:
        batches.append([job.id for job, _ in items])  # type: ignore[attr-defined]
        recorded.set()

    client = redis_lib.Redis.from_url(settings.redis_url)
    p = pool_mod.Pool(settings.replace(concurrency=1), [], on_done, client)
    p.settler.start()
    jobs = [Claimed(id=f"j{i}", queue="default", token=f"w/{i}", fields={}) for i in range(3)]
    for job in jobs:
        p.submit(job, time.monotonic())
    for job in jobs:
        assert p.next(p.slots[0]) is job  # as a slot takes them
    p.executed(jobs[0], Outcome(OK))
    p.executed(jobs[1], Outcome(OK))
    assert not recorded.wait(0.2)  # a third job is still held: its outcome is waited for
    p.executed(jobs[2], Outcome(OK))
    assert recorded.wait(10)
    assert batches == [["j0", "j1", "j2"]]
    recorded.clear()
    last = Claimed(id="j3", queue="default", token="w/3", fields={})
    p.submit(last, time.monotonic())
    assert p.next(p.slots[0]) is last
    p.executed(last, Outcome(OK))
    assert recorded.wait(10)  # nothing else held: recorded without waiting 30 s
    assert batches[-1] == ["j3"]
    p.settler.stop(10)


def test_a_renewal_racing_a_completion_reports_no_lost_lease(
        settings: Settings, queue: Queue, caplog: pytest.LogCaptureFixture) -> None:
    # The heartbeat reads the held leases, the settler writes a completion (which drops the
    # lease in Redis), then the renewal runs: Redis answers "not held" for a job that ended
    # normally. The race is made certain: the heartbeat beats while the settler is parked
    # in after_job, after the completion was written and before the job leaves the pool.
    import logging

    from jobq_core.hooks import WorkerContext, WorkerHook

    recorded, beaten = threading.Event(), threading.Event()

    class ParkAfterRecord(WorkerHook):
        def after_job(self, ctx: WorkerContext, job: Claimed, state: str) -> None:
            recorded.set()
            assert beaten.wait(10)

    job = queue.enqueue(tasks.add, 1, 2)
    w = Worker(["default"], settings, imports=["tests.tasks"], pool="thread",
               hooks=[ParkAfterRecord()])
    t = threading.Thread(target=w.work, kwargs={"burst": True}, daemon=True)
    with caplog.at_level(logging.WARNING, logger="jobq.worker"):
        t.start()
        assert recorded.wait(10)
        held = w.pool.leases()
        assert [j.id for j in held] == [job.id]  # still held: the renewal asks for it
        w.heartbeat.beat()
        beaten.set()
        t.join(10)
    assert job.refresh().status == "completed"
    assert "lease" not in caplog.text, caplog.text


def test_a_lost_lease_of_a_claim_handed_back_leaves_the_next_claim_alone(
        settings: Settings) -> None:
    # The heartbeat read the lease of a claim that was then handed back (unknown.lua) and
    # claimed again by this worker: Redis answers "not held" for the first claim's token,
    # which must not stop the second claim of the same job (it would lose its lease).
    import redis as redis_lib

    from jobq_core.job import Claimed
    from jobq_core.worker import pool as pool_mod

    client = redis_lib.Redis.from_url(settings.redis_url)
    p = pool_mod.Pool(settings.replace(concurrency=1), [], lambda items: None, client)
    second = Claimed(id="j", queue="default", token="w/1.1", fields={})
    p.submit(second, time.monotonic())
    p.abort("default", "j", "its lease was lost", token="w/1")  # the first claim's token
    assert [r.aborted for r in p.running()] == [""]
    p.abort("default", "j", "its lease was lost", token="w/1.1")
    assert [r.aborted for r in p.running()] == ["its lease was lost"]


def test_a_job_whose_lease_went_stale_before_it_started_is_not_started(
        settings: Settings) -> None:
    """A claim reply that came a lease late (a cluster claim held up behind another slot's
    stalled call) may carry a lease already reaped and run elsewhere: the pool does not
    start it (review finding 1; it started it before), and a fresh one still starts."""
    pool = Pool(settings, [], cast(Any, lambda *a: None), cast(Any, None))
    stale = Claimed("stale", "default", "t1", {"task": "x"})
    fresh = Claimed("fresh", "default", "t2", {"task": "x"})
    pool.submit(stale, time.monotonic() - settings.lease_s)
    pool.submit(fresh, time.monotonic())
    assert pool.next(pool.slots[0], block=False) is fresh
