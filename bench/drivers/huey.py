"""Huey on RedisHuey: a consumer with thread or process workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.drivers.base import Driver, Kind, Variant, variant


class HueyDriver(Driver):
    name = "huey"
    title = "Huey"
    venv = "peers"
    packages = ("huey", "redis")
    bulk_api = "`task.map(...)` (one LPUSH per job)"
    memory_fill = "single"
    config_note = (
        "`RedisHuey` defaults (blocking BRPOP; results stored only when not None). Consumer: "
        "`huey_consumer bench.apps.huey_app.huey -q -n` (`-n`: no periodic-task scheduler "
        "loop) with `-k thread -w 1` for one process, `-k process -w 2` for two, and "
        "`-k thread -w 8` for the 10 ms jobs, as Huey's consumer docs suggest threads for I/O "
        "and processes for CPU-bound work. Huey pops a job before running it (no ack), so a "
        "crash loses the job: it is the speed bar, not an equal on guarantees."
    )

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._tasks: dict[str, Any] = {}

    def connect(self) -> None:
        from bench.apps import huey_app

        self._tasks = {
            "noop": huey_app.noop,
            "sleep10ms": huey_app.sleep10ms,
            "latency": huey_app.latency,
        }
        huey_app.huey.storage.conn.ping()

    def enqueue_one(self, kind: Kind, *args: float) -> None:
        self._tasks[kind](*args)

    def enqueue_bulk(self, kind: Kind, count: int) -> None:
        self._tasks[kind].map([() for _ in range(count)])

    def variants(self) -> list[Variant]:
        return [
            variant(
                "huey", "huey-thread-1", "Huey", "drain-1p", 1, 1, opts={"worker_type": "thread"}
            ),
            variant(
                "huey", "huey-process-2", "Huey", "drain-2p", 2, 1, opts={"worker_type": "process"}
            ),
            variant(
                "huey", "huey-thread-8", "Huey", "sleep-c8", 1, 8, opts={"worker_type": "thread"}
            ),
            variant(
                "huey", "huey-thread-1-lat", "Huey", "latency", 1, 1, opts={"worker_type": "thread"}
            ),
        ]

    def worker_argvs(self, variant: Variant, bindir: Path) -> list[list[str]]:
        workers = (
            variant.n_procs if variant.options["worker_type"] == "process" else variant.concurrency
        )
        return [
            [
                str(bindir / "huey_consumer"),
                "bench.apps.huey_app.huey",
                "-q",
                "-n",
                "-k",
                variant.options["worker_type"],
                "-w",
                str(workers),
            ]
        ]
