"""Plain view models built from the read API's answers (no Redis, no Flask here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from jobq_core.inspect import HistoryPoint, WorkerInfo
from jobq_core.job import STATES

# States an operator should look at when they are not empty.
ALERT_STATES = frozenset({"failed", "dead"})


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    ok_y: float
    ok_h: float
    fail_y: float
    fail_h: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    top: int
    completed: int
    failed: int


def chart(points: Sequence[HistoryPoint], width: int = 720, height: int = 120) -> Chart:
    """Stacked bars per minute: completed at the bottom, failed on top (SVG geometry)."""
    from .formatting import Formatter

    top = max([p.completed + p.failed for p in points] + [1])
    step = width / max(1, len(points))
    bars = []
    for i, p in enumerate(points):
        ok_h = height * p.completed / top
        fail_h = height * p.failed / top
        bars.append(Bar(x=round(i * step, 2), width=round(max(1.0, step - 1), 2),
                        ok_y=round(height - ok_h, 2), ok_h=round(ok_h, 2),
                        fail_y=round(height - ok_h - fail_h, 2), fail_h=round(fail_h, 2),
                        label=f"{Formatter.clock(p.minute_ms)} UTC: {p.completed} completed, "
                              f"{p.failed} failed"))
    return Chart(width, height, bars, top, sum(p.completed for p in points),
                 sum(p.failed for p in points))


def totals(counts: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """state -> jobs in that state over all queues."""
    return {s: sum(c.get(s, 0) for c in counts.values()) for s in STATES}


@dataclass(frozen=True)
class WorkerRow:
    id: str
    state: str  # busy | idle | starting | stopping | lost
    host: str
    pid: str
    queues: list[str]
    current: list[tuple[str, str]]  # (queue, job id)
    done: int
    failed: int
    beat_ms: int
    started_ms: int
    pool: str
    concurrency: str

    @property
    def lost(self) -> bool:
        return self.state == "lost"


def worker_rows(workers: Sequence[WorkerInfo]) -> list[WorkerRow]:
    rows = []
    for w in workers:
        f = w.fields
        current = []
        for item in w.current:
            queue, _, job_id = item.partition("/")
            if job_id:
                current.append((queue, job_id))
        rows.append(WorkerRow(
            id=w.id, state=f.get("state", "?") if w.alive else "lost",
            host=f.get("host", ""), pid=f.get("pid", ""),
            queues=[q for q in f.get("queues", "").split(",") if q], current=current,
            done=_int(f.get("done")), failed=_int(f.get("failed")),
            beat_ms=_int(f.get("beat_ms")), started_ms=_int(f.get("started_ms")),
            pool=f.get("pool", ""), concurrency=f.get("concurrency", "")))
    return rows


def worker_summary(rows: Sequence[WorkerRow]) -> dict[str, int]:
    out = {"busy": 0, "idle": 0, "lost": 0, "other": 0}
    for r in rows:
        out[r.state if r.state in out else "other"] += 1
    return out


def _int(v: str | None) -> int:
    try:
        return int(v or 0)
    except ValueError:
        return 0
