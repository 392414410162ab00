"""The idle wait of a process-pool worker, delegated to the child that will run the job.

When the worker is fully idle (no job held anywhere), the process pool, claim_on_wake on and
one Redis (fetch.Fetcher), the worker loop does not block on the queues' markers itself: it
sends a wait order to the child of the lowest-numbered idle slot (the one an idle worker's
jobs go to anyway), and that child runs Scripts.wait_and_claim on its own connection, with
the worker's id and the request id of the worker's claim call 0. A job it claims with a
fresh reply it begins at once (child.Progress, under the number the order reserved) and
then reports to the parent; the job then starts one wake-up after the claim's reply (the
child's) instead of three (the parent's, the parent's Python, the child's).

Between the child's claim and the parent recording the job in its ledger, the job is held
by its pick-up lease only (Settings.pickup_s), as a job claimed by a frozen idle worker is;
the parent renews it to the full lease as soon as it reads the report, and stops the job if
it cannot. A child that dies or hangs in the wait is a lost reply: the request id stays
unanswered, so the worker's next claim re-sends it and claim.lua hands back what the child
had claimed. A late reply, a re-sent claim's jobs, or a job claimed as the worker stops are
reported unbegun, and the parent hands them back.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import redis

from ..config import Settings
from ..connection import connect, is_sentinel, translated
from ..errors import JobqError, RedisUnavailable
from ..job import Claimed
from ..replies import ClaimResult
from ..scripts import Scripts
from ..wire import Pinned
from ..workers import connection_name

if TYPE_CHECKING:
    from .child import Outcomes
    from .fetch import Fetcher
    from .pool import Pool
    from .process_slot import ProcessSlot

log = logging.getLogger("jobq.worker")
# While it waits for the child's report, the worker loop looks this often whether the worker
# stops (a signal sets the flag only): it then ends the child's wait at once.
STOP_CHECK_S = 0.25
# How long past the child's socket timeout (and a reconnect) the loop waits for a report
# before it kills the child (stopped, or stuck): its reply is then lost, as if it had died.
# Also how much longer a child that has begun its job is given for its report (see _report).
REPORT_MARGIN_S = 1.0
# How long a stopping worker waits for the report once it has woken the child's wait: with
# Redis reachable it comes within milliseconds; with Redis cut off neither the wake nor the
# child's wait ends before a socket timeout, and the stop sat that out (up to ~6 s).
STOP_REPORT_S = 1.0
# (id, queue, token, fields) of a claimed job, as it crosses the pipe.
JobValues = tuple[str, str, str, dict[str, str]]


class WaitOrder(NamedTuple):
    """What the parent sends a child to wait and claim for it (one job at most)."""

    n: int  # the number the child gives the job it claims (child.Progress)
    markers: tuple[str, ...]
    timeout_s: float
    queues: tuple[str, ...]
    worker_id: str
    lease_ms: int  # the pick-up lease
    request: str  # the request id of the worker's claim call 0 (Fetcher.request)
    new: bool  # Fetcher.requested(0)'s flag: never sent before
    sent_at: float  # time.monotonic() when sent (one clock for all processes)
    late_after_s: float  # a reply read later than this after sent_at is not begun


class Report(NamedTuple):
    """What the child answers a WaitOrder with, before it runs the job it began (if any)."""

    began: bool  # jobs[0] began as job number n
    late: bool  # the reply came too late to begin a job
    jobs: list[JobValues]
    next_due_ms: int
    now_ms: int
    lease_left_ms: int | None
    notes: list[str]
    error: str = ""  # "unavailable" or "refused": the claim raised (text in `notes`)
    noscript: bool = False  # the server had lost the script: nothing ran


# -- in the child --------------------------------------------------------------------------
class ChildWaiter:
    """The child's side: one connection of its own (made at the first order), kept."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._scripts: Scripts | None = None
        self._pinned: Pinned | None = None

    def serve(self, order: WaitOrder, begin: Callable[[int], bool],
              report: Callable[[Report], None]) -> JobValues | None:
        """Wait and claim as `order` says; begin the job (begin(n)) if the reply is fresh,
        then report. Returns the job begun (to run as job order.n), or None."""
        try:
            result = self._wait(order)
        except RedisUnavailable as exc:
            report(Report(False, False, [], -1, 0, None, [str(exc)], error="unavailable"))
            return None
        except (JobqError, redis.RedisError, OSError, ValueError) as exc:
            report(Report(False, False, [], -1, 0, None, [str(exc)], error="refused"))
            return None
        if result is None:
            report(Report(False, False, [], -1, 0, None, [], noscript=True))
            return None
        jobs = [(j.id, j.queue, j.token, dict(j.fields)) for j in result.jobs]
        late = time.monotonic() - order.sent_at > order.late_after_s
        began = (len(jobs) == 1 and result.lease_left_ms is None and not late
                 and begin(order.n))
        report(Report(began, late, jobs, result.next_due_ms, result.now_ms,
                      result.lease_left_ms, result.notes))
        return jobs[0] if began else None

    def _wait(self, order: WaitOrder) -> ClaimResult | None:
        s = self.settings
        if self._scripts is None:
            client = connect(s, blocking=True, name=connection_name(order.worker_id))
            self._scripts = Scripts(client, s)
            self._scripts.strict_replicas = False  # as the worker's (supervisor.py)
            self._pinned = Pinned(client)
        scripts = self._scripts
        with translated(s.redis_url):
            return scripts.wait_and_claim(order.markers, order.timeout_s, order.queues, 1,
                                          order.worker_id, scripts.client, order.lease_ms,
                                          order.request, order.new, self._pinned)


# -- in the worker -------------------------------------------------------------------------
class ChildWait:
    """The worker loop's side: decides whether to delegate, and takes in the report."""

    def __init__(self, settings: Settings, fetch: Fetcher, pool: Pool) -> None:
        from .fetch import Fetcher

        self.settings = settings
        self.fetch = fetch
        self.pool = pool
        # Not with Sentinel: among other things a child's kept connection would not follow
        # the master the sentinels name (Heartbeat.follow tells the worker loop's only).
        self.enabled = (settings.pool == "process" and settings.claim_on_wake
                        and type(fetch) is Fetcher
                        and not is_sentinel(settings))
        self._lock = threading.Lock()
        self._current: tuple[ProcessSlot, int] | None = None  # the order out, its job number
        # A child _respawned tried to start has not reported yet: if it dies too, or did not
        # start, no other (one that cannot start would otherwise be tried at every turn).
        self._replaced = False

    @property
    def delegated(self) -> bool:
        """Whether a wait order is out to a child now (its report not taken in yet)."""
        return self._current is not None

    def wait(self, stopping: threading.Event,
             renew: Callable[[Sequence[Claimed]], None]) -> list[Claimed] | None:
        """Delegate the idle wait if it may be (see the module's docstring): the job begun by
        the child (adopted by the pool, its pick-up lease renewed by `renew`, its slot told),
        or []; None if not delegated (the caller waits itself). Raises RedisUnavailable or
        JobqError as Fetcher.wait does."""
        if not self.enabled or self.pool.busy():
            return None
        timeout = self.fetch.wait_timeout(1)
        if timeout is None:
            return None
        slot = self.pool.reserve_idle()
        if slot is None:
            return None
        adopted = False
        try:
            if slot.gone() and (self._replaced or not self._respawned(slot)):
                return None
            jobs = self._delegate(slot, timeout, stopping)
            if jobs:
                adopted = True
                try:
                    renew(jobs)
                finally:  # after the renewal (see Pool.telling_later), whatever it raised
                    slot.mailbox.put((jobs[0], True))
            return jobs
        finally:
            if not adopted:
                self.pool.release(slot)

    def _respawned(self, slot: ProcessSlot) -> bool:
        """Start another child in `slot` (reserved), whose child died idle: killed or dead in
        a wait of ours, say. Left to the slot, only its next job would start one, and until
        a job happened to land there every idle wait was the worker loop's own. A spawn is a
        fork of the fork server (worker/forkserver.py). Once only until a child reports
        (_replaced), whether it started or not: one that cannot start (it exits at once, or
        the spawn raises) was tried again at every wait. False if none started: the caller
        waits itself."""
        self._replaced = True
        try:
            slot.warm()  # nothing else reaches this slot's child while it is reserved
        except Exception:  # as the slot thread's warm-up: the slot's next job tries again
            log.exception("slot %s could not start a child for the idle wait", slot.index)
        return not slot.gone()

    def withdraw(self) -> None:
        """The worker stops: a job the child claims from now on is not begun (handed back)."""
        with self._lock:
            if self._current is None:
                return
            slot, n = self._current
            slot.withhold(n)  # False: it began (it runs, within the grace)

    def _delegate(self, slot: ProcessSlot, timeout: float,
                  stopping: threading.Event) -> list[Claimed]:
        fetch, s = self.fetch, self.settings
        rid, new = fetch.requested(0)
        sent = time.monotonic()
        order = slot.send_order(lambda n: WaitOrder(
            n, fetch.markers, timeout, tuple(fetch.queues), fetch.worker_id,
            int(s.pickup_s * 1000), rid, new, sent, s.pickup_late_s))
        if order is None:
            return []  # the child is gone: the next wait starts another (_respawned)
        with self._lock:
            self._current = (slot, order)
        fetch.blocked.set()
        try:
            # The child's own socket timeout (and a reconnect) end its wait before this.
            report = self._report(slot, order, sent + s.block_s + s.socket_timeout_s
                                  + s.connect_timeout_s + REPORT_MARGIN_S, stopping)
        except BaseException:
            # A bug of ours: the child may still wait and begin a job no ledger holds. Dead,
            # its claim is a lost reply, handed back by the next claim's re-send.
            slot.terminate()
            raise
        finally:
            fetch.blocked.clear()
            with self._lock:
                self._current = None
        if report is None:
            return []
        self._replaced = False
        return self._took(report, slot, order, sent)

    def _report(self, slot: ProcessSlot, n: int, deadline: float,
                stopping: threading.Event) -> Report | None:
        """The child's report (None: the child died, or was killed: it hung past `deadline`,
        or the worker stops and the wait did not end within STOP_REPORT_S of the wake).
        Before a kill its job number `n` is withdrawn (Progress): a child that has begun it
        wrote its report before running it, so the report is read first (REPORT_MARGIN_S
        more), and the job is never killed unaccounted for. Frames behind the report (the
        outcome of a job that ended at once) stay in the buffer of slot.outcomes for the
        slot thread."""
        outcomes, proc = slot.outcomes, slot.proc
        assert outcomes is not None and proc is not None
        poll = select.poll()
        poll.register(outcomes.fd, select.POLLIN)
        poll.register(proc.sentinel, select.POLLIN)
        woken = began = False
        while (got := outcomes.take_report()) is None:
            now = time.monotonic()
            if stopping.is_set() and not woken:  # stop() or a signal (which only sets it)
                woken = True
                self.withdraw()
                self._wake()
                deadline = min(deadline, now + STOP_REPORT_S)
            if now >= deadline:
                if began or slot.withhold(n):
                    return self._killed(slot, outcomes, woken)
                began = True  # its report is in the pipe, or being written
                deadline = now + REPORT_MARGIN_S
            fired = {fd for fd, _ in poll.poll(min(deadline - now, STOP_CHECK_S) * 1000)}
            if outcomes.fd in fired:
                if not outcomes.fill():  # the child closed its end: it died
                    return _or_none(outcomes.take_report())
            elif fired:  # the child exited: what it wrote before is still in the pipe
                return _drained(outcomes)
        return Report(*got)

    @staticmethod
    def _killed(slot: ProcessSlot, outcomes: Outcomes, stopping: bool) -> Report | None:
        """Kill the child of `slot` (it does not answer), and read what it wrote before."""
        if stopping:
            log.warning("slot %s: the worker stops and its child's wait did not end (Redis "
                        "unreachable?); killing it", slot.index)
        else:
            log.warning("slot %s: no answer from its child's wait; killing it", slot.index)
        slot.terminate()  # the next wait or job starts another child
        return _drained(outcomes)

    def _wake(self) -> None:
        """End the child's wait through Redis (Fetcher.wake), off this thread: with Redis
        cut off the wake blocks for a socket timeout, during which this loop would not read
        the child's report (its own wait ends by the same timeout, often sooner), so the
        stop took up to twice that. A wake that cannot reach Redis is dropped (as stop()'s).
        The thread may outlive the worker's stop and set a marker once Redis is back: a
        marker only says there may be work, so a stray one costs a waiter one empty claim."""
        threading.Thread(target=self.fetch.wake, name="jobq-wake", daemon=True).start()

    def _took(self, report: Report, slot: ProcessSlot, n: int, sent: float) -> list[Claimed]:
        """As Fetcher.wait and Worker._wait_and_take do with a wait's reply."""
        if report.error:
            text = report.notes[0] if report.notes else "claim failed"
            raise RedisUnavailable(text) if report.error == "unavailable" else JobqError(text)
        if report.noscript:
            return []  # a request lost before stays unanswered: the next claim re-sends it
        fetch = self.fetch
        fetch.answered(0)
        jobs = [Claimed(i, q, t, f) for i, q, t, f in report.jobs]
        fetch.took(ClaimResult(jobs, report.notes, report.next_due_ms, report.now_ms,
                              report.lease_left_ms))
        if report.began:
            self.pool.adopt(slot, jobs[0], sent, n)
            return jobs
        if jobs and report.late:
            log.warning("claim reply arrived more than %.1fs after the wait began; handing "
                        "its %d job(s) back unstarted", self.settings.pickup_late_s,
                        len(jobs))
        fetch.hand_back_many(jobs)
        return []


def _or_none(values: tuple[Any, ...] | None) -> Report | None:
    return None if values is None else Report(*values)


def _drained(outcomes: Outcomes) -> Report | None:
    """The report a dead child wrote before it died, if it did (read to the end)."""
    while outcomes.wait(0) and outcomes.fill():
        pass
    return _or_none(outcomes.take_report())
