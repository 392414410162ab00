"""Workers: host, pid, queues, state, current jobs, counters, heartbeat; lost workers."""

from __future__ import annotations

from flask import Blueprint, Response, redirect, url_for
from werkzeug.wrappers.response import Response as BaseResponse

from ..actions import audit, notify
from ..engine import engine
from ..models import worker_rows, worker_summary
from ..render import page

bp = Blueprint("workers", __name__)


@bp.get("/workers")
def index() -> Response:
    insp = engine().inspector
    rows = worker_rows(insp.workers())
    return page("jobq/workers.html", "jobq/_workers.html", workers=rows,
                summary=worker_summary(rows), now_ms=insp.server_time_ms(),
                ttl_s=engine().settings.heartbeat_s * engine().settings.worker_ttl_factor)


@bp.post("/workers/prune")
def prune() -> BaseResponse:
    n = engine().admin.prune_workers()
    audit("forget lost workers", count=n)
    notify(f"Forgot {n} lost worker(s).")
    return redirect(url_for(".index"))
