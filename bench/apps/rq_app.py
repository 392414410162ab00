"""RQ tasks: plain functions, enqueued by reference."""

from __future__ import annotations

import time

from bench import beacon


def noop() -> None:
    beacon.send()


def sleep10ms() -> None:
    time.sleep(0.01)
    beacon.send()


def latency(t_enqueue: float) -> None:
    beacon.send(time.time() - t_enqueue)
