"""Errors: failed and dead jobs grouped by task, exception type and normalised message, and
requeue or purge of a whole group in bounded batches with progress."""

from __future__ import annotations

import time

from flask import Blueprint, Response, make_response, render_template, request, url_for
from werkzeug.exceptions import BadRequest, NotFound

from jobq_core.errorgroups import act_on_group, error_group, error_groups, group_cutoff

from .. import params
from ..actions import audit, known_queues, notify
from ..engine import engine
from ..render import page

bp = Blueprint("errors", __name__)

GROUP_ACTIONS = ("requeue", "purge")
STEP_S = 1.0  # server time one POST spends on a group action before it shows progress
BATCH = 500


@bp.get("/errors")
def index() -> Response:
    insp = engine().inspector
    queue = request.args.get("queue", "")
    names = [params.queue_name(queue, known_queues())] if queue else None
    return page("jobq/errors.html", "jobq/_errors.html", groups=error_groups(insp, names),
                queue=queue, now_ms=insp.server_time_ms())


@bp.post("/errors/<queue>/<group_id>/<action>")
def act(queue: str, group_id: str, action: str) -> Response:
    """One step of a group action: batches for up to STEP_S, then the progress page, which
    posts the next step itself (htmx, on load) with the same snapshot until none are left.
    A purge asks to confirm first, naming the group and its count."""
    if action not in GROUP_ACTIONS:
        raise NotFound(f"no error group action {action[:40]!r}")
    queue = params.queue_name(queue, known_queues())
    insp, admin = engine().inspector, engine().admin
    group = error_group(insp, queue, group_id)
    if group is None:
        raise NotFound(f"no error group {group_id[:40]!r} in queue {queue!r}")
    target = url_for(".act", queue=queue, group_id=group.id, action=action)
    sent_cutoff = params.form_ms("cutoff_ms")
    if sent_cutoff is None:
        if action == "purge" and request.form.get("confirm") != "1":
            return make_response(render_template(
                "jobq/confirm.html", action=action, count=group.jobs, state="failed or dead",
                queue=queue, ids=[f"{group.type or 'error'}: {group.message}"], target=target,
                back=url_for(".index"), hidden={}))
        cutoff = group_cutoff(admin, queue, group.id)
        done_before = 0
    else:
        # Both come back from the progress page: ASCII numbers, bounded (nan was a 500).
        cutoff, done_before = sent_cutoff, params.form_int("done", 0)
        if done_before > params.MAX_COUNT:
            raise BadRequest(f"done is at most {params.MAX_COUNT:,}")
    done, left = done_before, 0
    if cutoff is not None:
        started = time.monotonic()
        for step in act_on_group(admin, queue, group.id, action, BATCH, cutoff):
            done, left = done_before + step.done, step.left
            if time.monotonic() - started > STEP_S:
                break
    if not left:
        audit(f"{action} error group", queue=queue, state="failed+dead", count=done,
              detail=f"{group.task} {group.type}: {group.message}"[:500])
        notify(f"{'Requeued' if action == 'requeue' else 'Purged'} {done} job(s) of the "
               f"error group {group.type or 'error'}: {group.message}")
    return make_response(render_template(
        "jobq/errors_progress.html", group=group, action=action, done=done, left=left,
        cutoff=cutoff, target=target))
