"""The interface every system's driver implements, and the worker-process handling they share.

A driver module is imported in two places:
- by the orchestrator (peers venv), which only calls ``variants``/``worker_argvs`` and the shared
  ``start_workers``/``stop``: so a driver's module level imports nothing but the stdlib;
- by ``bench.agent`` inside the system's own venv, which calls ``connect``/``enqueue_one``/
  ``enqueue_bulk``: those import the library lazily.
Task code (what a worker imports) lives in ``bench/apps/<system>_app.py``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from bench import procs
from bench.config import REPO_ROOT

# anoop / asleep10ms: `async def` tasks (the asyncio figures); in the asyncio-only libraries
# (arq, SAQ, taskiq) every task is a coroutine, so there they are the same as noop / sleep10ms
Kind = Literal["noop", "sleep10ms", "latency", "anoop", "asleep10ms"]
KINDS: tuple[Kind, ...] = ("noop", "sleep10ms", "latency", "anoop", "asleep10ms")
QUEUE = "bench"
# jobs at once in the asyncio figures' 10 ms jobs (issue 16's "concurrency 100")
ASYNC_CONCURRENCY = 100

# the scenarios a variant can take part in; each maps to one column of the summary table
# (adrain-1p and asleep-c100 to the asyncio table)
Role = Literal[
    "drain-1p", "drain-2p", "sleep-c8", "latency", "mixed", "adrain-1p", "asleep-c100",
    "crash",
]


@dataclass(frozen=True)
class Variant:
    """One worker configuration of one system, e.g. RQ SimpleWorker with 2 processes."""

    system: str
    label: str  # unique in the run, e.g. "rq-simple-2p"
    row: str  # summary-table row, e.g. "RQ SimpleWorker"
    role: Role
    n_procs: int
    concurrency: int
    options: Mapping[str, str] = field(default_factory=dict)
    # slow configurations run fewer jobs so no unit takes minutes; rates stay comparable
    n_scale: float = 1.0
    note: str = ""
    # a configuration that is not the library's default or documented advice: only measured
    # with BENCH_EXTRA_VARIANTS=1
    extra: bool = False


@dataclass
class WorkerHandle:
    """The processes of one started worker configuration."""

    variant: Variant
    procs: list[subprocess.Popen[bytes]]
    started_at: float  # perf_counter just before the first spawn


class Driver(ABC):
    """One queue system as the benchmark sees it."""

    name: ClassVar[str]
    title: ClassVar[str]  # "RQ", "Celery", ...
    venv: ClassVar[str]  # key of bench.venvs.VENVS
    packages: ClassVar[tuple[str, ...]]  # distributions whose versions the report shows
    bulk_api: ClassVar[str]  # how enqueue_bulk is done, for the report
    # "bulk" when the batch API stores exactly what single enqueues store, so the 100k-job
    # memory fill can use the faster path
    memory_fill: ClassVar[Literal["single", "bulk"]] = "single"
    # whether one client may enqueue from many threads at once (the 16-thread enqueue figure)
    threaded_enqueue: ClassVar[bool] = True
    # an asyncio producer API (aconnect/aenqueue_one/aclose): the concurrent-enqueue figure
    async_api: ClassVar[bool] = False
    # measured only in the asyncio figures (SAQ, taskiq): no batch, thread or memory units
    async_only: ClassVar[bool] = False
    # a slow producer enqueues this fraction of BENCH_AENQUEUE_N (its rate does not depend
    # on N; the run stays short)
    aenqueue_scale: ClassVar[float] = 1.0
    # how long a warm stop may take before the workers are killed
    stop_grace_s: ClassVar[float] = 20.0
    config_note: ClassVar[str]  # markdown: how the system is configured and why

    def __init__(self, url: str) -> None:
        self.url = url

    # producer side: runs in the system's venv (bench.agent)

    @abstractmethod
    def connect(self) -> None:
        """Open connections; called before any timed enqueue."""

    @abstractmethod
    def enqueue_one(self, kind: Kind, *args: float) -> None:
        """Enqueue one job through the library's normal one-job API."""

    @abstractmethod
    def enqueue_bulk(self, kind: Kind, count: int) -> None:
        """Enqueue ``count`` argument-less jobs through the library's batch API."""

    def close(self) -> None:  # noqa: B027 - optional hook, most drivers have nothing to close
        """Release connections (optional)."""

    # asyncio producer side (drivers with ``async_api``): runs in the system's venv

    async def aconnect(self) -> None:
        """Open the library's asyncio client on the running loop."""
        raise NotImplementedError(f"{self.name} has no asyncio producer API")

    async def aenqueue_one(self, kind: Kind) -> None:
        """Enqueue one job through the library's awaitable one-job API."""
        raise NotImplementedError(f"{self.name} has no asyncio producer API")

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release the asyncio client (optional)."""

    # orchestrator side: runs in the peers venv

    @abstractmethod
    def variants(self) -> list[Variant]:
        """Every worker configuration measured, tagged with the scenario it belongs to."""

    @abstractmethod
    def worker_argvs(self, variant: Variant, bindir: Path) -> list[list[str]]:
        """Command lines of the worker processes (one entry per separately started process)."""

    def worker_env(self, variant: Variant) -> dict[str, str]:
        """Extra environment for the workers of ``variant``."""
        return {}

    def start_workers(
        self,
        variant: Variant,
        bindir: Path,
        env: Mapping[str, str],
        log_dir: Path,
    ) -> WorkerHandle:
        """Start the worker processes of ``variant``, each in its own process group."""
        full_env = {**env, **self.worker_env(variant)}
        started = time.perf_counter()
        started_procs = []
        for index, argv in enumerate(self.worker_argvs(variant, bindir)):
            log = log_dir / f"{variant.label}-{index}-{os.getpid()}.log"
            started_procs.append(procs.spawn(argv, full_env, log, cwd=REPO_ROOT))
        return WorkerHandle(variant=variant, procs=started_procs, started_at=started)

    def stop(self, handle: WorkerHandle, grace_s: float | None = None) -> procs.StopResult:
        """Warm-stop every worker of ``handle`` and reap them (killing what does not stop
        after ``grace_s``, by default the driver's ``stop_grace_s``)."""
        grace = self.stop_grace_s if grace_s is None else min(grace_s, self.stop_grace_s)
        return procs.stop_group(handle.procs, grace_s=grace)


class LoopDriver(Driver):
    """A driver of an asyncio-only library (SAQ, taskiq): the sync producer calls (the drains'
    pre-enqueue) run its awaitable ones on a private event loop, one loop turn per job."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._loop: asyncio.AbstractEventLoop | None = None

    def connect(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self.aconnect())

    def enqueue_one(self, kind: Kind, *args: float) -> None:
        assert self._loop is not None
        self._loop.run_until_complete(self.aenqueue_one(kind))

    def enqueue_bulk(self, kind: Kind, count: int) -> None:
        assert self._loop is not None

        async def batch() -> None:
            await asyncio.gather(*(self.aenqueue_one(kind) for _ in range(count)))

        self._loop.run_until_complete(batch())

    def close(self) -> None:
        if self._loop is not None:
            self._loop.run_until_complete(self.aclose())
            self._loop.close()


def variant(
    system: str,
    label: str,
    row: str,
    role: Role,
    n_procs: int,
    concurrency: int,
    n_scale: float = 1.0,
    note: str = "",
    opts: Mapping[str, str] | None = None,
    extra: bool = False,
) -> Variant:
    """Shorthand used by the drivers' ``variants`` lists."""
    return Variant(
        system=system,
        label=label,
        row=row,
        role=role,
        n_procs=n_procs,
        concurrency=concurrency,
        options=dict(opts or {}),
        extra=extra,
        n_scale=n_scale,
        note=note,
    )


def chunks(count: int, size: int) -> Sequence[int]:
    """Sizes of consecutive chunks of at most ``size`` that add up to ``count``."""
    return [min(size, count - start) for start in range(0, count, size)]
