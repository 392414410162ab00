"""A slot that runs its jobs in a long-lived child process (Settings.pool = "process").

While its child runs a job, the slot sends it the next few jobs waiting in the inbox, so the
child goes on without a round trip to the parent; such a job still counts as waiting until
the child begins it. A job whose lease is lost is withdrawn if it has not begun, else the
child is killed; a child that crashes or is killed is respawned. An idle slot's child may also
wait and claim for the worker, and begin the job it claims itself (child_wait.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import queue as stdqueue
import select
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from ..job import Claimed
from ..nap import nap
from ..runner import CRASH, TIMEOUT, Outcome
from . import child
from .ledger import Running
from .mpcontext import context
from .slots import NOT_STARTED, Slot, SlotFeed

log = logging.getLogger("jobq.worker")
POLL_S = 0.1  # how often a waiting slot checks its deadline and abort flag
# A process slot sends its child up to this many jobs (the running one included), and up to
# this much job data past the first: far below a socket buffer, so sending never blocks.
AHEAD_JOBS = 64
AHEAD_BYTES = 64 * 1024
# While its child gets through short jobs faster than the slot could wake up for each outcome,
# the slot naps this long between reads instead of waiting on the pipe (with at least NAP_MIN
# jobs queued in the child, so it never runs dry meanwhile): one wake-up then takes in the
# outcomes of many jobs, and the child's writes wake no one. A wake-up per job cost the parent
# more CPU than the job itself, and on 2 cores that CPU is what the children wait for.
NAP_S = 0.0005
NAP_MIN = 8


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

    forwards = True

    def __init__(self, feed: SlotFeed, index: int) -> None:
        super().__init__(feed, index)
        self.proc: BaseProcess | None = None
        self.conn: Connection | None = None
        self.outcomes: child.Outcomes | None = None
        self.progress: child.Progress | None = None
        self._lock = threading.Lock()  # guards the tickets and which child they are in
        self._tickets: deque[_Ticket] = deque()  # in the order the child runs them
        self._sent = 0  # number of the last job sent to the current child
        self._kill: _Ticket | None = None  # a job that began and must be stopped (aborted)
        self._mark = time.monotonic()  # when the child last reported an outcome or was fed
        self._exited: select.poll | None = None  # the child's sentinel, to poll (see gone)
        self._nap = False  # the last read took in several outcomes: nap before the next
        # While idle, the slot waits here (not on the pool's inbox) for its next job: (job,
        # whether hand() has sent it to the child already), or None: stop. See Pool.submit.
        self.mailbox: stdqueue.SimpleQueue[tuple[Claimed, bool] | None] = stdqueue.SimpleQueue()

    def _spawn(self) -> None:
        ctx = context(self.feed.imports)
        parent_conn, child_conn = ctx.Pipe()
        progress = child.Progress(ctx)
        proc = ctx.Process(target=child.main, name=f"jobq-job-{self.index}", daemon=True,
                           args=(child_conn, self.feed.imports, self.feed.settings, os.getpid(),
                                 progress))
        proc.start()
        child_conn.close()
        exited = select.poll()
        exited.register(proc.sentinel, select.POLLIN)
        with self._lock:
            old = self.conn  # of a child that died idle
            self.proc, self.conn, self.progress, self._sent = proc, parent_conn, progress, 0
            self._exited = exited
            self.outcomes = child.Outcomes(parent_conn.fileno())
        if old is not None:
            old.close()

    def gone(self) -> bool:
        """Whether the child has exited (or was never started): what is_alive() tells, from a
        poll of its sentinel (readable once it exited) set up at spawn, at a tenth of the cost
        (is_alive builds a selector each call; this runs before every job sent to an idle
        child). Cheap and safe from any thread; a child can exit right after a False, so a
        caller that then sends it something must still handle the send failing."""
        return self.proc is None or self._exited is None or bool(self._exited.poll(0))

    def warm(self) -> None:
        """Start a child if the slot has none alive (a dead one is terminated first); not
        once the pool stops. Called by the slot's own thread between jobs, or by another
        thread while the slot is reserved (Pool.reserve_idle: its thread is parked on its
        mailbox then, so nothing else touches the child)."""
        # Start the child while the slot is idle: a fresh interpreter importing the task
        # modules takes ~1 s on a small machine, which would otherwise delay the slot's first
        # job and the first job after every crash or kill.
        if self.feed.stopping.is_set():
            return  # a child started now would only be told to exit, once it has started
        if self.gone():
            self.terminate()
            self._spawn()

    def _loop(self) -> None:
        while True:
            if not self._tickets:
                try:
                    self.warm()
                except Exception:  # sending tries again; a failed warm-up must not kill the slot
                    log.exception("slot %s could not prepare for its next job", self.index)
                self.idle = True
                got = self.feed.next_or_handed(self)
                self.idle = False
                if got is None:
                    self.close()
                    return
                job, handed = got
                if not handed:
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
        fields = job.fields
        size = sum(map(len, fields)) + sum(map(len, fields.values()))
        return _Ticket(job, self.feed.timeout_for(job), size, began=began)

    def hand(self, job: Claimed) -> bool:
        """Send `job` to the child of this idle slot from the calling thread (the worker
        loop's, as soon as the claim's reply is read: the job does not wait for the slot
        thread to wake up and take the GIL first); the slot finds it sent when it wakes (its
        mailbox). False, sending nothing, if the child has exited or not started: the slot
        thread starts one first. The ticket is in place before the send, so the outcome,
        a crash, a withdrawal or an abort are accounted for as for any job the slot sent."""
        if self.gone():
            return False
        with self._lock:
            self._tickets.append(self._ticket(job, began=True))
        try:
            self._send(handed=True)
        except Exception:  # the slot thread sends it again (_loop), or settles it
            log.exception("slot %s could not send job %s to its child", self.index, job.id)
        return True

    def send_order(self, make: Callable[[int], object]) -> int | None:
        """Send the idle child `make(n)` (a child_wait.WaitOrder; n: its next job's number) while
        the slot thread waits on its mailbox (Pool.reserve_idle); n, or None if it is gone."""
        with self._lock:
            if self.gone() or self.conn is None:
                return None
            self._sent += 1
            n, conn = self._sent, self.conn
        try:
            conn.send_bytes(pickle.dumps(make(n), pickle.HIGHEST_PROTOCOL))
        except OSError:
            return None
        return n

    def adopt(self, job: Claimed, n: int) -> None:
        """Take on `job`, which the child claimed and began as number `n` (child_wait.py)."""
        t = self._ticket(job, began=True)
        with self._lock:
            t.n = n
            self._tickets.append(t)
            self._mark = time.monotonic()

    def _take_more(self) -> bool:
        """Take jobs already waiting in the inbox to send ahead, unless a slot is idle (it
        should run them) or the slot has enough queued. Never waits for a job. Whether it
        took any."""
        with self._lock:  # other threads may withdraw tickets at any time
            if (not self._tickets or len(self._tickets) > AHEAD_JOBS // 2
                    or not self._tickets[-1].n):
                return False  # refill in batches; nothing more while AHEAD_BYTES holds one back
            room = AHEAD_JOBS - len(self._tickets)
        if self.feed.idle_slot(self):
            return False
        jobs = self.feed.take(self, room)
        if jobs:
            tickets = [self._ticket(job) for job in jobs]
            with self._lock:
                self._tickets.extend(tickets)
        return bool(jobs)

    def _send(self, handed: bool = False) -> None:
        """Send the child the jobs not sent yet, within AHEAD_BYTES past the first. `handed`:
        from hand(), which has just seen the child alive, and whose job the pool counts as
        on its way already (Pool._dispatch): neither is done again between the claim's reply
        and the child's start."""
        with self._lock:
            if not self._tickets or self._tickets[-1].n:
                return
            fresh = self._tickets[0].n == 0  # the child has none of the jobs
        if fresh and not handed and self.gone():
            self.terminate()  # a child that died idle (or never started) is just replaced
            self._spawn()
        with self._lock:
            ahead = sum(t.size for t in self._tickets if t.n)
            jobs: child.Jobs = []
            first = self._tickets[0].job
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
                fields = t.job.fields
                jobs.append((t.n, t.job.id, t.job.queue,
                             fields if type(fields) is dict else dict(fields), t.job.token,
                             t.timeout_s))
            conn = self.conn
        if not jobs:
            return
        if fresh:
            self._mark = time.monotonic()
        assert conn is not None
        # Pickled here, not by conn.send(): multiprocessing's pickler copies the copyreg
        # table for every message, and the jobs are plain strings (the payload stays the JSON
        # it was stored as).
        data = pickle.dumps(jobs, pickle.HIGHEST_PROTOCOL)
        with contextlib.suppress(OSError):  # the child is gone: _wait finds out
            conn.send_bytes(data)
        if fresh and not handed:
            self.feed.forwarded(first)

    def _wait(self) -> None:
        """Wait up to POLL_S for what the child reports; watch the running job if nothing.
        While outcomes come in faster than one per wake-up, nap NAP_S instead (see NAP_S)."""
        conn, outcomes = self.conn, self.outcomes
        with self._lock:
            queued = sum(1 for t in self._tickets if t.n)
            if conn is None or outcomes is None or not queued:
                return  # every job sent was withdrawn meanwhile
        if outcomes.buffered():  # read with a wait's report (child_wait.py)
            self._received(outcomes.ready())
            return
        if self._nap and queued >= NAP_MIN and self._kill is None:
            nap(NAP_S)  # not time.sleep: see jobq_core/nap.py
            ready = outcomes.wait(0)
            if not ready:  # the child is slower than that now: wait on the pipe again
                self._nap = False
                return
        else:
            ready = outcomes.wait(POLL_S if self._kill is None else 0)
        if ready:
            try:
                got = outcomes.read()
            except OSError:
                got = None
            if got is None:
                self._stop(None, None)
                return
            self._nap = len(got) > 1
            self._received(got)
            return
        self._watch()

    def _received(self, got: list[tuple[int, Outcome]]) -> None:
        """Outcomes the child sent: the jobs leave the slot and go to the pool together (one
        hand-off per read, not per job)."""
        if not got:
            return
        self._mark = now = time.monotonic()
        ended: list[tuple[Claimed, Outcome, float | None]] = []
        with self._lock:
            tickets = self._tickets
            for n, outcome in got:
                # Outcomes come in the order sent: the ticket is almost always the first.
                t = tickets[0] if tickets and tickets[0].n == n else next(
                    (t for t in tickets if t.n == n), None)
                if t is None:
                    continue
                tickets.remove(t)
                if self._kill is t:
                    self._kill = None
                ended.append((t.job, outcome,
                              None if t.began else now - outcome.runtime_ms / 1000))
        self.feed.executed_many(self, ended)

    def _watch(self) -> None:
        """The child said nothing for POLL_S: check the job it runs (or should begin next)."""
        assert self.progress is not None and self.proc is not None
        with self._lock:
            sent = [t for t in self._tickets if t.n]
        if not sent:
            return
        with self.progress.held(self.proc):
            begun, at = self.progress.begun()
        t = next((t for t in sent if t.n == begun), None)
        if t is not None and not t.began:
            t.began = True
            self.feed.began(self, t.job, at)
        head = t or sent[0]  # the jobs before it have ended
        start = at if t is not None else self._mark  # not begun: the child is not ready
        self.feed.fence_one(head.job.queue, head.job.id)
        with self._lock:
            if head not in self._tickets:
                return  # aborted before it began: withdrawn, nothing to stop
        kill = self._kill
        if kill is not None:
            self._stop(kill, Outcome(CRASH, error="job stopped by the worker", reason="aborted"))
        elif head.timeout_s > 0 and (time.monotonic() > start + head.timeout_s
                                     + self.feed.settings.kill_grace_s):
            # The child interrupts itself at timeout_s; we kill it if it has not answered by
            # then plus the kill grace (a job blocked in C or ignoring signals).
            self._stop(head, Outcome(TIMEOUT, error=f"jobq.Timeout: the job ran past "
                                     f"timeout_s={head.timeout_s} and did not stop; its "
                                     "process was killed"))
        elif not self.proc.is_alive():
            self._stop(None, None)
        elif t is not None and len(self._tickets) > 1:
            self._give_back()

    def _stop(self, target: _Ticket | None, outcome: Outcome | None) -> None:
        """Kill the child (if it still runs `target`, or whatever it runs if None) and
        settle its jobs: `target` (or the job the child had begun, if None) gets `outcome`
        (None: a crash), the jobs it had not begun go to the next child."""
        proc, conn, progress = self.proc, self.conn, self.progress
        if not self._kill_child(target, crashed=outcome is None):
            return  # it has ended; its outcome is on its way
        self._drain()
        begun = progress.begun()[0] if progress is not None else 0
        target = self._blame(target, begun, crashed=outcome is None)
        if outcome is None:
            outcome = self._crash_outcome(proc)
        self.terminate()
        if conn is not None:
            conn.close()
        with self._lock:
            self.conn, self.outcomes, self.progress = None, None, None
        if target is not None:
            if not target.began:
                self.feed.began(self, target.job, time.monotonic())
            self.feed.executed(target.job, outcome)

    def _kill_child(self, target: _Ticket | None, crashed: bool) -> bool:
        """Kill the child unless it has gone past `target` (then False: the outcome of
        `target` is on its way, and the child lives on)."""
        proc, progress = self.proc, self.progress
        if proc is not None and crashed:
            proc.join(2)  # let it finish dying, to read its exit code
        if proc is not None and progress is not None:
            with progress.held(proc):
                begun, _ = progress.begun()
                if target is not None and begun > target.n:
                    return False
                # Killed holding the lock: it cannot begin another job before it dies.
                proc.kill()
                proc.join(5)
        return True

    def _drain(self) -> None:
        """Take in the outcomes the child sent before it died (still in the pipe)."""
        outcomes = self.outcomes
        while outcomes is not None:
            try:
                got = outcomes.read() if outcomes.buffered() or outcomes.wait(0) else None
            except OSError:
                got = None
            if got is None:
                break
            self._received(got)

    def _blame(self, target: _Ticket | None, begun: int, crashed: bool) -> _Ticket | None:
        """The ticket that gets the dead child's outcome (`target` if still here, else the
        job it had begun, number `begun`); every other ticket goes to the next child."""
        with self._lock:
            left = list(self._tickets)
            if target is None:
                target = next((t for t in left if t.n and t.n == begun), None)
                never_began = begun == 0 and left and left[0].n
                if target is None and left and (not crashed or never_began):
                    # A child that died before beginning any job (or a bug of ours) is blamed
                    # on the first job, as if it had begun: else it could recur for ever.
                    target = left[0]
            elif target not in left:
                target = None  # it ended before the kill: its outcome was read above
            self._tickets = deque(t for t in left if t is not target)
            for t in self._tickets:
                t.n = 0  # not begun: sent again to the next child
            self._kill = None
        return target

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

    def terminate(self) -> None:
        """Kill the child now (SIGKILL) and reap it (up to 5 s); none: nothing to do. Settles
        none of its jobs (the caller does, or has none: an idle wait's child, child_wait.py);
        the slot's next job starts another child."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.join(5)
            self.proc = None

    def _withdraw(self, t: _Ticket) -> bool:
        """Make sure the job of `t` never begins here (holding self._lock); False if it has
        begun already."""
        if t.n and not self.withhold(t.n):
            return False
        self._tickets.remove(t)
        if self._kill is t:
            self._kill = None
        return True

    def withhold(self, n: int) -> bool:
        """Make sure the child never begins its job number `n` (sent to it, or reserved by a
        wait order: child_wait.py); False if it has begun it already. True without a child."""
        progress, proc = self.progress, self.proc
        if progress is None or proc is None:
            return True
        with progress.held(proc):
            return progress.withdraw(n)

    def _give_back(self) -> None:
        """The job ahead runs long: give the jobs queued behind it to an idle slot."""
        if self.feed.stopping.is_set() or not self.feed.idle_slot(self):
            return

        def withdraw_all() -> list[Claimed]:
            with self._lock:
                return [t.job for t in list(self._tickets) if self._withdraw(t)]

        self.feed.give_back(withdraw_all)

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
        self.feed.executed(entry.job, NOT_STARTED)

    def close(self) -> None:
        if self.conn is not None and self.proc is not None and self.proc.is_alive():
            with contextlib.suppress(OSError):
                self.conn.send(None)
            self.proc.join(2)
        self.terminate()
