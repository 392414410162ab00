"""The job process of the process pool: imports the task modules, then runs one job at a time.

It is started with the `spawn` method (a fresh interpreter, no inherited threads or locks),
asks the kernel to kill it when its parent dies (so an orphaned job cannot outlive its
lease), and ignores SIGINT/SIGTERM: the parent alone decides when a job stops.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from types import FrameType

from ..config import Settings
from .runner import Call, JobTimeout, run

log = logging.getLogger("jobq.worker")
PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the getppid check below still applies
        pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise JobTimeout()


def main(conn: Connection, imports: Sequence[str], settings: Settings, parent_pid: int) -> None:
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, _on_alarm)
    for module in imports:
        try:
            importlib.import_module(module)
        except Exception as exc:  # the parent imported it fine; report, run what we can
            print(f"jobq child: cannot import {module}: {exc}", file=sys.stderr)
    saver = _Saver(settings)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        call, timeout_s = msg
        saver.target = call
        try:
            if timeout_s > 0:
                signal.setitimer(signal.ITIMER_REAL, timeout_s)
            outcome = run(call, settings.max_payload_bytes, saver)
        except JobTimeout:  # fired between the task's end and the timer being cleared
            from .runner import TIMEOUT, Outcome
            outcome = Outcome(TIMEOUT, error="jobq.Timeout: the job exceeded its timeout_s")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        conn.send(outcome)


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
