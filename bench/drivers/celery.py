"""Celery with the Redis broker: prefork pool for no-op jobs, thread pool for sleeping jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.drivers.base import QUEUE, Driver, Kind, Variant, variant


class CeleryDriver(Driver):
    name = "celery"
    title = "Celery"
    venv = "peers"
    packages = ("celery", "kombu", "billiard", "redis")
    bulk_api = "`group(...).apply_async()`"
    memory_fill = "single"
    config_note = (
        "Redis broker, no result backend (`task_ignore_result=True`), "
        "`worker_prefetch_multiplier=64` (Celery's Optimizing guide: for many short tasks make "
        'it large, "say 64, or 128"), early acks (the default). Worker: `celery -A '
        "bench.apps.celery_app worker -Q bench -l WARNING --without-gossip --without-mingle "
        "--without-heartbeat` with `-P prefork -c 1` / `-c 2` (one master feeding 1 or 2 pool "
        "processes) and `-P threads -c 8` for the 10 ms jobs."
    )

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._tasks: dict[str, Any] = {}

    def connect(self) -> None:
        from bench.apps import celery_app

        self._tasks = {
            "noop": celery_app.noop,
            "sleep10ms": celery_app.sleep10ms,
            "latency": celery_app.latency,
        }
        # open the broker connection now so the timed loop does not include it
        with celery_app.app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=3)

    def enqueue_one(self, kind: Kind, *args: float) -> None:
        self._tasks[kind].delay(*args)

    def enqueue_bulk(self, kind: Kind, count: int) -> None:
        from celery import group

        task = self._tasks[kind]
        group(task.s() for _ in range(count)).apply_async()

    def variants(self) -> list[Variant]:
        return [
            variant(
                "celery",
                "celery-prefork-c1",
                "Celery prefork",
                "drain-1p",
                1,
                1,
                n_scale=0.3,
                opts={"pool": "prefork"},
            ),
            variant(
                "celery",
                "celery-prefork-c2",
                "Celery prefork",
                "drain-2p",
                1,
                2,
                n_scale=0.3,
                opts={"pool": "prefork"},
            ),
            variant(
                "celery",
                "celery-threads-c8",
                "Celery prefork",
                "sleep-c8",
                1,
                8,
                opts={"pool": "threads"},
                note="`-P threads -c 8`",
            ),
            variant(
                "celery",
                "celery-prefork-c1-lat",
                "Celery prefork",
                "latency",
                1,
                1,
                opts={"pool": "prefork"},
            ),
        ]

    def worker_argvs(self, variant: Variant, bindir: Path) -> list[list[str]]:
        return [
            [
                str(bindir / "celery"),
                "-A",
                "bench.apps.celery_app",
                "worker",
                "-Q",
                QUEUE,
                "-l",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-P",
                variant.options["pool"],
                "-c",
                str(variant.concurrency),
            ]
        ]
