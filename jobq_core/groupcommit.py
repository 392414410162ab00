"""GroupCommit: concurrent single enqueues from threads of one process share script calls.

Queue.enqueue hands each job to its Queue's GroupCommit, which writes it with whatever other
threads handed in meanwhile (web apps under gunicorn gthread enqueue this way), and alone,
at once, when nobody else is writing.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .errors import QueueFull, ReplicationTimeout

if TYPE_CHECKING:
    from .job import Job, JobSpec


class Pending:
    """One caller's job waiting in a group commit, then its outcome.

    `wake` is created held; the waiting caller blocks acquiring it, and whoever settles
    its job (or hands it the writer's role) releases it: one wake-up per caller, where a
    shared condition woke every waiting thread twice per write."""

    __slots__ = ("done", "error", "job", "spec", "wake")

    def __init__(self, spec: JobSpec) -> None:
        self.spec = spec
        self.done = False
        self.job: Job | None = None
        self.error: BaseException | None = None
        self.wake = threading.Lock()
        self.wake.acquire()


class GroupCommit:
    """Coalesces concurrent single enqueues of one Queue into one script call.

    A caller that finds no write in flight writes at once, alone (no added delay). Callers
    arriving while a write is in flight queue up; when it has answered, the writer wakes its
    own batch's callers and hands the writer's role to the first queued caller, which writes
    every job that queued up meanwhile (up to MAX_BATCH) in one call. Each caller returns
    only when the call that carried its job has answered: its Job, or the error of that
    call. A refusal of a whole batch that a smaller one might not meet (QueueFull: the room
    is counted per batch) is retried one job at a time, so it reaches exactly the callers
    whose job did not fit.
    """

    MAX_BATCH = 1000  # as enqueue_many: one script call's ARGV stays bounded

    def __init__(self, write: Callable[[Sequence[JobSpec]], list[Job]]) -> None:
        self._write = write
        self._lock = threading.Lock()
        self._queued: list[Pending] = []
        # The caller holding the writer's role (a lone caller's own token, or its Pending),
        # None when no write is in flight. Set only under the lock, so a caller leaving at
        # any point knows whether it holds the role.
        self._writer: Pending | object | None = None

    def write(self, spec: JobSpec) -> Job:
        # Everything from taking the role or a place in the queue on is inside the try: an
        # interrupt (Ctrl-C in the main thread) at any bytecode in between still gives the
        # role back, or every later enqueue() on this Queue would wait for it forever.
        alone = object()  # this caller's token while it writes alone
        me: Pending | None = None
        batch: list[Pending] = []
        try:
            with self._lock:
                if self._writer is None:  # no write in flight (so nobody queued either)
                    self._writer = alone
                else:
                    me = Pending(spec)
                    self._queued.append(me)
            if me is None:
                # Alone: the job at once, without the batch's bookkeeping (most callers of
                # most processes); then the role goes to whoever queued up meanwhile.
                return self._write([spec])[0]
            me.wake.acquire()  # released when our job is settled or the role is ours
            if me.done:
                return self._result(me)
            # The writer: handed the role as the head of the queue.
            with self._lock:
                batch = self._queued[:self.MAX_BATCH]
                del self._queued[:len(batch)]
            self._commit(batch)
            return self._result(me)
        except BaseException as exc:  # interrupted, anywhere, or a call's error
            # Jobs taken into our batch but not settled get our error, so their callers
            # do not wait forever (a job already sent may be written all the same).
            self._settle([p for p in batch if not p.done], None, exc)
            raise
        finally:
            if me is not None:
                self._leave(me)
            elif self._writer is alone:  # only this caller sets or clears its token
                with self._lock:
                    self._hand_on()

    def _leave(self, me: Pending) -> None:
        """`me` is done waiting or writing: out of the queue if still in it (an interrupted
        wait), and the writer's role passed on if it holds it."""
        with self._lock:
            if me in self._queued:
                self._queued.remove(me)
            if self._writer is me:
                self._hand_on()

    def _hand_on(self) -> None:
        """Give the writer's role to the first queued caller, or end the busy spell. Under
        the lock."""
        if self._queued:
            head = self._writer = self._queued[0]
            head.wake.release()  # not settled: it wakes as the next writer
        else:
            self._writer = None

    def _commit(self, batch: list[Pending]) -> None:
        try:
            jobs = self._write([p.spec for p in batch])
        except QueueFull as exc:
            if len(batch) == 1:
                self._settle(batch, None, exc)
                return
            for p in batch:  # each alone: as many fit as would have one by one
                self._commit([p])
            return
        except BaseException as exc:  # every caller of this call gets its error
            self._settle(batch, None, exc)
            return
        self._settle(batch, jobs, None)

    @staticmethod
    def _settle(batch: list[Pending], jobs: list[Job] | None,
                error: BaseException | None) -> None:
        for i, p in enumerate(batch):
            p.job = jobs[i] if jobs is not None else None
            p.error = error
            p.done = True
            p.wake.release()  # the writer's own is held too, and nobody waits on it

    @staticmethod
    def _result(p: Pending) -> Job:
        if isinstance(p.error, ReplicationTimeout):
            raise p.error.for_jobs([p.spec.id]) from p.error.__cause__
        if p.error is not None:
            raise _copied(p.error)
        assert p.job is not None
        return p.job


def _copied(error: BaseException) -> BaseException:
    """A copy of `error` to raise in one of several threads (each gets its own traceback)."""
    try:
        dup = copy.copy(error)
    except Exception:  # an exception class that cannot be copied: raise the shared one
        return error
    return dup if type(dup) is type(error) else error
