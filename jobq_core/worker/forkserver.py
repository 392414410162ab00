"""Set-up of the worker's fork server, which imports this module before it forks job children
(mpcontext.context preloads it; nothing else imports it).

The fork server runs in the worker's process group, so a SIGTERM or SIGINT sent to the group
(a warm shutdown, Ctrl-C in a terminal) reaches it too. Killed, it would take the running jobs
with it (their parent-death signal), so it ignores both: the worker alone decides when jobs
stop, and the fork server exits by itself once the worker is gone. Its children inherit this
(child.main ignores both signals anyway).

It also imports the worker's main script once (as `__mp_main__`, as every spawned child
would), so that a child forked from it finds the script already there and does not run it
again: Python 3.11's fork server is meant to do this for a preloaded '__main__' but is
never given the script's path, and every child then imported the whole `jobq` command line
anew (~0.5 s per child on a busy 2-core machine: a crashed child's replacement waited that
long).
"""

from __future__ import annotations

import os
import signal
import sys

from .child import MAIN_ENV

signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
# The worker starts this process with both blocked (worker/mpcontext.py), so that one sent
# while Python imported jobq could not kill it; ignored now, a pending one is dropped, and
# the job children forked from here start with neither blocked (a task's own subprocesses
# inherit the mask, and one that could not be sent SIGTERM would never stop).
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def _import_main(path: str) -> None:
    from multiprocessing import process, spawn

    # As multiprocessing's own preload does: the script is being imported, not run.
    process.current_process()._inheriting = True  # type: ignore[attr-defined]
    try:
        spawn.import_main_path(path)
    except Exception as exc:  # the children then import it each, as before
        print(f"jobq fork server: cannot preload {path}: {exc!r}", file=sys.stderr)
    finally:
        del process.current_process()._inheriting  # type: ignore[attr-defined]


_main_path = os.environ.pop(MAIN_ENV, "")
if _main_path:
    _import_main(_main_path)
