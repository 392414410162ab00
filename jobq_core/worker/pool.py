"""Slots that run jobs: each slot is a thread, and in the process pool it drives one child.

Claimed jobs wait in one inbox; a free slot takes the next, runs it (in the thread, or in
its child process) and puts the Outcome in the settle queue, where the settler thread
records outcomes in batches (one round trip for many completions). A job stays "held"
(its lease renewed by the heartbeat) from claim until its outcome is recorded. A process
slot also queues the jobs waiting in the inbox in its child, behind the running one (see
ProcessSlot); such a job still counts as waiting until the child begins it.

A slot can abort its job when the lease is lost or can no longer be renewed: the child is
killed (a job queued in it that has not begun is withdrawn instead); a thread gets an
exception injected at its next bytecode (best effort: a thread blocked in C cannot be
interrupted).
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
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import redis

from ..config import Settings
from ..job import Claimed
from ..keys import Keyspace
from ..runner import CRASH, TIMEOUT, Call, JobTimeout, Outcome, run
from . import child

log = logging.getLogger("jobq.worker")
OnDone = Callable[[Sequence[tuple[Claimed, Outcome]]], None]
SETTLE_BATCH = 256
# How long the settler waits for more outcomes to batch with one it has (only while other
# jobs are held): a completion is recorded at most this much later.
SETTLE_WAIT_S = 0.002
POLL_S = 0.1  # how often a waiting slot checks its deadline and abort flag
# A process slot sends its child up to this many jobs (the running one included), and up to
# this much job data past the first: far below a socket buffer, so sending never blocks.
AHEAD_JOBS = 16
AHEAD_BYTES = 32 * 1024
# The outcome of a job taken back before it started: never recorded, only forgotten.
NOT_STARTED = Outcome(CRASH, reason="aborted before it started")


@dataclass
class Running:
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

    def withdraw(self, entry: Running) -> bool:
        """Take back a job queued in this slot so that it never starts here (it is then
        reported by no one); False if it has started (or is not here)."""
        return False

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


@dataclass(eq=False)
class _Ticket:
    """A job a process slot has taken, until its outcome is reported."""

    job: Claimed
    timeout_s: float
    size: int  # about the bytes it takes in the pipe
    n: int = 0  # its number in the current child (child.Progress); 0 while not sent
    began: bool = False  # the pool was told it started


class ProcessSlot(Slot):
    """Drives one long-lived child process, respawned after a crash or a kill.

    While its child runs a job, the slot sends it the next few jobs waiting in the inbox (up
    to AHEAD_JOBS, or AHEAD_BYTES of job data), so the child goes on to the next job without
    a round trip to the parent. A job sent ahead counts as waiting (Running.queued_in) until
    the child begins it: until then it can still be withdrawn (aborted, handed back when the
    worker stops, or given to an idle slot when the job ahead of it runs long), and if the
    child dies before it began, it is sent to the next child, not counted as crashed.
    """

    def __init__(self, pool: Pool, index: int) -> None:
        super().__init__(pool, index)
        self.proc: BaseProcess | None = None
        self.conn: Connection | None = None
        self.outcomes: child.Outcomes | None = None
        self.progress: child.Progress | None = None
        self.idle = False  # waiting for the inbox: jobs queued in other slots could run here
        self._lock = threading.Lock()  # guards the tickets and which child they are in
        self._tickets: deque[_Ticket] = deque()  # in the order the child runs them
        self._sent = 0  # number of the last job sent to the current child
        self._kill: _Ticket | None = None  # a job that began and must be stopped (aborted)
        self._mark = time.monotonic()  # when the child last reported an outcome or was fed

    def _spawn(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent_conn, child_conn = ctx.Pipe()
        progress = child.Progress(ctx)
        proc = ctx.Process(target=child.main, name=f"jobq-job-{self.index}", daemon=True,
                           args=(child_conn, self.pool.imports, self.pool.settings, os.getpid(),
                                 progress))
        proc.start()
        child_conn.close()
        with self._lock:
            old = self.conn  # of a child that died idle
            self.proc, self.conn, self.progress, self._sent = proc, parent_conn, progress, 0
            self.outcomes = child.Outcomes(parent_conn.fileno())
        if old is not None:
            old.close()

    def warm(self) -> None:
        # Start the child while the slot is idle: a fresh interpreter importing the task
        # modules takes ~1 s on a small machine, which would otherwise delay the slot's first
        # job and the first job after every crash or kill.
        if self.pool.stopping.is_set():
            return  # a child started now would only be told to exit, once it has started
        if self.proc is None or not self.proc.is_alive():
            self._terminate()
            self._spawn()

    def _loop(self) -> None:
        while True:
            if not self._tickets:
                try:
                    self.warm()
                except Exception:  # sending tries again; a failed warm-up must not kill the slot
                    log.exception("slot %s could not prepare for its next job", self.index)
                self.idle = True
                job = self.pool._next(self)
                self.idle = False
                if job is None:
                    self.close()
                    return
                with self._lock:
                    self._tickets.append(self._ticket(job, began=True))
            try:
                self._send()  # first: the child may be waiting for it
                if self._take_more():
                    self._send()
                self._wait()
            except Exception as exc:  # a bug of ours must not kill the slot
                log.exception("slot %s failed running its jobs", self.index)
                self._stop(None, Outcome(CRASH, error=repr(exc), reason="worker error"))

    def _ticket(self, job: Claimed, began: bool = False) -> _Ticket:
        size = sum(len(k) + len(v) for k, v in job.fields.items())
        return _Ticket(job, self.pool.timeout_for(job), size, began=began)

    def _take_more(self) -> bool:
        """Take jobs already waiting in the inbox to send ahead, unless a slot is idle (it
        should run them) or the slot has enough queued. Never waits for a job. Whether it
        took any."""
        with self._lock:  # other threads may withdraw tickets at any time
            if (not self._tickets or len(self._tickets) > AHEAD_JOBS // 2
                    or not self._tickets[-1].n):
                return False  # refill in batches; nothing more while AHEAD_BYTES holds one back
        if any(s.idle for s in self.pool.slots if isinstance(s, ProcessSlot)):
            return False
        took = False
        while len(self._tickets) < AHEAD_JOBS:
            job = self.pool._take(self)
            if job is None:
                break
            with self._lock:
                self._tickets.append(self._ticket(job))
            took = True
        return took

    def _send(self) -> None:
        """Send the child the jobs not sent yet, within AHEAD_BYTES past the first."""
        with self._lock:
            if not self._tickets or self._tickets[-1].n:
                return
            fresh = self._tickets[0].n == 0  # the child has none of the jobs
        if fresh and (self.proc is None or not self.proc.is_alive()):
            self._terminate()  # a child that died idle (or never started) is just replaced
            self._spawn()
        with self._lock:
            ahead = sum(t.size for t in self._tickets if t.n)
            jobs: child.Jobs = []
            for t in self._tickets:
                if t.n:
                    continue
                # A job sent ahead waits in the pipe while the child is busy: bounded so the
                # send never blocks (the child would block sending us its outcome).
                if (ahead or jobs) and ahead + t.size > AHEAD_BYTES:
                    break
                self._sent += 1
                t.n = self._sent
                ahead += t.size
                jobs.append((t.n, Call(t.job.id, t.job.queue, dict(t.job.fields)), t.timeout_s))
            conn = self.conn
        if not jobs:
            return
        if fresh:
            self._mark = time.monotonic()
        assert conn is not None
        with contextlib.suppress(OSError):  # the child is gone: _wait finds out
            conn.send(jobs)

    def _wait(self) -> None:
        """Wait up to POLL_S for what the child reports; watch the running job if nothing."""
        conn, outcomes = self.conn, self.outcomes
        with self._lock:
            if conn is None or outcomes is None or not any(t.n for t in self._tickets):
                return  # every job sent was withdrawn meanwhile
        if outcomes.wait(POLL_S if self._kill is None else 0):
            try:
                got = outcomes.read()
            except OSError:
                got = None
            if got is None:
                self._stop(None, None)
                return
            for msg in got:
                self._received(msg)
            return
        self._watch()

    def _received(self, msg: tuple[int, Outcome]) -> None:
        n, outcome = msg
        self._mark = now = time.monotonic()
        with self._lock:
            t = next((t for t in self._tickets if t.n == n), None)
            if t is None:
                return
            self._tickets.remove(t)
            if self._kill is t:
                self._kill = None
        if not t.began:
            self.pool._began(self, t.job, now - outcome.runtime_ms / 1000)
        self.pool._executed(t.job, outcome)

    def _watch(self) -> None:
        """The child said nothing for POLL_S: check the job it runs (or should begin next)."""
        assert self.progress is not None and self.proc is not None
        with self._lock:
            sent = [t for t in self._tickets if t.n]
        if not sent:
            return
        with self._held(self.progress, self.proc):
            begun, at = self.progress.begun()
        t = next((t for t in sent if t.n == begun), None)
        if t is not None and not t.began:
            t.began = True
            self.pool._began(self, t.job, at)
        head = t or sent[0]  # the jobs before it have ended
        start = at if t is not None else self._mark  # not begun: the child is not ready
        self.pool.fence_one(head.job.queue, head.job.id)
        with self._lock:
            if head not in self._tickets:
                return  # aborted before it began: withdrawn, nothing to stop
        kill = self._kill
        if kill is not None:
            self._stop(kill, Outcome(CRASH, error="job stopped by the worker", reason="aborted"))
        elif head.timeout_s > 0 and (time.monotonic() > start + head.timeout_s
                                     + self.pool.settings.kill_grace_s):
            # The child interrupts itself at timeout_s; we kill it if it has not answered by
            # then plus the kill grace (a job blocked in C or ignoring signals).
            self._stop(head, Outcome(TIMEOUT, error=f"jobq.Timeout: the job ran past "
                                     f"timeout_s={head.timeout_s} and did not stop; its "
                                     "process was killed"))
        elif not self.proc.is_alive():
            self._stop(None, None)
        elif t is not None and len(self._tickets) > 1:
            self._give_back()

    @staticmethod
    @contextlib.contextmanager
    def _held(progress: child.Progress, proc: BaseProcess) -> Iterator[None]:
        """Hold the Progress lock: the child cannot begin a job meanwhile. Not held if the
        child dies (it may have died holding it); its Progress is then final anyway."""
        lock = progress.lock
        while not lock.acquire(timeout=POLL_S):
            if not proc.is_alive():
                yield
                return
        try:
            yield
        finally:
            lock.release()

    def _stop(self, target: _Ticket | None, outcome: Outcome | None) -> None:
        """Kill the child (if it still runs `target`, or whatever it runs if None) and
        settle its jobs: `target` (or the job the child had begun, if None) gets `outcome`
        (None: a crash), the jobs it had not begun go to the next child."""
        proc, conn, progress = self.proc, self.conn, self.progress
        if proc is not None and outcome is None:
            proc.join(2)  # a crash: let it finish dying, to read its exit code
        if proc is not None and progress is not None:
            with self._held(progress, proc):
                begun, _ = progress.begun()
                if target is not None and begun > target.n:
                    return  # it has ended; its outcome is on its way
                # Killed holding the lock: it cannot begin another job before it dies.
                proc.kill()
                proc.join(5)
        # What the child sent before it died is still in the pipe.
        outcomes = self.outcomes
        while outcomes is not None:
            try:
                got = outcomes.read() if outcomes.wait(0) else None
            except OSError:
                got = None
            if got is None:
                break
            for msg in got:
                self._received(msg)
        begun = progress.begun()[0] if progress is not None else 0
        with self._lock:
            left = list(self._tickets)
            if target is None:
                target = next((t for t in left if t.n and t.n == begun), None)
                never_began = begun == 0 and left and left[0].n
                if target is None and left and (outcome is not None or never_began):
                    # A child that died before beginning any job (or a bug of ours) is blamed
                    # on the first job, as if it had begun: else it could recur for ever.
                    target = left[0]
            elif target not in left:
                target = None  # it ended before the kill: its outcome was read above
            self._tickets = deque(t for t in left if t is not target)
            for t in self._tickets:
                t.n = 0  # not begun: sent again to the next child
            self._kill = None
        if outcome is None:
            outcome = self._crash_outcome(proc)
        self._terminate()
        if conn is not None:
            conn.close()
        with self._lock:
            self.conn, self.outcomes, self.progress = None, None, None
        if target is not None:
            if not target.began:
                self.pool._began(self, target.job, time.monotonic())
            self.pool._executed(target.job, outcome)

    @staticmethod
    def _crash_outcome(proc: BaseProcess | None) -> Outcome:
        code = proc.exitcode if proc is not None else None
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

    def _withdraw(self, t: _Ticket) -> bool:
        """Make sure the job of `t` never begins here (holding self._lock); False if it has
        begun already."""
        if t.n and self.progress is not None and self.proc is not None:
            with self._held(self.progress, self.proc):
                if not self.progress.withdraw(t.n):
                    return False
        self._tickets.remove(t)
        if self._kill is t:
            self._kill = None
        return True

    def _give_back(self) -> None:
        """The job ahead runs long: give the jobs queued behind it to an idle slot."""
        if self.pool.stopping.is_set() or not any(
                s.idle for s in self.pool.slots if isinstance(s, ProcessSlot) and s is not self):
            return

        def withdraw_all() -> list[Claimed]:
            with self._lock:
                return [t.job for t in list(self._tickets) if self._withdraw(t)]

        self.pool._give_back(withdraw_all)

    def withdraw(self, entry: Running) -> bool:
        with self._lock:
            t = next((t for t in self._tickets if t.job is entry.job), None)
            return t is not None and self._withdraw(t)

    def abort(self, entry: Running) -> None:
        with self._lock:
            t = next((t for t in self._tickets if t.job is entry.job), None)
            if t is None:
                return  # it ended: the slot may have moved on to the next one
            if not self._withdraw(t):
                self._kill = t  # it runs: the slot kills the child
                return
        self.pool._executed(entry.job, NOT_STARTED)

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
            old = self._held.get((job.queue, job.id))
            self._held[(job.queue, job.id)] = Running(job, leased_at)
            # Claimed again (its earlier lease was lost): an earlier claim still queued in a
            # slot must not start, as one still in the inbox will not (_next drops it).
            if old is not None and old.queued_in is not None:
                old.queued_in.withdraw(old)
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
        """Stop a job whose lease is gone; its outcome will not be recorded. A job whose
        outcome is being recorded has ended: nothing to stop, and nothing lost to report
        (the write says whether the lease was still held)."""
        with self._cond:
            entry = self._held.get((queue, job_id))
            if entry is None or entry.aborted or entry.settling:
                return
            entry.aborted = why
            slot = entry.slot or entry.queued_in
        log.warning("stopping job %s: %s", job_id, why)
        if slot is not None:
            slot.abort(entry)

    def _stale(self, entry: Running, now: float) -> bool:
        # lease_ok: when the last renewal that Redis acknowledged was sent.
        return not entry.aborted and now > entry.lease_ok + self.settings.fence_after_s

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

    def _take(self, slot: Slot) -> Claimed | None:
        """Another job for `slot` to queue behind the ones it has, if one waits in the
        inbox now (never waits; None once stopping). It stays waiting until _began."""
        while not self.stopping.is_set():
            try:
                job = self._inbox.get_nowait()
            except stdqueue.Empty:
                return None
            if job is None:  # a stop sentinel: leave it to the slot's next _next()
                self._inbox.put(None)
                return None
            with self._cond:
                entry = self._entry(job)
                if entry is not None and not entry.aborted:
                    entry.queued_in = slot
                    return job
            self._settle.put((job, NOT_STARTED))
        return None

    def _began(self, slot: Slot, job: Claimed, at: float) -> None:
        """A job queued in `slot` has started (at `at`, monotonic)."""
        with self._cond:
            entry = self._entry(job)
            if entry is not None and entry.slot is None:
                entry.slot, entry.queued_in, entry.started = slot, None, at

    def _give_back(self, withdraw: Callable[[], list[Claimed]]) -> None:
        """Put jobs a slot had queued (`withdraw` takes them out of it) back in the inbox."""
        # Under the lock: take_waiting() finds each job either queued in the slot or waiting
        # in the inbox, never in between.
        with self._cond:
            jobs = withdraw()
            for job in jobs:
                entry = self._entry(job)
                if entry is not None:
                    entry.slot = entry.queued_in = None
        for job in jobs:
            self._inbox.put(job)

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
        with self._cond:
            for job, _ in batch:
                if self._entry(job) is not None:
                    del self._held[(job.queue, job.id)]
            self._cond.notify_all()

    def take_waiting(self) -> list[Claimed]:
        """Mark the jobs no slot has started as not to run, and return them to hand back."""
        with self._cond:
            waiting = [r for r in self._held.values() if r.slot is None and not r.aborted]
            back: list[Running] = []
            for r in waiting:
                if r.queued_in is not None:
                    if not r.queued_in.withdraw(r):  # it started meanwhile: it runs
                        r.slot, r.queued_in = r.queued_in, None
                        continue
                    r.queued_in = None
                    self._settle.put((r.job, NOT_STARTED))  # its slot no longer has it
                r.aborted = "worker stopping"
                back.append(r)
        return [r.job for r in back]

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
