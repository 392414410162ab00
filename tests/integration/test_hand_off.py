"""An idle process slot gets a claimed job straight from the worker loop, which sends it to the
slot's child itself (Pool.submit, ProcessSlot.hand): the job keeps every guarantee of a job the
slot thread sent. Each test stops the idle child (SIGSTOP) so that the job is in the child's pipe
but not begun when the test acts: the child is killed, the lease is lost, the worker stops.

A fully idle worker has its child wait and claim instead (test_child_wait.py): these tests turn
that off (as when another slot runs a job, the worker loop waits itself and hands jobs over)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from jobq_core import Job, Queue, Settings, Worker
from jobq_core.job import Claimed
from jobq_core.keys import Keyspace
from jobq_core.worker.process_slot import ProcessSlot
from tests import tasks
from tests.helpers import worker_thread
from tests.integration.test_process_pool import lose_lease, until


def child_of(w: Worker, index: int = 0) -> int:
    slot = w.pool.slots[index]
    assert isinstance(slot, ProcessSlot) and slot.proc is not None and slot.proc.pid
    return slot.proc.pid


def on_way(w: Worker, job: Job) -> Callable[[], bool]:
    """Whether `job` was sent to a child (held, and on its way)."""
    return lambda: any(r.job.id == job.id and r.on_way for r in w.pool.running())


def handed_to_stopped_child(w: Worker, queue: Queue, ledger: Path) -> tuple[int, Job]:
    """After one job (the child is warm and has begun a job), stop the idle child and enqueue
    a job: it is handed to that child and waits in its pipe, not begun."""
    w.child_wait.enabled = False  # the worker loop waits and hands the job over
    assert queue.enqueue(tasks.add, 1, 1).result(timeout_s=15) == 2
    until(lambda: not w.pool.busy() and w.blocked.is_set(), "the worker idle")
    pid = child_of(w)
    os.kill(pid, signal.SIGSTOP)
    job = queue.enqueue(tasks.append_line, str(ledger), "ran")
    until(on_way(w, job), "the job sent to the child")
    until(lambda: renewed(queue, w.settings, job), "its pick-up lease renewed")
    return pid, job


def renewed(queue: Queue, settings: Settings, job: Job) -> bool:
    """Whether the job's pick-up lease was renewed to the full lease (its deadline is past
    what a pick-up lease gives), so no renewal of it is still on its way."""
    deadline_ms = queue.client.zscore(Keyspace(settings.prefix).processing(queue.name), job.id)
    pickup_end_ms = (time.time() + (settings.pickup_s + settings.lease_s) / 2) * 1000
    return deadline_ms is not None and deadline_ms > pickup_end_ms


def all_waiting(w: Worker) -> Callable[[], bool]:
    """Whether the worker waits for work and both its slots for a job (one of them may be
    reserved for the wait its child does)."""
    return lambda: (w.blocked.is_set() and w.pool.waiting_slots
                    + w.child_wait.delegated == 2)


def pids_in(ledger: Path) -> set[str]:
    return {line.split()[1] for line in ledger.read_text().splitlines()}


def test_an_idle_workers_jobs_go_to_the_same_child(settings: Settings, queue: Queue,
                                                     tmp_path: Path) -> None:
    # Two slots, both idle: each job goes to the first one, whose child is warm (its child
    # waits and claims it), rather than to whichever slot thread wakes first (the old inbox
    # alternated between children).
    ledger = tmp_path / "ledger"
    with worker_thread(settings, pool="process", concurrency=2) as w:
        for _ in range(6):
            # Both slots back in the pool's waiting list: a result is recorded (result()
            # returns) a moment before its slot waits again, and a job claimed in that moment
            # rightly goes to the slot that is waiting.
            until(all_waiting(w), "both slots and the worker waiting")
            queue.enqueue(tasks.record_pid, str(ledger)).result(timeout_s=15)
        assert pids_in(ledger) == {str(child_of(w, 0))}


def test_the_idle_wait_is_not_given_to_another_child_while_the_first_slot_returns(
        settings: Settings, queue: Queue, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The job has ended (nothing held) when the worker loop next waits, but slot 0's thread
    # is not waiting for a job again yet, as on a busy machine: the wait must not be
    # delegated to slot 1's colder child, or the next job runs there (on 300d635 it was,
    # every time).
    ledger = tmp_path / "ledger"
    with worker_thread(settings, pool="process", concurrency=2) as w:
        until(all_waiting(w), "both slots and the worker waiting")
        gate, held_back = threading.Event(), threading.Event()
        next_or_handed, wait = w.pool.next_or_handed, w.child_wait.wait
        cond = w.pool.ledger.cond

        def gated(slot: ProcessSlot) -> tuple[Claimed, bool] | None:
            if slot.index == 0 and not gate.is_set():
                held_back.set()
                gate.wait(15)
            return next_or_handed(slot)

        def after_the_job(stopping: threading.Event,
                          renew: Callable[[Sequence[Claimed]], None]) -> list[Claimed] | None:
            with cond:  # the loop may give up waiting for it first (Worker._let_it_end)
                cond.wait_for(lambda: not w.pool.ledger.held, 15)
            return wait(stopping, renew)

        monkeypatch.setattr(w.pool, "next_or_handed", gated)
        monkeypatch.setattr(w.child_wait, "wait", after_the_job)
        queue.enqueue(tasks.record_pid, str(ledger)).result(timeout_s=15)
        assert held_back.wait(15)
        # The report of the wait that claimed the job was read before the job's outcome:
        # set again, this is the next wait.
        until(w.blocked.is_set, "the worker's next wait")
        gate.set()
        until(all_waiting(w), "both slots and the worker waiting")
        queue.enqueue(tasks.record_pid, str(ledger)).result(timeout_s=15)
        assert pids_in(ledger) == {str(child_of(w, 0))}


def test_a_child_killed_before_beginning_a_handed_job_leaves_it_to_the_next_child(
        settings: Settings, queue: Queue, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    with worker_thread(settings, pool="process") as w:
        pid, job = handed_to_stopped_child(w, queue, ledger)
        os.kill(pid, signal.SIGKILL)
        assert job.result(timeout_s=15) is None
        assert child_of(w) != pid
        assert w.recorder.failed == 0
    # Run once, by the next child; not counted as crashed nor as a lost lease.
    assert ledger.read_text().split() == ["ran"]
    job.refresh()
    assert job.status == "completed" and job.fields["deliveries"] == "1"
    assert "lost" not in job.fields and job.retries == 0 and not job.error


def test_a_handed_job_whose_lease_is_lost_before_it_began_never_runs_there(
        settings: Settings, queue: Queue, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    with worker_thread(settings, pool="process") as w:
        pid, job = handed_to_stopped_child(w, queue, ledger)
        lose_lease(queue, settings, job.id)
        # No room to claim it again before this (one slot, no prefetch): the renewal is
        # refused and the job withdrawn from the child, which has not begun it.
        w.heartbeat.beat()
        os.kill(pid, signal.SIGCONT)
        # Claimed again (it was reaped back to pending): it runs once, under that claim.
        assert job.result(timeout_s=15) is None
    assert ledger.read_text().split() == ["ran"]
    job.refresh()
    assert job.fields["deliveries"] == "2" and job.fields["lost"] == "1"


def test_stop_hands_back_a_handed_job_the_child_has_not_begun(settings: Settings, queue: Queue,
                                                              tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    with worker_thread(settings.replace(grace_s=0.3), pool="process") as w:
        pid, job = handed_to_stopped_child(w, queue, ledger)
        w.stop()  # the job outlives the grace period unbegun: withdrawn and handed back
        until(lambda: job.refresh().status == "pending", "the hand-back")
        with contextlib.suppress(ProcessLookupError):  # killed as the slot closed
            os.kill(pid, signal.SIGCONT)
    assert not ledger.exists()
    job.refresh()
    assert job.status == "pending" and "lost" not in job.fields
