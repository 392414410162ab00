"""Run time per task: counts, failures and p50/p95/p99 over the last minutes, per task and
per queue, read from the histograms the settle scripts keep.

complete.lua and fail.lua count every attempt that ran into this minute's hash of a ring
per queue (Keyspace.runtime_prefix): one bucket of BUCKETS_MS per attempt, with the task's
total ms and its failures. Writing costs a few fields per settled batch, no round trip;
memory is bounded by Settings.runtime_minutes hashes per queue (and one of lifetime totals
for /metrics) of at most len(BUCKETS_MS) + 3 fields per task. Quantiles are computed here,
on read, by merging the minutes asked for; like Prometheus' histogram_quantile they
interpolate inside a bucket, so they are exact to a bucket's width.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .connection import redis_errors
from .inspect import Inspector
from .keys import check_queue_name

# Upper bounds of the buckets in ms (lua/_lib.lua RUNTIME_BOUNDS is the same list); one more
# bucket counts the run times above the last (+Inf). Run times are whole ms, truncated: a
# bucket counts the attempts that ran less than its bound.
BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 30000, 60000,
              120000, 300000, 600000)
QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class RunTimes:
    """The attempts of one task (or of a whole queue: task '') over a window."""

    queue: str
    task: str
    buckets: tuple[int, ...]  # attempts per bucket of BUCKETS_MS, then the +Inf bucket
    sum_ms: int  # total run time of those attempts
    failures: int  # attempts that did not complete (error, retry, timeout, crash)

    @property
    def count(self) -> int:
        return sum(self.buckets)

    def quantile(self, q: float) -> float | None:
        """The q-quantile of the run times in ms (None without attempts), interpolated
        linearly inside its bucket; one in the +Inf bucket reads as the last bound."""
        total = self.count
        if not total:
            return None
        rank = q * total
        seen = 0
        for i, n in enumerate(self.buckets):
            if n and seen + n >= rank:
                if i == len(BUCKETS_MS):
                    return float(BUCKETS_MS[-1])
                low = BUCKETS_MS[i - 1] if i else 0
                return low + (BUCKETS_MS[i] - low) * max(0.0, rank - seen) / n
            seen += n
        return float(BUCKETS_MS[-1])

    @property
    def p50(self) -> float | None:
        return self.quantile(0.5)

    @property
    def p95(self) -> float | None:
        return self.quantile(0.95)

    @property
    def p99(self) -> float | None:
        return self.quantile(0.99)

    def as_dict(self) -> dict[str, object]:
        return {"queue": self.queue, "task": self.task, "count": self.count,
                "failures": self.failures, "sum_ms": self.sum_ms, "p50_ms": self.p50,
                "p95_ms": self.p95, "p99_ms": self.p99,
                "buckets": dict(zip([*map(str, BUCKETS_MS), "+Inf"], self.buckets,
                                    strict=True))}


def _merged(queue: str, task: str, parts: Sequence[RunTimes]) -> RunTimes:
    return RunTimes(queue, task,
                    tuple(sum(p.buckets[i] for p in parts) for i in range(_WIDTH)),
                    sum(p.sum_ms for p in parts), sum(p.failures for p in parts))


@redis_errors
def task_runtimes(insp: Inspector, queues: Sequence[str] | None = None,
                  minutes: int = 60) -> list[RunTimes]:
    """Per queue and task, the attempts settled in the last `minutes` (this one included;
    at most Settings.runtime_minutes), sorted by queue then task. One HGETALL per queue
    and minute, pipelined."""
    names = list(queues) if queues is not None else insp.queues()
    size = insp.settings.runtime_minutes
    minutes = max(1, min(int(minutes), size))
    now_min = insp.server_time_ms() // 60000
    wanted = range(now_min - minutes + 1, now_min + 1)
    pipe = insp.client.pipeline(transaction=False)
    for q in names:
        check_queue_name(q)
        for m in wanted:
            pipe.hgetall(insp.keys.runtime(q, m % size))
    replies = iter(pipe.execute())
    found: dict[tuple[str, str], list[int]] = {}
    for q in names:
        for m in wanted:
            fields = next(replies)
            if fields.get("m") == str(m):  # else an older minute the ring has not reused yet
                _add(found, q, fields)
    return _rows(found)


@redis_errors
def lifetime_runtimes(insp: Inspector, queues: Sequence[str] | None = None) -> list[RunTimes]:
    """As task_runtimes, over every attempt since the queue's totals began (counters that
    only grow, for Prometheus). One HGETALL per queue, pipelined."""
    names = list(queues) if queues is not None else insp.queues()
    pipe = insp.client.pipeline(transaction=False)
    for q in names:
        check_queue_name(q)
        pipe.hgetall(insp.keys.runtime_total(q))
    found: dict[tuple[str, str], list[int]] = {}
    for q, fields in zip(names, pipe.execute(), strict=True):
        _add(found, q, fields)
    return _rows(found)


_WIDTH = len(BUCKETS_MS) + 1


def _add(found: dict[tuple[str, str], list[int]], queue: str, fields: dict[str, str]) -> None:
    # found: (queue, task) -> the buckets, then the sum and the failures.
    for field, value in fields.items():
        task, _, what = str(field).rpartition("|")
        if not task and what == "m":
            continue
        row = found.setdefault((queue, task), [0] * (_WIDTH + 2))
        col = _WIDTH if what == "sum" else _WIDTH + 1 if what == "fail" else _int(what)
        if 0 <= col < len(row):
            row[col] += max(0, _int(value))


def _rows(found: dict[tuple[str, str], list[int]]) -> list[RunTimes]:
    return [RunTimes(q, t, tuple(row[:_WIDTH]), row[_WIDTH], row[_WIDTH + 1])
            for (q, t), row in sorted(found.items())]


def queue_runtimes(rows: Sequence[RunTimes]) -> list[RunTimes]:
    """The rows of task_runtimes merged per queue (task ''), sorted by queue."""
    by_queue: dict[str, list[RunTimes]] = {}
    for r in rows:
        by_queue.setdefault(r.queue, []).append(r)
    return [_merged(q, "", parts) for q, parts in sorted(by_queue.items())]


def _int(text: object) -> int:
    try:
        return int(str(text))
    except ValueError:
        return -1
