"""The job process of the process pool: imports the task modules, then runs the jobs its
parent sends, one at a time, in the order sent.

The parent may send a job while the previous one still runs (so the child goes from one job
to the next without waiting for its parent), and may then withdraw it: a `Progress` in shared
memory, under a lock, settles which of "the child begins job n" and "the parent withdraws job
n" happens first. A withdrawn job is skipped; every job run is answered with its Outcome as
soon as it ends, framed by us (see Outcomes) so that the parent takes in one read all the
outcomes that have piled up while it was busy.

It is started with the `spawn` method (a fresh interpreter, no inherited threads or locks),
asks the kernel to kill it when its parent dies (so an orphaned job cannot outlive its
lease), and survives SIGINT/SIGTERM: the parent alone decides when a job stops.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import dataclasses
import importlib
import logging
import multiprocessing.forkserver
import operator
import os
import pickle
import select
import signal
import struct
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from ..config import Settings
from ..joblog import install
from ..runner import TIMEOUT, Call, JobTimeout, Outcome, run
from .child_wait import ChildWaiter, WaitOrder
from .logship import LogShipper

log = logging.getLogger("jobq.worker")
PR_SET_PDEATHSIG = 1
# How often the parent, waiting for a child's Progress lock, checks that the child lives
# (Progress.held).
HOLD_POLL_S = 0.1
# The worker's main script, passed to its fork server (worker/forkserver.py preloads it)
# through the environment the server starts with; process_slot sets it only for that moment.
MAIN_ENV = "JOBQ_FORKSERVER_MAIN"
# What the parent sends: the jobs to run next, each as (number, id, queue, fields, lease token,
# timeout_s), plain values so that pickling them is cheap; or None: exit.
JobValues = tuple[int, str, str, dict[str, str], str, float]
Jobs = list[JobValues]
# Or a child_wait.WaitOrder: wait and claim a job for the parent, report (a frame numbered
# REPORT, never a job's number), then run the job if it began.
REPORT = 0
# An Outcome crosses the pipe as a tuple of its fields, in this order (a dataclass instance
# pickles and unpickles several times slower).
_OUTCOME_FIELDS = tuple(f.name for f in dataclasses.fields(Outcome))
_outcome_values = operator.attrgetter(*_OUTCOME_FIELDS)


class Progress:
    """Which job the child has begun, in memory shared by the child and its parent.

    Jobs are numbered 1, 2, ... in the order the parent sends them to this child. The child
    begins job n only if the parent has not withdrawn it, the parent withdraws job n only if
    the child has not begun it, both under `lock`: so a withdrawn job never runs, and a job
    that began is never withdrawn. The parent reads the number (and start time) of the job
    begun last without asking the child.
    """

    RING = 256  # withdrawals are marked by number modulo RING: above the jobs a child is sent ahead

    def __init__(self, ctx: BaseContext) -> None:
        self.lock = ctx.Lock()
        # [0]: number of the job begun last (0: none yet), [1]: when (monotonic ns; one clock
        # for all processes), [2 + n % RING]: n if job n is withdrawn.
        self.cells: Any = ctx.RawArray("q", 2 + self.RING)

    def begin(self, n: int) -> bool:
        """In the child: start job n unless it was withdrawn (False: skip it)."""
        with self.lock:
            if self.cells[2 + n % self.RING] == n:
                return False
            self.cells[1] = time.monotonic_ns()
            self.cells[0] = n
            return True

    def withdraw(self, n: int) -> bool:
        """In the parent, holding `lock` (or the child is dead): make sure job n never begins.
        False if it has already begun."""
        if self.cells[2 + n % self.RING] == n:
            return True
        if self.cells[0] >= n:
            return False
        self.cells[2 + n % self.RING] = n
        return True

    def begun(self) -> tuple[int, float]:
        """In the parent, holding `lock` (or the child is dead): the number of the job begun
        last (0: none) and when it began (time.monotonic())."""
        return int(self.cells[0]), self.cells[1] / 1e9

    @contextlib.contextmanager
    def held(self, proc: BaseProcess) -> Iterator[None]:
        """In the parent: hold `lock`, so that the child (`proc`) cannot begin a job meanwhile.
        Not held if the child dies first (it may have died holding it); its Progress is then
        final anyway. Checks every HOLD_POLL_S."""
        while not self.lock.acquire(timeout=HOLD_POLL_S):
            if not proc.is_alive():
                yield
                return
        try:
            yield
        finally:
            self.lock.release()


def _die_with_parent(parent_pid: int) -> None:
    """Die when the worker does. The child's own parent is the worker (spawn) or the
    worker's fork server, which exits as soon as the worker is gone: either way the kernel
    kills the child then (PR_SET_PDEATHSIG). A parent that died before prctl took effect
    is caught by the checks after it."""
    before = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the checks below still apply
        pass
    if os.getppid() != before or not _alive(parent_pid):
        os._exit(1)
    # A fork server's child inherits the write end of the pipe whose closing tells the fork
    # server that the worker is gone (so that it could start processes of its own); held
    # here, the fork server would outlive the worker and so would this child. A job child
    # starts no processes through it: close it.
    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    fd = getattr(server, "_forkserver_alive_fd", None)
    if isinstance(fd, int):
        with contextlib.suppress(OSError):
            os.close(fd)
        server._forkserver_alive_fd = None  # type: ignore[union-attr]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists (another user's, after pid reuse: unlikely)
        return True
    return True


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise JobTimeout()


def _survive(signum: int, frame: FrameType | None) -> None:
    """SIGINT/SIGTERM to the child (Ctrl-C or a stop sent to the whole group): nothing.
    A handler rather than SIG_IGN, which every process a task starts would inherit through
    exec: such a process could not be stopped by terminate() (SIGTERM), and a task waiting
    for it hung; a handler is reset to the default at exec."""


def main(conn: Connection, imports: Sequence[str], settings: Settings, parent_pid: int,
         progress: Progress) -> None:
    _die_with_parent(parent_pid)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _survive)
        signal.siginterrupt(signum, False)  # a system call it lands in goes on (SA_RESTART)
    signal.signal(signal.SIGALRM, _on_alarm)
    for module in imports:
        try:
            importlib.import_module(module)
        except Exception as exc:  # the parent imported it fine; report, run what we can
            print(f"jobq child: cannot import {module}: {exc}", file=sys.stderr)
    saver = _Saver(settings)
    logs = _logs(settings)
    waiter = ChildWaiter(settings)
    fd = conn.fileno()
    todo: collections.deque[JobValues] = collections.deque()
    while True:
        if not todo:
            try:
                msg: Jobs | WaitOrder | None = conn.recv()
            except (EOFError, OSError):
                return
            if msg is None:
                return
            if isinstance(msg, WaitOrder):  # the worker's idle wait (child_wait.py)
                got = waiter.serve(msg, progress.begin,
                                   lambda report: _send_frame(fd, REPORT, tuple(report)))
                if got is not None:  # begun as job msg.n
                    job_id, queue, token, fields = got
                    _run(fd, (msg.n, job_id, queue, fields, token, _timeout_s(fields, settings)),
                         settings, saver, logs)
                continue
            todo.extend(msg)
            continue
        job = todo.popleft()
        if progress.begin(job[0]):  # else withdrawn: the parent has accounted for it
            _run(fd, job, settings, saver, logs)


def _timeout_s(fields: Mapping[str, str], settings: Settings) -> float:
    """A job's timeout as the parent computes it for a job it sends (Pool.timeout_for)."""
    try:
        return float(fields.get("timeout_s", settings.timeout_s))
    except ValueError:
        return settings.timeout_s


def _run(fd: int, job: JobValues, settings: Settings, saver: _Saver, logs: LogShipper) -> None:
    """Run a job that has begun and send its outcome."""
    n, job_id, queue, fields, token, timeout_s = job
    call = Call(job_id, queue, fields, token)
    saver.target = call
    try:
        # Armed per job, when it begins: a job's timeout runs from its own start.
        if timeout_s > 0:
            signal.setitimer(signal.ITIMER_REAL, timeout_s)
        with logs.capture(call):
            outcome = run(call, settings.max_payload_bytes, saver, timeout_s)
    except JobTimeout:  # fired between the task's end and the timer being cleared
        outcome = Outcome(TIMEOUT, error="jobq.Timeout: the job exceeded its timeout_s")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    rest = logs.finish(id(call)) if logs.live else ""  # empty: the job wrote nothing
    _send_frame(fd, n, _outcome_values(dataclasses.replace(outcome, logs=rest) if rest
                                       else outcome))


def _logs(settings: Settings) -> LogShipper:
    """This child's per-job logs: its own client (made on the first write), and the
    proxies of sys.stdout/sys.stderr installed once, after the task modules' imports."""
    if settings.capture_logs:
        install()

    def connect_() -> Any:
        from ..connection import connect

        return connect(settings)

    return LogShipper(settings, connect_)


def _send_frame(fd: int, n: int, values: tuple[Any, ...]) -> None:
    """One frame to the parent: job n's outcome values, or (n = REPORT) a wait's report."""
    data = pickle.dumps((n, values), pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


_HEADER = struct.Struct("!I")


class Outcomes:
    """The parent's end of the outcomes a child sends: a frame of our own (length, pickle)
    per outcome, so that one read takes all the outcomes that are waiting."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buf = bytearray()
        # Read into a buffer kept for the purpose: os.read(fd, 256 KiB) would allocate (and
        # map, then unmap: above malloc's mmap threshold) 256 KiB at every read.
        self._chunk = bytearray(1 << 18)
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    def wait(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` until there is something to read (or the child is gone)."""
        return bool(self._poll.poll(timeout_s * 1000))

    def read(self) -> list[tuple[int, Outcome]] | None:
        """The outcomes complete so far: those already in the buffer (see take_report), else
        after reading what is there (call it once wait() or buffered() says there is
        something: it would wait). None: the child closed its end."""
        got = self.ready()
        if got or not self.fill():
            return got or None
        return self.ready()

    def fill(self) -> bool:
        """Read what is there into the buffer (it would wait if nothing is); False: the
        child closed its end."""
        n = os.readv(self.fd, [self._chunk])
        if n:
            self._buf += memoryview(self._chunk)[:n]
        return bool(n)

    def buffered(self) -> bool:
        """Whether a complete frame is in the buffer, read by take_report's caller."""
        buf = self._buf
        return (len(buf) >= _HEADER.size
                and len(buf) >= _HEADER.size + _HEADER.unpack_from(buf, 0)[0])

    def take_report(self) -> tuple[Any, ...] | None:
        """The values of the frame at the head of the buffer if it is complete and a wait's
        report (child_wait.Report), taken out; the frames behind it stay for ready()."""
        if not self.buffered():
            return None
        (size,) = _HEADER.unpack_from(self._buf, 0)
        end = _HEADER.size + size
        n, values = pickle.loads(memoryview(self._buf)[_HEADER.size:end])
        if n != REPORT:
            return None
        del self._buf[:end]
        return tuple(values)

    def ready(self) -> list[tuple[int, Outcome]]:
        """The outcomes complete in the buffer, without reading."""
        out: list[tuple[int, Outcome]] = []
        buf, at = self._buf, 0
        while len(buf) - at >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buf, at)
            end = at + _HEADER.size + size
            if len(buf) < end:
                break
            n, values = pickle.loads(memoryview(buf)[at + _HEADER.size:end])
            if n != REPORT:  # one nobody waits for any more (its waiter gave up): dropped
                out.append((n, Outcome(*values)))
            at = end
        if at:
            del buf[:at]
        return out


class _Saver:
    """Writes a task's meta/progress to its job hash, connecting lazily on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.target: Call | None = None
        self._client: object | None = None

    def __call__(self, fields: Mapping[str, str]) -> None:
        from ..connection import connect
        from ..keys import Keyspace

        if self.target is None:
            return
        if self._client is None:
            self._client = connect(self.settings)
        key = Keyspace(self.settings.prefix).job(self.target.queue, self.target.id)
        self._client.hset(key, mapping=dict(fields))  # type: ignore[attr-defined]
