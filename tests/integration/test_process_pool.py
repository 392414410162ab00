"""The process pool queues jobs in its child behind the running one (worker/pool.py
ProcessSlot, worker/child.py): each job still runs exactly once, is timed from its own start,
and is withdrawn (never run there) when it is aborted or the worker stops before it starts."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from jobq_core import Job, Queue, Settings, Worker
from jobq_core.keys import Keyspace
from jobq_core.scripts import Scripts
from tests import tasks
from tests.helpers import drain, kill_group, start_worker, wait_for_lines, worker_thread


def until(cond: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def queued_in_child(w: Worker, job_ids: Sequence[str]) -> bool:
    """Whether each of the jobs is queued in a slot's child, behind the job it runs."""
    held = {r.job.id: r for r in w.pool.running()}
    return all(i in held and held[i].queued_in is not None for i in job_ids)


def queued_behind(queue: Queue, w: Worker, ledger: Path, gate: Path,
                  name: str) -> tuple[Job, Job]:
    """Start a job `name` that runs until `gate` exists, then enqueue one that the slot
    queues in the child behind it; returns both."""
    first = queue.enqueue(tasks.wait_for_gate, str(ledger), name, str(gate))
    wait_for_lines(ledger, 1)
    queued = queue.enqueue(tasks.append_line, str(ledger), "queued")
    until(lambda: queued_in_child(w, [queued.id]), "the job queued in the child")
    return first, queued


def lose_lease(queue: Queue, settings: Settings, job_id: str) -> None:
    """Expire the job's lease and reap it, as another worker's reaper would."""
    queue.client.zadd(Keyspace(settings.prefix).processing("default"), {job_id: 0})
    assert Scripts(queue.client, settings).reap("default") == [(job_id, "pending")]


def assert_only_the_running_job_ran(ledger: Path, running: Job, queued: Sequence[Job]) -> None:
    """The running job finished in the grace period; the queued ones went back unstarted
    (pending, not counted as a lost lease)."""
    assert ledger.read_text().split() == ["running"]
    assert running.refresh().status == "completed"
    for job in queued:
        job.refresh()
        assert job.status == "pending" and "lost" not in job.fields


def open_gate_and_check_ran_once(ledger: Path, gate: Path, blocker: Job, queued: Job) -> None:
    """Let the blocker end; the queued job, whose first lease was lost, ran once: under its
    second claim (2 deliveries, 1 lost lease)."""
    gate.touch()
    assert blocker.result(timeout_s=10) == "blocker"
    assert queued.result(timeout_s=10) is None
    assert ledger.read_text().split() == ["blocker", "queued"]
    queued.refresh()
    assert queued.fields["deliveries"] == "2" and queued.fields["lost"] == "1"


def test_a_crash_in_a_batch_reruns_only_the_jobs_that_had_not_started(
        settings: Settings, queue: Queue, tmp_path: Path) -> None:
    # One claim, one slot: the four jobs go to the child together. The second kills the child,
    # the third is killed past its timeout: each time the jobs behind it had not started, so
    # they run on a fresh child, once, and are not counted as crashed (no lost lease).
    ledger = tmp_path / "ledger"
    first, crash, stuck, last = queue.enqueue_many([
        {"task": tasks.append_line, "args": (str(ledger), "first")},
        {"task": tasks.exit_hard, "args": (3,)},
        {"task": tasks.busy_ignoring_signals, "args": (30,), "timeout_s": 0.3},
        {"task": tasks.append_line, "args": (str(ledger), "last")},
    ])
    drain(settings, pool="process", concurrency=1, prefetch=8)
    assert ledger.read_text().split() == ["first", "last"]
    for job in (first, last):
        job.refresh()
        assert job.status == "completed"
        assert job.fields["deliveries"] == "1" and "lost" not in job.fields
    crash.refresh()
    assert crash.status == "dead" and "exited with code 3" in crash.reason
    stuck.refresh()
    assert stuck.status == "failed" and "killed" in stuck.error
    assert stuck.fields["deliveries"] == "1"


def hold(seconds: float) -> None:
    """Let at least `seconds` pass (a lower bound only: a slow machine makes it longer,
    which never makes a check weaker here)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.05)


def test_each_job_of_a_batch_is_timed_from_its_own_start(settings: Settings, queue: Queue,
                                                         tmp_path: Path) -> None:
    # The second job is queued in the child behind a first one that the test holds (a gate)
    # until longer than the second's timeout plus the kill grace has passed since it was
    # sent. Then the second runs, held by a gate of its own for a few of the parent's looks:
    # timed from when it was sent it would be killed at the first look; timed from its own
    # start it is well within its timeout. Each job ends when the test says, so no step
    # depends on how fast the machine is (only lower bounds on waiting are timed).
    ledger, gate, gate2 = tmp_path / "ledger", tmp_path / "gate", tmp_path / "gate2"
    with worker_thread(settings, pool="process", concurrency=1, prefetch=4,
                       kill_grace_s=0.2) as w:
        assert queue.enqueue(tasks.add, 1, 1).result(timeout_s=30) == 2  # the child is up
        one = queue.enqueue_call(tasks.wait_for_gate, args=(str(ledger), "one", str(gate)),
                                 timeout_s=60, max_retries=0)
        wait_for_lines(ledger, 1)
        two = queue.enqueue_call(tasks.wait_for_gate, args=(str(ledger), "two", str(gate2)),
                                 timeout_s=2.0, max_retries=0)
        until(lambda: queued_in_child(w, [two.id]), "the second job queued behind the first")
        hold(2.0 + 0.2 + 0.5)  # past its timeout and kill grace, counted from its sending
        gate.touch()
        assert one.result(timeout_s=30) == "one"
        wait_for_lines(ledger, 2)  # the second has begun
        hold(0.5)  # several looks of the parent (POLL_S) while it runs
        gate2.touch()
        assert two.result(timeout_s=30) == "two"
        for job in (one, two):
            job.refresh()
            assert job.fields["deliveries"] == "1" and "lost" not in job.fields
        # A job's own timeout is still enforced: one that ignores the interrupt is killed.
        stubborn = queue.enqueue_call(tasks.busy_ignoring_signals, args=(30,), timeout_s=0.3)
        until(lambda: stubborn.refresh().status == "failed", "the stubborn job killed")
    assert "killed" in stubborn.error


def test_a_queued_job_whose_lease_is_lost_does_not_run_in_that_child(
        settings: Settings, queue: Queue, tmp_path: Path) -> None:
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    # prefetch=1: no room to claim the reaped job again before the heartbeat aborts it (a
    # claim of the same job id replaces its entry: the abort, by id, would hit that one).
    with worker_thread(settings, pool="process", concurrency=1, prefetch=1) as w:
        blocker, queued = queued_behind(queue, w, ledger, gate, "blocker")
        lose_lease(queue, settings, queued.id)
        w.heartbeat.beat()  # finds the lease lost and aborts the job: it must not start
        open_gate_and_check_ran_once(ledger, gate, blocker, queued)


def test_a_queued_job_claimed_again_runs_once(settings: Settings, queue: Queue,
                                             tmp_path: Path) -> None:
    # Its lease lost and the job claimed again by this worker before any heartbeat noticed:
    # the new claim replaces the old one, which must not start from the child's queue.
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    quiet = settings.replace(lease_s=60.0, heartbeat_s=20.0)  # no beat during the test
    with worker_thread(quiet, pool="process", concurrency=1, prefetch=2) as w:
        blocker, queued = queued_behind(queue, w, ledger, gate, "blocker")
        old = next(r.job for r in w.pool.running() if r.job.id == queued.id)
        lose_lease(queue, settings, queued.id)
        until(lambda: any(r.job.id == queued.id and r.job is not old
                          for r in w.pool.running()), "the job claimed again")
        open_gate_and_check_ran_once(ledger, gate, blocker, queued)


def test_aborting_the_running_job_kills_it_and_the_queued_job_runs_once(
        settings: Settings, queue: Queue, tmp_path: Path) -> None:
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    # prefetch=1: no room to claim the reaped job again before the heartbeat aborts it (a
    # claim of the same job id replaces its entry: the abort, by id, would hit that one).
    with worker_thread(settings, pool="process", concurrency=1, prefetch=1) as w:
        first, queued = queued_behind(queue, w, ledger, gate, "first")
        lose_lease(queue, settings, first.id)
        w.heartbeat.beat()  # aborts the running job: its child is killed
        assert queued.result(timeout_s=15) is None  # on a fresh child
        wait_for_lines(ledger, 3)  # the first job, claimed again, started again
        gate.touch()
        assert first.result(timeout_s=10) == "first"
    assert ledger.read_text().split() == ["first", "queued", "first"]
    queued.refresh()
    assert queued.fields["deliveries"] == "1" and "lost" not in queued.fields
    first.refresh()
    assert first.fields["deliveries"] == "2" and first.fields["lost"] == "1"


def test_stop_hands_back_the_jobs_queued_in_the_child(settings: Settings, queue: Queue,
                                                      tmp_path: Path) -> None:
    # Queued jobs go back at once when the worker stops, not after the running job's grace
    # (their leases would run out meanwhile), and are not run during the grace period.
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    w = Worker(["default"], settings.replace(grace_s=60.0), imports=["tests.tasks"],
               pool="process", concurrency=1, prefetch=4)
    t = threading.Thread(target=w.work, daemon=True)
    t.start()
    try:
        assert w.ready.wait(30)
        running = queue.enqueue(tasks.wait_for_gate, str(ledger), "running", str(gate))
        wait_for_lines(ledger, 1)
        queued = [queue.enqueue(tasks.append_line, str(ledger), f"q{i}") for i in range(3)]
        until(lambda: queued_in_child(w, [j.id for j in queued]), "the jobs queued")
        w.stop()
        until(lambda: all(j.refresh().status == "pending" for j in queued), "hand-back")
        assert t.is_alive()  # still in its grace period: the running job has not ended
    finally:
        gate.touch()
        t.join(30)
    assert not t.is_alive()
    assert_only_the_running_job_ran(ledger, running, queued)


def test_sigterm_hands_back_a_batch_in_flight(settings: Settings, queue: Queue,
                                              tmp_path: Path) -> None:
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    running, *queued = queue.enqueue_many(
        [(tasks.wait_for_gate, (str(ledger), "running", str(gate)))]
        + [(tasks.append_line, (str(ledger), f"q{i}")) for i in range(3)])
    w = start_worker(settings, "--pool", "process", "--prefetch", "4", "--grace-s", "30")
    try:
        wait_for_lines(ledger, 1, w)
        kill_group(w, signal.SIGTERM)
        until(lambda: all(j.refresh().status == "pending" for j in queued), "hand-back")
        assert w.poll() is None  # still in its grace period
        gate.touch()
        assert w.wait(15) == 0
    finally:
        kill_group(w)
    assert_only_the_running_job_ran(ledger, running, queued)


def test_jobs_queued_behind_a_long_job_go_to_an_idle_slot(settings: Settings, queue: Queue,
                                                          tmp_path: Path) -> None:
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    with worker_thread(settings, pool="process", concurrency=2, prefetch=8):
        long = queue.enqueue(tasks.wait_for_gate, str(ledger), "long", str(gate))
        wait_for_lines(ledger, 1)
        short = queue.enqueue_many([(tasks.add, (i, i)) for i in range(8)])
        # All done while the long job still runs: none stays queued behind it.
        assert [j.result(timeout_s=15) for j in short] == [2 * i for i in range(8)]
        assert long.refresh().status == "processing"
        gate.touch()
        assert long.result(timeout_s=10) == "long"


def test_children_do_not_run_the_workers_main_script_again(settings: Settings, queue: Queue,
                                                           tmp_path: Path) -> None:
    """The fork server imports the worker's main script once (as every spawned child would);
    the children forked from it, one of them replacing a crashed one, find it there instead
    of running it again each (it was the bulk of a crashed child's replacement time)."""
    log, pickled = tmp_path / "imports.txt", tmp_path / "settings.pickle"
    pickled.write_bytes(pickle.dumps(settings.replace(pool="process", concurrency=1)))
    script = tmp_path / "main_script.py"
    script.write_text(textwrap.dedent(f"""
        import pickle
        with open({str(log)!r}, "a") as f:
            f.write(__name__ + "\\n")
        if __name__ == "__main__":
            from jobq_core import Worker
            with open({str(pickled)!r}, "rb") as f:
                settings = pickle.load(f)
            Worker(["default"], settings, imports=["tests.tasks"]).work(burst=True)
    """))
    crashed = queue.enqueue_call(tasks.exit_hard, (1,), max_retries=0)
    ok = queue.enqueue(tasks.add, 1, 2)
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, str(script)], cwd=root, timeout=120, check=True,
                   env={**os.environ, "PYTHONPATH": str(root)})
    assert ok.refresh().status == "completed"
    assert crashed.refresh().status in ("failed", "dead", "scheduled")
    assert log.read_text().split() == ["__main__", "__mp_main__"]
