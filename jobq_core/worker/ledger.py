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
from typing import Protocol

from ..config import AUTO_PREFETCH, Settings
from ..job import Claimed


class Holder(Protocol):
    """The slot a held job is in, as the ledger's users need it (slots.Slot is one)."""

    def abort(self, entry: Running) -> None:
        """Stop the job of `entry` (withdrawn if it has not begun, else killed)."""

    def withdraw(self, entry: Running) -> bool:
        """Take back the job of `entry` if it has not begun here; whether it was."""

# Auto prefetch (Settings.prefetch = AUTO_PREFETCH): a held job should start within about
# AUTO_WAIT_S; at most AUTO_MAX held beyond the slots per free slot (what Celery's guide
# suggests for short tasks; Celery's prefetch, too, is per process), AUTO_CAP in all (a
# refill claims half of it in one script call, which holds Redis for ~1.5 us a job); a job
# running AUTO_LONG times the recent run time is long; the run-time average follows the
# last ~1/AUTO_ALPHA jobs.
AUTO_WAIT_S = 0.02
AUTO_MAX = 64
AUTO_CAP = 512
AUTO_LONG = 4.0
AUTO_ALPHA = 0.2


@dataclass
class Running:
    """A held job: waiting in the inbox, queued in a slot, running, or being recorded."""

    job: Claimed
    lease_ok: float  # monotonic time the lease was last known renewed (a claim or extend send)
    slot: Holder | None = None  # the slot running it; None while the job waits
    # The process slot whose child has it queued behind the running job (waiting, too).
    queued_in: Holder | None = None
    aborted: str = ""  # why the job's outcome must be dropped, if it must
    # Its outcome is being recorded: the write itself drops the lease in Redis, so a renewal
    # answered "not held" from then on is that write, not a loss (a real loss makes the
    # write fail, and the recorder reports it).
    settling: bool = False
    started: float = field(default_factory=time.monotonic)
    # The job is on its way: its slot runs it, or has sent it to the slot's child process
    # (Pool.wait_on_way waits for this).
    on_way: bool = False


class Ledger:
    """The held jobs by (queue, id), under one condition variable.

    `cond` guards `held`; the pool and the settler hold it while they read or change
    entries (`entry()` expects it held). It is notified whenever jobs leave the ledger.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.slots = settings.slots
        self.auto = settings.prefetch == AUTO_PREFETCH
        pinned = 0 if self.auto else settings.prefetch
        self.limit = self.slots + pinned
        self._refill = max(1, (pinned + 1) // 2)  # least jobs worth a claim
        # Auto prefetch: the recent run time of a job (exponential moving average over the
        # jobs that ran, seconds); None until one has.
        self.runtime_s: float | None = None
        # How long a job held beyond the free slots may wait before it starts (so it is
        # never kept from another worker for long): a fraction of the lease, at most AUTO_WAIT_S.
        self._wait_s = min(AUTO_WAIT_S, settings.lease_s / 20)
        # Keyed by (queue, id): a job id is unique within its queue only.
        self.held: dict[tuple[str, str], Running] = {}
        self.cond = threading.Condition()

    def capacity(self) -> int:
        """How many more jobs this worker may claim now (free slots plus prefetch room)."""
        with self.cond:
            self._resize()
            return max(0, self.limit - len(self.held))

    def ran(self, seconds: float) -> None:
        """A job ran for `seconds` (start to outcome): the auto prefetch's measure."""
        with self.cond:
            prev = self.runtime_s
            self.runtime_s = seconds if prev is None else prev + AUTO_ALPHA * (seconds - prev)

    def _stuck(self, now: float, est: float) -> int:
        """Slots running a job far longer than the recent run time (a long job)."""
        after = max(self._wait_s, AUTO_LONG * est)
        return sum(1 for r in self.held.values()
                   if r.slot is not None and not r.settling and now - r.started > after)

    def prefetch(self) -> int:
        """Jobs to hold beyond the free slots now. Pinned: Settings.prefetch. Auto: as many
        as the slots not busy with a long job run in about _wait_s at the recent run time
        (0 until a job has run, and while every slot runs a long one), at most AUTO_MAX per
        such slot and AUTO_CAP in all. The caller holds `cond`."""
        if not self.auto:
            return self.settings.prefetch
        est = self.runtime_s
        if est is None:
            return 0
        free = self.slots - self._stuck(time.monotonic(), est)
        if free <= 0:
            return 0
        return min(AUTO_MAX * free, AUTO_CAP, int(self._wait_s * free / max(est, 1e-6)))

    def _resize(self) -> None:
        if self.auto:
            p = self.prefetch()
            self.limit = self.slots + p
            self._refill = max(1, (p + 1) // 2)

    def all_stuck(self) -> bool:
        """Auto prefetch only: every slot runs a long job while other jobs wait behind them
        (they should go back to the queue, where an idle worker can take them)."""
        if not self.auto or self.runtime_s is None:
            return False
        with self.cond:
            now = time.monotonic()
            waiting = any(r.slot is None and not r.aborted for r in self.held.values())
            return waiting and self._stuck(now, self.runtime_s) >= self.slots

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
        self._resize()
        held = len(self.held)
        return held < self.slots or held <= self.limit - self._refill

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

    def hold(self, job: Claimed, leased_at: float, slot: Holder | None = None) -> Running | None:
        """Hold `job`, leased at `leased_at` (monotonic): waiting, or begun in `slot` (then on
        its way). Returns the entry it replaces: an earlier claim of the job, whose lease was
        lost (it may still be queued in a slot), or None. The caller holds `cond`."""
        key = (job.queue, job.id)
        old = self.held.get(key)
        self.held[key] = Running(job, leased_at, slot=slot, on_way=slot is not None)
        return old

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
