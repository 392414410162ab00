"""Pool bookkeeping: held jobs, their leases and aborts (worker/pool.py)."""

from __future__ import annotations

import threading

from jobq_core import Queue, Settings, task
from tests import tasks
from tests.helpers import worker_thread

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

