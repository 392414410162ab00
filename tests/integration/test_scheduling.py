"""Delayed jobs, periodic schedules (API, leader lease, ticks, fencing), queue pause."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from jobq_core import Job, Queue, Schedule, ScheduleNotFound, Scheduler, Settings
from jobq_core.inspect import Inspector
from tests import tasks
from tests.helpers import drain, wait_for_lines, worker_thread

pytestmark = pytest.mark.cluster  # also on the Redis Cluster (tests/conftest.py)


def server_ms(r: redis.Redis) -> int:
    sec, usec = r.time()
    return int(sec) * 1000 + int(usec) // 1000


def make_due(sched: Scheduler, name: str, tick: int) -> None:
    """Pretend the schedule's next tick is `tick` (a past tick), as after some waiting."""
    sched.client.hset(sched.keys.schedule(name), "next_ms", tick)
    sched.client.zadd(sched.keys.schedules(), {name: tick})


# -- delayed jobs ----------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["delay_s", "run_at"])
def test_delayed_job_fires_when_due_not_at_the_next_poll(queue: Queue, settings: Settings,
                                                         how: str) -> None:
    # Enqueued before the worker starts, so its first claim learns when the job is due and
    # waits until then. block_s=60 and a 60 s heartbeat (whose round also promotes due jobs):
    # a worker that ignored the due time would sit in its wait for a minute, far past the
    # result timeout. Checked by order (not before it is due; before the next poll or
    # heartbeat), not by a wall-time bound that a busy machine can break.
    if how == "delay_s":
        job = queue.enqueue_call(tasks.add, args=(1, 2), delay_s=1.5)
    else:
        job = queue.enqueue_at(datetime.now(UTC) + timedelta(seconds=1.5), tasks.add, 1, 2)
    assert job.status == "scheduled"
    with worker_thread(settings, block_s=60.0, heartbeat_s=60.0, lease_s=300.0):
        assert job.result(timeout_s=30) == 3
    _assert_not_early(job)


def test_delayed_job_enqueued_while_the_worker_waits_is_promoted_by_its_heartbeat(
        queue: Queue, settings: Settings) -> None:
    # The worker already blocks on the marker (its last claim saw nothing scheduled) and
    # would wait 60 s: the heartbeat's promotion (every second here) moves the due job to
    # pending and sets the marker, which wakes the wait.
    with worker_thread(settings, block_s=60.0) as w:
        assert w.blocked.wait(10), "the worker never blocked on the marker"
        job = queue.enqueue_call(tasks.add, args=(1, 2), delay_s=1.5)
        assert job.status == "scheduled"
        assert job.result(timeout_s=30) == 3
    _assert_not_early(job)


def test_delayed_job_enqueued_while_an_idle_worker_waits_starts_when_due(
        queue: Queue, settings: Settings) -> None:
    # The worker blocks on the marker with nothing scheduled; the heartbeat is left at its
    # default (5 s) and block_s is long, so only the enqueue itself can tell the worker when
    # the job is due: it touches the marker when the job is the first due, and the worker
    # then ends its wait at the due time (the last stretch slept locally: a Redis timeout
    # is up to a server tick late). Three jobs; the median starts within 100 ms of its due
    # time, each within 0.5 s (a loaded machine may hold up one thread; before: ~5 s).
    s = settings.replace(heartbeat_s=Settings().heartbeat_s, lease_s=Settings().lease_s)
    late_ms = []
    with worker_thread(s, block_s=60.0) as w:
        for _ in range(3):
            assert w.blocked.wait(10), "the worker never blocked on the marker"
            job = queue.enqueue_call(tasks.add, args=(1, 2), delay_s=0.3)
            assert job.result(timeout_s=10) == 3
            late_ms.append(int(job.refresh().fields["started_ms"])
                           - int(job.fields["enqueued_ms"]) - 300)
    assert all(0 <= ms <= 500 for ms in late_ms), late_ms
    assert sorted(late_ms)[1] <= 100, late_ms


def test_an_idle_worker_with_nothing_scheduled_does_not_poll_more(
        settings: Settings, r: redis.Redis) -> None:
    # The due-time wake-up must not turn into polling: with nothing scheduled an idle
    # worker ends its blocking wait once per pick-up window (pickup_s / 3 = 1 s by default)
    # and sends nothing else between heartbeats.
    s = settings.replace(heartbeat_s=Settings().heartbeat_s, lease_s=Settings().lease_s)

    def calls(command: str) -> int:
        return int(r.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))

    with worker_thread(s, block_s=60.0) as w:
        assert w.blocked.wait(10), "the worker never blocked on the marker"
        before = calls("bzpopmin"), calls("evalsha")
        time.sleep(3.0)  # measuring what an idle worker sends over a span of time
        waits, scripts = calls("bzpopmin") - before[0], calls("evalsha") - before[1]
    assert waits <= 4, waits
    assert scripts <= waits + 8, (waits, scripts)  # a claim per wait, one heartbeat round


def _assert_not_early(job: Job) -> None:
    job.refresh()
    due = int(job.fields["enqueued_ms"]) + 1500
    # run_at goes through the local clock once: allow it 50 ms.
    assert int(job.fields["started_ms"]) >= due - 50


# -- queue pause -------------------------------------------------------------------------------
def test_paused_queue_accepts_jobs_but_workers_do_not_claim(queue: Queue,
                                                           settings: Settings) -> None:
    queue.pause()
    job = queue.enqueue(tasks.add, 1, 2)
    other = Queue("other", settings=settings).enqueue(tasks.add, 2, 2)
    drain(settings, ("default", "other"))
    assert job.refresh().status == "pending" and other.refresh().status == "completed"
    inspector = Inspector(settings)
    assert inspector.paused() == ["default"] and inspector.queue_info("default")["paused"]
    queue.resume()
    drain(settings)
    assert job.refresh().status == "completed" and inspector.paused() == []


# -- schedules: the API -------------------------------------------------------------------------
def test_add_list_enable_disable_run_now_delete(settings: Settings, r: redis.Redis) -> None:
    sched = Scheduler(settings)
    assert sched.add(Schedule("every-minute", tasks.add, every_s=60, args=(1, 2)))
    assert sched.add(Schedule("nightly", "tests.tasks.echo", cron="0 3 * * *",
                              timezone="Europe/Berlin", queue="low"))
    infos = sched.list()
    assert [i.name for i in infos] == ["every-minute", "nightly"]  # soonest first
    minute = infos[0]
    assert minute.enabled and minute.when == "every 60s"
    assert minute.next_ms is not None and minute.next_ms % 60_000 == 0
    assert minute.next_ms - server_ms(r) <= 60_000
    assert infos[1].when == "cron 0 3 * * * (Europe/Berlin)"

    sched.disable("every-minute")
    info = sched.get("every-minute")
    assert info is not None and not info.enabled and info.next_ms is None
    assert [i.name for i in sched.list()] == ["nightly", "every-minute"]
    sched.enable("every-minute")
    assert sched.list()[0].name == "every-minute"

    job = sched.run_now("nightly")
    assert job.id.startswith("sched:nightly:now:") and job.queue.name == "low"
    assert job.status == "pending" and job.task == "tests.tasks.echo"

    assert sched.delete("nightly") and not sched.delete("nightly")
    assert sched.get("nightly") is None
    with pytest.raises(ScheduleNotFound):
        sched.run_now("nightly")
    with pytest.raises(ScheduleNotFound):
        sched.enable("nightly")


def test_adding_again_keeps_state_unless_the_definition_changed(settings: Settings) -> None:
    sched = Scheduler(settings)
    s = Schedule("s", tasks.add, args=(1, 1), every_s=60)
    sched.add(s)
    sched.disable("s")
    # a restart: nothing changes
    assert not sched.add(Schedule("s", tasks.add, args=(1, 1), every_s=60))
    info = sched.get("s")
    assert info is not None and not info.enabled and info.fields["rev"] == "1"
    assert sched.add(Schedule("s", tasks.add, args=(1, 1), every_s=30))
    info = sched.get("s")
    assert info is not None and info.fields["rev"] == "2" and not info.enabled


# -- schedules: leader and ticks ---------------------------------------------------------------
def test_one_leader_and_a_takeover_with_a_newer_epoch(settings: Settings) -> None:
    a, b = Scheduler(settings, name="a"), Scheduler(settings, name="b")
    a.step()
    b.step()
    assert a.epoch == 1 and b.epoch == 0
    assert Inspector(settings).scheduler().leader == "a"
    a.resign()
    b.step()
    assert b.epoch == 2 and Inspector(settings).scheduler().leader == "b"
    a.step()
    assert a.epoch == 0


def test_leader_fires_each_due_tick_once(settings: Settings, r: redis.Redis) -> None:
    sched = Scheduler(settings)
    # A long period: with every_s=2 a loaded machine could pass the next tick between the
    # two steps, and the second step would rightly fire it.
    s = Schedule("tick", tasks.add, every_s=600, grace_s=900, args=(1, 1),
                 options={"priority": 3})
    sched.add(s)
    tick = s.last_at_or_before(server_ms(r))
    make_due(sched, "tick", tick)
    sched.step()
    q = Queue("default", settings=settings)
    job = q.job(f"sched:tick:{tick}")
    assert job is not None and job.status == "pending"
    assert job.fields["schedule"] == "tick" and job.fields["priority"] == "3"
    info = sched.get("tick")
    assert info is not None and info.last_tick_ms == tick and info.fired == 1
    assert info.next_ms == s.next_after(tick)
    make_due(sched, "tick", tick)  # as if a second scheduler had the same stale view
    sched.step()
    assert q.count("pending") == 1


def test_missed_ticks_follow_the_policy(settings: Settings, r: redis.Redis) -> None:
    # Both schedules are planned at one server time, as step() would at one instant. Through
    # step() each got the time it was reached (step's now plus the time spent since), and a
    # tick of the 1 s period passing between the two (a loaded machine, a cluster) made
    # their counts differ by one more than the policy does.
    sched = Scheduler(settings)
    skip = Schedule("skip", tasks.add, every_s=1, args=(1, 1))
    once = Schedule("once", tasks.add, every_s=1, args=(1, 1), missed="run_once")
    sched.add(skip)
    sched.add(once)
    assert sched._holding()
    now = server_ms(r)
    long_ago = skip.last_at_or_before(now - 10_000)
    for s in (skip, once):
        make_due(sched, s.name, long_ago)
        sched._fire(s.name, now)
    q = Queue("default", settings=settings)
    skipped, ran = sched.get("skip"), sched.get("once")
    assert skipped is not None and ran is not None
    # Ticks from 10 s to 1 s (the grace, one period) ago are missed; the one in the last
    # second fires; run_once fires the last missed one too.
    assert (skipped.missed, skipped.fired) == (10, 1)
    assert (ran.missed, ran.fired) == (9, 2)
    assert q.count("pending") == 3


def test_fence_refuses_an_old_leader_even_after_the_job_is_gone(
        settings: Settings, r: redis.Redis) -> None:
    old, new = Scheduler(settings, name="old"), Scheduler(settings, name="new")
    s = Schedule("s", tasks.add, every_s=1, args=(1, 1), grace_s=60,
                 options={"result_ttl_s": 0})
    old.add(s)
    assert old._holding() and old.epoch == 1
    tick = s.last_at_or_before(server_ms(r)) - 5000
    make_due(old, "s", tick)
    old._fire("s", tick)  # fires `tick` under epoch 1
    # The old leader freezes; its lease ends; a new leader fires the next tick.
    r.delete(old.keys.scheduler_leader())
    assert new._holding() and new.epoch == 2
    new._fire("s", tick + 1000)
    q = Queue("default", settings=settings)
    enqueued = lambda: int(q.client.hget(q.keys.stats("default"), "enqueued") or 0)  # noqa: E731
    assert enqueued() == 2
    drain(settings)  # result_ttl_s=0: both jobs, and their ids, are gone now
    assert q.count("completed") == 0
    # The old leader wakes up, still inside the time it allowed itself, and tries to fire
    # from its stale view: every tick is refused and it steps down.
    assert old.epoch == 1 and old._holding()
    make_due(old, "s", tick)
    old._fire("s", tick + 2000)
    assert old.epoch == 0
    assert old.scripts.fire("default", "s", tick + 3000, 1, old._spec(s, tick + 3000)) == -4
    assert new.scripts.fire("default", "s", tick + 1000, 2, new._spec(s, tick + 1000)) == 0
    assert enqueued() == 2 and q.count("pending") == 0


def test_a_leader_refused_by_advance_says_it_lost_the_lease(
        settings: Settings, r: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    leader = Scheduler(settings, name="old")
    s = Schedule("s", tasks.add, every_s=1, args=(1, 1), grace_s=60)
    leader.add(s)
    assert leader._holding() and leader.epoch == 1
    tick = s.last_at_or_before(server_ms(r)) - 5000
    make_due(leader, "s", tick)
    # Its lease ends (it froze) before another leader fires: fire.lua still takes the tick
    # (no newer epoch has fired), then advance.lua refuses a caller without the lease.
    r.delete(leader.keys.scheduler_leader())
    with caplog.at_level(logging.WARNING, logger="jobq.scheduler"):
        leader._fire("s", tick)
    assert leader.epoch == 0
    assert "scheduler old lost the leader lease" in caplog.text


def test_worker_with_scheduler_runs_the_ticks(settings: Settings, tmp_path: Path) -> None:
    from jobq_core.scheduler import _DECLARED, declare

    ledger = tmp_path / "ledger"
    declare(Schedule("embedded", tasks.record_tick, every_s=1, args=(str(ledger),)))
    try:
        with worker_thread(settings, with_scheduler=True,
                           scheduler_lease_s=3.0) as w:
            lines = wait_for_lines(ledger, 2, timeout_s=10)
            leader = Inspector(settings).scheduler().leader
            assert leader == f"{w.id}/scheduler"
    finally:
        _DECLARED.pop("embedded", None)
    assert all(line.startswith("sched:embedded:") for line in lines)
    assert Inspector(settings).scheduler().leader == ""  # resigned on stop
