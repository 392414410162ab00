"""The worker's lifecycle around its main loop (worker/supervisor.py)."""

from __future__ import annotations

import threading

from jobq_core import Queue, Settings, Worker, task
from jobq_core.job import Claimed
from tests import tasks

GATE = threading.Event()
STARTED = threading.Event()


@task(name="tests.supervisor.hold")
def hold() -> str:
    STARTED.set()
    while not GATE.wait(0.01):
        pass
    return "done"


def test_stop_hands_back_prefetched_jobs_before_waiting_for_running_ones(
        settings: Settings, queue: Queue) -> None:
    # A prefetched job is not renewed once the worker stops; if it were handed back only
    # after the running job's grace, its lease would run out meanwhile (counted as lost).
    GATE.clear()
    STARTED.clear()
    running = queue.enqueue(hold)
    waiting = queue.enqueue(tasks.add, 1, 1)
    w = Worker(["default"], settings.replace(grace_s=60.0), imports=["tests.tasks"],
               pool="thread", concurrency=1, prefetch=1)
    handed: dict[str, bool] = {}
    handed_back = threading.Event()
    original = w._hand_back

    def hand_back(job: Claimed) -> None:
        original(job)
        handed[job.id] = GATE.is_set()  # False: the running job was still running
        handed_back.set()

    w._hand_back = hand_back  # type: ignore[method-assign]
    t = threading.Thread(target=w.work, daemon=True)
    t.start()
    try:
        assert STARTED.wait(10)
        assert queue.job(waiting.id).status == "processing"  # type: ignore[union-attr]
        w.stop()
        assert handed_back.wait(10), "the prefetched job was not handed back during grace"
    finally:
        GATE.set()
        t.join(30)
    assert handed == {waiting.id: False}
    assert waiting.refresh().status == "pending" and "lost" not in waiting.fields
    assert running.refresh().status == "completed"
