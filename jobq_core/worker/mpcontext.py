"""Where the process pool's job children come from: the multiprocessing context (a fork
server that preloaded jobq's child and the task modules; spawn where there is none)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import child

if TYPE_CHECKING:  # ForkServerContext exists only on POSIX
    from multiprocessing.context import ForkServerContext, SpawnContext

_ctx_lock = threading.Lock()
# Blocked while the fork server starts; worker/forkserver.py ignores, then unblocks them.
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


def context(imports: Sequence[str]) -> ForkServerContext | SpawnContext:
    """Where job children come from: a fork server that imported jobq's child and the task
    modules once (the first pool's `imports`; it is one per process), so a child is a fork
    of a ready interpreter (milliseconds) instead of a fresh one importing everything
    (~0.5 s on a small machine), and a crashed child is replaced at once. Like spawn, and
    unlike a plain fork of the worker, a child never inherits the worker's threads, locks
    or Redis connections. Where there is no fork server (not POSIX), spawn."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    with _ctx_lock:
        # Only before the server starts (the first child); later calls change nothing.
        ctx.set_forkserver_preload(["jobq_core.worker.forkserver", "jobq_core.worker.child",
                                    *imports])
        _start_forkserver()
    return ctx


def _start_forkserver() -> None:
    """Start the fork server now (if it is not running), telling it the main script to
    preload (see worker/forkserver.py) through its environment, set for this moment only."""
    from multiprocessing import forkserver as mp_forkserver
    from multiprocessing import resource_tracker, spawn

    main = spawn.get_preparation_data("jobq").get("init_main_from_path")
    if main:
        os.environ[child.MAIN_ENV] = main
    # A terminal's Ctrl-C (or a SIGTERM to the whole group) reaches the fork server too, and
    # before worker/forkserver.py ignores it Python imports the jobq_core package (~0.5 s on a
    # busy machine): it died there with a KeyboardInterrupt traceback, and every slot logged
    # one more. So it starts with both signals blocked (the mask survives the exec, as
    # multiprocessing's resource tracker starts itself), in this thread only: the worker's
    # other threads still take them.
    # The resource tracker first: starting it unblocks both signals as it returns.
    resource_tracker.ensure_running()
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        mp_forkserver.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        os.environ.pop(child.MAIN_ENV, None)
