"""The held-job ledger: every job a worker holds, from claim until its outcome is recorded.

A held job's lease is renewed by the heartbeat; the ledger keeps when each renewal was last
acknowledged, so that a job whose lease may have run out is stopped (fenced) in time. Its
size is what the worker may claim: slots plus prefetch room.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..config import Settings
from ..job import Claimed

if TYPE_CHECKING:
    from .slots import Slot


@dataclass
class Running:
    """A held job: waiting in the inbox, queued in a slot, running, or being recorded."""

    job: Claimed
    lease_ok: float  # monotonic time the lease was last known renewed (a claim or extend send)
    slot: Slot | None = None  # the slot running it; None while the job waits
    # The process slot whose child has it queued behind the running job (waiting, too).
    queued_in: Slot | None = None
    aborted: str = ""  # why the job's outcome must be dropped, if it must
    # Its outcome is being recorded: the write itself drops the lease in Redis, so a renewal
    # answered "not held" from then on is that write, not a loss (a real loss makes the
    # write fail, and the recorder reports it).
    settling: bool = False
    started: float = field(default_factory=time.monotonic)


class Ledger:
    """The held jobs by (queue, id), under one condition variable.

    `cond` guards `held`; the pool and the settler hold it while they read or change
    entries (`entry()` expects it held). It is notified whenever jobs leave the ledger.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.limit = settings.concurrency + settings.prefetch
        self._refill = max(1, (settings.prefetch + 1) // 2)  # least jobs worth a claim
        # Keyed by (queue, id): a job id is unique within its queue only.
        self.held: dict[tuple[str, str], Running] = {}
        self.cond = threading.Condition()

    def capacity(self) -> int:
        """How many more jobs this worker may claim now (free slots plus prefetch room)."""
        with self.cond:
            return max(0, self.limit - len(self.held))

    def busy(self) -> int:
        """Jobs held: waiting, running, or waiting for their outcome to be recorded."""
        with self.cond:
            return len(self.held)

    def wait_capacity(self, timeout_s: float) -> bool:
        """Wait until a claim is worth making; False on timeout. That is when a slot may
        run out of work (fewer jobs held than slots), or when at least half the prefetch
        room is free: refilling in batches instead of one job per settled job keeps the
        claims, and the Redis work per job, small (a claim's fixed cost is most of it)."""
        with self.cond:
            return self.cond.wait_for(self._claim_due, timeout_s)

    def _claim_due(self) -> bool:
        held = len(self.held)
        return held < self.settings.concurrency or held <= self.limit - self._refill

    def wait_change(self, timeout_s: float) -> None:
        """Wait until some held job is settled (or the timeout)."""
        with self.cond:
            n = len(self.held)
            self.cond.wait_for(lambda: len(self.held) != n, timeout_s)

    def more_than(self, n: int) -> bool:
        with self.cond:
            return len(self.held) > n

    def leases(self) -> list[Claimed]:
        """The jobs whose lease the heartbeat renews (not those already given up)."""
        with self.cond:
            return [r.job for r in self.held.values() if not r.aborted]

    def renewed(self, queue: str, job_ids: Sequence[str], sent_at: float) -> None:
        """Redis acknowledged a renewal of these jobs' leases sent at `sent_at`."""
        with self.cond:
            for job_id in job_ids:
                entry = self.held.get((queue, job_id))
                if entry is not None:
                    entry.lease_ok = max(entry.lease_ok, sent_at)

    def running(self) -> list[Running]:
        with self.cond:
            return list(self.held.values())

    def entry(self, job: Claimed) -> Running | None:
        """The held entry of this very claim (same token), not of a later claim of the job.
        The caller holds `cond`."""
        entry = self.held.get((job.queue, job.id))
        return entry if entry is not None and entry.job.token == job.token else None

    def stale(self, entry: Running, now: float) -> bool:
        """Whether the job's lease may run out before a renewal can reach Redis."""
        # lease_ok: when the last renewal that Redis acknowledged was sent.
        return not entry.aborted and now > entry.lease_ok + self.settings.fence_after_s

    def stale_keys(self, now: float) -> list[tuple[str, str]]:
        with self.cond:
            return [key for key, r in self.held.items() if self.stale(r, now)]

    def is_stale(self, queue: str, job_id: str) -> bool:
        with self.cond:
            entry = self.held.get((queue, job_id))
            return entry is not None and self.stale(entry, time.monotonic())

    def forget(self, jobs: Iterable[Claimed]) -> None:
        """These claims' outcomes are recorded (or dropped): they are no longer held."""
        with self.cond:
            for job in jobs:
                if self.entry(job) is not None:
                    del self.held[(job.queue, job.id)]
            self.cond.notify_all()
