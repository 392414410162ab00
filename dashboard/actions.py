"""What the views that change things share: the audit trail, flash messages, where to go
back to, and the checks and steps of bulk operations and schedule actions (used by both
the pages and the JSON API, so both apply the same rules)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import flash, request, url_for
from werkzeug.exceptions import BadRequest, Conflict, NotFound

from jobq_core import QueueFull
from jobq_core.admin import BULK_ACTIONS, BulkOp
from jobq_core.inspect import JobFilter, ScheduleInfo
from jobq_core.problems import Problem

from . import params
from .engine import current_user, engine

T = TypeVar("T")

STEP_BUDGET_S = 0.3  # server time one step of a bulk operation may use
SCHEDULE_ACTIONS = ("enable", "disable", "run", "delete")


def known_queues() -> list[str]:
    return engine().inspector.queues()


def job_or_404(queue: str, job_id: str, read: Callable[[str, str], T | None]) -> T:
    """`read(queue, job_id)` for a known queue and a well-formed id (404 / 400 otherwise),
    404 when it finds no job."""
    queue = params.queue_name(queue, known_queues())
    params.job_id(job_id)
    found = read(queue, job_id)
    if found is None:
        raise NotFound(f"no job {job_id!r} in queue {queue!r}. It may have expired after its "
                       "retention time or been purged.")
    return found


def audit(action: str, *, queue: str = "", state: str = "", count: int = 0,
          detail: str = "") -> None:
    """Write what the current user did to the audit log."""
    user = current_user()
    engine().admin.record(f"{user.name} ({user.via})", action, queue=queue, state=state,
                          count=count, detail=detail)


def notify(message: str, category: str = "ok") -> None:
    flash(message, category)


def back_to_list(state: str, queue: str) -> str:
    """Where to return after an action on a list: the same list (only known params)."""
    args: dict[str, Any] = {k: v for k, v in request.form.items()
                            if k in ("order", "per_page", "task", "text") and v and len(v) <= 200}
    return url_for("jobq.jobs.listing", state=state, queue=queue, **args)


def bulk_target(values: dict[str, str]) -> tuple[str, str, str, JobFilter]:
    """queue, state, action and filter of a bulk operation, checked (400/404 otherwise)."""
    queue = params.queue_name(values.get("queue", ""), known_queues())
    state = params.state_or_404(values.get("state", ""))
    action = values.get("action", "")
    if action not in BULK_ACTIONS:
        raise BadRequest(f"unknown bulk action {action[:40]!r}; use "
                         f"{', '.join(BULK_ACTIONS)}")
    if state not in BULK_ACTIONS[action]:
        raise BadRequest(f"cannot {action} {state} jobs")
    task, text = values.get("task", "").strip(), values.get("text", "").strip()
    if len(task) > params.MAX_TEXT or len(text) > params.MAX_TEXT:
        raise BadRequest(f"filters are limited to {params.MAX_TEXT} characters")
    return queue, state, action, JobFilter(task=task, text=text)


def filter_text(match: JobFilter) -> str:
    """The filter of a bulk operation in words, for the audit log ('' when unfiltered)."""
    parts = [f"task contains {match.task!r}" if match.task else "",
             f"text contains {match.text!r}" if match.text else ""]
    joined = " and ".join(p for p in parts if p)
    return f"; only jobs whose {joined}" if joined else ""


def op_or_404(queue: str, op_id: str) -> BulkOp:
    """A bulk operation's record (404 when unknown or expired)."""
    queue = params.queue_name(queue, known_queues())
    op = engine().admin.bulk_status(queue, op_id) if len(op_id) <= 64 else None
    if op is None:
        raise NotFound(f"no bulk operation {op_id[:40]!r} in queue {queue!r} (records are "
                       "kept for a day)")
    return op


def schedule_or_404(name: str) -> ScheduleInfo:
    params.schedule_name(name)
    info = engine().inspector.schedule(name)
    if info is None:
        raise NotFound(f"no schedule named {name!r}; it may have been deleted meanwhile")
    return info


def check_schedule_action(action: str) -> None:
    if action not in SCHEDULE_ACTIONS:
        raise NotFound(f"no schedule action {action[:40]!r}; use {', '.join(SCHEDULE_ACTIONS)}")


def perform_schedule_action(info: ScheduleInfo, action: str, via: str = "") -> tuple[str, str]:
    """Do `action` (one of SCHEDULE_ACTIONS) on a schedule and write it to the audit log;
    returns what happened, for the operator, and the id of the job 'run' enqueued ('' else)."""
    admin, name = engine().admin, info.name
    queue = str(info.schedule.queue) if info.schedule is not None else ""
    job_id = ""
    if action == "enable":
        admin.enable_schedule(name)
        message = f"Enabled schedule {name}: it fires from its next tick on."
    elif action == "disable":
        admin.disable_schedule(name)
        message = f"Disabled schedule {name}: it stays stored and fires no more until enabled."
    elif action == "run":
        try:
            job = admin.run_schedule_now(name)
        except QueueFull as exc:
            raise Conflict(str(exc)) from None
        job_id, queue = job.id, job.queue.name
        message = f"Enqueued job {job.id} on queue {queue} from schedule {name}."
    else:
        if not admin.delete_schedule(name):
            raise NotFound(f"no schedule named {name!r}; it was deleted meanwhile")
        message = f"Deleted schedule {name}. Jobs it made are left alone."
    verb = {"enable": "enable schedule", "disable": "disable schedule",
            "run": "run schedule now", "delete": "delete schedule"}[action]
    detail = f"{name}: {job_id}" if job_id else name
    audit(verb, queue=queue, count=1 if job_id else 0, detail=detail + via)
    return message, job_id


def problem_url(p: Problem) -> str:
    """Where to act on a problem (its `target`), as a dashboard URL."""
    t = p.target
    if t.get("page") == "jobs":
        return url_for("jobq.jobs.listing", state=t.get("state", "pending"),
                       queue=t.get("queue") or None)
    if t.get("page") in ("workers", "schedules", "queues"):
        return url_for(f"jobq.{t['page']}.index")
    return url_for("jobq.overview.index") + "#redis"
