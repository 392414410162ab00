"""Dramatiq with its RedisBroker: worker processes with a thread pool each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.drivers.base import QUEUE, Driver, Kind, Variant, variant


class DramatiqDriver(Driver):
    name = "dramatiq"
    title = "Dramatiq"
    venv = "peers"
    packages = ("dramatiq", "redis")
    bulk_api = "`group([...]).run()`"
    memory_fill = "single"
    config_note = (
        "`RedisBroker` with the default middleware (ack after the job, retries, time limit). "
        "Worker: `dramatiq bench.apps.dramatiq_app -Q bench -p 1 -t 8` (8 threads is its "
        "default; more threads is its documented lever for I/O-bound work) and `-p 2 -t 8`."
    )

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._actors: dict[str, Any] = {}

    def connect(self) -> None:
        from bench.apps import dramatiq_app

        self._actors = {
            "noop": dramatiq_app.noop,
            "sleep10ms": dramatiq_app.sleep10ms,
            "latency": dramatiq_app.latency,
        }
        dramatiq_app.broker.client.ping()

    def enqueue_one(self, kind: Kind, *args: float) -> None:
        self._actors[kind].send(*args)

    def enqueue_bulk(self, kind: Kind, count: int) -> None:
        from dramatiq import group

        actor = self._actors[kind]
        group([actor.message() for _ in range(count)]).run()

    def variants(self) -> list[Variant]:
        return [
            variant("dramatiq", "dramatiq-1p-8t", "Dramatiq", "drain-1p", 1, 8),
            variant("dramatiq", "dramatiq-2p-8t", "Dramatiq", "drain-2p", 2, 8),
            variant("dramatiq", "dramatiq-1p-8t-sleep", "Dramatiq", "sleep-c8", 1, 8),
            variant("dramatiq", "dramatiq-1p-8t-lat", "Dramatiq", "latency", 1, 8),
        ]

    def worker_argvs(self, variant: Variant, bindir: Path) -> list[list[str]]:
        return [
            [
                str(bindir / "dramatiq"),
                "bench.apps.dramatiq_app",
                "-Q",
                QUEUE,
                "-p",
                str(variant.n_procs),
                "-t",
                str(variant.concurrency),
            ]
        ]
