"""The async pool (--pool async): one event loop per worker running many jobs at once."""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

import pytest

from jobq_core import JobFailed, Queue, Settings
from tests import tasks
from tests.helpers import drain, kill_group, start_worker, wait_for_lines, worker_thread


def _events(path: Path) -> list[tuple[str, str, float]]:
    out = []
    for line in path.read_text().splitlines():
        kind, job_id, at = line.split()
        out.append((kind, job_id, float(at)))
    return out


def _most_at_once(events: list[tuple[str, str, float]]) -> int:
    """The most jobs between their 'start' and 'end' lines at one point of the file."""
    running = most = 0
    for kind, _, _ in events:
        running += 1 if kind == "start" else -1
        most = max(most, running)
    return most


def test_500_sleeping_jobs_run_at_once_on_one_worker(settings: Settings, queue: Queue,
                                                      tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    # Each job awaits asyncio.sleep(0.2) once all 500 have started: they finish only if
    # the one worker runs all 500 at once (concurrency shown by the order of events, not
    # by wall time; the speed is the benchmark's business).
    jobs = queue.enqueue_many([(tasks.async_rendezvous, (str(ledger), 500, 0.2))
                               for _ in range(500)])
    w = start_worker(settings, "--pool", "async", "--concurrency", "500", "--burst")
    try:
        assert w.wait(120) == 0, w.stdout.read().decode() if w.stdout else ""
    finally:
        kill_group(w)
    assert all(j.refresh().status == "completed" for j in jobs), \
        {j.refresh().status: j.error[-200:] for j in jobs}
    events = _events(ledger)
    assert len(events) == 1000
    assert [kind for kind, _, _ in events[:500]] == ["start"] * 500  # all began, then ends
    assert _most_at_once(events) == 500
    assert {job_id for _, job_id, _ in events} == {j.id for j in jobs}


def test_sync_and_async_tasks_mixed_on_one_worker(settings: Settings, queue: Queue) -> None:
    jobs = [queue.enqueue(tasks.add, 1, 2), queue.enqueue(tasks.async_add, 3, 4),
            queue.enqueue(tasks.sleep_for, 0.05), queue.enqueue(tasks.report_progress),
            queue.enqueue(tasks.async_context)]
    failing = queue.enqueue(tasks.async_boom, "mixed")
    drain(settings, pool="async", concurrency=20)
    assert [j.result(timeout_s=1) for j in jobs[:3]] == [3, 7, 0.05]
    assert jobs[3].result(timeout_s=1) == jobs[3].id
    assert jobs[4].result(timeout_s=1) == [jobs[4].id, jobs[4].id]
    jobs[4].refresh()
    assert jobs[4].meta == {"stage": "async"} and jobs[4].progress == {"step": 3, "of": 4}
    with pytest.raises(JobFailed, match="ValueError: mixed"):
        failing.result(timeout_s=1)


def test_timeout_cancels_the_coroutine_and_the_next_job_starts(
        settings: Settings, queue: Queue, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    slow = queue.enqueue_call(tasks.async_sleep_log, args=(str(ledger), 30), timeout_s=0.3)
    after = queue.enqueue(tasks.async_sleep_log, str(ledger), 0)
    sync_slow = queue.enqueue_call(tasks.busy_loop, args=(30,), timeout_s=0.3)
    drain(settings, pool="async", concurrency=1)
    slow.refresh()
    assert slow.status == "failed" and "Timeout" in slow.error
    assert after.result(timeout_s=1) == after.id
    # The slow one never reached its end line; the next one ran to its end after it.
    assert [(k, i) for k, i, _ in _events(ledger)] == [
        ("start", slow.id), ("start", after.id), ("end", after.id)]
    assert sync_slow.refresh().status == "failed" and "Timeout" in sync_slow.error


def test_a_blocking_coroutine_makes_the_watchdog_log(settings: Settings, queue: Queue,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    job = queue.enqueue(tasks.async_block, 1.0)
    with caplog.at_level(logging.WARNING, logger="jobq.worker"):
        drain(settings.replace(loop_block_warn_s=0.2), pool="async", concurrency=4)
    assert job.result(timeout_s=1) == 1.0
    warnings = [r.getMessage() for r in caplog.records if "event loop blocked" in r.getMessage()]
    assert len(warnings) == 1, warnings  # once per stall
    assert f"tests.tasks.async_block[{job.id}]" in warnings[0]
    assert "time.sleep(seconds)" in warnings[0]  # the stack shows the blocking line


def test_sigterm_lets_running_coroutines_finish_and_hands_back_the_rest(
        settings: Settings, queue: Queue, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    short = [queue.enqueue(tasks.async_sleep_log, str(ledger), 0.5) for _ in range(3)]
    long = queue.enqueue(tasks.async_sleep_log, str(ledger), 60)
    w = start_worker(settings, "--pool", "async", "--concurrency", "10", "--grace-s", "2")
    try:
        wait_for_lines(ledger, 4, w)  # all four started
        kill_group(w, signal.SIGTERM)
        assert w.wait(20) == 0
        assert all(j.result(timeout_s=1) == j.id for j in short)  # finished within grace
        long.refresh()  # past the grace: cancelled and handed back, not a lost lease
        assert long.status == "pending" and "lost" not in long.fields
        assert queue.count("processing") == 0
    finally:
        kill_group(w)


def test_a_stopped_worker_exits_while_a_sync_task_sleeps_past_the_grace(
        settings: Settings, queue: Queue, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    job = queue.enqueue(tasks.record_pid, str(ledger), 60)  # time.sleep: not interruptible
    w = start_worker(settings, "--pool", "async", "--concurrency", "4", "--grace-s", "0.5")
    try:
        wait_for_lines(ledger, 1, w)
        kill_group(w, signal.SIGTERM)
        assert w.wait(15) == 0  # its thread does not hold up the exit
        job.refresh()
        assert job.status == "pending" and "lost" not in job.fields  # handed back
    finally:
        kill_group(w)


def test_sigkilled_mid_coroutine_the_job_reruns_after_its_lease_once(
        settings: Settings, queue: Queue, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    job = queue.enqueue(tasks.async_sleep_log, str(ledger), 1.0)
    a = start_worker(settings, "--pool", "async", "--concurrency", "50")
    try:
        wait_for_lines(ledger, 1, a)
        kill_group(a)
        a.wait(10)
        assert queue.job(job.id).status == "processing"  # type: ignore[union-attr]
        with worker_thread(settings, pool="async", concurrency=50):
            assert job.result(timeout_s=settings.lease_s + settings.heartbeat_s + 10) == job.id
        assert [k for k, _, _ in _events(ledger)] == ["start", "start", "end"]  # ran again once
        assert job.refresh().fields["lost"] == "1"
    finally:
        kill_group(a)


def test_lost_lease_cancels_the_coroutine(settings: Settings, queue: Queue,
                                          tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    job = queue.enqueue(tasks.async_sleep_log, str(ledger), 30)
    with worker_thread(settings, pool="async", concurrency=5) as w:
        wait_for_lines(ledger, 1)
        w.pool.abort("default", job.id, "test: lease lost")
        deadline = time.monotonic() + 10
        while w.pool.busy() and time.monotonic() < deadline:
            w.pool.wait_change(0.1)
        assert not w.pool.busy()  # the coroutine was cancelled, its outcome dropped
    assert [k for k, _, _ in _events(ledger)] == ["start"]
