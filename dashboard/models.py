"""Plain view models built from the read API's answers (no Redis, no Flask here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from jobq_core.inspect import HistoryPoint, ScheduleInfo, WorkerInfo
from jobq_core.job import STATES
from jobq_core.nodes import NodeHealth

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
    tip_x: float  # where the value shown on hover sits (inside the plot)
    tip_anchor: str  # SVG text-anchor: start | middle | end


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    top: int
    completed: int
    failed: int
    ticks: list[Tick] = field(default_factory=list)  # time axis: every TICK_MIN minutes, UTC

    @property
    def margin(self) -> int:
        """Room left of the plot for the y labels, and below it for the time axis."""
        return CHART_MARGIN


CHART_MARGIN = 36
TICK_MIN = 10
TIP_ROOM = 90  # a hover value this close to an edge is anchored to that side


def chart(points: Sequence[HistoryPoint], width: int = 720, height: int = 120) -> Chart:
    """Stacked bars per minute: completed at the bottom, failed on top (SVG geometry), with
    a tick on the time axis every TICK_MIN minutes and each bar's values shown on hover."""
    from .formatting import Formatter

    top = max([p.completed + p.failed for p in points] + [1])
    step = width / max(1, len(points))
    bars, ticks = [], []
    for i, p in enumerate(points):
        ok_h = height * p.completed / top
        fail_h = height * p.failed / top
        x = round(i * step, 2)
        centre = x + step / 2
        anchor = "start" if centre < TIP_ROOM else "end" if centre > width - TIP_ROOM else "middle"
        bars.append(Bar(x=x, width=round(max(1.0, step - 1), 2),
                        ok_y=round(height - ok_h, 2), ok_h=round(ok_h, 2),
                        fail_y=round(height - ok_h - fail_h, 2), fail_h=round(fail_h, 2),
                        label=f"{Formatter.clock(p.minute_ms)[:5]} UTC: {p.completed} completed, "
                              f"{p.failed} failed",
                        tip_x=round(centre, 2), tip_anchor=anchor))
        if (p.minute_ms // 60_000) % TICK_MIN == 0:
            ticks.append(Tick(round(centre, 2), Formatter.clock(p.minute_ms)[:5]))
    return Chart(width, height, bars, top, sum(p.completed for p in points),
                 sum(p.failed for p in points), ticks)


def node_of(nodes: Sequence[NodeHealth]) -> dict[str, str]:
    """queue -> address of the cluster node holding it (empty off a cluster: one node)."""
    return {q: n.address for n in nodes if n.role != "standalone" for q in n.queues}


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


@dataclass(frozen=True)
class ScheduleRow:
    """One line of the schedules page."""

    name: str
    task: str  # '' when the stored definition is unreadable (see error)
    queue: str
    queue_known: bool  # the queue exists (has had jobs), so its lists can be linked
    every: str  # 'every 30 s' or the cron expression
    cron: bool
    timezone: str
    missed_policy: str
    enabled: bool
    next_ms: int | None
    late: bool  # enabled and its next tick is older than a scheduler failover takes
    last_tick_ms: int | None
    last_job_id: str
    last_run_now_ms: int | None
    last_run_now_job_id: str
    fired: int
    missed: int
    error: str


def schedule_rows(infos: Sequence[ScheduleInfo], known_queues: Sequence[str], now_ms: int,
                  failover_ms: int) -> list[ScheduleRow]:
    """Rows for the schedules page; `failover_ms` is how long a tick may wait for a new
    leader (the lease plus a second) before the row is flagged late."""
    known = set(known_queues)
    rows = []
    for i in infos:
        s = i.schedule
        if s is None:
            every, cron, tz, task, queue, policy = "?", False, "", "", "", ""
        elif s.every_s is not None:
            every, cron, tz = f"every {_seconds(s.every_s)}", False, s.timezone
            task, queue, policy = str(s.task), str(s.queue), s.missed
        else:
            every, cron, tz = str(s.cron), True, s.timezone
            task, queue, policy = str(s.task), str(s.queue), s.missed
        f = i.fields
        rows.append(ScheduleRow(
            name=i.name, task=task, queue=queue, queue_known=queue in known, every=every,
            cron=cron, timezone=tz, missed_policy=policy, enabled=i.enabled,
            next_ms=i.next_ms,
            late=bool(i.enabled and i.next_ms and now_ms - i.next_ms > failover_ms),
            last_tick_ms=i.last_tick_ms, last_job_id=i.last_job_id,
            last_run_now_ms=_int(f.get("last_run_now_ms")) or None,
            last_run_now_job_id=f.get("last_run_now_job_id", ""), fired=i.fired,
            missed=i.missed, error=i.error))
    return rows


def _seconds(s: float) -> str:
    """30 -> '30 s', 90 -> '90 s (1 min 30 s)', 3600 -> '3600 s (1 h)'."""
    text = f"{s:g} s"
    if s >= 60:
        from .formatting import Formatter

        spoken = Formatter.duration(s * 1000).replace(" 0 s", "").replace(" 0 min", "")
        spoken = spoken.replace(" 0 h", "")
        text += f" ({spoken})"
    return text
