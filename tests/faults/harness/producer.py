"""Enqueue through the public API and log every attempt's outcome in the producer ledger.

Only this module (and tasks.py) imports jobq_core; the rest of the harness is engine-agnostic.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis

from .ledger import Outcome, ProducerLog

# The producer can't know whether a write it sent was applied when the connection broke or timed
# out after sending: Jepsen's "info" result. Such keys are never counted as lost.
UNKNOWN_ERRORS: tuple[type[BaseException], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    ConnectionError,
    TimeoutError,
    OSError,
)


class Producer:
    """Wraps one ``jobq_core.Queue``; every enqueue is recorded as ok / error / unknown."""

    def __init__(self, queue: Any, log: ProducerLog, key_prefix: str = "k") -> None:
        self.queue = queue
        self.log = log
        self.key_prefix = key_prefix
        self._seq = itertools.count()
        self.errors: list[str] = []

    def next_key(self, prefix: str | None = None) -> str:
        return f"{prefix or self.key_prefix}-{next(self._seq)}"

    def enqueue(
        self, task: str, *args: Any, key: str | None = None, **opts: Any
    ) -> tuple[str, Outcome, Any]:
        """Enqueue ``task(key, *args)``; returns (key, outcome, job or exception)."""
        key = key or self.next_key()
        t0 = time.monotonic()
        try:
            job = self.queue.enqueue_call(task, args=(key, *args), **opts)
        except Exception as exc:  # every failure is evidence: classify and record it
            outcome: Outcome = "unknown" if _is_unknown(exc) else "error"
            self.log.record(key, outcome, t0, time.monotonic(), error=f"{type(exc).__name__}:{exc}")
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return key, outcome, exc
        self.log.record(key, "ok", t0, time.monotonic(), job_id=str(job.id))
        return key, "ok", job

    def enqueue_n(
        self, n: int, task: str, *args: Any, prefix: str | None = None, **opts: Any
    ) -> list[str]:
        return [self.enqueue(task, *args, key=self.next_key(prefix), **opts)[0] for _ in range(n)]


def _is_unknown(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, UNKNOWN_ERRORS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class BackgroundProducer(threading.Thread):
    """Enqueue at a steady rate from a thread until stopped (load during a fault)."""

    def __init__(
        self,
        producer: Producer,
        task: str,
        args: Sequence[Any],
        rate_per_s: float,
        limit: int,
        opts: dict[str, Any] | None = None,
        on_each: Callable[[str, Outcome], None] | None = None,
    ) -> None:
        super().__init__(name="fault-producer", daemon=True)
        self.producer = producer
        self.task = task
        self.args = tuple(args)
        self.interval = 1.0 / rate_per_s
        self.limit = limit
        self.opts = opts or {}
        self.on_each = on_each
        self.stop_event = threading.Event()
        self.outcomes: dict[str, int] = {"ok": 0, "error": 0, "unknown": 0}
        self.max_call_s = 0.0

    def run(self) -> None:
        next_at = time.monotonic()
        for _ in range(self.limit):
            if self.stop_event.is_set():
                return
            t0 = time.monotonic()
            key, outcome, _ = self.producer.enqueue(self.task, *self.args, **self.opts)
            self.max_call_s = max(self.max_call_s, time.monotonic() - t0)
            self.outcomes[outcome] += 1
            if self.on_each:
                self.on_each(key, outcome)
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self.stop_event.wait(delay)
            else:
                next_at = time.monotonic()  # fell behind (Redis down): don't burst to catch up

    def stop(self) -> None:
        self.stop_event.set()
        self.join(30)
