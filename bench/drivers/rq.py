"""RQ: the forking ``Worker`` (its default) and ``SimpleWorker`` (runs jobs in-process)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.drivers.base import QUEUE, Driver, Kind, Variant, variant

_FUNCS = {kind: f"bench.apps.rq_app.{kind}" for kind in ("noop", "sleep10ms", "latency")}


class RqDriver(Driver):
    name = "rq"
    title = "RQ"
    venv = "peers"
    packages = ("rq", "redis")
    bulk_api = "`Queue.enqueue_many` (one pipeline per chunk)"
    memory_fill = "bulk"
    config_note = (
        "`rq worker -q --url URL bench` with `-w rq.worker.SimpleWorker` for the in-process "
        "worker (RQ's own performance notes recommend it when jobs are very short and trusted) "
        "and RQ's default forking `Worker` (a fork per job, which isolates crashes). One and two "
        "separate worker processes. Concurrency 8 uses `rq worker-pool -n 8 -w SimpleWorker` "
        "(RQ has no threaded worker). Results are kept as by default (500 s)."
    )

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._queue: Any = None

    def connect(self) -> None:
        from redis import Redis
        from rq import Queue

        self._queue = Queue(QUEUE, connection=Redis.from_url(self.url))
        self._funcs = {kind: _load(path) for kind, path in _FUNCS.items()}

    def enqueue_one(self, kind: Kind, *args: float) -> None:
        self._queue.enqueue(self._funcs[kind], *args)

    def enqueue_bulk(self, kind: Kind, count: int) -> None:
        from rq import Queue

        func = self._funcs[kind]
        self._queue.enqueue_many([Queue.prepare_data(func) for _ in range(count)])

    def variants(self) -> list[Variant]:
        simple = {"worker_class": "rq.worker.SimpleWorker"}
        fork = {"worker_class": "rq.worker.Worker"}
        # the forking worker manages 20-40 jobs/s here, SimpleWorker 150-250: scaled-down N
        # keeps each unit near 10 s
        return [
            variant(
                "rq", "rq-fork-1p", "RQ fork `Worker`", "drain-1p", 1, 1, n_scale=0.03, opts=fork
            ),
            variant(
                "rq", "rq-fork-2p", "RQ fork `Worker`", "drain-2p", 2, 1, n_scale=0.03, opts=fork
            ),
            variant(
                "rq",
                "rq-simple-1p",
                "RQ `SimpleWorker`",
                "drain-1p",
                1,
                1,
                n_scale=0.15,
                opts=simple,
            ),
            variant(
                "rq",
                "rq-simple-2p",
                "RQ `SimpleWorker`",
                "drain-2p",
                2,
                1,
                n_scale=0.15,
                opts=simple,
            ),
            variant(
                "rq",
                "rq-pool8-simple",
                "RQ `SimpleWorker`",
                "sleep-c8",
                1,
                8,
                n_scale=0.3,
                opts={**simple, "pool": "1"},
            ),
            variant("rq", "rq-simple-lat", "RQ `SimpleWorker`", "latency", 1, 1, opts=simple),
        ]

    def worker_argvs(self, variant: Variant, bindir: Path) -> list[list[str]]:
        worker_class = variant.options["worker_class"]
        if variant.options.get("pool"):
            return [
                [
                    str(bindir / "rq"),
                    "worker-pool",
                    "-q",
                    "--url",
                    self.url,
                    "-w",
                    worker_class,
                    "-n",
                    str(variant.concurrency),
                    QUEUE,
                ]
            ]
        one = [str(bindir / "rq"), "worker", "-q", "--url", self.url, "-w", worker_class, QUEUE]
        return [list(one) for _ in range(variant.n_procs)]


def _load(path: str) -> Any:
    import importlib

    module, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(module), attr)
