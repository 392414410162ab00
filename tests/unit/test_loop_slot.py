"""The async pool's slot (LoopSlot) against a fake pool: no Redis, no worker process."""

from __future__ import annotations

import contextlib
import queue as stdqueue
import threading
from collections.abc import Callable, Mapping

from jobq_core import Settings
from jobq_core.job import Claimed
from jobq_core.runner import Call, Outcome
from jobq_core.worker.loop_slot import LoopSlot
from jobq_core.worker.slots import Slot
from tests import tasks


class FakeFeed:
    """Just enough of the pool (SlotFeed) for one LoopSlot: an inbox ending in the stop
    sentinel, and which thread took each job out of it."""

    def __init__(self, jobs: list[Claimed], concurrency: int) -> None:
        self.settings = Settings(pool="async", concurrency=concurrency)
        self.stopping = threading.Event()
        self.inbox: stdqueue.SimpleQueue[Claimed | None] = stdqueue.SimpleQueue()
        for job in jobs:
            self.inbox.put(job)
        self.inbox.put(None)
        self.takers: list[str] = []
        self.outcomes: dict[str, Outcome] = {}

    def next(self, slot: Slot, block: bool = True) -> Claimed | None:
        try:
            job = self.inbox.get(block=block)
        except stdqueue.Empty:
            return None
        if job is None:
            if not block:
                self.inbox.put(None)
            return None
        self.takers.append(threading.current_thread().name)
        return job

    def executed(self, job: Claimed, outcome: Outcome) -> None:
        self.outcomes[job.id] = outcome

    def timeout_for(self, job: Claimed) -> float:
        return 0.0

    def saver(self, call: Call) -> Callable[[Mapping[str, str]], None]:
        return lambda fields: None

    def capture(self, job: Claimed) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


def test_a_busy_async_pool_starts_the_next_job_on_the_loop_thread() -> None:
    # 200 quick jobs already waiting, 4 at once: the feeder thread starts the first few;
    # every later one is started by the job whose place it takes, on the loop's own thread
    # (no lock wake-up, GIL hand-over and self-pipe write per job). Before, the feeder
    # thread took every job (and next() had no non-blocking form).
    jobs = [Claimed(f"j{i}", "default", "t", {"task": tasks.async_add.name,
                                                "args": f"[{i}, 1]", "kwargs": "{}"})
            for i in range(200)]
    feed = FakeFeed(jobs, concurrency=4)
    slot = LoopSlot(feed, 0)  # type: ignore[arg-type]
    slot.start()
    slot.thread.join(30)
    assert not slot.thread.is_alive()
    assert sorted(feed.outcomes) == sorted(j.id for j in jobs)
    assert all(o.kind == "ok" for o in feed.outcomes.values()), feed.outcomes
    assert feed.takers.count("jobq-loop") >= len(jobs) - 4, feed.takers[:10]
