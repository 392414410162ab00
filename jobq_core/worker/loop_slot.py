"""LoopSlot: the async pool (Settings.pool = "async"), one event loop running many jobs.

One slot stands for the whole pool: its thread runs an asyncio event loop on which each
job is a task of its own, up to Settings.slots (--concurrency) at once (hundreds are normal).
A job that ends hands its place to the next job waiting in the pool's inbox, started there
and then on the loop's thread; only when none waits does its permit go back to a feeder
thread, which blocks for the next job (SlotFeed.next) and starts it on the loop. So a busy
pool moves no job between threads: at thousands of jobs a second, a thread hop (a lock
wake-up, a GIL hand-over, the loop's self-pipe) per job cost more than the job.
An `async def` task is awaited on the loop, under asyncio.timeout; a sync task runs in a
daemon thread of its own (its timeout injected as in ThreadSlot), not in the loop's
executor, whose threads the interpreter waits for at exit: a sync job stuck in C must not
keep a stopped worker from exiting.
Leases, heartbeats, fenced completions, retries and the SIGTERM grace are the pool's, as
for the other slots: abort() cancels the job's asyncio task.

A watchdog thread checks that the loop keeps turning: a coroutine that blocks it (a
time.sleep, a sync client) stalls every job of the process, so when the loop has not
answered for Settings.loop_block_warn_s the watchdog logs the running task's name and the
loop thread's stack, once per stall.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from ..job import Claimed
from ..joblog import Capture
from ..registry import lookup
from ..runner import CRASH, TIMEOUT, Call, JobTimeout, Outcome, arun, is_async, run
from .slots import Slot, SlotFeed

if TYPE_CHECKING:
    from .ledger import Running

log = logging.getLogger("jobq.worker")


class LoopSlot(Slot):
    """Runs up to `concurrency` jobs at once as tasks of one event loop."""

    def __init__(self, feed: SlotFeed, index: int) -> None:
        super().__init__(feed, index)
        self.thread.name = "jobq-loop"
        self.concurrency = feed.settings.slots
        self._permits = threading.Semaphore(self.concurrency)
        self._evloop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()  # the loop runs: the feeder may start jobs on it
        self._closed = threading.Event()
        self._stop: asyncio.Event | None = None
        # Keyed by the Claimed object (one per claim): the job's asyncio task, and for a
        # sync job the thread running it.
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._threads: dict[int, int] = {}
        self._lock = threading.Lock()
        self._tick_sent: float | None = None  # watchdog: a tick posted, not yet run
        self._reported = False

    # -- the loop thread ---------------------------------------------------------------------
    def _loop_main(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._evloop = loop
        self._stop = asyncio.Event()
        self._ready.set()
        try:
            loop.run_until_complete(self._until_stopped())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            self._closed.set()
            loop.close()

    async def _until_stopped(self) -> None:
        assert self._stop is not None
        await self._stop.wait()
        while self._tasks:  # the pool aborts what must not finish; these end soon
            await asyncio.wait(list(self._tasks.values()))

    def _loop(self) -> None:  # the slot thread is the loop's thread
        feeder = threading.Thread(target=self._feed, name="jobq-loop-feeder", daemon=True)
        watchdog = threading.Thread(target=self._watch, name="jobq-loop-watchdog", daemon=True)
        feeder.start()
        watchdog.start()
        self._loop_main()
        feeder.join(5)

    def _feed(self) -> None:
        """Feeder thread: a free permit, then the next job, started on the loop."""
        self._ready.wait()
        loop, stop = self._evloop, self._stop
        assert loop is not None and stop is not None
        while True:
            self._permits.acquire()
            job = self.feed.next(self)
            if job is None:
                loop.call_soon_threadsafe(stop.set)
                return
            loop.call_soon_threadsafe(self._start, job)

    def _start(self, job: Claimed) -> None:
        assert self._evloop is not None
        name = f"{job.fields.get('task', '?')}[{job.id}]"
        task = self._evloop.create_task(self._run(job), name=name)
        self._tasks[id(job)] = task

    async def _run(self, job: Claimed) -> None:
        try:
            outcome = await self._execute(job)
        except asyncio.CancelledError:
            # Aborted (lease lost, worker stopping): the pool drops this outcome.
            outcome = Outcome(CRASH, reason="aborted")
        except Exception as exc:  # a bug of ours must not stop the loop
            log.exception("the async pool failed running job %s", job.id)
            outcome = Outcome(CRASH, error=repr(exc), reason="worker error")
        finally:
            self._tasks.pop(id(job), None)
            self._hand_on()
        self.feed.executed(job, outcome)

    def _hand_on(self) -> None:
        """A job's place is free: start the next waiting job in it now, on this thread, or
        with none waiting give the permit back to the feeder."""
        job = self.feed.next(self, block=False)
        if job is None:
            self._permits.release()
        else:
            self._start(job)

    async def _execute(self, job: Claimed) -> Outcome:
        call = Call(job.id, job.queue, job.fields)
        timeout_s = self.feed.timeout_for(job)
        save = self.feed.saver(call)
        task = lookup(job.fields.get("task", ""))
        if task is not None and is_async(task.fn):
            with self.feed.capture(job):  # this task's own context: jobs never mix lines
                return await arun(call, self.feed.settings.max_payload_bytes, save, timeout_s)
        # A sync task (or one unknown here: run() says it is dead) in a thread of its own.
        loop = self._evloop
        assert loop is not None
        done: asyncio.Future[Outcome] = loop.create_future()

        def settle(outcome: Outcome) -> None:
            if not done.done():  # cancelled meanwhile (aborted): nobody waits for it
                done.set_result(outcome)

        capture = self.feed.capture(job)

        def target() -> None:
            try:
                with capture:
                    outcome = self._run_sync(job, call, save, timeout_s)
            except JobTimeout:  # an interrupt that landed just after the job ended
                outcome = Outcome(TIMEOUT, error="jobq.Timeout: the job exceeded its timeout_s")
            with contextlib.suppress(RuntimeError):  # the loop closed: the worker is gone
                loop.call_soon_threadsafe(settle, outcome)

        threading.Thread(target=target, name=f"jobq-sync-{job.id}", daemon=True).start()
        try:
            return await done
        finally:
            if isinstance(capture, Capture):
                # Aborted: the pool finishes the job's log next while its thread may run
                # on; a buffer the thread made after that would never be finished.
                capture.end()

    def _run_sync(self, job: Claimed, call: Call, save: Callable[[Mapping[str, str]], None],
                  timeout_s: float) -> Outcome:
        with self._lock:
            self._threads[id(job)] = threading.get_ident()
        timer = (threading.Timer(timeout_s, self._interrupt, (job,)) if timeout_s > 0
                 else None)
        try:
            if timer:
                timer.start()
            return run(call, self.feed.settings.max_payload_bytes, save, timeout_s)
        except JobTimeout:
            return Outcome(TIMEOUT, error="jobq.Timeout: the job exceeded its timeout_s")
        finally:
            with self._lock:
                self._threads.pop(id(job), None)
            if timer:
                timer.cancel()

    def _interrupt(self, job: Claimed) -> None:
        # Only while that very job runs in that thread (best effort, as in ThreadSlot).
        with self._lock:
            ident = self._threads.get(id(job))
            if ident is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident),
                                                           ctypes.py_object(JobTimeout))

    # -- called by the pool from other threads ---------------------------------------------
    def abort(self, entry: Running) -> None:
        loop = self._evloop
        if loop is None or loop.is_closed():
            return
        self._interrupt(entry.job)  # a sync job: stop its thread too
        loop.call_soon_threadsafe(self._cancel, entry.job)

    def _cancel(self, job: Claimed) -> None:
        task = self._tasks.get(id(job))
        if task is not None:
            task.cancel()

    def execute(self, job: Claimed) -> Outcome:  # pragma: no cover - _loop runs jobs itself
        raise NotImplementedError

    # -- the watchdog ----------------------------------------------------------------------
    def _watch(self) -> None:
        threshold = self.feed.settings.loop_block_warn_s
        self._ready.wait()
        loop = self._evloop
        assert loop is not None
        while not self._closed.wait(max(0.02, threshold / 4)):
            sent = self._tick_sent
            if sent is None:
                self._tick_sent = time.monotonic()
                try:
                    loop.call_soon_threadsafe(self._tick)
                except RuntimeError:  # the loop closed meanwhile
                    return
            elif not self._reported and time.monotonic() - sent > threshold:
                self._reported = True
                self._report(loop, time.monotonic() - sent)

    def _tick(self) -> None:
        self._tick_sent = None
        self._reported = False

    def _report(self, loop: asyncio.AbstractEventLoop, blocked_s: float) -> None:
        task = asyncio.current_task(loop)  # reads the loop's current task: safe from here
        frame = sys._current_frames().get(self.thread.ident or -1)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
        log.warning("event loop blocked for %.1f s by task %s: a coroutine that blocks "
                    "stalls every job of this worker (await instead, or make it a sync "
                    "task)\n%s", blocked_s, task.get_name() if task else "?", stack)
