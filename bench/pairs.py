"""Interleaved A/B measurement: what `make bench`'s paired units (bench/run.py, scenarios
`drain-pairs`, `latency-pairs` and `capture-pairs`), bench/pool_compare.py and
bench/latency_compare.py share.

A ratio between two configurations measured minutes apart carries the machine's drift between
them (in one `make bench` the same default-worker latency moved 30 % with its place in the run).
Measured as pairs, A then B, then B then A, ..., both sides of a ratio see the same seconds of
the machine and neither always runs first; the figure is the median of the per-pair ratios.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from bench.collector import Collector

T = TypeVar("T")


class RoundError(RuntimeError):
    """A round could not produce its figure; the message says why."""


def pair_order(items: Sequence[T], pairs: int) -> Iterator[tuple[int, list[T]]]:
    """``(round, items in the order to run them)`` for ``pairs`` rounds: as given in even
    rounds, reversed in odd ones, so every item runs first as often as the others (with an
    even count of rounds)."""
    for index in range(pairs):
        yield index, list(items) if index % 2 == 0 else list(items)[::-1]


def paired_ratios(mine: Sequence[float], theirs: Sequence[float]) -> list[float]:
    """``mine[i] / theirs[i]`` of each pair, in order; the two lists are one pair per index."""
    return [a / b for a, b in zip(mine, theirs, strict=True)]


def ratio_spread(ratios: Sequence[float]) -> str:
    """``median [min-max]`` of per-pair ratios, two decimals (the compare tools' lines)."""
    return f"{statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]"


# How long the warm-up probe may take to run: a cold worker imports its tasks first
WARM_UP_S = 60.0
# The quiet between the warm-up and the probes: the worker is idle, as in the figure's name
QUIET_S = 1.0


def probe_latency(
    produce: Callable[[int, float], dict[str, Any]],
    wait: Callable[[int, float], float | None],
    collector: Collector,
    n: int,
    gap_ms: float,
    timeout_s: float,
) -> tuple[list[float], dict[str, Any]]:
    """One idle-latency round on a started worker whose probes report to ``collector``
    (``keep_values``): one warm-up probe, QUIET_S of quiet, then ``n`` probes enqueued
    ``gap_ms`` apart. ``produce(count, gap_ms)`` enqueues probes (bench.agent's `latency`) and
    returns the producer's answer; ``wait(target, timeout_s)`` is ``collector.wait_for`` or one
    that also watches the workers. Returns each probe's start - enqueue in ms, in arrival
    order, and the producer's answer for the ``n`` probes; RoundError when a probe is missing.
    """
    produce(1, 0.0)
    if wait(1, WARM_UP_S) is None:
        raise RoundError(f"the warm-up job did not run within {WARM_UP_S:.0f} s")
    time.sleep(QUIET_S)
    produced = produce(n, gap_ms)
    if wait(n + 1, timeout_s) is None:
        raise RoundError(f"{collector.count - 1}/{n} probes ran in time")
    return [v * 1000.0 for v in collector.values[1:]], produced
