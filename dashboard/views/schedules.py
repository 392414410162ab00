"""Schedules: periodic jobs with their next and last run, the scheduler leader, and
enable / disable / run now / delete."""

from __future__ import annotations

from flask import Blueprint, Response, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers.response import Response as BaseResponse

from ..actions import (
    check_schedule_action,
    known_queues,
    notify,
    perform_schedule_action,
    schedule_or_404,
)
from ..engine import engine
from ..models import schedule_rows
from ..render import page

bp = Blueprint("schedules", __name__)


@bp.get("/schedules")
def index() -> Response:
    eng = engine()
    insp = eng.inspector
    now = insp.server_time_ms()
    failover_ms = int(eng.settings.scheduler_lease_s * 1000) + 1000
    rows = schedule_rows(insp.schedules(), known_queues(), now, failover_ms)
    # URLs built once per row or queue, not per link ('-' is a valid id, cut off; names and
    # queue names are URL-safe by their patterns, ids go through the jobq_url_id filter).
    act_urls = {r.name: url_for(".act", name=r.name, action="run")[:-3] for r in rows}
    queues = {r.queue for r in rows if r.queue_known}
    pending_urls = {q: url_for("jobq.jobs.listing", state="pending", queue=q) for q in queues}
    jobs_url = url_for("jobq.jobs.detail", queue="q", job_id="-")[:-3]
    return page("jobq/schedules/list.html", "jobq/schedules/_list.html", rows=rows,
                leader=insp.scheduler(), now_ms=now, failover_ms=failover_ms,
                act_urls=act_urls, pending_urls=pending_urls, jobs_url=jobs_url)


@bp.post("/schedules/<name>/<action>")
def act(name: str, action: str) -> Response | BaseResponse:
    info = schedule_or_404(name)
    check_schedule_action(action)
    if action == "delete" and request.form.get("confirm") != "1":
        queue = str(info.schedule.queue) if info.schedule is not None else ""
        return make_response(render_template("jobq/schedules/confirm.html", info=info,
                                             queue=queue))
    notify(perform_schedule_action(info, action)[0])
    return redirect(url_for(".index"))
