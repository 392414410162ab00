"""Tasks: how long each task runs (p50/p95/p99), how often, how often it fails, per task and
per queue, over a window of the last minutes (jobq_core.runtimes)."""

from __future__ import annotations

from flask import Blueprint, Response, request

from jobq_core.runtimes import queue_runtimes, task_runtimes

from .. import params
from ..actions import known_queues
from ..engine import engine
from ..render import page

bp = Blueprint("tasks", __name__)

WINDOWS_MIN = (5, 15, 60, 180)  # the windows the page offers; any 1..runtime_minutes works


@bp.get("/tasks")
def index() -> Response:
    insp = engine().inspector
    minutes = params.int_arg("minutes", 60, 1, insp.settings.runtime_minutes)
    queue = request.args.get("queue", "")
    names = [params.queue_name(queue, known_queues())] if queue else None
    rows = task_runtimes(insp, names, minutes)
    return page("jobq/tasks.html", "jobq/_tasks.html", rows=rows, totals=queue_runtimes(rows),
                minutes=minutes, queue=queue, queues=known_queues(),
                windows=[w for w in WINDOWS_MIN if w <= insp.settings.runtime_minutes],
                now_ms=insp.server_time_ms())
