"""Worker behaviour: claim order, blocking wake-up, results, retries, failures, timeouts."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from jobq_core import JobFailed, Queue, Settings, Timeout, Worker
from jobq_core.keys import Keyspace
from jobq_core.scripts import Scripts
from tests import tasks
from tests.helpers import drain, worker_thread

pytestmark = pytest.mark.cluster  # also on the Redis Cluster (tests/conftest.py)


def test_priority_then_fifo_and_queue_order(settings: Settings, tmp_path: Path) -> None:
    out = tmp_path / "order"
    high, low = Queue("high", settings=settings), Queue("low", settings=settings)
    low.enqueue(tasks.append_line, str(out), "low-1")
    high.enqueue(tasks.append_line, str(out), "high-1")
    high.enqueue_call(tasks.append_line, args=(str(out), "high-urgent"), priority=10)
    high.enqueue(tasks.append_line, str(out), "high-2")
    high.enqueue_call(tasks.append_line, args=(str(out), "high-later"), priority=-10)
    drain(settings, ["high", "low"], concurrency=1)
    assert out.read_text().split() == ["high-urgent", "high-1", "high-2", "high-later", "low-1"]


def test_idle_worker_wakes_on_enqueue_without_polling(settings: Settings) -> None:
    # With block_s=30 a polling worker would not pick the job up within the 5 s wait.
    slow_poll = settings.replace(block_s=30.0)
    q = Queue("default", settings=slow_poll)
    with worker_thread(slow_poll) as w:
        # Enqueued before the worker's first (non-blocking) claim, the job would be taken by
        # that claim and the test would pass without any wake-up.
        assert w.blocked.wait(10), "the worker never blocked on the marker"
        job = q.enqueue(tasks.add, 20, 22)
        assert job.result(timeout_s=5) == 42


def test_result_waits_for_a_job_not_yet_started(settings: Settings, queue: Queue) -> None:
    job = queue.enqueue(tasks.sleep_for, 0.2)
    with pytest.raises(Timeout):
        job.result(timeout_s=0.1)
    with worker_thread(settings):
        assert job.result(timeout_s=5) == 0.2


def test_lease_deadline_uses_redis_time(settings: Settings, queue: Queue,
                                        r: redis.Redis) -> None:
    job = queue.enqueue(tasks.add, 1, 2)
    scripts = Scripts(queue.client, settings)
    claimed = scripts.claim(["default"], 1, "w1").jobs[0]
    keys = Keyspace(settings.prefix)
    deadline = r.zscore(keys.processing("default"), job.id)
    sec, usec = r.time()
    now_ms = sec * 1000 + usec // 1000
    assert deadline is not None
    assert now_ms < deadline <= now_ms + settings.lease_ms
    assert claimed.token and r.hget(keys.job("default", job.id), "lease") == claimed.token
    assert queue.job(job.id).status == "processing"


def test_completion_with_a_stale_lease_is_refused(settings: Settings, queue: Queue,
                                                  r: redis.Redis) -> None:
    from jobq_core import LeaseLost

    job = queue.enqueue(tasks.add, 1, 2)
    scripts = Scripts(queue.client, settings)
    old = scripts.claim(["default"], 1, "old-worker").jobs[0]
    keys = Keyspace(settings.prefix)
    r.zadd(keys.processing("default"), {job.id: 0})  # the old worker's lease runs out
    assert scripts.reap("default") == [(job.id, "pending")]
    new = scripts.claim(["default"], 1, "new-worker").jobs[0]
    assert new.token != old.token
    with pytest.raises(LeaseLost):
        scripts.complete(old, "3", 60, 1)
    scripts.complete(new, "3", 60, 1)
    assert queue.job(job.id).status == "completed"
    assert queue.job(job.id).fields["lost"] == "1"


def test_reaper_sends_poison_to_dead_after_max_deliveries(settings: Settings, queue: Queue,
                                                          r: redis.Redis) -> None:
    job = queue.enqueue(tasks.add, 1, 2)
    scripts = Scripts(queue.client, settings)
    keys = Keyspace(settings.prefix)
    outcomes = []
    for _ in range(settings.max_deliveries):
        scripts.claim(["default"], 1, "w")
        r.zadd(keys.processing("default"), {job.id: 0})
        outcomes += scripts.reap("default")
    assert [o for _, o in outcomes] == ["pending", "pending", "dead"]
    job.refresh()
    assert job.status == "dead" and job.reason.startswith("poison")


def test_retries_with_backoff_then_failed_with_traceback(settings: Settings,
                                                         queue: Queue) -> None:
    job = queue.enqueue(tasks.boom, "kaput")  # max_retries=2
    drain(settings)
    job.refresh()
    assert job.status == "failed"
    assert job.retries == 2
    assert "ValueError: kaput" in job.error
    with pytest.raises(JobFailed, match="kaput") as info:
        job.result(timeout_s=1)
    assert "Traceback" in info.value.error
    from jobq_core.inspect import Inspector

    detail = Inspector(settings).job(job.id, "default")
    assert detail is not None and len(detail.attempts) == 3
    assert [a["outcome"] for a in detail.attempts] == ["error"] * 3


def test_failure_then_success(settings: Settings, queue: Queue, tmp_path: Path) -> None:
    job = queue.enqueue(tasks.fail_until, str(tmp_path / "n"), 2)
    drain(settings)
    assert job.result(timeout_s=1) == 3
    assert job.refresh().retries == 2


def test_retry_exception_schedules_another_attempt(settings: Settings, queue: Queue,
                                                   tmp_path: Path) -> None:
    job = queue.enqueue(tasks.ask_retry, str(tmp_path / "n"))
    drain(settings)
    assert job.result(timeout_s=1) == "second time lucky"


def test_retry_waits_in_scheduled(settings: Settings, queue: Queue) -> None:
    slow = settings.replace(retry_backoff_s=60.0, retry_backoff_max_s=60.0, burst_wait_s=0.0)
    job = queue.enqueue(tasks.boom)
    drain(slow)  # burst_wait_s 0: returns without waiting out the backoff
    assert job.refresh().status == "scheduled"
    assert queue.count("scheduled") == 1 and queue.count("pending") == 0


def test_unknown_task_goes_dead_without_retries(settings: Settings, queue: Queue) -> None:
    # With no grace period, at its first delivery (two real workers with different task sets
    # are in test_rolling_deploy.py).
    job = queue.enqueue("tests.tasks.does_not_exist", 1)
    drain(settings, unknown_task_grace_s=0)
    job.refresh()
    assert job.status == "dead"
    assert job.reason == ("unknown task 'tests.tasks.does_not_exist': no live worker serving "
                          "queue 'default' knows it after 0 s")
    assert (job.retries, job.fields["deliveries"]) == (0, "1")


def test_expired_job_goes_dead(settings: Settings, queue: Queue, r: redis.Redis) -> None:
    job = queue.enqueue_call(tasks.add, args=(1, 2), ttl_s=60)
    r.hset(Keyspace(settings.prefix).job("default", job.id), "expires_ms", 1)
    nxt = queue.enqueue(tasks.add, 2, 2)
    drain(settings)
    assert job.refresh().status == "dead" and job.reason.startswith("expired")
    assert nxt.result(timeout_s=1) == 4


def test_unserialisable_result_fails_the_job(settings: Settings, queue: Queue) -> None:
    job = queue.enqueue_call(tasks.not_json, max_retries=0)
    drain(settings)
    assert job.refresh().status == "failed"
    assert "JSON" in job.error


def test_results_and_failures_expire(settings: Settings, queue: Queue, r: redis.Redis) -> None:
    ok = queue.enqueue_call(tasks.add, args=(1, 1), result_ttl_s=100)
    bad = queue.enqueue(tasks.boom_once)
    drain(settings)
    keys = Keyspace(settings.prefix)
    assert 0 < r.ttl(keys.job("default", ok.id)) <= 100
    assert 0 < r.ttl(keys.job("default", bad.id)) <= settings.failed_ttl_s


def test_current_job_meta_and_progress(settings: Settings, queue: Queue) -> None:
    job = queue.enqueue(tasks.report_progress)
    drain(settings)
    assert job.result(timeout_s=1) == job.id
    job.refresh()
    # Completed: a numeric progress reads as done, whatever the task last reported.
    assert job.meta == {"stage": "half"} and job.progress == 1.0


def test_progress_after_failure_and_as_a_dict(settings: Settings, queue: Queue) -> None:
    failed = queue.enqueue(tasks.progress_then_fail)
    as_dict = queue.enqueue(tasks.progress_as_dict)
    drain(settings)
    assert failed.refresh().status == "failed" and failed.progress == 0.75  # where it stopped
    assert as_dict.refresh().status == "completed"
    assert as_dict.progress == {"done": 3, "of": 4}  # the task's own shape is left alone


def test_callbacks_run_after_the_transition(settings: Settings, queue: Queue) -> None:
    from jobq_core import task

    seen: list[tuple[str, str, object]] = []

    @task(name="tests.cb.ok", on_success=lambda j, res: seen.append(("ok", j.id, res)))
    def ok() -> int:
        return 7

    @task(name="tests.cb.bad", max_retries=0,
          on_failure=lambda j, err: seen.append(("failed", j.id, "ValueError" in err)))
    def bad() -> None:
        raise ValueError("x")

    @task(name="tests.cb.raises", on_success=lambda j, res: 1 / 0)
    def raises_in_callback() -> int:
        return 1

    a, b, c = queue.enqueue(ok), queue.enqueue(bad), queue.enqueue(raises_in_callback)
    drain(settings)
    assert ("ok", a.id, 7) in seen and ("failed", b.id, True) in seen
    assert c.refresh().status == "completed"  # a failing callback is logged, not fatal


def test_thread_pool_runs_jobs_concurrently(settings: Settings, queue: Queue,
                                            tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    for _ in range(4):
        queue.enqueue(tasks.record_pid, str(ledger), 0.3)
    drain(settings, concurrency=4)
    lines = ledger.read_text().splitlines()
    # All four started before the first ended: they overlapped. (Event order, not wall time:
    # a bound on the drain's duration either flakes on a busy machine or cannot fail.)
    assert [line.split()[0] for line in lines] == ["start"] * 4 + ["end"] * 4


def test_thread_pool_timeout_interrupts_python_code(settings: Settings, queue: Queue) -> None:
    job = queue.enqueue_call(tasks.sleep_for, args=(0.1,), timeout_s=5, max_retries=0)
    slow = queue.enqueue_call(tasks.busy_loop, args=(30,), timeout_s=0.3)
    drain(settings, concurrency=2)
    assert job.result(timeout_s=1) == 0.1
    assert slow.refresh().status == "failed"
    assert "Timeout" in slow.error


def test_process_pool_survives_crashes_and_timeouts(settings: Settings, queue: Queue) -> None:
    exits = queue.enqueue(tasks.exit_hard, 3)
    segv = queue.enqueue(tasks.segfault)
    sleepy = queue.enqueue_call(tasks.sleep_for, args=(30,), timeout_s=0.5, max_retries=0)
    stubborn = queue.enqueue_call(tasks.busy_ignoring_signals, args=(30,), timeout_s=0.5)
    good = [queue.enqueue(tasks.add, i, i) for i in range(5)]
    drain(settings, pool="process", concurrency=2)
    assert [g.result(timeout_s=1) for g in good] == [0, 2, 4, 6, 8]
    for job, what in ((exits, "exited with code 3"), (segv, "SIGSEGV")):
        job.refresh()
        assert job.status == "dead" and "poison" in job.reason and what in job.reason
        assert job.fields["lost"] == str(settings.max_deliveries)
    assert sleepy.refresh().status == "failed" and "Timeout" in sleepy.error
    assert stubborn.refresh().status == "failed" and "killed" in stubborn.error


def test_malformed_entries_go_dead_and_the_next_job_runs(settings: Settings, queue: Queue,
                                                         r: redis.Redis) -> None:
    keys = Keyspace(settings.prefix)
    queue.enqueue(tasks.add, 0, 0)  # registers the queue
    drain(settings)
    r.zadd(keys.pending("default"), {"garbage-id": 1})  # an id with no hash
    bad_json = queue.enqueue(tasks.add, 1, 1)
    r.hset(keys.job("default", bad_json.id), "args", "{not json")
    no_task = queue.enqueue(tasks.add, 1, 1)
    r.hdel(keys.job("default", no_task.id), "task")
    wrong_type = queue.enqueue(tasks.add, 1, 1)
    r.delete(keys.job("default", wrong_type.id))
    r.set(keys.job("default", wrong_type.id), "a string")
    good = queue.enqueue(tasks.add, 2, 3)
    drain(settings)
    assert good.result(timeout_s=1) == 5
    dead = {j: queue.job(j) for j in ("garbage-id", bad_json.id, no_task.id, wrong_type.id)}
    assert all(job is not None and job.status == "dead" for job in dead.values())
    assert dead["garbage-id"].reason.startswith("missing job data")  # type: ignore[union-attr]
    assert "malformed payload" in dead[bad_json.id].reason  # type: ignore[union-attr]
    assert "unknown task" in dead[no_task.id].reason  # type: ignore[union-attr]
    assert "wrong" in dead[wrong_type.id].reason or "type" in dead[wrong_type.id].reason  # type: ignore[union-attr]
    assert queue.count("dead") == 4


def test_pending_key_of_wrong_type_is_set_aside(settings: Settings, queue: Queue,
                                                r: redis.Redis) -> None:
    keys = Keyspace(settings.prefix)
    r.rpush(keys.pending("default"), "junk")
    drain(settings)  # must return, not spin or crash
    assert r.type(keys.corrupt("default", "pending")) == "list"
    job = queue.enqueue(tasks.add, 1, 1)
    drain(settings)
    assert job.result(timeout_s=1) == 2


def test_paused_queue_accepts_but_is_not_served(settings: Settings, queue: Queue) -> None:
    queue.pause()
    job = queue.enqueue(tasks.add, 1, 1)
    drain(settings)
    assert job.refresh().status == "pending"
    queue.resume()
    drain(settings)
    assert job.result(timeout_s=1) == 2


def test_worker_registry(settings: Settings) -> None:
    from jobq_core.inspect import Inspector

    with worker_thread(settings, concurrency=3) as w:
        w.heartbeat.register()
        workers = Inspector(settings).workers()
        assert [x.id for x in workers] == [w.id]
        info = workers[0]
        assert info.alive and info.fields["queues"] == "default"
        assert info.fields["concurrency"] == "3" and info.fields["state"] in ("idle", "busy")
    assert Inspector(settings).workers() == []


def test_worker_needs_a_queue(settings: Settings) -> None:
    from jobq_core import JobqError

    with pytest.raises(JobqError):
        Worker([], settings)


def test_per_job_backoff_overrides_settings(settings: Settings, queue: Queue) -> None:
    job = queue.enqueue_call(tasks.boom, retry_backoff_s=3600)
    drain(settings.replace(retry_backoff_max_s=7200))  # settings' own base stays 0.01 s
    assert job.refresh().status == "scheduled"  # waiting out an hour-long backoff


def test_heartbeat_forgets_expired_entries_and_dead_workers(settings: Settings, queue: Queue,
                                                            r: redis.Redis) -> None:
    keys = Keyspace(settings.prefix)
    job = queue.enqueue_call(tasks.add, args=(1, 1), result_ttl_s=100)
    drain(settings)
    # The job's retention ended (hash gone) and a SIGKILLed worker left its registry entry.
    r.delete(keys.job("default", job.id))
    r.zadd(keys.completed("default"), {job.id: 1})
    r.zadd(keys.workers(), {"ghost:1:abcd": 1, "skewed:1:abcd": 1})
    r.hset(keys.tasks("default"), mapping={"ghost:1:abcd": "1 tests.tasks.add",
                                           "skewed:1:abcd": "1 tests.tasks.add"})
    r.hset(keys.worker("skewed:1:abcd"), "id", "skewed")  # beats, with a clock far behind
    w = Worker(["default"], settings, imports=["tests.tasks"], pool="thread")
    w.heartbeat.beat()
    assert r.zcard(keys.completed("default")) == 0
    assert r.zscore(keys.workers(), "ghost:1:abcd") is None
    # The stopped worker's task list goes with it; the live one's stays (it renews it).
    assert set(r.hkeys(keys.tasks("default"))) == {"skewed:1:abcd", w.id}


def test_burst_waits_for_a_retry_due_soon(settings: Settings, queue: Queue,
                                          tmp_path: Path) -> None:
    # A retry 1.5 s out: the burst worker used to exit after the first attempt and leave
    # the job scheduled (it only waited for jobs due within a second).
    job = queue.enqueue(tasks.retry_after, str(tmp_path / "n"), 1.5)
    assert drain(settings) == 2
    assert job.refresh().status == "completed" and job.return_value == "attempt 2"


def test_burst_leaves_a_later_retry_and_says_so(settings: Settings, queue: Queue,
                                                tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    job = queue.enqueue(tasks.retry_after, str(tmp_path / "n"), 3600.0)
    with caplog.at_level("INFO", logger="jobq.worker"):
        drain(settings, burst_wait_s=2.0)  # returns: it did not wait out the hour
    assert job.refresh().status == "scheduled"
    said = [r.getMessage() for r in caplog.records if "left scheduled" in r.getMessage()]
    assert said and "1 scheduled job" in said[0] and "due in 1 h" in said[0], said


def test_fail_ends_the_job_failed_without_its_retries(settings: Settings, queue: Queue) -> None:
    job = queue.enqueue(tasks.give_up, "the customer was deleted")  # the task has 3 retries
    drain(settings)
    job.refresh()
    assert (job.status, job.retries) == ("failed", 0)
    assert job.reason == "the customer was deleted"
    assert "Fail: the customer was deleted" in job.error


def test_arguments_a_task_cannot_take_fail_without_retries(settings: Settings, queue: Queue,
                                                           r: redis.Redis) -> None:
    # A job written by a producer that did not have the task registered (or an older
    # signature): binding its arguments can never succeed, so retrying is pointless.
    job = queue.enqueue_call(tasks.add, args=(1, 2), max_retries=3)
    r.hset(queue.keys.job("default", job.id), "args", "[1]")
    drain(settings)
    job.refresh()
    assert (job.status, job.retries) == ("failed", 0)
    assert job.reason == ("task 'tests.tasks.add' cannot take these arguments: missing a "
                          "required argument: 'b' (it is add(a, b))")
