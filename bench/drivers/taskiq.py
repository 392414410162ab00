"""taskiq with taskiq-redis's RedisStreamBroker (acknowledged delivery from a Redis stream)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.drivers.base import ASYNC_CONCURRENCY, Kind, LoopDriver, Variant, variant


class TaskiqDriver(LoopDriver):
    name = "taskiq"
    title = "taskiq"
    venv = "taskiq"
    packages = ("taskiq", "taskiq-redis", "redis", "hiredis")
    bulk_api = "not measured (asyncio figures only)"
    threaded_enqueue = False
    async_api = True
    # about 1,000-2,000 awaited enqueues/s here: a quarter of N is a second or more of it
    aenqueue_scale = 0.25
    async_only = True
    # taskiq 0.13's worker does not exit on SIGTERM while its stream broker has nothing to read
    # (it logs "Stopping prefetching messages..." and goes on polling XREADGROUP): it is killed
    # after 3 s instead of 20, its jobs all done by then
    stop_grace_s = 3.0
    config_note = (
        "`RedisStreamBroker(url, queue_name=\"bench\")`, the broker taskiq-redis's README sets up "
        "(the one of its three with acknowledgements; the list and pub/sub brokers lose a job "
        "whose worker dies), default options (XREADGROUP of up to 100 entries, ack once the "
        "result is handled), no result backend (taskiq's default; Celery runs without one "
        "here too). Worker: `taskiq worker bench.apps.taskiq_app:broker --workers 1 "
        "--max-async-tasks 100 --log-level WARNING` (100 is its default; at its default INFO "
        "it logs every task; `--workers 1`: one worker process under taskiq's process manager, "
        "whose default is 2). The producer calls `await broker.startup()` once, then awaits "
        "`task.kiq()` per job. Its worker does not exit on SIGTERM once the stream is empty "
        "(it keeps polling XREADGROUP), so the harness kills it 3 s after its last job; its "
        "CPU per job is read before that, between the first and the last job."
    )

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._broker: Any = None
        self._tasks: dict[str, Any] = {}

    async def aconnect(self) -> None:
        # the app reads BENCH_REDIS_URL, which is this driver's url in the agent
        from bench.apps import taskiq_app

        self._broker = taskiq_app.broker
        self._tasks = {
            "anoop": taskiq_app.anoop,
            "asleep10ms": taskiq_app.asleep10ms,
            "noop": taskiq_app.anoop,
            "sleep10ms": taskiq_app.asleep10ms,
        }
        # declares the consumer group (at "$") before the first job, so workers started
        # later still read every job enqueued from here on
        await self._broker.startup()

    async def aenqueue_one(self, kind: Kind) -> None:
        await self._tasks[kind].kiq()

    async def aclose(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None

    def variants(self) -> list[Variant]:
        c = ASYNC_CONCURRENCY
        return [
            variant("taskiq", "taskiq-1p", "taskiq", "adrain-1p", 1, c, n_scale=0.5),
            variant("taskiq", "taskiq-c100", "taskiq", "asleep-c100", 1, c, n_scale=0.15),
        ]

    def worker_argvs(self, variant: Variant, bindir: Path) -> list[list[str]]:
        one = [
            str(bindir / "taskiq"),
            "worker",
            "bench.apps.taskiq_app:broker",
            "--workers",
            "1",
            "--max-async-tasks",
            str(variant.concurrency),
            "--log-level",
            "WARNING",
        ]
        return [list(one) for _ in range(variant.n_procs)]
