"""Read API for flow control: deferred jobs, dependencies, limits, pause, schedules."""

from __future__ import annotations

import pytest
import redis

from jobq_core import Queue, Schedule, Scheduler, Settings
from jobq_core.inspect import Inspector
from tests import tasks

pytestmark = pytest.mark.cluster  # also on the Redis Cluster (tests/conftest.py)


def test_deferred_jobs_and_their_dependencies(queue: Queue, settings: Settings,
                                              r: redis.Redis) -> None:
    a = queue.enqueue(tasks.add, 1, 1)
    other = Queue("other", settings=settings).enqueue_call(tasks.add, args=(1, 1), delay_s=60)
    b = queue.enqueue_call(tasks.add, args=(2, 2), depends_on=[a, other])
    c = queue.enqueue_call(tasks.add, args=(3, 3), depends_on=b)
    ins = Inspector(settings)
    page = ins.deferred("default")
    # Listed by next check time; b and c are often enqueued in the same ms (ties go by id).
    assert page.total == 2 and sorted(row.id for row in page.rows) == sorted([b.id, c.id])
    now_ms = int(r.time()[0]) * 1000
    assert all(abs(row.score - now_ms) < 5000 for row in page.rows)  # next check, in ms
    assert ins.counts(["default"])["default"]["scheduled"] == 2
    assert ins.queue_info("default")["deferred"] == 2
    deps = ins.dependencies("default", b.id)
    assert [(d.ref, d.state, d.waiting) for d in deps] == [
        (f"default/{a.id}", "pending", True), (f"other/{other.id}", "scheduled", True)]
    assert ins.dependencies("default", a.id) == []


def test_limits_with_their_use(queue: Queue, settings: Settings) -> None:
    queue.set_limit(tasks.add, concurrency=1, rate=10, per_s=60)
    queue.enqueue(tasks.add, 1, 1)
    queue.enqueue(tasks.add, 2, 2)
    queue.scripts.claim(["default"], 5, "w1")
    (info,) = Inspector(settings).limits("default")
    assert info.limit.key == "tests.tasks.add" and info.limit.concurrency == 1
    assert (info.running, info.started, info.parked, info.wake_ms) == (1, 1, 1, 0)


def test_paused_queues(settings: Settings) -> None:
    a, b = Queue("a", settings=settings), Queue("b", settings=settings)
    a.enqueue(tasks.add, 1, 1)
    b.enqueue(tasks.add, 1, 1)
    b.pause()
    assert Inspector(settings).paused() == ["b"]


def test_schedules_and_the_leader(settings: Settings) -> None:
    sched = Scheduler(settings, name="host:1:abcd")
    sched.add(Schedule("m", tasks.add, every_s=60, args=(1, 1)))
    sched.add(Schedule("c", tasks.add, args=(1, 1), cron="*/5 * * * *", enabled=False))
    ins = Inspector(settings)
    assert ins.scheduler().leader == ""
    sched.step()
    leader = ins.scheduler()
    assert leader.leader == "host:1:abcd" and leader.epoch == 1
    assert 0 < leader.lease_left_ms <= 15_000
    infos = ins.schedules()
    assert [(i.name, i.enabled) for i in infos] == [("m", True), ("c", False)]
    assert infos[0].schedule is not None and infos[0].schedule.args == (1, 1)
    assert infos[1].next_ms is None and infos[1].when == "cron */5 * * * * (UTC)"
    one = ins.schedule("m")
    assert one is not None and one.fired == 0 and one.last_job_id == ""
    assert ins.schedule("nope") is None


def test_malformed_schedule_is_reported_not_raised(settings: Settings, r: redis.Redis) -> None:
    sched = Scheduler(settings)
    sched.add(Schedule("m", tasks.add, args=(1, 1), every_s=60))
    r.hset(sched.keys.schedule("m"), "def", "{broken")
    (info,) = Inspector(settings).schedules()
    assert info.schedule is None and "malformed" in info.error


def test_leader_disables_a_malformed_schedule(settings: Settings, r: redis.Redis) -> None:
    sched = Scheduler(settings)
    sched.add(Schedule("m", tasks.add, args=(1, 1), every_s=60))
    r.hset(sched.keys.schedule("m"), mapping={"def": '{"every_s": 60}', "next_ms": 0})
    r.zadd(sched.keys.schedules(), {"m": 0})
    sched.step()
    info = Inspector(settings).schedule("m")
    assert info is not None and not info.enabled and "task" in info.error


def test_admin_actions_for_limits_schedules_and_cancel(queue: Queue, settings: Settings) -> None:
    from jobq_core.admin import Admin

    admin = Admin(settings)
    admin.set_limit("default", "tests.tasks.add", concurrency=2)
    assert [lim.concurrency for lim in queue.limits()] == [2]
    admin.remove_limit("default", "tests.tasks.add")
    assert queue.limits() == []

    admin.scheduler().add(Schedule("s", tasks.add, every_s=60, args=(1, 1)))
    admin.disable_schedule("s")
    info = Inspector(settings).schedule("s")
    assert info is not None and not info.enabled
    admin.enable_schedule("s")
    assert admin.run_schedule_now("s").status == "pending"
    assert admin.delete_schedule("s")

    parent = queue.enqueue_call(tasks.add, args=(1, 1), delay_s=60)
    child = queue.enqueue_call(tasks.add, args=(1, 1), depends_on=parent)
    op = admin.start_bulk("default", "scheduled", "cancel")
    admin.step_bulk("default", op.id)
    # The parent is cancelled by the bulk action; its child went to dead at once (before
    # the bulk action reached it), so only the parent counts as cancelled.
    assert parent.refresh().status == "cancelled"
    assert child.refresh().status == "dead" and child.reason.endswith("ended cancelled")
