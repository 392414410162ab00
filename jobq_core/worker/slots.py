"""Slots: the units of concurrency of a worker's pool, and what they ask of it.

A slot is a thread. It takes the next job from its feed (the pool), runs it, and hands the
Outcome back; a ThreadSlot runs the job in the slot thread itself (a timeout is an exception
injected at its next bytecode: best effort, a thread blocked in C cannot be interrupted).
ProcessSlot (process_slot.py) drives a child process instead.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

from ..config import Settings
from ..job import Claimed
from ..runner import CRASH, TIMEOUT, Call, JobTimeout, Outcome, run

if TYPE_CHECKING:
    from .ledger import Running
    from .process_slot import ProcessSlot

log = logging.getLogger("jobq.worker")
# The outcome of a job taken back before it started: never recorded, only forgotten.
NOT_STARTED = Outcome(CRASH, reason="aborted before it started")


class SlotFeed(Protocol):
    """What a slot may ask of its pool (Pool implements it): jobs to run, and where their
    outcomes go. A slot knows nothing else of the pool."""

    settings: Settings
    imports: list[str]

    @property
    def stopping(self) -> threading.Event:
        """Set once the worker stops: no new job will come, and no child should start."""

    def next(self, slot: Slot, block: bool = True) -> Claimed | None:
        """Wait for the next job for `slot` to run; None: stop. With `block` False, None
        also when no job waits now (the stop is then left for a blocking call)."""

    def next_or_handed(self, slot: ProcessSlot) -> tuple[Claimed, bool] | None:
        """For a process slot: the next job waiting in the inbox, else (waiting for it) the
        next job given to the slot, with whether it was already sent to the slot's child
        (ProcessSlot.hand). None: stop."""

    def take(self, slot: Slot, limit: int) -> list[Claimed]:
        """Up to `limit` more jobs for `slot` to queue behind the ones it has, of those
        waiting now (never waits). They count as waiting until began() or executed_many()."""

    def began(self, slot: Slot, job: Claimed, at: float) -> None:
        """A job queued in `slot` has started (at `at`, monotonic)."""

    def executed(self, job: Claimed, outcome: Outcome) -> None:
        """The job ended (or was taken back: NOT_STARTED); record its outcome."""

    def executed_many(self, slot: Slot,
                      ended: Sequence[tuple[Claimed, Outcome, float | None]]) -> None:
        """Jobs of `slot` ended: each with its outcome and, for one queued in the slot that
        began() was not called for, when it began (monotonic)."""

    def give_back(self, withdraw: Callable[[], list[Claimed]]) -> None:
        """Jobs `slot` had queued go back to the inbox; `withdraw` takes them out of it."""

    def idle_slot(self, besides: Slot) -> bool:
        """Whether a slot other than `besides` waits for a job."""

    def forwarded(self, job: Claimed) -> None:
        """A slot that `forwards` has sent `job` to its child process."""

    def fence_one(self, queue: str, job_id: str) -> None:
        """Stop this job now if its lease may have run out."""

    def timeout_for(self, job: Claimed) -> float:
        """The job's timeout in seconds (0: none)."""

    def saver(self, call: Call) -> Callable[[Mapping[str, str]], None]:
        """Where the job's meta/progress writes go."""

    def capture(self, job: Claimed) -> AbstractContextManager[object]:
        """Capture what the job prints and logs inside the block (per-job logs)."""


class Slot:
    """One unit of concurrency. Subclasses define how a job is executed."""

    idle = False  # waiting for its next job
    # Runs its jobs elsewhere (a child process) and calls SlotFeed.forwarded once it has sent
    # one there; otherwise a job is on its way once the slot has taken it.
    forwards = False

    def __init__(self, feed: SlotFeed, index: int) -> None:
        self.feed = feed
        self.index = index
        self.thread = threading.Thread(target=self._loop, name=f"jobq-slot-{index}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _loop(self) -> None:
        while True:
            try:
                self.warm()
            except Exception:  # execute() tries again; a failed warm-up must not kill the slot
                log.exception("slot %s could not prepare for its next job", self.index)
            self.idle = True
            job = self.feed.next(self)
            self.idle = False
            if job is None:
                self.close()
                return
            try:
                outcome = self.execute(job)
            except JobTimeout:  # a thread slot's interrupt that landed just after its job ended
                outcome = Outcome(TIMEOUT, error="jobq.Timeout: the job exceeded its timeout_s")
            except Exception as exc:  # a bug of ours must not kill the slot
                log.exception("slot %s failed running job %s", self.index, job.id)
                outcome = Outcome(CRASH, error=repr(exc), reason="worker error")
            self.feed.executed(job, outcome)

    def warm(self) -> None:
        """Get ready for the next job while idle (called before waiting for one)."""

    def execute(self, job: Claimed) -> Outcome:
        raise NotImplementedError

    def abort(self, entry: Running) -> None:
        raise NotImplementedError

    def withdraw(self, entry: Running) -> bool:
        """Take back a job queued in this slot so that it never starts here (it is then
        reported by no one); False if it has started (or is not here)."""
        return False

    def close(self) -> None:
        """Release resources at shutdown (called in the slot thread)."""


class ThreadSlot(Slot):
    """Runs the job in the slot thread itself; timeouts are injected (best effort)."""

    def __init__(self, feed: SlotFeed, index: int) -> None:
        super().__init__(feed, index)
        self._lock = threading.Lock()
        self._in_task: Claimed | None = None  # the job running in the thread now

    def execute(self, job: Claimed) -> Outcome:
        timeout_s = self.feed.timeout_for(job)
        timer = threading.Timer(timeout_s, self._interrupt, (job,)) if timeout_s > 0 else None
        call = Call(job.id, job.queue, job.fields)  # read-only here: no copy
        with self._lock:
            self._in_task = job
        try:
            if timer:
                timer.start()
            with self.feed.capture(job):
                return run(call, self.feed.settings.max_payload_bytes, self.feed.saver(call),
                           timeout_s)
        except JobTimeout:
            return Outcome(TIMEOUT, error="jobq.Timeout: the job exceeded its timeout_s")
        finally:
            with self._lock:
                self._in_task = None
            if timer:
                timer.cancel()

    def _interrupt(self, job: Claimed) -> None:
        # Only while that very job runs: the slot may have moved on to the next one.
        with self._lock:
            if self._in_task is job and self.thread.ident is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self.thread.ident), ctypes.py_object(JobTimeout))

    def abort(self, entry: Running) -> None:
        self._interrupt(entry.job)
