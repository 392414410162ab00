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


def _schedule_or_404(name: str) -> ScheduleInfo:
    params.schedule_name(name)
    info = engine().inspector.schedule(name)
    if info is None:
        raise NotFound(f"no schedule named {name!r}; it may have been deleted meanwhile")
    return info


@bp.post("/schedules/<name>/<action>")
def act(name: str, action: str) -> Response | BaseResponse:
    info = _schedule_or_404(name)
    if action not in ACTIONS:
        raise NotFound(f"no schedule action {action[:40]!r}; use {', '.join(ACTIONS)}")
    admin = engine().admin
    queue = str(info.schedule.queue) if info.schedule is not None else ""
    if action == "delete" and request.form.get("confirm") != "1":
        return make_response(render_template("jobq/schedules/confirm.html", info=info,
                                             queue=queue))
    if action == "enable":
        admin.enable_schedule(name)
        notify(f"Enabled schedule {name}: it fires from its next tick on.")
        audit("enable schedule", queue=queue, detail=name)
    elif action == "disable":
        admin.disable_schedule(name)
        notify(f"Disabled schedule {name}: it stays stored and fires no more until enabled.")
        audit("disable schedule", queue=queue, detail=name)
    elif action == "run":
        try:
            job = admin.run_schedule_now(name)
        except QueueFull as exc:
            raise Conflict(str(exc)) from None
        notify(f"Enqueued job {job.id} on queue {job.queue.name} from schedule {name}.")
        audit("run schedule now", queue=job.queue.name, count=1, detail=f"{name}: {job.id}")
    else:
        if not admin.delete_schedule(name):
            raise NotFound(f"no schedule named {name!r}; it was deleted meanwhile")
        notify(f"Deleted schedule {name}. Jobs it made are left alone.")
        audit("delete schedule", queue=queue, detail=name)
    return redirect(url_for(".index"))
