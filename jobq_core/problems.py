"""Problems: what an operator should act on now, computed from what the engine already keeps.

Read-only and bounded like the rest of the read API: counts (ZCARD), the head of each
pending set, at most PROCESSING_LOOK processing entries per queue, the worker registry, the
per-minute history ring, the stored schedules and one INFO. No SCAN, no KEYS, no full-range
read, so the cost does not grow with the number of pending, failed or dead jobs.

Every problem names where to act: `target` is a page of the dashboard (`page` plus its
parameters) and `act` a sentence with the command to run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .connection import redis_errors, server_info
from .inspect import Inspector, WorkerInfo

# Processing entries looked at per queue to find jobs held by lost workers (soonest lease
# deadline first, which is also the order the reaper takes them in).
PROCESSING_LOOK = 200
# Failure rate: looked at over the last SPIKE_MINUTES minutes; a problem from SPIKE_MIN_FAILED
# failed attempts and SPIKE_RATIO of all attempts, compared with the hour before.
SPIKE_MINUTES = 5
SPIKE_MIN_FAILED = 10
SPIKE_RATIO = 0.25
BASELINE_MINUTES = 60
# Redis memory: a problem when used_memory reaches this share of maxmemory.
MEMORY_RATIO = 0.8
# The queue meta field that overrides Settings.pending_age_warn_s for one queue.
PENDING_AGE_FIELD = "pending_age_warn_s"

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class HeldJob:
    """A processing job whose worker stopped beating."""

    queue: str
    id: str
    task: str
    lease_left_ms: int  # until its lease deadline; <= 0: expired, waiting for a reaper
    reaper_live: bool  # a live worker serves its queue, so its heartbeat reaps the job


@dataclass(frozen=True)
class Problem:
    kind: str  # lost_worker, no_worker, pending_age, failure_rate, paused, schedule_late,
    #            schedule_error, schedule_failing, redis_eviction, redis_memory
    severity: str  # error (jobs are stuck or at risk) or warning
    summary: str  # one line, plain text
    act: str  # what to do, with the command where there is one
    target: dict[str, str]  # where to act: {"page": "jobs"|"workers"|"schedules"|..., ...}
    queue: str = ""
    worker: str = ""
    schedule: str = ""
    jobs: tuple[HeldJob, ...] = ()
    value: float = 0  # the measured figure (age in s, failure ratio, memory ratio, ...)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "severity": self.severity, "summary": self.summary,
                "act": self.act, "target": dict(self.target), "queue": self.queue,
                "worker": self.worker, "schedule": self.schedule, "value": self.value,
                "jobs": [{"queue": j.queue, "id": j.id, "task": j.task,
                          "lease_left_ms": j.lease_left_ms, "reaper_live": j.reaper_live}
                         for j in self.jobs]}


@dataclass
class _Scan:
    """What one round of reads found, shared by the checks."""

    now_ms: int
    names: list[str]
    counts: dict[str, dict[str, int]]
    served: set[str]  # queues some live worker listens on
    paused: dict[str, bool] = field(default_factory=dict)
    age_warn_s: dict[str, float] = field(default_factory=dict)
    head_enqueued_ms: dict[str, int] = field(default_factory=dict)


@redis_errors
def find_problems(insp: Inspector) -> list[Problem]:
    """Every problem found now, errors first. Costs a fixed number of round trips
    (about eight) whatever the number of jobs."""
    s = insp.settings
    names = insp.queues()
    counts = insp.counts(names)
    workers = insp.workers()
    scan = _Scan(insp.server_time_ms(), names, counts,
                 {q for w in workers if w.alive
                  for q in w.fields.get("queues", "").split(",") if q})
    keys, client = insp.keys, insp.client
    pipe = client.pipeline(transaction=False)
    for q in names:
        pipe.hmget(keys.meta(q), ["paused", PENDING_AGE_FIELD])
        pipe.zrange(keys.pending(q), 0, 0)
        pipe.zrange(keys.processing(q), 0, PROCESSING_LOOK - 1, withscores=True)
    replies = pipe.execute()
    processing: dict[str, list[tuple[str, float]]] = {}
    heads: list[tuple[str, str]] = []
    for i, q in enumerate(names):
        (paused, age), head, held = replies[3 * i:3 * i + 3]
        scan.paused[q] = paused == "1"
        scan.age_warn_s[q] = _float(age, s.pending_age_warn_s)
        processing[q] = [(str(m), float(sc)) for m, sc in held]
        heads += [(q, str(job_id)) for job_id in head]
    # One round trip for the pending heads' enqueue times and the processing jobs' holders.
    pipe = client.pipeline(transaction=False)
    for q, job_id in heads:
        pipe.hget(keys.job(q, job_id), "enqueued_ms")
    for q in names:
        for job_id, _ in processing[q]:
            pipe.hmget(keys.job(q, job_id), ["worker", "task"])
    replies = pipe.execute()
    for (q, _), enqueued in zip(heads, replies, strict=False):
        if enqueued is not None and str(enqueued).isdigit():
            scan.head_enqueued_ms[q] = int(enqueued)
    rest = iter(replies[len(heads):])
    holders: dict[tuple[str, str], tuple[str, str]] = {}
    for q in names:
        for job_id, _ in processing[q]:
            worker, task = next(rest)
            holders[(q, job_id)] = (str(worker or ""), str(task or ""))
    problems = _lost_workers(insp, scan, workers, processing, holders)
    problems += _queue_checks(scan)
    problems += _failure_rates(insp, scan)
    problems += _schedule_checks(insp, scan)
    problems += _redis_checks(insp)
    return sorted(problems, key=lambda p: p.severity != ERROR)


def _lost_workers(insp: Inspector, scan: _Scan, workers: Sequence[WorkerInfo],
                  processing: dict[str, list[tuple[str, float]]],
                  holders: dict[tuple[str, str], tuple[str, str]]) -> list[Problem]:
    """Workers that stopped beating, with the processing jobs they still hold. Found from
    the jobs, not only the registry: a stopped worker leaves the registry within a few
    heartbeats, its jobs stay processing until their lease runs out and a reaper runs."""
    alive = {w.id for w in workers if w.alive}
    unknown = sorted({w for w, _ in holders.values() if w and w not in alive})
    alive |= {w for w, ok in insp.workers_alive(unknown).items() if ok}
    held: dict[str, list[HeldJob]] = {}
    for q in scan.names:
        for job_id, deadline_ms in processing[q]:
            worker, task = holders[(q, job_id)]
            if worker and worker not in alive:
                held.setdefault(worker, []).append(
                    HeldJob(q, job_id, task, int(deadline_ms) - scan.now_ms, q in scan.served))
    for w in workers:
        if not w.alive:
            held.setdefault(w.id, [])
    beat_s = insp.settings.heartbeat_s
    out = []
    for worker, jobs in held.items():
        if not jobs:
            out.append(Problem(
                "lost_worker", WARNING, f"worker {worker} stopped beating (killed or cut off "
                "from Redis); it holds no jobs now", "Nothing is stuck. Check its host; "
                "`jobq workers` lists the live ones.", {"page": "workers"}, worker=worker))
            continue
        queues = sorted({j.queue for j in jobs})
        orphaned = [j for j in jobs if not j.reaper_live]
        if orphaned:
            when = (f"no live worker serves {', '.join(sorted({j.queue for j in orphaned}))}, "
                    "so they stay processing until one starts")
        else:
            soonest = max(0, min(j.lease_left_ms for j in jobs))
            when = (f"a reaper hands them back in about {_dur(soonest + int(beat_s * 1000))} "
                    "(lease end plus a heartbeat)")
        out.append(Problem(
            "lost_worker", ERROR,
            f"worker {worker} stopped beating and still holds {len(jobs)} processing "
            f"job{'s' if len(jobs) != 1 else ''} in {', '.join(queues)}: {when}",
            "Hand them back now (they run again elsewhere; the lost lease counts towards "
            "poison), or wait for the reaper.",
            {"page": "jobs", "state": "processing", "queue": queues[0]},
            queue=queues[0], worker=worker, jobs=tuple(jobs), value=len(jobs)))
    return out


def _queue_checks(scan: _Scan) -> list[Problem]:
    """Pending jobs nobody takes: paused, unserved, or waiting longer than the threshold."""
    out = []
    for q in scan.names:
        pending = scan.counts[q]["pending"]
        if not pending:
            continue
        target = {"page": "jobs", "state": "pending", "queue": q}
        if scan.paused[q]:
            out.append(Problem(
                "paused", WARNING, f"queue {q} is paused with {pending:,} pending "
                f"job{'s' if pending != 1 else ''}", f"Resume it: `jobq resume {q}`.",
                {"page": "queues"}, queue=q, value=pending))
        elif q not in scan.served:
            out.append(Problem(
                "no_worker", ERROR, f"{pending:,} pending job{'s' if pending != 1 else ''} in "
                f"{q} and no live worker serves it", f"Start one: `jobq worker -q {q}`.",
                target, queue=q, value=pending))
        head = scan.head_enqueued_ms.get(q)
        limit_s = scan.age_warn_s[q]
        if head is not None and limit_s > 0 and scan.now_ms - head > limit_s * 1000:
            age_ms = scan.now_ms - head
            out.append(Problem(
                "pending_age", WARNING, f"the next pending job in {q} has waited "
                f"{_dur(age_ms)} (threshold {_dur(int(limit_s * 1000))})",
                f"Add workers for {q}, or raise its threshold: "
                f"`jobq threshold {q} SECONDS`.", target, queue=q,
                value=age_ms / 1000))
    return out


def _failure_rates(insp: Inspector, scan: _Scan) -> list[Problem]:
    """Queues whose recent attempts fail much more often than before (history ring)."""
    size = insp.settings.history_minutes
    now_min = scan.now_ms // 60000
    span = min(size, SPIKE_MINUTES + BASELINE_MINUTES)
    minutes = list(range(now_min - span + 1, now_min + 1))
    pipe = insp.client.pipeline(transaction=False)
    for q in scan.names:
        for kind in ("completed", "failed"):
            pipe.hmget(insp.keys.history(q), [f"{kind}:{m % size}" for m in minutes])
    replies = pipe.execute()
    out = []
    for i, q in enumerate(scan.names):
        done = _minute_counts(minutes, replies[2 * i])
        failed = _minute_counts(minutes, replies[2 * i + 1])
        recent_f, recent_n = sum(failed[-SPIKE_MINUTES:]), sum(done[-SPIKE_MINUTES:])
        before_f, before_n = sum(failed[:-SPIKE_MINUTES]), sum(done[:-SPIKE_MINUTES])
        ratio = recent_f / max(1, recent_f + recent_n)
        before = before_f / max(1, before_f + before_n)
        if recent_f >= SPIKE_MIN_FAILED and ratio >= SPIKE_RATIO and ratio >= 2 * before:
            out.append(Problem(
                "failure_rate", ERROR if ratio >= 0.5 else WARNING,
                f"{ratio:.0%} of attempts in {q} failed in the last {SPIKE_MINUTES} min "
                f"({recent_f} failed), {before:.0%} in the hour before",
                f"See what fails: `jobq jobs failed -q {q}`.",
                {"page": "jobs", "state": "failed", "queue": q}, queue=q, value=ratio))
    return out


def _minute_counts(minutes: Sequence[int], values: Sequence[Any]) -> list[int]:
    out = []
    for m, v in zip(minutes, values, strict=True):
        minute, _, count = str(v or "").partition(" ")
        ok = minute.isdigit() and int(minute) == m and count.isdigit()
        out.append(int(count) if ok else 0)
    return out


def _schedule_checks(insp: Inspector, scan: _Scan) -> list[Problem]:
    """Schedules whose tick is overdue (no scheduler running?), that cannot run, or whose
    latest job ended failed or dead (one HGET per schedule with a job)."""
    failover_ms = int(insp.settings.scheduler_lease_s * 1000) + 1000
    leader = insp.scheduler().leader
    infos = insp.schedules()
    last = [(i, str(i.schedule.queue)) for i in infos
            if i.schedule is not None and i.last_job_id and i.schedule.queue]
    pipe = insp.client.pipeline(transaction=False)
    for i, q in last:
        pipe.hget(insp.keys.job(q, i.last_job_id), "state")
    last_state = {i.name: str(st or "") for (i, _), st in zip(last, pipe.execute(), strict=True)}
    out = []
    for info in infos:
        target = {"page": "schedules"}
        if info.error:
            out.append(Problem(
                "schedule_error", ERROR, f"schedule {info.name} cannot run: {info.error}",
                f"Fix its definition, or `jobq schedules disable {info.name}`.", target,
                schedule=info.name))
        elif info.enabled and info.next_ms and scan.now_ms - info.next_ms > failover_ms:
            late_ms = scan.now_ms - info.next_ms
            why = "no scheduler is running" if not leader else f"scheduler {leader} is behind"
            out.append(Problem(
                "schedule_late", ERROR, f"schedule {info.name} is {_dur(late_ms)} overdue "
                f"({why})", "Start a scheduler: `jobq scheduler`." if not leader else
                "Check the scheduler's log and its connection to Redis.", target,
                schedule=info.name, value=late_ms / 1000))
        if info.enabled and last_state.get(info.name) in ("failed", "dead"):
            q = str(info.schedule.queue) if info.schedule else ""
            out.append(Problem(
                "schedule_failing", WARNING, f"the latest job of schedule {info.name} "
                f"({info.last_job_id}) ended {last_state[info.name]}",
                f"See why: `jobq job {info.last_job_id}`.",
                {"page": "jobs", "state": last_state[info.name], "queue": q},
                queue=q, schedule=info.name))
    return out


def _redis_checks(insp: Inspector) -> list[Problem]:
    """An eviction policy that may drop jobs, and memory near maxmemory."""
    info = server_info(insp.client)
    out = []
    policy = str(info.get("maxmemory_policy", ""))
    if policy and policy != "noeviction":
        out.append(Problem(
            "redis_eviction", ERROR, f"Redis maxmemory-policy is {policy}: when memory runs "
            "out Redis deletes keys, jobs among them",
            "Set it to noeviction: `CONFIG SET maxmemory-policy noeviction` (and in "
            "redis.conf).", {"page": "overview"}))
    used, top = int(info.get("used_memory", 0) or 0), int(info.get("maxmemory", 0) or 0)
    if top > 0 and used >= MEMORY_RATIO * top:
        ratio = used / top
        out.append(Problem(
            "redis_memory", ERROR if ratio >= 0.95 else WARNING,
            f"Redis uses {ratio:.0%} of maxmemory ({info.get('used_memory_human', used)} of "
            f"{info.get('maxmemory_human', top)}); at 100% enqueues fail",
            "Purge old failed/dead/completed jobs, shorten retention, or raise maxmemory.",
            {"page": "overview"}, value=ratio))
    return out


def _float(raw: Any, default: float) -> float:
    try:
        return float(raw) if raw not in (None, "") else default
    except ValueError:
        return default


def _dur(ms: int) -> str:
    """12 s, 4 min 5 s, 3 h 20 min: the operator's reading of a duration."""
    s = max(0, int(ms)) // 1000
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"
