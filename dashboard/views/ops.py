"""Bulk actions on every job of a state in a queue (optionally matching the list's filter).

The operator confirms with the exact count; the action starts on a snapshot (the engine's
start_bulk) and advances in bounded POST steps, each a fraction of a second, that the
progress fragment chains with htmx (or a button without JavaScript). Any web process can
take the next step: the operation's state lives in Redis.
"""

from __future__ import annotations

from flask import Blueprint, Response, make_response, redirect, render_template, request, url_for
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers.response import Response as BaseResponse

from ..actions import STEP_BUDGET_S, audit, bulk_target, filter_text, op_or_404
from ..engine import current_user, engine
from ..htmx import is_htmx
from ..render import page

bp = Blueprint("ops", __name__)

CONFIRM_NAME_AT = 1000  # purging at least this many jobs asks to type the queue name


@bp.get("/ops/new")
def confirm() -> Response:
    """The confirmation page: what exactly will happen, to how many jobs (changes nothing)."""
    queue, state, action, match = bulk_target(request.args.to_dict())
    count = engine().inspector.counts([queue])[queue][state]
    return make_response(render_template(
        "jobq/ops/confirm.html", queue=queue, state=state, action=action, match=match,
        count=count, need_name=action == "purge" and count >= CONFIRM_NAME_AT))


@bp.post("/ops")
def start() -> BaseResponse:
    queue, state, action, match = bulk_target(request.form.to_dict())
    if request.form.get("confirm") != "1":
        raise BadRequest("not confirmed: use the confirmation page")
    count = engine().inspector.counts([queue])[queue][state]
    if action == "purge" and count >= CONFIRM_NAME_AT and \
            request.form.get("confirm_name", "") != queue:
        raise BadRequest(f"type the queue name ({queue}) to purge {count:,} jobs")
    op = engine().admin.start_bulk(queue, state, action, task=match.task, text=match.text,
                                   actor=current_user().name)
    audit(f"{action} all: started", queue=queue, state=state, count=op.total,
          detail=f"operation {op.id}" + filter_text(match))
    return redirect(url_for(".status", queue=queue, op_id=op.id))


@bp.get("/ops/<queue>/<op_id>")
def status(queue: str, op_id: str) -> Response:
    op = op_or_404(queue, op_id)
    return page("jobq/ops/status.html", "jobq/ops/_progress.html", op=op)


@bp.post("/ops/<queue>/<op_id>/step")
def step(queue: str, op_id: str) -> Response | BaseResponse:
    before = op_or_404(queue, op_id)
    op = engine().admin.step_bulk(before.queue, before.id, budget_s=STEP_BUDGET_S)
    if op.finished and not before.finished:
        audit(f"{op.action} all: finished", queue=op.queue, state=op.state, count=op.done,
              detail=f"operation {op.id}: {op.done:,} of {op.total:,} acted on")
    if is_htmx():
        return make_response(render_template("jobq/ops/_progress.html", op=op))
    return redirect(url_for(".status", queue=op.queue, op_id=op.id))
