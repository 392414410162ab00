"""Task functions the tests enqueue (imported by worker processes too)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from jobq_core import Fail, Retry, current_job, task


@task
def add(a: int, b: int) -> int:
    return a + b


@task(queue="default")
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


@task(max_retries=2)
def boom(message: str = "boom") -> None:
    raise ValueError(message)


@task(max_retries=0)
def boom_once(message: str = "boom") -> None:
    raise ValueError(message)


@task(max_retries=3)
def give_up(message: str) -> None:
    """Fail at once, without the retries it has."""
    raise Fail(message)


@task(max_retries=3)
def fail_until(path: str, times: int) -> int:
    """Fail the first `times` calls (counted in a file), then return the call count."""
    p = Path(path)
    n = int(p.read_text()) + 1 if p.exists() else 1
    p.write_text(str(n))
    if n <= times:
        raise RuntimeError(f"attempt {n} fails")
    return n


@task(max_retries=5)
def ask_retry(path: str) -> str:
    p = Path(path)
    n = int(p.read_text()) + 1 if p.exists() else 1
    p.write_text(str(n))
    if n == 1:
        raise Retry(delay_s=0.05)
    return "second time lucky"


@task(max_retries=5)
def retry_after(path: str, delay_s: float) -> str:
    """Ask for one retry `delay_s` later (exactly: Retry, no jitter), then succeed."""
    p = Path(path)
    n = int(p.read_text()) + 1 if p.exists() else 1
    p.write_text(str(n))
    if n == 1:
        raise Retry(delay_s=delay_s)
    return f"attempt {n}"


@task
def sleep_for(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@task
def append_line(path: str, text: str) -> None:
    with open(path, "a") as f:
        f.write(text + "\n")


@task
def exit_hard(code: int = 1) -> None:
    os._exit(code)


@task
def segfault() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


@task(max_retries=0)
def busy_ignoring_signals(seconds: float) -> None:
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@task
def report_progress() -> str:
    job = current_job()
    job.save_meta(stage="half")
    job.set_progress(0.5)
    return job.id


@task(max_retries=0)
def progress_then_fail() -> None:
    current_job().set_progress(0.75)
    raise ValueError("failed at three quarters")


@task(max_retries=0)
def oversize_meta(size: int, catch: bool) -> list[str]:
    """Saves a small meta, then a meta and a progress of about `size` bytes each: returns
    the errors raised, or (catch=False) raises the first."""
    ctx = current_job()
    ctx.save_meta(stage="small")
    refused = []
    for write in (lambda: ctx.save_meta(blob="x" * size),
                  lambda: ctx.set_progress({"blob": "x" * size})):
        try:
            write()
        except Exception as exc:
            if not catch:
                raise
            refused.append(f"{type(exc).__name__}: {exc}")
    return refused


@task(max_retries=0)
async def oversize_meta_async(size: int, catch: bool) -> list[str]:
    """oversize_meta with the awaitable writes (asave_meta, aset_progress)."""
    ctx = current_job()
    await ctx.asave_meta(stage="small")
    refused = []
    for write in (lambda: ctx.asave_meta(blob="x" * size),
                  lambda: ctx.aset_progress({"blob": "x" * size})):
        try:
            await write()
        except Exception as exc:
            if not catch:
                raise
            refused.append(f"{type(exc).__name__}: {exc}")
    return refused


@task
def progress_as_dict() -> None:
    current_job().set_progress({"done": 3, "of": 4})


@task
def not_json() -> object:
    return object()


@task
def record_pid(path: str, seconds: float = 0.0) -> int:
    """Append 'start <pid>' then 'end <pid>' around a sleep (a ledger outside Redis)."""
    with open(path, "a") as f:
        f.write(f"start {os.getpid()}\n")
    time.sleep(seconds)
    with open(path, "a") as f:
        f.write(f"end {os.getpid()}\n")
    return os.getpid()


@task(max_retries=0)
def busy_loop(seconds: float) -> None:
    """Pure-Python busy work (interruptible between bytecodes)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@task
def limited(path: str, seconds: float) -> int:
    """Measure concurrency from inside the task: a file per running call in `path`/running;
    append 'start end' (CLOCK_MONOTONIC, shared by all processes) and the number of running
    calls seen at start to `path`/ledger."""
    running = Path(path) / "running"
    me = running / f"{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}"
    start = time.monotonic()
    me.touch()
    try:
        seen = len(os.listdir(running))
        time.sleep(seconds)
    finally:
        me.unlink()
    with open(Path(path) / "ledger", "a") as f:
        f.write(f"{start} {time.monotonic()} {seen}\n")
    return seen


@task(max_retries=0)
def record_tick(path: str) -> str:
    """Append the job's id (sched:<schedule>:<tick ms> for a periodic job) to `path`."""
    job_id = current_job().id
    with open(path, "a") as f:
        f.write(job_id + "\n")
    return job_id


@task
def now_wall() -> float:
    """The wall-clock time the job started (for latency checks)."""
    return time.time()


@task(max_retries=0)
def wait_for_gate(path: str, text: str, gate: str) -> str:
    """Append `text` to `path`, then return once the file `gate` exists (a gate that the
    test can open across processes)."""
    with open(path, "a") as f:
        f.write(text + "\n")
    end = time.monotonic() + 30
    while not os.path.exists(gate):
        if time.monotonic() > end:
            raise TimeoutError(f"{gate} was never created")
        time.sleep(0.01)
    return text


@task(max_retries=0)
def raise_kind(kind: str, value: int) -> None:
    """Fails with one of three errors whose messages vary by `value` (error groups)."""
    if kind == "key":
        raise KeyError(f"user-{value}")
    if kind == "value":
        raise ValueError(f"amount {value} for 'acct-{value}' is over the limit")
    raise RuntimeError(f"upstream 0x{value:08x} timed out after {value} ms")


# -- async def tasks -----------------------------------------------------------------------
@task
async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


@task(max_retries=0)
async def async_boom(message: str = "async boom") -> None:
    await asyncio.sleep(0)
    raise ValueError(message)


@task
async def async_loop_id() -> list[int]:
    """(id of the running loop, id of the thread): a pool reuses one loop per thread."""
    await asyncio.sleep(0)
    return [id(asyncio.get_running_loop()), threading.get_ident()]


@task
async def async_context() -> list[str]:
    """current_job() in the coroutine and in a task it spawns; awaitable progress/meta."""
    job = current_job()
    await job.asave_meta(stage="async")
    await job.aset_progress({"step": 3, "of": 4})  # a dict: kept once the job completed

    async def child() -> str:
        await asyncio.sleep(0)
        return current_job().id

    return [job.id, await asyncio.create_task(child())]


@task(max_retries=0)
async def async_sleep_log(path: str, seconds: float) -> str:
    """Append 'start <id>' and 'end <id>' (with CLOCK_MONOTONIC) around an asyncio.sleep."""
    job_id = current_job().id
    with open(path, "a") as f:
        f.write(f"start {job_id} {time.monotonic()}\n")
    await asyncio.sleep(seconds)
    with open(path, "a") as f:
        f.write(f"end {job_id} {time.monotonic()}\n")
    return job_id


_arrived: dict[str, int] = {}


@task(max_retries=0)
async def async_rendezvous(path: str, n: int, seconds: float) -> str:
    """Log 'start', wait until `n` calls of this worker process have started (they must all
    be running at once: a pool with fewer slots never gets there and this fails after 60 s),
    then await asyncio.sleep(seconds) and log 'end'."""
    job_id = current_job().id
    with open(path, "a") as f:
        f.write(f"start {job_id} {time.monotonic()}\n")
    _arrived[path] = _arrived.get(path, 0) + 1
    deadline = time.monotonic() + 60
    while _arrived[path] < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {_arrived[path]} of {n} calls ran at once")
        await asyncio.sleep(0.01)
    await asyncio.sleep(seconds)
    with open(path, "a") as f:
        f.write(f"end {job_id} {time.monotonic()}\n")
    return job_id


@task(max_retries=0)
async def async_block(seconds: float) -> float:
    """Blocks its event loop (time.sleep in a coroutine): the loop watchdog must say so."""
    time.sleep(seconds)
    return seconds


# Per-job logs (tests/integration/test_joblogs.py): INFO records reach the handlers.
chatter = logging.getLogger("tests.chatter")
chatter.setLevel(logging.INFO)


def _meet(path: str, n: int) -> None:
    """Wait (up to 10 s) until `n` jobs have reached this point, so they run at once."""
    with open(path, "a") as f:
        f.write("x\n")
    deadline = time.monotonic() + 10
    while Path(path).read_text().count("x") < n and time.monotonic() < deadline:
        time.sleep(0.005)


@task
def chatty(tag: str, lines: int = 15, meet: str = "", n: int = 1) -> int:
    """Print and log `lines` lines '<tag> <i>': every third is a logging record (15 lines:
    10 printed, 5 logged). With `meet`, first wait for `n` such jobs to run at once, and
    yield between lines so that their lines interleave in time."""
    if meet:
        _meet(meet, n)
    for i in range(lines):
        if i % 3 == 2:
            chatter.info("%s %d", tag, i)
        else:
            print(f"{tag} {i}")
        if meet:
            time.sleep(0.001)
    return lines


@task
async def achatty(tag: str, lines: int = 15, meet: str = "", n: int = 1) -> int:
    """chatty as a coroutine: with `meet`, the jobs interleave on one event loop."""
    if meet:
        with open(meet, "a") as f:
            f.write("x\n")
        while Path(meet).read_text().count("x") < n:
            await asyncio.sleep(0.005)
    for i in range(lines):
        if i % 3 == 2:
            chatter.info("%s %d", tag, i)
        else:
            print(f"{tag} {i}")
        await asyncio.sleep(0)
    return lines


@task(max_retries=0)
def flood(megabytes: int) -> int:
    """Print `megabytes` MB in 100-byte lines, and one stderr line at the end."""
    line = "y" * 99
    for _ in range(megabytes * 10_000):
        print(line)
    print("flood done", file=sys.stderr)
    return megabytes


@task(max_retries=0)
def print_until(gate: str) -> int:
    """Print 'tick <i>' every 20 ms until `gate` exists, then 'done'."""
    i = 0
    while not os.path.exists(gate):
        print(f"tick {i}", flush=True)
        i += 1
        time.sleep(0.02)
    print("done")
    return i


@task(max_retries=0)
def print_when_stopped(started: str, gate: str) -> None:
    """Create `started`, run until stopped (an abort's interrupt), then clean up: once the
    file `gate` exists, print 'cleaned up' (a task whose only output comes after its stop)."""
    open(started, "w").close()
    try:
        while True:
            time.sleep(0.01)
    finally:
        while not os.path.exists(gate):
            time.sleep(0.01)
        print("cleaned up")
