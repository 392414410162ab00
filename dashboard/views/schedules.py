"""Schedules: periodic jobs with their next and last run, the scheduler leader, and
enable / disable / run now / delete."""

from __future__ import annotations

from flask import Blueprint, Response, make_response, redirect, render_template, request, url_for
from werkzeug.exceptions import Conflict, NotFound
from werkzeug.wrappers.response import Response as BaseResponse

from jobq_core import QueueFull
from jobq_core.inspect import ScheduleInfo

from .. import params
from ..app import engine
from ..models import schedule_rows
from .common import audit, known_queues, notify, page

bp = Blueprint("schedules", __name__)

ACTIONS = ("enable", "disable", "run", "delete")


@bp.get("/schedules")
def index() -> Response:
    eng = engine()
    insp = eng.inspector
    now = insp.server_time_ms()
    failover_ms = int(eng.settings.scheduler_lease_s * 1000) + 1000
    rows = schedule_rows(insp.schedules(), known_queues(), now, failover_ms)
    return page("jobq/schedules/list.html", "jobq/schedules/_list.html", rows=rows,
                leader=insp.scheduler(), now_ms=now, failover_ms=failover_ms)


@bp.post("/schedules/<name>/<action>")
def act(name: str, action: str) -> Response | BaseResponse:
    info = schedule_or_404(name)
    check_action(action)
    if action == "delete" and request.form.get("confirm") != "1":
        queue = str(info.schedule.queue) if info.schedule is not None else ""
        return make_response(render_template("jobq/schedules/confirm.html", info=info,
                                             queue=queue))
    notify(perform(info, action)[0])
    return redirect(url_for(".index"))


def schedule_or_404(name: str) -> ScheduleInfo:
    params.schedule_name(name)
    info = engine().inspector.schedule(name)
    if info is None:
        raise NotFound(f"no schedule named {name!r}; it may have been deleted meanwhile")
    return info


def check_action(action: str) -> None:
    if action not in ACTIONS:
        raise NotFound(f"no schedule action {action[:40]!r}; use {', '.join(ACTIONS)}")


def perform(info: ScheduleInfo, action: str, via: str = "") -> tuple[str, str]:
    """Do `action` (one of ACTIONS) on a schedule and write it to the audit log; returns
    what happened, for the operator, and the id of the job 'run' enqueued ('' otherwise)."""
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
