"""Merge the ledger Jepsen-style and compute the figures every fault scenario asserts on.

Definitions (an *execution* is one start of a task body, identified by its exec token):

- ``lost``: keys whose enqueue was acknowledged ``ok`` and that never reached ``end``.
- ``dup_overlap``: keys with two executions overlapping in time. An execution spans from its
  ``start`` to its last ``tick``/``end``; a killed execution therefore counts as alive until its
  last tick, which makes every reported overlap a real one (ticks every 0.2 s, leases are 3 s).
- ``dup_completions``: keys with more than one ``end``.
- ``reruns``: keys with more than one execution (normal under at-least-once; reported only).
- ``unexpected``: executed keys never enqueued, or whose enqueue failed with a definite error.
- ``recovery_s``: for each key cut short by the fault (an execution started before ``fault_at``
  that never ended), the delay from ``fault_at`` to the next execution's start; max over keys.
- ``resume_s``: delay from ``fault_end`` to the first moment when the starts of the last
  ``window_s`` reach 90 % of ``baseline_rate``, or to the first start when no baseline is given.
- ``stuck`` and ``worker_exits`` come from outside the ledger (Redis state, the launcher).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .ledger import EnqueueEvent, RunEvent, read_ledger


class NothingAcknowledged(AssertionError):
    """The ledger holds no acknowledged enqueue: there is nothing whose loss could be counted."""


@dataclass
class Execution:
    key: str
    exec_id: str
    pid: int
    attempt: str
    start: float
    last: float  # last evidence the execution was alive (tick or end), monotonic seconds
    ended: bool
    end_mono: float | None = None
    job_id: str = "-"


@dataclass
class Figures:
    lost: int = 0
    dup_overlap: int = 0
    dup_completions: int = 0
    reruns: int = 0
    unexpected: int = 0
    stuck: int = 0
    recovery_s: float | None = None
    resume_s: float | None = None
    worker_exits: int = 0
    enqueued_ok: int = 0
    enqueued_error: int = 0
    enqueued_unknown: int = 0
    executions: int = 0
    completed: int = 0
    details: dict[str, list[str]] = field(default_factory=dict)

    # Figures where a bigger number is worse; used when reporting the worst of several runs.
    FIGURES = (
        "lost",
        "dup_overlap",
        "dup_completions",
        "reruns",
        "unexpected",
        "stuck",
        "recovery_s",
        "resume_s",
        "worker_exits",
    )

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.pop("details")
        return d

    def summary(self) -> str:
        """One line for assertion messages, plus up to a few example keys per problem."""
        parts = [f"{k}={getattr(self, k)}" for k in self.FIGURES]
        for name, keys in self.details.items():
            if keys:
                parts.append(f"{name}: {', '.join(keys[:5])}")
        return "; ".join(parts)


def executions(runs: Iterable[RunEvent]) -> list[Execution]:
    by_exec: dict[str, Execution] = {}
    for ev in sorted(runs, key=lambda e: e.mono):
        ex = by_exec.get(ev.exec_id)
        if ex is None:
            # A tick or end whose start line is missing still proves the execution existed.
            ex = by_exec[ev.exec_id] = Execution(
                ev.key, ev.exec_id, ev.pid, ev.attempt, ev.mono, ev.mono, False, job_id=ev.job_id
            )
        if ev.event == "start":
            ex.start = min(ex.start, ev.mono)
        ex.last = max(ex.last, ev.mono)
        if ev.event == "end":
            ex.ended = True
            ex.end_mono = ev.mono
    return list(by_exec.values())


def start_rate(execs: Iterable[Execution], t0: float, t1: float) -> float:
    """Executions started per second in [t0, t1)."""
    if t1 <= t0:
        return 0.0
    return sum(1 for e in execs if t0 <= e.start < t1) / (t1 - t0)


def check(
    runs: list[RunEvent],
    enqueues: list[EnqueueEvent],
    *,
    fault_at: float | None = None,
    fault_end: float | None = None,
    baseline_rate: float | None = None,
    window_s: float = 1.0,
    stuck: int = 0,
    worker_exits: int = 0,
    expect_end: Callable[[str], bool] = lambda key: True,
    require_acked: bool = True,
) -> Figures:
    """Compute the figures; ``expect_end`` excludes keys (e.g. poison jobs) from ``lost``.

    Raises NothingAcknowledged when no enqueue was acknowledged (unless ``require_acked`` is
    false): ``lost = 0`` over an empty ledger would pass a scenario that tested nothing."""
    f = Figures(stuck=stuck, worker_exits=worker_exits)
    outcome: dict[str, str] = {}
    for e in enqueues:
        # A key retried by the producer counts as acknowledged if any attempt was.
        if outcome.get(e.key) != "ok":
            outcome[e.key] = e.outcome
    f.enqueued_ok = sum(1 for o in outcome.values() if o == "ok")
    if require_acked and not f.enqueued_ok:
        raise NothingAcknowledged(
            f"no acknowledged enqueue in the ledger ({len(outcome)} keys tried, none ok): "
            "'lost = 0' would prove nothing"
        )
    f.enqueued_error = sum(1 for o in outcome.values() if o == "error")
    f.enqueued_unknown = sum(1 for o in outcome.values() if o == "unknown")

    execs = executions(runs)
    f.executions = len(execs)
    by_key: dict[str, list[Execution]] = defaultdict(list)
    for ex in execs:
        by_key[ex.key].append(ex)
    ends: dict[str, int] = defaultdict(int)
    for ev in runs:
        if ev.event == "end":
            ends[ev.key] += 1
    f.completed = len(ends)

    lost = sorted(
        k for k, o in outcome.items() if o == "ok" and ends.get(k, 0) == 0 and expect_end(k)
    )
    f.lost = len(lost)
    dup_comp = sorted(k for k, n in ends.items() if n > 1)
    f.dup_completions = len(dup_comp)
    f.reruns = sum(1 for xs in by_key.values() if len(xs) > 1)
    unexpected = sorted(k for k in by_key if outcome.get(k) in (None, "error"))
    f.unexpected = len(unexpected)

    overlaps: list[str] = []
    for key, xs in by_key.items():
        xs.sort(key=lambda e: e.start)
        if any(b.start < a.last for i, a in enumerate(xs) for b in xs[i + 1 :]):
            pairs = [f"{a.pid}[{a.start:.2f}-{a.last:.2f}]" for a in xs]
            overlaps.append(f"{key}({' '.join(pairs)})")
    f.dup_overlap = len(overlaps)

    if fault_at is not None:
        f.recovery_s = _recovery(by_key, fault_at)
    if fault_end is not None:
        f.resume_s = _resume(execs, fault_end, baseline_rate, window_s)
    f.details = {
        "lost": lost,
        "dup_overlap": overlaps,
        "dup_completions": dup_comp,
        "unexpected": unexpected,
    }
    return f


def _recovery(by_key: dict[str, list[Execution]], fault_at: float) -> float | None:
    worst: float | None = None
    for xs in by_key.values():
        cut = [x for x in xs if x.start < fault_at and not x.ended]
        if not cut:
            continue
        later = [x.start for x in xs if x.start >= fault_at]
        delay = (min(later) - fault_at) if later else math.inf
        worst = delay if worst is None else max(worst, delay)
    return worst


def _resume(
    execs: list[Execution], fault_end: float, baseline_rate: float | None, window_s: float
) -> float:
    starts = sorted(e.start for e in execs if e.start >= fault_end)
    if not starts:
        return math.inf
    if not baseline_rate:
        return starts[0] - fault_end
    need = 0.9 * baseline_rate * window_s
    # Slide a window over the start times: the first window holding enough starts marks resumption.
    j = 0
    for i, t in enumerate(starts):
        while starts[j] < t - window_s:
            j += 1
        if i - j + 1 >= need:
            return t - fault_end
    return math.inf


def check_dir(directory: str | Path, **kwargs: object) -> Figures:
    runs, enqs = read_ledger(directory)
    return check(runs, enqs, **kwargs)  # type: ignore[arg-type]
