"""jobq itself, from the project's own ``.venv`` (``pip install -e .``)."""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench.drivers.base import ASYNC_CONCURRENCY, QUEUE, Driver, Kind, Variant, variant

_TASKS = {
    kind: f"bench.apps.jobq_app.{kind}"
    for kind in ("noop", "sleep10ms", "latency", "anoop", "asleep10ms")
}
# jobq's own settings comment: prefetch "raises throughput of short jobs"; 64 is what Celery's
# guide suggests for its equivalent, so both systems get the same allowance
PREFETCH = "64"
# issue 18: a row with per-job log capture (the default) -> the same configuration without it
CAPTURE_OFF_ROWS = {
    "jobq (thread pool)": "jobq (thread pool, --no-capture-logs)",
    "jobq (defaults: no flags)": "jobq (defaults, --no-capture-logs)",
}
# extra `jobq worker` options for trying engine settings without editing this file
EXTRA_ARGS_ENV = "BENCH_JOBQ_WORKER_ARGS"


def has_capture_setting() -> bool:
    """Whether this checkout's engine has per-job log capture to turn off (issue 18's
    `capture_logs`, `jobq worker --no-capture-logs`). Read from the source: this runs in the
    peers' venv, where jobq is not installed."""
    from bench.config import REPO_ROOT

    config = REPO_ROOT / "jobq_core" / "config.py"
    return config.exists() and "capture_logs:" in config.read_text()


def extra_worker_args() -> list[str]:
    """Options from BENCH_JOBQ_WORKER_ARGS, appended to every jobq worker command."""
    return shlex.split(os.environ.get(EXTRA_ARGS_ENV, ""))


class JobqDriver(Driver):
    name = "jobq"
    title = "jobq"
    venv = "project"
    packages = ("jobq", "redis", "hiredis")
    bulk_api = "`Queue.enqueue_many` (one round trip per batch)"
    memory_fill = "bulk"
    async_api = True
    config_note = (
        "`jobq worker --url URL --queue bench --import bench.apps.jobq_app --prefetch 64` "
        "(prefetch is jobq's documented lever for short jobs; 64 as Celery gets), otherwise "
        "default settings (leases, heartbeats, fenced completion). `--pool thread "
        "--concurrency 1` is one process running jobs in-process; `--pool process` is the "
        "default pool (jobs in child processes, so a crash or timeout kills only the "
        "child); `--pool thread --concurrency 8` for the 10 ms jobs. The row 'jobq "
        "(defaults: no flags)' runs `jobq worker --import bench.apps.jobq_app` alone "
        "(process pool, a slot per CPU, auto prefetch; `--pool thread` only for the 10 ms "
        "jobs). The latency row with `--no-claim-on-wake` turns off the default claim in "
        "the idle wait's round trip (under a short pick-up lease), for comparison. "
        "In the asyncio figures: `--pool async --concurrency 100 --prefetch 64` (one event "
        "loop, `async def` tasks; 100 is the async pool's default concurrency), and the "
        "producer awaits `AsyncQueue.enqueue` (concurrent calls share script calls: group "
        "commit). Per-job log capture (issue 18) is on in every row but the two "
        "`--no-capture-logs` ones, which measure what it costs."
    )

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._queue: Any = None
        self._aqueue: Any = None

    def connect(self) -> None:
        from jobq_core import Queue

        import bench.apps.jobq_app  # noqa: F401 - registers the tasks for enqueue-by-name checks

        self._queue = Queue(QUEUE, url=self.url)
        # connected before any figure starts, as the Huey and Dramatiq drivers do (their
        # connect() pings): else the first timed enqueue pays the connection's set-up
        # (~4 ms here), and in the latency probe the first probe and the one queued behind it
        # were two of the five values above the p99
        self._queue.client.ping()

    def enqueue_one(self, kind: Kind, *args: float) -> None:
        self._queue.enqueue(_TASKS[kind], *args)

    def enqueue_bulk(self, kind: Kind, count: int) -> None:
        # per the engine contract: one entry per job, task name and positional args
        self._queue.enqueue_many([(_TASKS[kind], ()) for _ in range(count)])

    async def aconnect(self) -> None:
        from jobq_core import AsyncQueue

        import bench.apps.jobq_app  # noqa: F401 - registers the tasks for enqueue-by-name checks

        self._aqueue = AsyncQueue(QUEUE, url=self.url)

    async def aenqueue_one(self, kind: Kind) -> None:
        await self._aqueue.enqueue(_TASKS[kind])

    async def aclose(self) -> None:
        if self._aqueue is not None:
            await self._aqueue.aclose()
            self._aqueue = None

    def enqueue_mixed(self, long_n: int, long_s: float, short_n: int) -> None:
        """The mixed load: `long_n` jobs of `long_s` seconds, then `short_n` no-op jobs."""
        self._queue.enqueue_many([("bench.apps.jobq_app.mixed_long", (long_s,))] * long_n)
        self._queue.enqueue_many([("bench.apps.jobq_app.mixed_short", ())] * short_n)

    def crash_kills(self, kills: int, timeout_s: float = 30.0) -> list[float]:
        """SIGKILL the child running a job ``kills`` times; the wall-clock time of each kill.

        Each round: a job that reports its process id and hangs (its retry ends at once), a
        probe job queued behind it (given 0.1 s to be claimed), the kill; the round ends when
        the probe completed. The
        probe reports when it began, so began - killed is how long the slot took to notice,
        record the crash, start a new child and hand it the next job."""
        import signal

        client = self._queue.client
        killed = []
        for i in range(kills):
            key = f"bench:crash:{i}"
            self._queue.enqueue("bench.apps.jobq_app.crash_hold", key)
            pid = _until(partial(client.get, key), timeout_s, "the victim to start")
            probe = self._queue.enqueue("bench.apps.jobq_app.crash_probe")
            time.sleep(0.1)
            killed.append(time.time())
            os.kill(int(pid), signal.SIGKILL)
            done = partial(lambda job: job.refresh().status == "completed", probe)
            _until(done, timeout_s, "the probe")
        return killed

    def variants(self) -> list[Variant]:
        thread = {"pool": "thread"}
        process = {"pool": "process"}
        # What a user gets without tuning: `jobq worker --import ...` (process pool, a slot
        # per CPU, auto prefetch); for the 10 ms jobs only `--pool thread` (its default 8).
        plain = {"pool": "process", "defaults": "1"}
        plain_thread = {"pool": "thread", "defaults": "1"}
        defaults_row = "jobq (defaults: no flags)"
        # issue 18's log capture cost: the same no-op drains with capture off
        nocap = [
            variant(
                "jobq", "jobq-thread-1p-nocap", CAPTURE_OFF_ROWS["jobq (thread pool)"],
                "drain-1p", 1, 1, opts={**thread, "no_capture_logs": "1"},
            ),
            variant(
                "jobq", "jobq-default-1p-nocap", CAPTURE_OFF_ROWS[defaults_row], "drain-1p", 1,
                0, opts={**plain, "no_capture_logs": "1"},
            ),
        ] if has_capture_setting() else []
        listed = [
            variant("jobq", "jobq-default-1p", defaults_row, "drain-1p", 1, 0, opts=plain),
            variant(
                "jobq",
                "jobq-default-2p",
                defaults_row,
                "drain-2p",
                2,
                0,
                opts=plain,
                note="two `jobq worker` processes",
            ),
            variant(
                "jobq",
                "jobq-default-c8",
                defaults_row,
                "sleep-c8",
                1,
                8,
                opts=plain_thread,
                note="`--pool thread` only: its default is 8 threads",
            ),
            variant("jobq", "jobq-default-lat", defaults_row, "latency", 1, 0, opts=plain),
            variant(
                "jobq",
                "jobq-mixed-auto",
                defaults_row,
                "mixed",
                2,
                0,
                opts=plain,
                note="two `jobq worker` processes, no flags (auto prefetch)",
            ),
            variant(
                "jobq",
                "jobq-mixed-p0",
                "jobq (defaults, --prefetch 0)",
                "mixed",
                2,
                0,
                opts={**plain, "prefetch": "0"},
                note="two `jobq worker` processes with `--prefetch 0`",
            ),
            variant(
                "jobq",
                "jobq-crash",
                "jobq (defaults, --concurrency 1)",
                "crash",
                1,
                1,
                opts={**plain, "concurrency": "1"},
                note="one slot, so the probe can only run in the replacement child",
            ),
            variant("jobq", "jobq-thread-1p", "jobq (thread pool)", "drain-1p", 1, 1, opts=thread),
            variant(
                "jobq",
                "jobq-thread-2p",
                "jobq (thread pool)",
                "drain-2p",
                2,
                1,
                opts=thread,
                note="two `jobq worker` processes",
            ),
            variant(
                "jobq", "jobq-process-c1", "jobq (process pool)", "drain-1p", 1, 1, opts=process
            ),
            variant(
                "jobq", "jobq-process-c2", "jobq (process pool)", "drain-2p", 1, 2, opts=process
            ),
            variant("jobq", "jobq-thread-c8", "jobq (thread pool)", "sleep-c8", 1, 8, opts=thread),
            variant("jobq", "jobq-thread-lat", "jobq (thread pool)", "latency", 1, 1, opts=thread),
            variant(
                "jobq", "jobq-process-lat", "jobq (process pool)", "latency", 1, 1, opts=process
            ),
            variant(
                "jobq", "jobq-async-1p", "jobq (--pool async)", "adrain-1p", 1,
                ASYNC_CONCURRENCY, opts={"pool": "async"}, n_scale=2.0,
            ),
            variant(
                "jobq", "jobq-async-c100", "jobq (--pool async)", "asleep-c100", 1,
                ASYNC_CONCURRENCY, opts={"pool": "async"},
            ),
            variant(
                "jobq",
                "jobq-thread-lat-nowake",
                "jobq (thread pool, --no-claim-on-wake)",
                "latency",
                1,
                1,
                opts={**thread, "no_claim_on_wake": "1"},
                note="the idle worker claims after its wait (two round trips), for comparison",
            ),
        ]
        # Each capture-off row right after its capture-on row (run_repetition reverses the
        # order every other repetition): the pair sees the same machine state, in both
        # orders, instead of whatever variant happened to run before each.
        for off in nocap:
            on = off.label.removesuffix("-nocap")
            at = next((i for i, v in enumerate(listed) if v.label == on), len(listed) - 1)
            listed.insert(at + 1, off)
        return listed

    def worker_argvs(self, variant: Variant, bindir: Path) -> list[list[str]]:
        if variant.options.get("defaults"):
            plain = [
                str(bindir / "jobq"),
                "worker",
                "--url",
                self.url,
                "--queue",
                QUEUE,
                "--import",
                "bench.apps.jobq_app",
                *(["--pool", "thread"] if variant.options["pool"] == "thread" else []),
                *(
                    ["--concurrency", variant.options["concurrency"]]
                    if "concurrency" in variant.options
                    else []
                ),
                *(
                    ["--prefetch", variant.options["prefetch"]]
                    if "prefetch" in variant.options
                    else []
                ),
                *(["--no-capture-logs"] if variant.options.get("no_capture_logs") else []),
                *extra_worker_args(),
            ]
            return [list(plain) for _ in range(variant.n_procs)]
        one = [
            str(bindir / "jobq"),
            "worker",
            "--url",
            self.url,
            "--queue",
            QUEUE,
            "--import",
            "bench.apps.jobq_app",
            "--concurrency",
            str(variant.concurrency),
            "--pool",
            variant.options["pool"],
            "--prefetch",
            PREFETCH,
            *(["--no-claim-on-wake"] if variant.options.get("no_claim_on_wake") else []),
            *(["--no-capture-logs"] if variant.options.get("no_capture_logs") else []),
            *extra_worker_args(),
        ]
        return [list(one) for _ in range(variant.n_procs)]


def _until(get: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll ``get`` every millisecond until it returns something true; that value."""
    deadline = time.monotonic() + timeout_s
    while not (value := get()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout_s:.0f} s for {what}")
        time.sleep(0.001)
    return value
