"""The JSON API: the same reads and actions as the pages, the same auth and roles.

Documented in docs/dashboard.md. POSTs take a JSON body; browsers' sessions need the CSRF
header, API clients use HTTP Basic auth without a cookie.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any, TypeGuard

from flask import Blueprint, Response, jsonify, request, url_for
from werkzeug.exceptions import BadRequest, Conflict, NotFound

from jobq_core.admin import BulkOp
from jobq_core.errorgroups import act_on_group, error_group, error_groups, group_cutoff
from jobq_core.inspect import JobFilter, JobRow, ScheduleInfo
from jobq_core.job import FINAL_STATES, PURGE_STATES
from jobq_core.problems import find_problems
from jobq_core.runtimes import queue_runtimes, task_runtimes

from .. import params
from ..actions import (
    STEP_BUDGET_S,
    audit,
    bulk_target,
    check_schedule_action,
    filter_text,
    job_or_404,
    known_queues,
    op_or_404,
    perform_schedule_action,
    problem_url,
    schedule_or_404,
)
from ..engine import current_user, engine
from ..listing import list_jobs, search_jobs
from ..models import totals, worker_rows, worker_summary

bp = Blueprint("api", __name__, url_prefix="/api")


def _row(row: JobRow) -> dict[str, Any]:
    return dataclasses.asdict(row)


def _op(op: BulkOp) -> dict[str, Any]:
    return {**dataclasses.asdict(op), "percent": op.percent}


def _body() -> dict[str, Any]:
    """The request's JSON object ({} when there is no body); 400 for anything else.

    Parsed here rather than by get_json(silent=True), which lets a RecursionError from
    deeply nested input through as a 500. The size was bounded before any view ran."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("the body is not valid JSON (or is nested too deeply)") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return {k: v for k, v in data.items() if isinstance(v, str | int) and len(k) <= 100}


@bp.get("/")
def index() -> Response:
    return jsonify({"user": current_user().name, "role": current_user().role, "endpoints": [
        "GET /api/overview", "GET /api/queues", "GET /api/jobs/<state>",
        "GET /api/jobs/<queue>/<id>", "GET /api/jobs/<queue>/<id>/logs?offset=N",
        "GET /api/workers", "GET /api/history",
        "GET /api/audit", "GET /api/schedules", "GET /api/problems", "GET /api/errors",
        "GET /api/tasks",
        "POST /api/errors/<queue>/<group>/<requeue|purge>",
        "POST /api/jobs/<queue>/<id>/<requeue|cancel|purge|release>",
        "POST /api/queues/<queue>/<pause|resume>",
        "POST /api/schedules/<name>/<enable|disable|run|delete>", "POST /api/ops",
        "GET /api/ops/<queue>/<op_id>", "POST /api/ops/<queue>/<op_id>/step"]})


@bp.get("/overview")
def overview() -> Response:
    insp = engine().inspector
    counts = insp.counts()
    return jsonify({"counts": counts, "totals": totals(counts),
                    "workers": worker_summary(worker_rows(insp.workers())),
                    "server": insp.server(),
                    "nodes": [n.as_dict() for n in insp.nodes(list(counts))]})


@bp.get("/problems")
def problems() -> Response:
    """What needs an operator now (jobq_core.problems), errors first, each with the page
    where to act (`url`)."""
    found = find_problems(engine().inspector)
    return jsonify({"ok": not found,
                    "problems": [{**p.as_dict(), "url": problem_url(p)} for p in found]})


@bp.get("/errors")
def errors() -> Response:
    """Error groups (jobq_core.errorgroups), most recently seen first; ?queue= narrows."""
    queue = request.args.get("queue", "")
    names = [params.queue_name(queue, known_queues())] if queue else None
    return jsonify([dataclasses.asdict(g) for g in error_groups(engine().inspector, names)])


@bp.get("/tasks")
def tasks() -> Response:
    """Run times per task and per queue over the last ?minutes= (default 60; jobq_core.
    runtimes): counts, failures, p50/p95/p99 and the buckets; ?queue= narrows."""
    minutes = params.int_arg("minutes", 60, 1, engine().settings.runtime_minutes)
    queue = request.args.get("queue", "")
    names = [params.queue_name(queue, known_queues())] if queue else None
    rows = task_runtimes(engine().inspector, names, minutes)
    return jsonify({"minutes": minutes, "queues": [r.as_dict() for r in queue_runtimes(rows)],
                    "tasks": [r.as_dict() for r in rows]})


@bp.post("/errors/<queue>/<group_id>/<action>")
def error_group_action(queue: str, group_id: str, action: str) -> Response:
    """Requeue or purge a group's failed and dead jobs, for up to a step's budget. The answer
    says how many were done and are left; send {"cutoff_ms": ..., "done": ...} from it to
    continue the same snapshot until `left` is 0."""
    if action not in ("requeue", "purge"):
        raise NotFound(f"no error group action {action[:40]!r}")
    queue = params.queue_name(queue, known_queues())
    admin = engine().admin
    if error_group(engine().inspector, queue, group_id) is None:
        raise NotFound(f"no error group {group_id[:40]!r} in queue {queue!r}")
    body = _body()
    raw, done = body.get("cutoff_ms"), body.get("done", 0)
    if (raw is not None and not _count(raw, 2**53)) or not _count(done, params.MAX_COUNT):
        raise BadRequest("cutoff_ms and done are whole numbers from the previous answer")
    cutoff = group_cutoff(admin, queue, group_id) if raw is None else float(raw)
    left, moved = 0, 0
    if cutoff is not None:
        started = time.monotonic()
        for step in act_on_group(admin, queue, group_id, action, 500, cutoff):
            moved, left = step.done, step.left
            if time.monotonic() - started > STEP_BUDGET_S:
                break
    if not left:
        audit(f"{action} error group", queue=queue, state="failed+dead", count=done + moved,
              detail=f"{group_id} (API)")
    return jsonify({"queue": queue, "group": group_id, "action": action,
                    "done": done + moved, "left": left,
                    "cutoff_ms": None if cutoff is None else int(cutoff)})


@bp.get("/queues")
def queues() -> Response:
    insp = engine().inspector
    counts = insp.counts()
    where = insp.queue_nodes(list(counts))
    return jsonify([{"name": q, "node": where[q], "counts": c, **insp.queue_info(q),
                     "limits": [dataclasses.asdict(lim) for lim in insp.limits(q)]}
                    for q, c in counts.items()])


@bp.get("/schedules")
def schedules() -> Response:
    insp = engine().inspector
    return jsonify({"leader": dataclasses.asdict(insp.scheduler()),
                    "schedules": [_schedule(i) for i in insp.schedules()]})


def _schedule(info: ScheduleInfo) -> dict[str, Any]:
    out = {k: v for k, v in dataclasses.asdict(info).items() if k not in ("schedule", "fields")}
    s = info.schedule
    out["when"] = info.when
    out["definition"] = None if s is None else {
        "task": s.task, "queue": s.queue, "every_s": s.every_s, "cron": s.cron,
        "timezone": s.timezone, "missed": s.missed, "grace_s": s.grace_s,
        "args": list(s.args), "kwargs": dict(s.kwargs), "options": dict(s.options)}
    return out


@bp.post("/schedules/<name>/<action>")
def schedule_action(name: str, action: str) -> Response:
    info = schedule_or_404(name)
    check_schedule_action(action)
    message, job_id = perform_schedule_action(info, action, via=" (API)")
    return jsonify({"schedule": name, "action": action, "job_id": job_id or None,
                    "message": message})


@bp.get("/jobs/<state>")
def jobs(state: str) -> Response:
    state = params.state_or_404(state)
    insp = engine().inspector
    names = known_queues()
    queue = params.queue_name(request.args.get("queue", ""), names, allow_all=True)
    order = params.choice_arg("order", "newest" if state in FINAL_STATES else "oldest",
                              ("newest", "oldest"))
    per_page = params.per_page_arg()
    match = JobFilter(task=params.text_arg("task"), text=params.text_arg("text"))
    start = params.int_arg("start", 0, 0, 10**12)
    queues = names if queue == params.ALL_QUEUES else [queue]
    if match:
        res = search_jobs(insp, state, queues, match, start=start, limit=per_page,
                          newest_first=order == "newest")
        extra: dict[str, Any] = {"start": start, "scanned": res.scanned,
                                 "next_start": res.next_start}
    else:
        page_no = params.int_arg("page", 1, 1, params.MAX_PAGE)
        res = list_jobs(insp, state, queues, offset=(page_no - 1) * per_page, limit=per_page,
                        newest_first=order == "newest")
        extra = {"page": page_no, "last_page": max(1, -(-res.total // per_page))}
    return jsonify({"state": state, "queue": queue, "order": order, "per_page": per_page,
                    "total": res.total, "rows": [_row(r) for r in res.rows], **extra})


@bp.get("/jobs/<queue>/<jobid:job_id>")
def job(queue: str, job_id: str) -> Response:
    queue = params.queue_name(queue, known_queues())
    params.job_id(job_id)
    detail = engine().inspector.job(job_id, queue)
    if detail is None:
        raise NotFound(f"no job {job_id!r} in queue {queue!r}")
    return jsonify({"id": detail.id, "queue": detail.queue, "state": detail.state,
                    "requeues": detail.requeues, "fields": dict(detail.fields),
                    "attempts": detail.attempts, "ttl_s": detail.ttl_s})


@bp.get("/jobs/<queue>/<jobid:job_id>/logs")
def job_logs(queue: str, job_id: str) -> Response:
    """The job's captured output from byte `offset` (0); ask again from `next_offset` to
    tail it while `running`."""
    offset = params.int_arg("offset", 0, 0, 2**53)
    log = job_or_404(queue, job_id, lambda q, i: engine().inspector.logs(q, i, offset))
    return jsonify({"id": log.id, "queue": log.queue, "state": log.state,
                    "running": log.running, "offset": log.offset,
                    "next_offset": log.next_offset, "size": log.size,
                    "lines": [{"stream": ln.stream, "text": ln.text} for ln in log.lines]})


@bp.get("/workers")
def workers() -> Response:
    return jsonify([dataclasses.asdict(w) for w in worker_rows(engine().inspector.workers())])


@bp.get("/history")
def history() -> Response:
    minutes = params.int_arg("minutes", 60, 1, engine().settings.history_minutes)
    queue = request.args.get("queue", "")
    names = [params.queue_name(queue, known_queues())] if queue else None
    return jsonify([dataclasses.asdict(p)
                    for p in engine().inspector.history(names, minutes=minutes)])


@bp.get("/audit")
def audit_log() -> Response:
    page_no = params.int_arg("page", 1, 1, 200)
    log = engine().inspector.audit((page_no - 1) * 50, 50)
    return jsonify({"total": log.total, "page": page_no,
                    "entries": [dataclasses.asdict(e) for e in log.entries]})


@bp.post("/jobs/<queue>/<jobid:job_id>/<action>")
def job_action(queue: str, job_id: str, action: str) -> Response:
    queue = params.queue_name(queue, known_queues())
    params.job_id(job_id)
    detail = engine().inspector.job(job_id, queue)
    if detail is None:
        raise NotFound(f"no job {job_id!r} in queue {queue!r}")
    admin, state = engine().admin, detail.state
    if action == "requeue":
        seen_state, seen = _seen(_body())
        admin.requeue_job(queue, job_id, seen_state, seen)
        new_state = "pending"
    elif action == "purge":
        if state not in PURGE_STATES or admin.purge(queue, state, [job_id]) == 0:
            raise Conflict(f"job {job_id} is {state}; it cannot be purged")
        new_state = "purged"
    elif action == "cancel":
        admin.cancel(queue, job_id)
        new_state = "cancelled"
    elif action == "release":
        worker = str(_body().get("worker", ""))[:200]
        new_state = admin.release_orphan(queue, job_id, worker)
    else:
        raise NotFound(f"no job action {action[:40]!r}")
    audit(action, queue=queue, state=state, count=1, detail=f"{job_id} (API)")
    return jsonify({"id": job_id, "queue": queue, "was": state, "now": new_state})


def _count(value: object, most: int) -> TypeGuard[int]:
    """A JSON whole number from 0 to `most` (true and false are not numbers here)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= most


def _seen(body: dict[str, Any]) -> tuple[str, int]:
    """The state and requeue count the client read (GET /api/jobs/<queue>/<id>): a requeue
    names the run it means, so a retried request cannot run a finished job again."""
    state, count = body.get("state"), body.get("requeues")
    if not isinstance(state, str) or not _count(count, params.MAX_COUNT):
        raise BadRequest('send {"state": ..., "requeues": ...} as read from GET '
                         "/api/jobs/<queue>/<id>: the requeue applies to the job as you saw it")
    return state, count


@bp.post("/queues/<queue>/<action>")
def queue_action(queue: str, action: str) -> Response:
    queue = params.queue_name(queue, known_queues())
    if action == "pause":
        engine().admin.pause(queue)
    elif action == "resume":
        engine().admin.resume(queue)
    else:
        raise NotFound(f"no queue action {action[:40]!r}; use pause or resume")
    audit(action, queue=queue, detail="(API)")
    return jsonify({"queue": queue, "paused": action == "pause"})


@bp.post("/ops")
def start_op() -> tuple[Response, int, dict[str, str]]:
    queue, state, action, match = bulk_target({k: str(v) for k, v in _body().items()})
    op = engine().admin.start_bulk(queue, state, action, task=match.task, text=match.text,
                                   actor=current_user().name)
    audit(f"{action} all: started", queue=queue, state=state, count=op.total,
          detail=f"operation {op.id} (API)" + filter_text(match))
    return jsonify(_op(op)), 201, {"Location": url_for(".op", queue=queue, op_id=op.id)}


@bp.get("/ops/<queue>/<op_id>")
def op(queue: str, op_id: str) -> Response:
    return jsonify(_op(op_or_404(queue, op_id)))


@bp.post("/ops/<queue>/<op_id>/step")
def step_op(queue: str, op_id: str) -> Response:
    before = op_or_404(queue, op_id)
    after = engine().admin.step_bulk(before.queue, before.id, budget_s=STEP_BUDGET_S)
    if after.finished and not before.finished:
        audit(f"{after.action} all: finished", queue=after.queue, state=after.state,
              count=after.done, detail=f"operation {after.id} (API)")
    return jsonify(_op(after))
