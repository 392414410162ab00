"""Bulk actions on every job of a state in a queue (optionally matching the list's filter).

The operator confirms with the exact count; the action starts on a snapshot (the engine's
start_bulk) and advances in bounded POST steps, each a fraction of a second, that the
progress fragment chains with htmx (or a button without JavaScript). Any web process can
take the next step: the operation's state lives in Redis.
"""

from __future__ import annotations

from flask import Blueprint, Response, make_response, redirect, render_template, request, url_for
from werkzeug.exceptions import BadRequest, NotFound
from werkzeug.wrappers.response import Response as BaseResponse

from jobq_core.admin import BULK_ACTIONS, BulkOp
from jobq_core.inspect import JobFilter

from .. import params
from ..app import engine
from ..htmx import is_htmx
from .common import audit, known_queues, page

bp = Blueprint("ops", __name__)

CONFIRM_NAME_AT = 1000  # purging at least this many jobs asks to type the queue name
STEP_BUDGET_S = 0.3  # server time one step may use


def _target(values: dict[str, str]) -> tuple[str, str, str, JobFilter]:
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


@bp.get("/ops/new")
def confirm() -> Response:
    """The confirmation page: what exactly will happen, to how many jobs (changes nothing)."""
    queue, state, action, match = _target(request.args.to_dict())
    count = engine().inspector.counts([queue])[queue][state]
    return make_response(render_template(
        "jobq/ops/confirm.html", queue=queue, state=state, action=action, match=match,
        count=count, need_name=action == "purge" and count >= CONFIRM_NAME_AT))


@bp.post("/ops")
def start() -> BaseResponse:
    queue, state, action, match = _target(request.form.to_dict())
    if request.form.get("confirm") != "1":
        raise BadRequest("not confirmed: use the confirmation page")
    count = engine().inspector.counts([queue])[queue][state]
    if action == "purge" and count >= CONFIRM_NAME_AT and \
            request.form.get("confirm_name", "") != queue:
        raise BadRequest(f"type the queue name ({queue}) to purge {count:,} jobs")
    op = engine().admin.start_bulk(queue, state, action, task=match.task, text=match.text,
                                   actor=_actor())
    audit(f"{action} all: started", queue=queue, state=state, count=op.total,
          detail=f"operation {op.id}" + _filter_text(match))
    return redirect(url_for(".status", queue=queue, op_id=op.id))


def _actor() -> str:
    from ..app import current_user

    return current_user().name


def _filter_text(match: JobFilter) -> str:
    parts = [f"task contains {match.task!r}" if match.task else "",
             f"text contains {match.text!r}" if match.text else ""]
    joined = " and ".join(p for p in parts if p)
    return f"; only jobs whose {joined}" if joined else ""


def _op_or_404(queue: str, op_id: str) -> BulkOp:
    queue = params.queue_name(queue, known_queues())
    op = engine().admin.bulk_status(queue, op_id)
    if op is None:
        raise NotFound(f"no bulk operation {op_id[:40]!r} in queue {queue!r} (records are "
                       "kept for a day)")
    return op


@bp.get("/ops/<queue>/<op_id>")
def status(queue: str, op_id: str) -> Response:
    op = _op_or_404(queue, op_id)
    return page("jobq/ops/status.html", "jobq/ops/_progress.html", op=op)


@bp.post("/ops/<queue>/<op_id>/step")
def step(queue: str, op_id: str) -> Response | BaseResponse:
    before = _op_or_404(queue, op_id)
    op = engine().admin.step_bulk(before.queue, before.id, budget_s=STEP_BUDGET_S)
    if op.finished and not before.finished:
        audit(f"{op.action} all: finished", queue=op.queue, state=op.state, count=op.done,
              detail=f"operation {op.id}: {op.done:,} of {op.total:,} acted on")
    if is_htmx():
        return make_response(render_template("jobq/ops/_progress.html", op=op))
    return redirect(url_for(".status", queue=op.queue, op_id=op.id))
