"""Small helpers shared by tests: run a worker in a thread, start worker processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from jobq_core import Queue, Settings, Worker

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def drain(settings: Settings, queues: Sequence[str] = ("default",), **overrides: object) -> int:
    """Run a burst worker (thread pool unless told) until there is nothing left to do."""
    opts: dict[str, object] = {"pool": "thread", **overrides}
    return Worker(list(queues), settings, imports=["tests.tasks"], **opts).work(burst=True)


@contextmanager
def worker_thread(settings: Settings, queues: Sequence[str] = ("default",),
                  **overrides: object) -> Iterator[Worker]:
    """A non-burst worker running in a background thread for the duration of the block."""
    opts: dict[str, object] = {"pool": "thread", **overrides}
    w = Worker(list(queues), settings, imports=["tests.tasks"], **opts)
    t = threading.Thread(target=w.work, daemon=True)
    t.start()
    assert w.ready.wait(30), "worker did not start"
    try:
        yield w
    finally:
        w.stop()
        t.join(30)
        assert not t.is_alive(), "worker did not stop"


def run_async(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """asyncio.run(main()) on a thread of its own: the main thread of a pytest session may
    already run a loop (Playwright's sync API keeps one there), where asyncio.run refuses."""
    out: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            out.append(asyncio.run(main()))
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if errors:
        raise errors[0]
    return out[0]


def worker_env(settings: Settings) -> dict[str, str]:
    return {**os.environ, "JOBQ_REDIS_URL": settings.redis_url, "JOBQ_PREFIX": settings.prefix,
            "JOBQ_LEASE_S": str(settings.lease_s), "JOBQ_HEARTBEAT_S": str(settings.heartbeat_s),
            "JOBQ_RETRY_BACKOFF_S": str(settings.retry_backoff_s),
            "JOBQ_RETRY_BACKOFF_MAX_S": str(settings.retry_backoff_max_s),
            "JOBQ_BLOCK_S": str(settings.block_s), "JOBQ_KILL_GRACE_S": str(settings.kill_grace_s),
            "JOBQ_CONCURRENCY": str(settings.concurrency), "JOBQ_PREFETCH": str(settings.prefetch),
            "PYTHONPATH": str(ROOT)}


def start_worker(settings: Settings, *args: str,
                 env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A `jobq worker` process in its own process group, importing tests.tasks."""
    return subprocess.Popen(
        [sys.executable, "-m", "jobq_core", "worker", "--import", "tests.tasks", *args],
        env={**worker_env(settings), **(env or {})}, cwd=ROOT, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def wait_for_lines(path: Path, n: int, proc: subprocess.Popen[bytes] | None = None,
                   timeout_s: float = 20.0) -> list[str]:
    """Wait (by polling a file the task writes; no Redis involved) for `n` lines."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            lines = path.read_text().splitlines()
            if len(lines) >= n:
                return lines
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise AssertionError(f"worker exited with {proc.returncode}:\n{out}")
        time.sleep(0.02)
    raise AssertionError(f"{path} did not reach {n} lines in {timeout_s}s")


def settle_with_runtimes(settings: Settings, queue: Queue, runtimes_ms: Sequence[int],
                         failing_ms: Sequence[int] = ()) -> None:
    """Enqueue, claim and settle jobs of tests.tasks.add in queue 'default' with the given
    (injected) run times: completions in one batch, then one failed attempt per `failing_ms`."""
    from jobq_core.scripts import Scripts
    from tests import tasks

    scripts = Scripts(queue.client, settings)
    queue.enqueue_many([(tasks.add, [i, i]) for i in range(len(runtimes_ms) + len(failing_ms))])
    claimed = scripts.claim(["default"], len(runtimes_ms) + len(failing_ms), "w").jobs
    done = [(job, "2", 60, ms, "") for job, ms in zip(claimed, runtimes_ms, strict=False)]
    assert set(scripts.complete_many("default", done)) == {1}
    for job, ms in zip(claimed[len(runtimes_ms):], failing_ms, strict=True):
        scripts.fail(job, "fail", error="ValueError: no", reason="no", runtime_ms=ms)
