"""Run one job in the current process or thread and describe how it ended (an Outcome).

The runner never raises for anything the job does: every exception, a wrong payload, an
unknown task or an unserialisable result becomes an Outcome the worker records.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import inspect
import json
import threading
import time
import traceback
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any

from .context import JobContext, Saver, enter, leave
from .errors import ArgumentError, Fail, PayloadError, Retry, UnknownTask
from .job import JSON_ERRORS, decode_call, dumps, utf8_text
from .registry import TASK_NAME_RE, get_task
from .tracing import traced_run

OK, ERROR, RETRY, DEAD, CRASH, TIMEOUT = "ok", "error", "retry", "dead", "crash", "timeout"
FAIL = "fail"  # failed for good: no retry can help (Fail raised, arguments that do not fit)
UNKNOWN = "unknown"  # the task is not registered here (reason: its name); not an attempt


class JobTimeout(BaseException):
    """Raised inside a running task when it exceeds its timeout (not an Exception, so a
    task's broad `except Exception` does not swallow it)."""


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended: kind is ok | error | retry | fail | dead | crash | timeout, or
    unknown (the task is not registered here: not an attempt, the job was not run)."""

    kind: str
    result_json: str = ""
    error: str = ""
    reason: str = ""
    delay_s: float | None = None
    runtime_ms: int = 0
    logs: str = ""  # the attempt's captured output as LogBuffer.close() gives it (joblog.py)

    def __post_init__(self) -> None:
        # An exception's text may hold a lone surrogate (a file name os.fsdecode read): it
        # would make the outcome's write to Redis fail, the job run again at its lease's end,
        # and with it every job settled in the same batch.
        for name in ("error", "reason"):
            text = getattr(self, name)
            if text and not text.isascii():
                object.__setattr__(self, name, utf8_text(text))


@dataclass(slots=True)
class Call:
    """What a pool needs to run one job: plain strings, so it crosses a process pipe.
    Treat as immutable; not frozen because a frozen dataclass's __init__ costs three times
    as much, and one is made for every job between its claim and its task's first line."""

    id: str
    queue: str
    fields: Mapping[str, str]
    token: str = ""  # the lease token (a process pool's child writes the job's log with it)


@dataclass(slots=True)
class Prepared:
    """A job ready to call: its function, arguments and context (see prepare). Treat as
    immutable (not frozen: see Call)."""

    fn: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    ctx: JobContext

    @property
    def is_async(self) -> bool:
        return is_async(self.fn)


def is_async(fn: Any) -> bool:
    """Whether calling `fn` gives a coroutine to await (an `async def` task). Another
    callable that returns an awaitable still works: run() awaits what it returns."""
    return inspect.iscoroutinefunction(fn)


def prepare(call: Call, save: Saver | None = None, max_write_bytes: int = 0
            ) -> Prepared | Outcome:
    """The task, arguments and JobContext of `call` (its meta/progress writes capped at
    `max_write_bytes`, 0: no cap), or the Outcome of a call that cannot run: an unknown
    task, an undecodable payload, arguments the task does not take."""
    name = call.fields.get("task", "")
    try:
        task = get_task(name)
    except UnknownTask as exc:
        if not TASK_NAME_RE.match(name):  # no worker can ever know it: no grace to wait out
            return Outcome(DEAD, error=str(exc), reason=f"unknown task {name!r}: not a valid "
                           "task name")
        return Outcome(UNKNOWN, error=str(exc), reason=name)
    try:
        args, kwargs = decode_call(call.fields)
    except PayloadError as exc:
        return Outcome(DEAD, error=str(exc), reason=str(exc))
    try:
        task.check_args(args, kwargs)
    except ArgumentError as exc:  # binding can never succeed: another attempt would not help
        return Outcome(FAIL, error=f"jobq.ArgumentError: {exc}", reason=str(exc))
    return Prepared(task.fn, tuple(args), dict(kwargs),
                    _context(call, name, save, max_write_bytes))


@traced_run
def run(call: Call, max_result_bytes: int, save: Saver | None = None,
        timeout_s: float = 0.0) -> Outcome:
    """Run the task of `call` and return its Outcome; never raises (but JobTimeout).

    An `async def` task runs to its end on this thread's event loop (one per thread, kept
    for the next job: see run_coroutine), so every pool and eager mode run any task; with
    `timeout_s` > 0 its coroutine is cancelled at the deadline (a thread waiting in the
    loop's select cannot be interrupted otherwise). A sync task's timeout is the caller's.
    `max_result_bytes` caps the result and each of the task's meta/progress writes."""
    job = prepare(call, save, max_result_bytes)
    if isinstance(job, Outcome):
        return job
    started = time.monotonic()
    token = enter(job.ctx)
    try:
        value = job.fn(*job.args, **job.kwargs)
        if inspect.isawaitable(value):
            # The loop's task copies this context: current_job() works in the coroutine
            # and in every task it spawns.
            value = run_coroutine(value, timeout_s)
    except TimeoutError as exc:
        return failure(JobTimeout() if getattr(exc, "jobq_deadline", False) else exc, started)
    except BaseException as exc:  # a task's SystemExit/KeyboardInterrupt is its failure, not ours
        return failure(exc, started)
    finally:
        leave(token)
    return finish(value, started, max_result_bytes)


@traced_run
async def arun(call: Call, max_result_bytes: int, save: Saver | None = None,
               timeout_s: float = 0.0) -> Outcome:
    """run() for an `async def` task, awaited on the running loop; never raises (but
    CancelledError when the caller's task is cancelled from outside). With `timeout_s` > 0
    the coroutine is cancelled at its deadline (asyncio.timeout) and the outcome is timeout."""
    job = prepare(call, save, max_result_bytes)
    if isinstance(job, Outcome):
        return job
    started = time.monotonic()
    token = enter(job.ctx)  # the caller runs each job in a task of its own: a copied context
    deadline = asyncio.timeout(timeout_s if timeout_s > 0 else None)
    try:
        async with deadline:
            value = job.fn(*job.args, **job.kwargs)
            if inspect.isawaitable(value):
                value = await value
    except TimeoutError as exc:
        # asyncio.timeout cancelled the coroutine at its deadline; a TimeoutError the task
        # raised itself is its own failure.
        return failure(JobTimeout() if deadline.expired() else exc, started)
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # cancelled by the pool (lease lost, worker stopping): not an outcome
        return failure(None, started)
    except BaseException as exc:
        return failure(exc, started)
    finally:
        leave(token)
    return finish(value, started, max_result_bytes)


def _context(call: Call, name: str, save: Saver | None, max_write_bytes: int) -> JobContext:
    """What the task sees as current_job(): its meta (a bad one reads as empty)."""
    meta: Any = {}
    if call.fields.get("meta"):
        try:
            meta = json.loads(call.fields["meta"])
        except JSON_ERRORS:
            meta = {}
    return JobContext(id=call.id, queue=call.queue, task=name,
                      attempt=int(call.fields.get("retries", "0") or 0) + 1,
                      meta=meta if isinstance(meta, dict) else {}, _save=save,
                      _max_bytes=max_write_bytes)


def failure(exc: BaseException | None, started: float) -> Outcome:
    """The Outcome of a task that raised `exc` (None: the exception being handled)."""
    if isinstance(exc, Retry):
        return Outcome(RETRY, error=_tb(), delay_s=exc.delay_s, runtime_ms=_ms(started))
    if isinstance(exc, Fail):
        return Outcome(FAIL, error=_tb(), reason=str(exc)[:1000] or "Fail raised by the task",
                       runtime_ms=_ms(started))
    if isinstance(exc, JobTimeout):
        return Outcome(TIMEOUT, error="jobq.Timeout: the job exceeded its timeout_s and was "
                       "interrupted", runtime_ms=_ms(started))
    return Outcome(ERROR, error=_tb(), runtime_ms=_ms(started))


def finish(value: Any, started: float, max_result_bytes: int) -> Outcome:
    """The Outcome of a task that returned `value`: ok, or error if it does not encode."""
    runtime = _ms(started)
    try:
        result = dumps(value, "the task's return value")
    except PayloadError as exc:
        return Outcome(ERROR, error=f"jobq.PayloadError: {exc}", runtime_ms=runtime)
    if len(result) > max_result_bytes:
        return Outcome(ERROR, error=f"jobq.PayloadError: result of {len(result)} bytes is above "
                       f"the cap of {max_result_bytes} bytes", runtime_ms=runtime)
    return Outcome(OK, result_json=result, runtime_ms=runtime)


_local = threading.local()
# Runs coroutines for callers whose thread already runs a loop (eager mode in an async app).
_aside: concurrent.futures.ThreadPoolExecutor | None = None
_aside_lock = threading.Lock()


def run_coroutine(aw: Awaitable[Any], timeout_s: float = 0.0) -> Any:
    """Run `aw` to its end on this thread's event loop and return its value (or raise).
    Past `timeout_s` (if > 0) it is cancelled and a TimeoutError marked `jobq_deadline`
    is raised.

    One loop per thread, created on first use and reused for every later job: a loop per
    job (asyncio.run) would cost its set-up each time and break clients a task keeps in a
    global. From a thread that already runs a loop (an eager enqueue in an async app) the
    coroutine runs on a helper thread's loop instead, and this thread waits."""
    if _running_loop() is not None:
        with _aside_lock:
            global _aside
            if _aside is None:
                _aside = concurrent.futures.ThreadPoolExecutor(1, "jobq-eager-loop")
        # In the caller's context, so the coroutine sees its job (current_job()).
        return _aside.submit(contextvars.copy_context().run, run_coroutine, aw,
                             timeout_s).result()
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = _local.loop = asyncio.new_event_loop()
    task = loop.create_task(_awaited(aw, timeout_s))
    try:
        return loop.run_until_complete(task)
    except BaseException:
        if not task.done():
            # Interrupted in the loop itself (a timeout injected or SIGALRM): stop the
            # coroutine, give it a moment to clean up, and start a fresh loop next time.
            task.cancel()
            with contextlib.suppress(BaseException):
                loop.run_until_complete(asyncio.wait([task], timeout=1.0))
            _local.loop = None
        raise


async def _awaited(aw: Awaitable[Any], timeout_s: float) -> Any:
    deadline = asyncio.timeout(timeout_s if timeout_s > 0 else None)
    try:
        async with deadline:
            return await aw
    except TimeoutError as exc:
        if deadline.expired():
            exc.jobq_deadline = True  # type: ignore[attr-defined]
        raise


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _tb() -> str:
    # Bound the stored traceback: a recursion error can produce megabytes.
    text = traceback.format_exc()
    return text if len(text) <= 20_000 else text[:5_000] + "\n...\n" + text[-15_000:]
