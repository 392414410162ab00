"""The pool: a fixed number of slots fed from one inbox of claimed jobs.

Claimed jobs wait in the inbox; a free slot takes the next, runs it (in its thread, or in
its child process: slots.py, process_slot.py) and hands the Outcome to the settler, which
records outcomes in batches (settler.py). A job stays held in the ledger (ledger.py; its
lease renewed by the heartbeat) from claim (one an idle child claimed itself: from its report,
held by its pick-up lease until then; child_wait.py) until its outcome is recorded. A job
whose lease is lost, or can no longer be renewed in time, is aborted: its slot stops it, and
its outcome is dropped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import queue as stdqueue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import redis

from .. import joblog
from ..config import Settings
from ..job import Claimed
from ..joblog import Capture
from ..keys import Keyspace
from ..runner import Call, Outcome
from .idle_slots import IdleSlots
from .ledger import Ledger, Running
from .logship import LogShipper
from .loop_slot import LoopSlot
from .process_slot import ProcessSlot
from .settler import OnDone, Settler
from .slots import NOT_STARTED, Slot, ThreadSlot

log = logging.getLogger("jobq.worker")
_NOTHING = contextlib.nullcontext()  # capture off (reusable: it keeps no state)
FENCED = "its lease could not be renewed in time (Redis unreachable?); another worker will run it"


class Pool:
    """Slots, their inbox, the ledger of held jobs and the settler; the worker loop and the
    heartbeat use it, and slots see it as their SlotFeed."""

    def __init__(self, settings: Settings, imports: Sequence[str], on_done: OnDone,
                 client: redis.Redis) -> None:
        self.settings = settings
        self.imports = list(imports)
        self.client = client
        self.keys = Keyspace(settings.prefix)
        self.ledger = Ledger(settings)
        self.settler = Settler(self.ledger, on_done)
        # Per-job logs of the jobs run in this process (the process pool's children have
        # their own: child.py).
        self.logs = LogShipper(settings, lambda: client)
        self._captures = settings.capture_logs and settings.pool != "process"
        self.slots: list[Slot]
        if settings.pool == "async":  # one slot: its event loop runs `slots` jobs
            self.slots = [LoopSlot(self, 0)]
        else:
            kind = ProcessSlot if settings.pool == "process" else ThreadSlot
            self.slots = [kind(self, i) for i in range(settings.slots)]
        self._inbox: stdqueue.SimpleQueue[Claimed | None] = stdqueue.SimpleQueue()
        # Set when stop() begins: idle slots must not start job processes any more.
        self._stopping = threading.Event()
        self._on_way_waiters = 0  # threads in wait_on_way (guarded by ledger.cond)
        # Process slots waiting for a job on their mailbox (guarded by ledger.cond).
        self._waiting = IdleSlots(self.ledger, len(self.slots))
        # Inside telling_later(): the slots that submit() handed a job to, and what to tell
        # them at the block's end; the thread in the block.
        self._untold: list[tuple[ProcessSlot, tuple[Claimed, bool]]] = []
        self._teller: int | None = None

    @property
    def stopping(self) -> threading.Event:
        return self._stopping

    @property
    def waiting_slots(self) -> int:
        """How many process slots wait for a job now (see next_or_handed; 0 in other pools)."""
        return len(self._waiting)

    def start(self) -> None:
        if self._captures:
            joblog.install()
        for slot in self.slots:
            slot.start()
        self.settler.start()

    def capture(self, job: Claimed) -> contextlib.AbstractContextManager[object]:
        """Capture what `job` prints and logs inside the block (thread and async pools);
        executed() takes it for the job's outcome."""
        # Made here, not through LogShipper.capture: one call less per job.
        return Capture(self.logs, job) if self._captures else _NOTHING

    def timeout_for(self, job: Claimed) -> float:
        return job.float_field("timeout_s", self.settings.timeout_s)

    def saver(self, call: Call) -> Callable[[Mapping[str, str]], None]:
        client: Any = self.client

        def save(fields: Mapping[str, str]) -> None:
            client.hset(self.keys.job(call.queue, call.id), mapping=dict(fields))

        return save

    def capacity(self) -> int:
        """How many more jobs this worker may claim now (free slots plus prefetch room)."""
        return self.ledger.capacity()

    def busy(self) -> int:
        """Jobs held: waiting, running, or waiting for their outcome to be recorded."""
        return self.ledger.busy()

    def wait_capacity(self, timeout_s: float) -> bool:
        """Wait until a claim is worth making (see Ledger.wait_capacity); False on timeout."""
        return self.ledger.wait_capacity(timeout_s)

    def wait_change(self, timeout_s: float) -> None:
        """Wait until some held job is settled (or the timeout)."""
        self.ledger.wait_change(timeout_s)

    def submit(self, job: Claimed, leased_at: float) -> None:
        """Hold a claimed job (leased at `leased_at`, monotonic) and queue it for a slot.

        A process slot waiting for a job gets it straight away: this thread sends it to the
        slot's child (ProcessSlot.hand), the lowest-numbered waiting slot first. The job
        then starts after one wake-up (the child's) instead of two (the slot thread's, then
        the child's), and an idle worker's jobs keep going to the same warm child."""
        with self.ledger.cond:
            old = self.ledger.hold(job, leased_at)
            # Claimed again (its earlier lease was lost): an earlier claim still queued in a
            # slot must not start, as one still in the inbox will not (next() drops it).
            if old is not None and old.queued_in is not None:
                old.queued_in.withdraw(old)
            slot = self._dispatch(job)
            if slot is None:
                return
        handed = False
        try:
            handed = slot.hand(job)
        except Exception:  # the slot thread tries, as with a job from the inbox
            log.exception("could not hand job %s to slot %s", job.id, slot.index)
        if handed and self._teller == threading.get_ident():
            self._untold.append((slot, (job, handed)))
        else:
            slot.mailbox.put((job, handed))

    @contextlib.contextmanager
    def telling_later(self) -> Iterator[None]:
        """Within the block, a slot whose child submit() sent a job to is told at the block's
        end, not at once: the job is on its way all the same (its child has it), and the
        caller can renew its lease first without the slot thread waking to compete with the
        child for a core and the GIL while the child begins the job (the slot thread is
        only needed to read the outcome and to watch the job). Only for the calling thread."""
        self._teller = threading.get_ident()
        try:
            yield
        finally:
            self._teller = None
            untold, self._untold = self._untold, []
            for slot, item in untold:
                slot.mailbox.put(item)

    def _dispatch(self, job: Claimed) -> ProcessSlot | None:
        """Where `job` goes (the caller holds `cond`): to the inbox while no slot waits (a
        slot takes it when it is free; next() drops it if it may not start by then), else
        to the waiting slot returned, the job marked started there; or, if it may not start
        (see _startable), to the settler to forget, as next() would (the waiting slots
        would not look at the inbox until they have a job)."""
        if not self._waiting or self._stopping.is_set():
            self._inbox.put(job)
            return None
        slot = self._waiting.first()  # the same warm child while idle
        entry = self._start_in(slot, job)
        if entry is None:
            self.settler.put(job, NOT_STARTED)
            return None
        # On its way now, not once sent (ProcessSlot.hand does not tell forwarded()): the
        # caller sends it at once, and a failed send is retried by the slot thread.
        self._set_on_way(entry)
        self._waiting.remove(slot)
        slot.idle = False
        return slot

    def next_or_handed(self, slot: ProcessSlot) -> tuple[Claimed, bool] | None:
        """The next job for a process slot (see SlotFeed.next_or_handed): from the inbox, or,
        when it is empty, from the slot's mailbox, waiting there (in `_waiting`) until
        submit() or give_back() gives it one (or stop() None)."""
        while True:
            with self.ledger.cond:
                try:
                    job = self._inbox.get_nowait()
                except stdqueue.Empty:
                    self._waiting.add(slot)
                    break
                if job is None:
                    return None
                if self._start_in(slot, job) is not None:
                    return job, False
            self.settler.put(job, NOT_STARTED)  # as next() does
        return slot.mailbox.get()

    def reserve_idle(self) -> ProcessSlot | None:
        """For a delegated idle wait (child_wait.py), while the pool is fully idle (see
        wait_idle): the waiting process slot a job would go to (_dispatch), taken out of the
        waiting slots (so no job goes to it, and its thread stays parked on its mailbox)
        until adopt() or release(). Its child may have died idle (ProcessSlot.gone): the
        caller may start another (ProcessSlot.warm) meanwhile."""
        with self.ledger.cond:
            # Every slot, not just any: a slot whose job has just ended may not wait again
            # yet, and the wait would go to a colder child than the one the jobs go to.
            if self._stopping.is_set() or not self._waiting.all_idle():
                return None
            slot = self._waiting.first()
            self._waiting.remove(slot)
            return slot

    def release(self, slot: ProcessSlot) -> None:
        """A slot reserve_idle() gave that got no job: it waits for one again."""
        with self.ledger.cond:
            if self._stopping.is_set():
                slot.mailbox.put(None)
            else:
                self._waiting.add(slot)

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait (up to `timeout_s`) until the process pool is fully idle: no job held, and
        every slot waiting for a job (what reserve_idle needs); whether it is. Never true for
        the thread and async pools, whose slots wait on the inbox."""
        return self._waiting.wait_all_idle(timeout_s)

    def adopt(self, slot: ProcessSlot, job: Claimed, leased_at: float, n: int) -> None:
        """Hold `job`, leased at `leased_at` (monotonic), which the child of `slot` (from
        reserve_idle) claimed and began as its job number `n`. The caller tells the slot
        (its mailbox) once it has renewed the job's pick-up lease."""
        slot.adopt(job, n)  # first: an abort finds the job in its slot
        with self.ledger.cond:  # nothing else is held (reserve_idle)
            self.ledger.hold(job, leased_at, slot)
            slot.idle = False

    def leases(self) -> list[Claimed]:
        return self.ledger.leases()

    def renewed(self, queue: str, job_ids: Sequence[str], sent_at: float) -> None:
        self.ledger.renewed(queue, job_ids, sent_at)

    def running(self) -> list[Running]:
        return self.ledger.running()

    def abort(self, queue: str, job_id: str, why: str, token: str | None = None) -> None:
        """Stop a job whose lease is gone; its outcome will not be recorded. A job whose
        outcome is being recorded has ended: nothing to stop, and nothing lost to report
        (the write says whether the lease was still held). With `token`, only that claim of
        the job: a renewal refused for a claim that was handed back must not stop the
        worker's next claim of the same job, which may already be held."""
        with self.ledger.cond:
            entry = self.ledger.held.get((queue, job_id))
            if entry is None or entry.aborted or entry.settling:
                return
            if token is not None and entry.job.token != token:
                return
            entry.aborted = why
            slot = entry.slot or entry.queued_in
        log.warning("stopping job %s: %s", job_id, why)
        if slot is not None:
            slot.abort(entry)

    def fence(self, now: float) -> None:
        """Abort jobs whose lease could not be renewed and may soon expire."""
        for queue, job_id in self.ledger.stale_keys(now):
            self.abort(queue, job_id, FENCED)

    def fence_one(self, queue: str, job_id: str) -> None:
        if self.ledger.is_stale(queue, job_id):
            self.abort(queue, job_id, FENCED)

    def next(self, slot: Slot, block: bool = True) -> Claimed | None:
        """The next job for `slot` (None: stop); jobs aborted while waiting are dropped.
        Not blocking: None when the inbox has no job now, the stop sentinel left in it."""
        while True:
            try:
                job = self._inbox.get(block=block)
            except stdqueue.Empty:
                return None
            if job is None:
                if not block:  # a stop: the slot's blocking next() takes it
                    self._inbox.put(None)
                return None
            with self.ledger.cond:
                entry = self._start_in(slot, job)
                if entry is not None:
                    if not slot.forwards:
                        self._set_on_way(entry)
                    return job
            # Not run: the settler only has to forget it (the stopping worker or the new
            # lease holder owns it now).
            self.settler.put(job, NOT_STARTED)

    def _start_in(self, slot: Slot, job: Claimed) -> Running | None:
        """The held entry of `job`, marked started now in `slot`, if it may start (see
        _startable); None, marking nothing, if not. The caller holds `cond`."""
        entry = self._startable(job)
        if entry is not None:
            entry.slot, entry.started = slot, time.monotonic()
        return entry

    def _startable(self, job: Claimed) -> Running | None:
        """The held entry of `job` if it may start: not aborted, and its lease not stale (a
        claim whose reply came late, e.g. a cluster claim held up by another slot's stalled
        call, may carry a lease that ran out meanwhile: the job may run elsewhere already).
        A stale one is aborted as fence() would. The caller holds `cond`."""
        entry = self.ledger.entry(job)
        if entry is None or entry.aborted:
            return None
        if self.ledger.stale(entry, time.monotonic()):
            entry.aborted = FENCED
            log.warning("not starting job %s: %s", job.id, FENCED)
            return None
        return entry

    def take(self, slot: Slot, limit: int) -> list[Claimed]:
        """Up to `limit` more jobs for `slot` to queue behind the ones it has, of those
        waiting in the inbox now (never waits; none once stopping). They stay waiting until
        began() or executed_many() says they began."""
        jobs: list[Claimed] = []
        while len(jobs) < limit and not self._stopping.is_set():
            try:
                job = self._inbox.get_nowait()
            except stdqueue.Empty:
                break
            if job is None:  # a stop sentinel: leave it to the slot's next next()
                self._inbox.put(None)
                break
            jobs.append(job)
        if not jobs:
            return jobs
        taken: list[Claimed] = []
        dropped: list[tuple[Claimed, Outcome]] = []
        with self.ledger.cond:  # one lock round for the batch
            for job in jobs:
                entry = self._startable(job)
                if entry is not None:
                    entry.queued_in = slot
                    taken.append(job)
                else:
                    dropped.append((job, NOT_STARTED))
        self.settler.put_many(dropped)
        return taken

    def forwarded(self, job: Claimed) -> None:
        """A slot that forwards jobs to a child process has sent `job` to it."""
        with self.ledger.cond:
            entry = self.ledger.entry(job)
            if entry is not None:
                self._set_on_way(entry)

    def _set_on_way(self, entry: Running) -> None:
        # The caller holds `cond`; waking its waiters only when one waits for this keeps
        # the worker loop from waking at every job's start.
        entry.on_way = True
        if self._on_way_waiters:
            self.ledger.cond.notify_all()

    def idle(self) -> bool:
        """Whether a slot waits for a job (a job submitted now starts at once)."""
        return any(s.idle for s in self.slots)

    def wait_on_way(self, job: Claimed, timeout_s: float) -> None:
        """Wait (up to `timeout_s`) until `job` is on its way: its slot runs it, or has sent
        it to its child process, or it was given to a waiting process slot (_dispatch), whose
        child the caller sends it to; or it was dropped. For a caller that would otherwise compete
        with that hand-off for the GIL and a core."""
        with self.ledger.cond:
            self._on_way_waiters += 1
            try:
                self.ledger.cond.wait_for(lambda: self._on_way(job), timeout_s)
            finally:
                self._on_way_waiters -= 1

    def _on_way(self, job: Claimed) -> bool:
        entry = self.ledger.entry(job)
        return entry is None or entry.on_way or bool(entry.aborted)

    def began(self, slot: Slot, job: Claimed, at: float) -> None:
        """A job queued in `slot` has started (at `at`, monotonic)."""
        with self.ledger.cond:
            entry = self.ledger.entry(job)
            if entry is not None and entry.slot is None:
                entry.slot, entry.queued_in, entry.started = slot, None, at

    def give_back(self, withdraw: Callable[[], list[Claimed]]) -> None:
        """Put jobs a slot had queued (`withdraw` takes them out of it) back in the inbox."""
        # Under the lock: take_waiting() finds each job either queued in the slot or waiting
        # in the inbox, never in between.
        with self.ledger.cond:
            jobs = withdraw()
            for job in jobs:
                entry = self.ledger.entry(job)
                if entry is not None:
                    entry.slot = entry.queued_in = None
                slot = self._dispatch(job)
                if slot is not None:  # not claimed just now: the slot thread sends it
                    slot.mailbox.put((job, False))

    def executed(self, job: Claimed, outcome: Outcome) -> None:
        if self._captures and self.logs.live:  # empty: no running job wrote (the common case)
            logs = self.logs.finish(id(job))
            if logs:
                outcome = dataclasses.replace(outcome, logs=logs)
        if self.ledger.auto and outcome is not NOT_STARTED:
            with self.ledger.cond:
                entry = self.ledger.entry(job)
                began = entry.started if entry is not None and entry.slot is not None else None
            if began is not None:
                self.ledger.ran(time.monotonic() - began)
        self.settler.put(job, outcome)

    def executed_many(self, slot: Slot,
                      ended: Sequence[tuple[Claimed, Outcome, float | None]]) -> None:
        """Jobs of `slot` ended, each with its outcome and, if it was queued in the slot
        and the pool not yet told it began, when it began (monotonic): as began() then
        executed() for each, under one lock round and in one hand-off to the settler."""
        now = time.monotonic()
        with self.ledger.cond:
            for job, outcome, began_at in ended:
                entry = self.ledger.entry(job)
                if entry is None:
                    continue
                if began_at is not None and entry.slot is None:
                    entry.slot, entry.queued_in, entry.started = slot, None, began_at
                if self.ledger.auto and outcome is not NOT_STARTED and entry.slot is not None:
                    self.ledger.ran(now - entry.started)
        self.settler.put_many([(job, outcome) for job, outcome, _ in ended])

    def idle_slot(self, besides: Slot) -> bool:
        return any(s.idle for s in self.slots if s is not besides)

    def take_waiting(self, why: str = "worker stopping") -> list[Claimed]:
        """Mark the jobs no slot has started as not to run, and return them to hand back."""
        with self.ledger.cond:
            waiting = [r for r in self.ledger.held.values() if r.slot is None and not r.aborted]
            back: list[Running] = []
            for r in waiting:
                if r.queued_in is not None:
                    if not r.queued_in.withdraw(r):  # it started meanwhile: it runs
                        r.slot, r.queued_in = r.queued_in, None
                        continue
                    r.queued_in = None
                    self.settler.put(r.job, NOT_STARTED)  # its slot no longer has it
                r.aborted = why
                back.append(r)
        return [r.job for r in back]

    def stuck_waiting(self) -> list[Claimed]:
        """Auto prefetch: when every slot runs a long job, the jobs waiting behind them, to
        hand back so that an idle worker can take them (none otherwise)."""
        if not self.ledger.all_stuck():
            return []
        return self.take_waiting("handed back: every slot runs a long job")

    def stop(self, grace_s: float, hard: threading.Event) -> list[Claimed]:
        """Hand back jobs not started; let running ones finish within `grace_s` (or until
        `hard` is set), abort the rest. Returns the jobs to hand back."""
        deadline = time.monotonic() + grace_s
        self._stopping.set()
        waiting = self.take_waiting()
        with self.ledger.cond:  # a slot waits on its mailbox, or will find its None in the inbox
            idle = self._waiting.take_all()
            for process_slot in idle:
                process_slot.mailbox.put(None)
            for _ in range(len(self.slots) - len(idle)):
                self._inbox.put(None)
        held = self.ledger.held
        with self.ledger.cond:
            while (any(r.slot is not None and not r.aborted for r in held.values())
                   and time.monotonic() < deadline and not hard.is_set()):
                self.ledger.cond.wait(0.1)
            running = [r for r in held.values() if r.slot is not None and not r.aborted]
            for r in running:
                r.aborted = "worker stopping"
        for r in running:
            if r.slot is not None:
                r.slot.abort(r)
        for slot in self.slots:
            slot.thread.join(5)
        self.settler.stop(5 if hard.is_set() else self.settings.socket_timeout_s + 5)
        self.logs.stop()
        if self._captures:
            joblog.uninstall()
        return [*waiting, *(r.job for r in running)]
