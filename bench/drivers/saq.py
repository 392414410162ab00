"""SAQ (Simple Async Queue) on Redis: an asyncio worker, one BLMOVE per job and slot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.drivers.base import ASYNC_CONCURRENCY, Kind, LoopDriver, Variant, variant


class SaqDriver(LoopDriver):
    name = "saq"
    title = "SAQ"
    venv = "saq"
    packages = ("saq", "redis", "hiredis")
    bulk_api = "not measured (asyncio figures only)"
    threaded_enqueue = False
    async_api = True
    # about 1,000-2,000 awaited enqueues/s here: a quarter of N is a second or more of it
    aenqueue_scale = 0.25
    async_only = True
    # its worker at concurrency 100 sometimes outlives a 20 s grace after SIGTERM with nothing
    # left to run; its jobs are all done by then
    stop_grace_s = 5.0
    config_note = (
        "`saq bench.apps.saq_app.settings --workers 1` (SAQ's CLI; logging at WARNING, its "
        "default) with a settings dict of `Queue.from_url(URL, name=\"bench\")`, the two "
        "coroutines and `concurrency=100` (SAQ's default is 10: the same 100 jobs at once as "
        "every system in the asyncio figures), other `Worker` options at their defaults "
        "(results kept, upkeep timers). The producer awaits `queue.enqueue(\"anoop\")` "
        "(SAQ's one-job API; the queue limits itself to 20 concurrent operations by default)."
    )

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._queue: Any = None

    async def aconnect(self) -> None:
        from saq import Queue

        self._queue = Queue.from_url(self.url, name="bench")
        await self._queue.connect()

    async def aenqueue_one(self, kind: Kind) -> None:
        await self._queue.enqueue(kind)

    async def aclose(self) -> None:
        if self._queue is not None:
            await self._queue.disconnect()
            self._queue = None

    def variants(self) -> list[Variant]:
        c = ASYNC_CONCURRENCY
        return [
            variant("saq", "saq-1p", "SAQ", "adrain-1p", 1, c, n_scale=0.5),
            variant("saq", "saq-c100", "SAQ", "asleep-c100", 1, c, n_scale=0.15),
        ]

    def worker_env(self, variant: Variant) -> dict[str, str]:
        return {"BENCH_SAQ_CONCURRENCY": str(variant.concurrency)}

    def worker_argvs(self, variant: Variant, bindir: Path) -> list[list[str]]:
        one = [str(bindir / "saq"), "bench.apps.saq_app.settings", "--workers", "1"]
        return [list(one) for _ in range(variant.n_procs)]
