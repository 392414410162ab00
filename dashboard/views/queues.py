"""Queues: depth per state, paused state with pause/resume, max length, lifetime counters,
deferred jobs, and the rate and concurrency limits with their current use."""

from __future__ import annotations

from flask import Blueprint, Response, redirect, url_for
from werkzeug.exceptions import NotFound
from werkzeug.wrappers.response import Response as BaseResponse

from jobq_core.job import STATES

from .. import params
from ..actions import audit, known_queues, notify
from ..engine import engine
from ..render import page

bp = Blueprint("queues", __name__)


@bp.get("/queues")
def index() -> Response:
    insp = engine().inspector
    counts = insp.counts()
    infos = {q: insp.queue_info(q) for q in counts}
    limits = {q: insp.limits(q) for q in counts}
    return page("jobq/queues.html", "jobq/_queues.html", counts=counts, infos=infos,
                where=insp.queue_nodes(list(counts)),
                limits={q: rows for q, rows in limits.items() if rows}, states=STATES,
                now_ms=insp.server_time_ms())


@bp.post("/queues/<queue>/<action>")
def act(queue: str, action: str) -> BaseResponse:
    queue = params.queue_name(queue, known_queues())
    admin = engine().admin
    if action == "pause":
        admin.pause(queue)
        notify(f"Paused queue {queue}: workers stop claiming from it; enqueues still work.")
    elif action == "resume":
        admin.resume(queue)
        notify(f"Resumed queue {queue}.")
    else:
        raise NotFound(f"no queue action {action[:40]!r}; use pause or resume")
    audit(action, queue=queue)
    return redirect(url_for(".index"))
