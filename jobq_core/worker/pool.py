"""Slots that run jobs: each slot is a thread, and in the process pool it drives one child.

Claimed jobs wait in one inbox; a free slot takes the next, runs it (in the thread, or in
its child process) and puts the Outcome in the settle queue, where the settler thread
records outcomes in batches (one round trip for many completions). A job stays "held"
(its lease renewed by the heartbeat) from claim until its outcome is recorded.

A slot can abort its job when the lease is lost or can no longer be renewed: the child is
killed; a thread gets an exception injected at its next bytecode (best effort: a thread
blocked in C cannot be interrupted).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import queue as stdqueue
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import redis

from ..config import Settings
from ..job import Claimed
from ..keys import Keyspace
from . import child
from .runner import CRASH, TIMEOUT, Call, JobTimeout, Outcome, run

log = logging.getLogger("jobq.worker")
OnDone = Callable[[Sequence[tuple[Claimed, Outcome]]], None]
SETTLE_BATCH = 256
# How long the settler waits for more outcomes to batch with one it has (only while other
# jobs are held): a completion is recorded at most this much later.
SETTLE_WAIT_S = 0.002
POLL_S = 0.1  # how often a waiting slot checks its deadline and abort flag


@dataclass
class Running:
    job: Claimed
    lease_ok: float  # monotonic time the lease was last known renewed (a claim or extend send)
    slot: Slot | None = None  # None while the job waits in the inbox
    aborted: str = ""  # why the job's outcome must be dropped, if it must
    started: float = field(default_factory=time.monotonic)


class Slot:
    """One unit of concurrency. Subclasses define how a job is executed."""

    def __init__(self, pool: Pool, index: int) -> None:
        self.pool = pool
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
            job = self.pool._next(self)
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
            self.pool._executed(job, outcome)

    def warm(self) -> None:
        """Get ready for the next job while idle (called before waiting for one)."""

    def execute(self, job: Claimed) -> Outcome:
        raise NotImplementedError

    def abort(self, entry: Running) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release resources at shutdown (called in the slot thread)."""


class ThreadSlot(Slot):
    """Runs the job in the slot thread itself; timeouts are injected (best effort)."""

    def __init__(self, pool: Pool, index: int) -> None:
        super().__init__(pool, index)
        self._lock = threading.Lock()
        self._in_task: Claimed | None = None  # the job running in the thread now

    def execute(self, job: Claimed) -> Outcome:
        timeout_s = self.pool.timeout_for(job)
        timer = threading.Timer(timeout_s, self._interrupt, (job,)) if timeout_s > 0 else None
        call = Call(job.id, job.queue, job.fields)  # read-only here: no copy
        with self._lock:
            self._in_task = job
        try:
            if timer:
                timer.start()
            return run(call, self.pool.settings.max_payload_bytes, self.pool.saver(call))
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


class ProcessSlot(Slot):
    """Drives one long-lived child process, respawned after a crash or a kill."""

    def __init__(self, pool: Pool, index: int) -> None:
        super().__init__(pool, index)
        self.proc: BaseProcess | None = None
        self.conn: Connection | None = None
        self._kill = threading.Event()
        self._lock = threading.Lock()
        self._job: Claimed | None = None  # the job the child runs (or last ran)

    def _spawn(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent_conn, child_conn = ctx.Pipe()
        proc = ctx.Process(target=child.main, name=f"jobq-job-{self.index}", daemon=True,
                           args=(child_conn, self.pool.imports, self.pool.settings, os.getpid()))
        proc.start()
        child_conn.close()
        self.proc, self.conn = proc, parent_conn

    def warm(self) -> None:
        # Start the child while the slot is idle: a fresh interpreter importing the task
        # modules takes ~1 s on a small machine, which would otherwise delay the slot's first
        # job and the first job after every crash or kill.
        if self.pool.stopping.is_set():
            return  # a child started now would only be told to exit, once it has started
        if self.proc is None or not self.proc.is_alive():
            self._spawn()

    def execute(self, job: Claimed) -> Outcome:
        with self._lock:
            self._job = job
            self._kill.clear()
        if self.proc is None or not self.proc.is_alive():
            self._spawn()
        assert self.conn is not None and self.proc is not None
        timeout_s = self.pool.timeout_for(job)
        # The child interrupts itself at timeout_s; we kill it if it has not answered by then
        # plus the kill grace (a job blocked in C or ignoring signals).
        hard_deadline = (time.monotonic() + timeout_s + self.pool.settings.kill_grace_s
                         if timeout_s > 0 else float("inf"))
        try:
            self.conn.send((Call(job.id, job.queue, dict(job.fields)), timeout_s))
        except OSError:
            return self._crashed()
        while True:
            if self.conn.poll(POLL_S):
                try:
                    outcome: Outcome = self.conn.recv()
                    return outcome
                except (EOFError, OSError):
                    return self._crashed()
            self.pool.fence_one(job.queue, job.id)
            if self._kill.is_set():
                self._terminate()
                return Outcome(CRASH, error="job stopped by the worker", reason="aborted")
            if time.monotonic() > hard_deadline:
                self._terminate()
                return Outcome(TIMEOUT, error=f"jobq.Timeout: the job ran past timeout_s="
                               f"{timeout_s} and did not stop; its process was killed")
            if not self.proc.is_alive():
                return self._crashed()

    def _crashed(self) -> Outcome:
        assert self.proc is not None
        self.proc.join(2)
        code = self.proc.exitcode
        self.proc = None
        if code is not None and code < 0:
            try:
                what = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                what = f"killed by signal {-code}"
        else:
            what = f"exited with code {code}"
        return Outcome(CRASH, error=f"the job's process {what}", reason=what)

    def _terminate(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.join(5)
            self.proc = None

    def abort(self, entry: Running) -> None:
        # Only while that very job runs: the slot may have moved on to the next one.
        with self._lock:
            if self._job is entry.job:
                self._kill.set()

    def close(self) -> None:
        if self.conn is not None and self.proc is not None and self.proc.is_alive():
            with contextlib.suppress(OSError):
                self.conn.send(None)
            self.proc.join(2)
        self._terminate()


class Pool:
    """A fixed number of slots fed from one inbox; tracks every held job and its lease."""

    def __init__(self, settings: Settings, imports: Sequence[str], on_done: OnDone,
                 client: redis.Redis) -> None:
        self.settings = settings
        self.imports = list(imports)
        self.on_done = on_done
        self.client = client
        self.keys = Keyspace(settings.prefix)
        kind = ProcessSlot if settings.pool == "process" else ThreadSlot
        self.slots: list[Slot] = [kind(self, i) for i in range(settings.concurrency)]
        self.limit = settings.concurrency + settings.prefetch
        self._refill = max(1, (settings.prefetch + 1) // 2)  # least jobs worth a claim
        self._inbox: stdqueue.SimpleQueue[Claimed | None] = stdqueue.SimpleQueue()
        self._settle: stdqueue.SimpleQueue[tuple[Claimed, Outcome] | None] = stdqueue.SimpleQueue()
        self._settler = threading.Thread(target=self._settle_loop, name="jobq-settler",
                                         daemon=True)
        # Keyed by (queue, id): a job id is unique within its queue only.
        self._held: dict[tuple[str, str], Running] = {}
        self._cond = threading.Condition()
        # Set when stop() begins: idle slots must not start job processes any more.
        self.stopping = threading.Event()

    def start(self) -> None:
        for slot in self.slots:
            slot.start()
        self._settler.start()

    def timeout_for(self, job: Claimed) -> float:
        return job.float_field("timeout_s", self.settings.timeout_s)

    def saver(self, call: Call) -> Callable[[Mapping[str, str]], None]:
        client: Any = self.client

        def save(fields: Mapping[str, str]) -> None:
            client.hset(self.keys.job(call.queue, call.id), mapping=dict(fields))

        return save

    # -- used by the worker loop ------------------------------------------------------------
    def capacity(self) -> int:
        """How many more jobs this worker may claim now (free slots plus prefetch room)."""
        with self._cond:
            return max(0, self.limit - len(self._held))

    def busy(self) -> int:
        """Jobs held: waiting, running, or waiting for their outcome to be recorded."""
        with self._cond:
            return len(self._held)

    def wait_capacity(self, timeout_s: float) -> bool:
        """Wait until a claim is worth making; False on timeout. That is when a slot may
        run out of work (fewer jobs held than slots), or when at least half the prefetch
        room is free: refilling in batches instead of one job per settled job keeps the
        claims, and the Redis work per job, small (a claim's fixed cost is most of it)."""
        with self._cond:
            return self._cond.wait_for(self._claim_due, timeout_s)

    def _claim_due(self) -> bool:
        held = len(self._held)
        return held < self.settings.concurrency or held <= self.limit - self._refill

    def wait_change(self, timeout_s: float) -> None:
        """Wait until some held job is settled (or the timeout)."""
        with self._cond:
            n = len(self._held)
            self._cond.wait_for(lambda: len(self._held) != n, timeout_s)

    def submit(self, job: Claimed, leased_at: float) -> None:
        with self._cond:
            self._held[(job.queue, job.id)] = Running(job, leased_at)
        self._inbox.put(job)

    # -- used by the heartbeat ------------------------------------------------------------
    def leases(self) -> list[Claimed]:
        with self._cond:
            return [r.job for r in self._held.values() if not r.aborted]

    def renewed(self, queue: str, job_ids: Sequence[str], sent_at: float) -> None:
        with self._cond:
            for job_id in job_ids:
                entry = self._held.get((queue, job_id))
                if entry is not None:
                    entry.lease_ok = max(entry.lease_ok, sent_at)

    def abort(self, queue: str, job_id: str, why: str) -> None:
        """Stop a job whose lease is gone; its outcome will not be recorded."""
        with self._cond:
            entry = self._held.get((queue, job_id))
            if entry is None or entry.aborted:
                return
            entry.aborted = why
            slot = entry.slot
        log.warning("stopping job %s: %s", job_id, why)
        if slot is not None:
            slot.abort(entry)

    def _stale(self, entry: Running, now: float) -> bool:
        # A lease renewed (sent) at lease_ok expires no earlier than lease_ok + lease_s by
        # Redis's clock. Stop the job a margin before that: the margin is a heartbeat, or
        # less when the lease is short, so a healthy worker (renewing every heartbeat) never
        # trips it.
        s = self.settings
        margin = min(s.heartbeat_s, (s.lease_s - s.heartbeat_s) / 2)
        return not entry.aborted and now > entry.lease_ok + s.lease_s - margin

    def fence(self, now: float) -> None:
        """Abort jobs whose lease could not be renewed and may soon expire."""
        with self._cond:
            stale = [key for key, r in self._held.items() if self._stale(r, now)]
        for queue, job_id in stale:
            self.abort(queue, job_id, "its lease could not be renewed in time (Redis "
                       "unreachable?); another worker will run it")

    def fence_one(self, queue: str, job_id: str) -> None:
        with self._cond:
            entry = self._held.get((queue, job_id))
            stale = entry is not None and self._stale(entry, time.monotonic())
        if stale:
            self.abort(queue, job_id, "its lease could not be renewed in time (Redis "
                       "unreachable?); another worker will run it")

    def running(self) -> list[Running]:
        with self._cond:
            return list(self._held.values())

    def _entry(self, job: Claimed) -> Running | None:
        """The held entry of this very claim (same token), not of a later claim of the job."""
        entry = self._held.get((job.queue, job.id))
        return entry if entry is not None and entry.job.token == job.token else None

    # -- used by slots and the settler ------------------------------------------------------
    def _next(self, slot: Slot) -> Claimed | None:
        """The next job for `slot` (None: stop); jobs aborted while waiting are dropped."""
        while True:
            job = self._inbox.get()
            if job is None:
                return None
            with self._cond:
                entry = self._entry(job)
                if entry is not None and not entry.aborted:
                    entry.slot = slot
                    entry.started = time.monotonic()
                    return job
            # Not run: the settler only has to forget it (the stopping worker or the new
            # lease holder owns it now).
            self._settle.put((job, Outcome(CRASH, reason="aborted before it started")))

    def _executed(self, job: Claimed, outcome: Outcome) -> None:
        self._settle.put((job, outcome))

    def _settle_loop(self) -> None:
        while True:
            first = self._settle.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + SETTLE_WAIT_S
            while len(batch) < SETTLE_BATCH:
                try:
                    item = self._settle.get_nowait()
                except stdqueue.Empty:
                    # More outcomes are due soon when more jobs are held than this batch
                    # has: wait a little for them, so one script call records many.
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._more_coming(len(batch)):
                        break
                    try:
                        item = self._settle.get(timeout=left)
                    except stdqueue.Empty:
                        break
                if item is None:
                    self._settle.put(None)  # stop after this batch
                    break
                batch.append(item)
            self._settle_batch(batch)

    def _more_coming(self, batched: int) -> bool:
        with self._cond:
            return len(self._held) > batched

    def _settle_batch(self, batch: Sequence[tuple[Claimed, Outcome]]) -> None:
        keep: list[tuple[Claimed, Outcome]] = []
        with self._cond:
            for job, outcome in batch:
                entry = self._entry(job)
                if entry is not None and entry.aborted and entry.slot is None:
                    pass  # never started (stopping, or its lease was lost while it waited)
                elif entry is not None and entry.aborted:
                    log.warning("dropped the outcome of job %s (%s): %s", job.id, outcome.kind,
                                entry.aborted)
                elif entry is not None:
                    keep.append((job, outcome))
                else:
                    log.warning("dropped the outcome of job %s (%s): it is no longer held "
                                "under this lease", job.id, outcome.kind)
        if keep:
            try:
                self.on_done(keep)
            except Exception:
                log.exception("recording the outcomes of %d jobs failed", len(keep))
        with self._cond:
            for job, _ in batch:
                if self._entry(job) is not None:
                    del self._held[(job.queue, job.id)]
            self._cond.notify_all()

    def take_waiting(self) -> list[Claimed]:
        """Mark the jobs no slot has started as not to run, and return them to hand back."""
        with self._cond:
            waiting = [r for r in self._held.values() if r.slot is None and not r.aborted]
            for r in waiting:
                r.aborted = "worker stopping"
        return [r.job for r in waiting]

    def stop(self, grace_s: float, hard: threading.Event) -> list[Claimed]:
        """Hand back jobs not started; let running ones finish within `grace_s` (or until
        `hard` is set), abort the rest. Returns the jobs to hand back."""
        deadline = time.monotonic() + grace_s
        self.stopping.set()
        waiting = self.take_waiting()
        for _ in self.slots:
            self._inbox.put(None)
        with self._cond:
            while (any(r.slot is not None and not r.aborted for r in self._held.values())
                   and time.monotonic() < deadline and not hard.is_set()):
                self._cond.wait(0.1)
            running = [r for r in self._held.values() if r.slot is not None and not r.aborted]
            for r in running:
                r.aborted = "worker stopping"
        for r in running:
            if r.slot is not None:
                r.slot.abort(r)
        for slot in self.slots:
            slot.thread.join(5)
        self._settle.put(None)
        self._settler.join(5 if hard.is_set() else self.settings.socket_timeout_s + 5)
        return [*waiting, *(r.job for r in running)]
