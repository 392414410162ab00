"""Task functions the fault scenarios enqueue. Every one writes the ledger (harness/ledger.py).

The first argument of each task is the producer's key, the identity the checker uses. Bodies sleep
in short steps and write a ``tick`` line at each step: the last tick of a killed execution bounds
when it was last alive, which is what makes overlap detection sound.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from jobq_core import JobqError, Retry, current_job, task

from .harness.ledger import ASYNC_TASKS_ENV, RunLedger

QUEUE = "faults"
TICK_S = 0.2
_ledger: RunLedger | None = None


def ledger() -> RunLedger:
    global _ledger
    if _ledger is None:
        _ledger = RunLedger.from_env()
    return _ledger


def _job_identity() -> tuple[str, str]:
    """(job id, attempt) from the engine if it exposes them; the checker does not need them."""
    try:
        job = current_job()
    except JobqError:  # called outside a worker (a direct call in a test): the key suffices
        return "-", "-"
    return job.id, str(job.attempt)


@contextlib.contextmanager
def execution(key: str) -> Iterator[tuple[RunLedger, str, str, str]]:
    """Write ``start`` now and ``end`` when the body returns normally (not on an exception)."""
    led = ledger()
    exec_id = led.new_exec()
    job_id, attempt = _job_identity()
    led.event("start", key, exec_id, attempt, job_id)
    yield led, exec_id, attempt, job_id
    led.event("end", key, exec_id, attempt, job_id)


# Sleep on an Event that is never set rather than time.sleep(): under libfaketime with
# FAKETIME_DONT_FAKE_MONOTONIC=1 (scenario 6), CPython 3.11's time.sleep -> clock_nanosleep
# fails with EINVAL, while a condition wait works like on any unfaked machine.
_never = threading.Event()


def ticking_sleep(key: str, seconds: float, ctx: tuple[RunLedger, str, str, str]) -> None:
    led, exec_id, attempt, job_id = ctx
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        _never.wait(min(TICK_S, left))
        led.event("tick", key, exec_id, attempt, job_id)


def work(key: str, seconds: float = 0.0) -> dict[str, Any]:
    """A well-behaved job: runs ``seconds`` (ticking), then ends. The result names the execution,
    so a test can tell whose completion Redis kept (a stale one must be rejected)."""
    with execution(key) as ctx:
        ticking_sleep(key, seconds, ctx)
    return {"key": key, "pid": os.getpid(), "exec": ctx[1]}


async def awork(key: str, seconds: float = 0.0) -> dict[str, Any]:
    """`work` as a coroutine (awaiting its ticks), for the scenarios run with --pool async."""
    with execution(key) as ctx:
        led, exec_id, attempt, job_id = ctx
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(TICK_S, left))
            led.event("tick", key, exec_id, attempt, job_id)
    return {"key": key, "pid": os.getpid(), "exec": ctx[1]}


# One name for both, so producers and checks need not know the pool: an async-pool worker of
# the harness has ASYNC_TASKS_ENV set and registers the coroutine.
task(queue=QUEUE, max_retries=0, name=f"{__name__}.work")(
    awork if os.environ.get(ASYNC_TASKS_ENV) else work)


@task(queue=QUEUE, max_retries=0)
def crash_exit(key: str) -> None:
    """Poison: the job process vanishes without a word (os._exit skips every handler)."""
    with execution(key):
        os._exit(1)


@task(queue=QUEUE, max_retries=0)
def crash_segv(key: str) -> None:
    """Poison: the job process dies of SIGSEGV, as a crashing C extension would."""
    with execution(key):
        signal.signal(signal.SIGSEGV, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGSEGV)
        _never.wait(5)


@task(queue=QUEUE, max_retries=0)
def crash_memory(key: str, limit_mb: int = 256) -> None:
    """Poison: allocate past an address-space rlimit set in this process only."""
    with execution(key):
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        # Limit relative to what the process already maps, so the limit bites at once.
        with open("/proc/self/statm") as fh:
            mapped = int(fh.read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (mapped + limit_mb * 2**20, hard))
        try:
            hog = [bytearray(2**20) for _ in range(limit_mb * 4)]
            del hog
        finally:
            # The engine reuses job processes: don't leave the next job under this limit.
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@task(queue=QUEUE, max_retries=0)
def stubborn(key: str, seconds: float = 30.0) -> None:
    """Blocks every catchable signal, then keeps running: stands in for a C call that never
    returns to the interpreter, so only SIGKILL from the parent can stop it."""
    with execution(key) as ctx:
        catchable = set(signal.Signals) - {signal.SIGKILL, signal.SIGSTOP}
        signal.pthread_sigmask(signal.SIG_BLOCK, catchable)
        ticking_sleep(key, seconds, ctx)


@task(queue=QUEUE, max_retries=3)
def retry_once(key: str, delay_s: float) -> None:
    """Asks for one retry after ``delay_s`` on its first attempt (a ``start`` with no ``end``),
    then ends: the gap between the two starts shows when the retry really came due."""
    with execution(key) as (_, _, attempt, _):
        if attempt in ("1", "-"):
            raise Retry(delay_s=delay_s)


@task(queue=QUEUE, max_retries=0)
def sized(key: str, blob: str) -> dict[str, Any]:
    """Takes a large argument (scenario 9); the result is small so only the payload cap matters."""
    with execution(key):
        pass
    return {"key": key, "len": len(blob)}


@task(queue=QUEUE, max_retries=0)
def tick(schedule: str) -> None:
    """Run by a schedule (scenario 13): the ledger key is the job id, ``sched:<name>:<tick ms>``,
    so the checker sees which tick each run belongs to."""
    job_id, _ = _job_identity()
    with execution(job_id):
        pass
