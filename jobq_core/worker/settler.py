"""The settler: one thread that records job outcomes in batches.

Slots put each Outcome here; the settler records many with one script call (a completion
batch), drops the outcomes of jobs the worker no longer holds, and only then lets the jobs
leave the ledger, so a job counts as held until its outcome is in Redis.
"""

from __future__ import annotations

import logging
import queue as stdqueue
import threading
import time
from collections.abc import Callable, Sequence

from ..job import Claimed
from ..runner import Outcome
from .ledger import Ledger

log = logging.getLogger("jobq.worker")
OnDone = Callable[[Sequence[tuple[Claimed, Outcome]]], None]
SETTLE_BATCH = 256
# How long the settler waits for more outcomes to batch with one it has (only while other
# jobs are held): a completion is recorded at most this much later.
SETTLE_WAIT_S = 0.002


class Settler:
    """Records outcomes put() by slots through `on_done`, in batches, in its own thread."""

    def __init__(self, ledger: Ledger, on_done: OnDone) -> None:
        self.ledger = ledger
        self.on_done = on_done
        # Lists of outcomes (a slot hands over all it has at once: one wake-up of this
        # thread), or None: stop.
        self._queue: stdqueue.SimpleQueue[list[tuple[Claimed, Outcome]] | None] = (
            stdqueue.SimpleQueue())
        self.thread = threading.Thread(target=self._loop, name="jobq-settler", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def put(self, job: Claimed, outcome: Outcome) -> None:
        """Record `outcome` for this claim of `job` (soon, with others)."""
        self._queue.put([(job, outcome)])

    def put_many(self, outcomes: list[tuple[Claimed, Outcome]]) -> None:
        """put() for each of `outcomes`, in one hand-off."""
        if outcomes:
            self._queue.put(outcomes)

    def stop(self, timeout_s: float) -> None:
        """Record what was put so far, then end the thread (waiting up to `timeout_s`)."""
        self._queue.put(None)
        self.thread.join(timeout_s)

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = list(first)
            deadline = time.monotonic() + SETTLE_WAIT_S
            while len(batch) < SETTLE_BATCH:
                try:
                    item = self._queue.get_nowait()
                except stdqueue.Empty:
                    # More outcomes are due soon when more jobs are held than this batch
                    # has: wait a little for them, so one script call records many.
                    left = deadline - time.monotonic()
                    if left <= 0 or not self.ledger.more_than(len(batch)):
                        break
                    try:
                        item = self._queue.get(timeout=left)
                    except stdqueue.Empty:
                        break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.extend(item)
            self._settle(batch)

    def _settle(self, batch: Sequence[tuple[Claimed, Outcome]]) -> None:
        keep: list[tuple[Claimed, Outcome]] = []
        with self.ledger.cond:
            for job, outcome in batch:
                entry = self.ledger.entry(job)
                if entry is not None and entry.aborted and entry.slot is None:
                    pass  # never started (stopping, or its lease was lost while it waited)
                elif entry is not None and entry.aborted:
                    log.warning("dropped the outcome of job %s (%s): %s", job.id, outcome.kind,
                                entry.aborted)
                elif entry is not None:
                    entry.settling = True
                    keep.append((job, outcome))
                else:
                    log.warning("dropped the outcome of job %s (%s): it is no longer held "
                                "under this lease", job.id, outcome.kind)
        if keep:
            try:
                self.on_done(keep)
            except Exception:
                log.exception("recording the outcomes of %d jobs failed", len(keep))
        self.ledger.forget(job for job, _ in batch)
