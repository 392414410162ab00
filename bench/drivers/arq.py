"""arq: asyncio workers that poll a sorted set; defaults plus a short ``poll_delay`` variant."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bench.drivers.base import ASYNC_CONCURRENCY, Driver, Kind, Variant, variant


class ArqDriver(Driver):
    name = "arq"
    title = "arq"
    # arq 0.28 requires redis<6 while kombu 5.7 requires redis>=6.4: it gets its own venv
    venv = "arq"
    packages = ("arq", "redis")
    bulk_api = "no batch API: `asyncio.gather` of one `enqueue_job` per job"
    memory_fill = "bulk"
    # one asyncio loop per client: its enqueue is not callable from several threads at once
    threaded_enqueue = False
    async_api = True
    # about 1,000-2,000 awaited enqueues/s here: a quarter of N is a second or more of it
    aenqueue_scale = 0.25
    # {placeholders} are filled by bench/report.py with this run's own figures for arq.
    config_note = (
        "`WorkerSettings` defaults (`max_jobs=10`, `poll_delay=0.5 s`, results kept 1 h), run "
        "with `arq.worker.run_worker` and logging at WARNING (the `arq` CLI logs every job at "
        "INFO). arq's docs give no speed advice; its worker only looks for new jobs every "
        "`poll_delay`, which bounds its drain rate and its latency: in this run it drained "
        "{drain_1p} jobs/s with 1 process and {drain_2p} with 2, at a p50 latency of "
        "{latency_p50} ms. `BENCH_EXTRA_VARIANTS=1` adds a non-default `poll_delay=0.005` "
        "configuration that shows what the polling costs. `max_jobs=8` for the 10 ms jobs. "
        "The producer calls `enqueue_job` through `loop.run_until_complete` per job. In the "
        "asyncio figures: the same defaults with `max_jobs=100` (the same 100 jobs at once "
        "as every system there), and the producer awaits `pool.enqueue_job` from coroutines."
    )

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: Any = None

    def connect(self) -> None:
        from arq import create_pool
        from arq.connections import RedisSettings

        self._loop = asyncio.new_event_loop()
        self._pool = self._loop.run_until_complete(create_pool(RedisSettings.from_dsn(self.url)))

    def enqueue_one(self, kind: Kind, *args: float) -> None:
        assert self._loop is not None
        self._loop.run_until_complete(self._pool.enqueue_job(kind, *args))

    def enqueue_bulk(self, kind: Kind, count: int) -> None:
        assert self._loop is not None
        pool = self._pool

        async def batch() -> None:
            await asyncio.gather(*(pool.enqueue_job(kind) for _ in range(count)))

        self._loop.run_until_complete(batch())

    def close(self) -> None:
        if self._loop is not None and self._pool is not None:
            self._loop.run_until_complete(self._pool.aclose())
            self._loop.close()

    async def aconnect(self) -> None:
        from arq import create_pool
        from arq.connections import RedisSettings

        self._pool = await create_pool(RedisSettings.from_dsn(self.url))

    async def aenqueue_one(self, kind: Kind) -> None:
        await self._pool.enqueue_job(kind)

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None

    def variants(self) -> list[Variant]:
        fast = {"poll_delay": "0.005"}
        # default arq drains ~200 no-op jobs/s (one 100-job read per 0.5 s poll) and ~16 sleeping
        # jobs/s with max_jobs=8, so those units run a fraction of N
        return [
            variant("arq", "arq-1p", "arq (defaults)", "drain-1p", 1, 10, n_scale=0.1),
            variant("arq", "arq-2p", "arq (defaults)", "drain-2p", 2, 10, n_scale=0.1),
            variant("arq", "arq-1p-max8", "arq (defaults)", "sleep-c8", 1, 8, n_scale=0.05),
            variant("arq", "arq-1p-lat", "arq (defaults)", "latency", 1, 10),
            # the asyncio figures: max_jobs=100 as every system there; one 0.5 s poll reads
            # at most 100 jobs, so ~200 jobs/s
            variant(
                "arq", "arq-async-1p", "arq (defaults)", "adrain-1p", 1, ASYNC_CONCURRENCY,
                n_scale=0.2,
            ),
            variant(
                "arq", "arq-async-c100", "arq (defaults)", "asleep-c100", 1, ASYNC_CONCURRENCY,
                n_scale=0.05,
            ),
            variant(
                "arq",
                "arq-1p-poll5ms",
                "arq `poll_delay=5 ms`",
                "drain-1p",
                1,
                10,
                n_scale=0.5,
                opts=fast,
                extra=True,
            ),
            variant(
                "arq",
                "arq-1p-max8-poll5ms",
                "arq `poll_delay=5 ms`",
                "sleep-c8",
                1,
                8,
                opts=fast,
                extra=True,
            ),
            variant(
                "arq",
                "arq-1p-poll5ms-lat",
                "arq `poll_delay=5 ms`",
                "latency",
                1,
                10,
                opts=fast,
                extra=True,
            ),
        ]

    def worker_env(self, variant: Variant) -> dict[str, str]:
        env = {"BENCH_ARQ_MAX_JOBS": str(variant.concurrency)}
        if "poll_delay" in variant.options:
            env["BENCH_ARQ_POLL_DELAY"] = variant.options["poll_delay"]
        return env

    def worker_argvs(self, variant: Variant, bindir: Path) -> list[list[str]]:
        code = (
            "import logging; logging.basicConfig(level=logging.WARNING); "
            "from arq.worker import run_worker; "
            "from bench.apps.arq_app import WorkerSettings; run_worker(WorkerSettings)"
        )
        return [[str(bindir / "python"), "-c", code] for _ in range(variant.n_procs)]
