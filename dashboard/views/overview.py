"""Overview: the problems first, then counts per state and queue, throughput, workers, Redis."""

from __future__ import annotations

from flask import Blueprint, Response, make_response, redirect, render_template, request, url_for
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers.response import Response as BaseResponse

from jobq_core.errors import InvalidState
from jobq_core.keys import check_queue_name, stored_job_id
from jobq_core.problems import find_problems

from .. import params
from ..actions import audit, notify, problem_url
from ..engine import engine
from ..htmx import is_htmx
from ..models import ALERT_STATES, chart, node_of, totals, worker_rows, worker_summary
from ..render import page

bp = Blueprint("overview", __name__)

PROBLEMS_POLL_S = 1  # the problems panel refreshes faster than the rest: it is read first
MAX_HAND_BACK = 200  # jobs one hand-back form may name (PROCESSING_LOOK per queue are shown)


def _problems_context() -> dict[str, object]:
    insp = engine().inspector
    found = find_problems(insp)
    return {"problems": found, "problem_urls": [problem_url(p) for p in found],
            "problems_poll_s": PROBLEMS_POLL_S, "beat_ms": int(engine().settings.heartbeat_s
                                                                * 1000)}


@bp.get("/")
def index() -> Response:
    insp = engine().inspector
    counts = insp.counts()
    # The throughput chart of one queue (?queue=), else of all; the live poll keeps it.
    chart_queue = request.args.get("queue", "")
    if chart_queue:
        params.queue_name(chart_queue, list(counts))
    infos = {q: insp.queue_info(q) for q in counts}
    heads = {}
    for q in counts:
        head = insp.jobs("pending", q, limit=1).rows if counts[q]["pending"] else []
        heads[q] = head[0].enqueued_ms if head else None
    workers = worker_rows(insp.workers())
    nodes = insp.nodes(list(counts))
    # The problems come with the full page only: htmx polls them on their own (/problems).
    extra = {} if is_htmx() else _problems_context()
    return page("jobq/overview.html", "jobq/_overview.html", counts=counts,
                totals=totals(counts), infos=infos, heads=heads,
                chart=chart(insp.history([chart_queue] if chart_queue else None, minutes=60)),
                chart_queue=chart_queue, workers=worker_summary(workers),
                server=insp.server(), nodes=nodes, where=node_of(nodes),
                now_ms=insp.server_time_ms(), alert=ALERT_STATES, **extra)


@bp.get("/problems")
def problems() -> Response:
    """The problems panel alone (the fragment the overview polls)."""
    return make_response(render_template("jobq/_problems.html", **_problems_context()))


@bp.post("/problems/hand-back")
def hand_back() -> BaseResponse:
    """Hand back now the processing jobs a lost worker still holds (Admin.release_orphan:
    refused for a worker that is beating again or a job that moved on)."""
    worker = request.form.get("worker", "")[:200]
    refs = request.form.getlist("job")[:MAX_HAND_BACK]
    if not worker or not refs:
        raise BadRequest("name the lost worker and at least one of its jobs")
    admin, moved, refused = engine().admin, 0, []
    for ref in refs:
        queue, _, job_id = ref.partition("/")
        check_queue_name(queue)
        if not stored_job_id(job_id):
            raise BadRequest(f"not a job reference: {ref[:140]!r}")
        try:
            new_state = admin.release_orphan(queue, job_id, worker)
        except InvalidState as exc:
            refused.append(str(exc))
            continue
        moved += 1
        audit("hand back orphan", queue=queue, state="processing", count=1,
              detail=f"{job_id} from lost worker {worker[:100]} -> {new_state}")
    if moved:
        notify(f"Handed back {moved} job(s) from lost worker {worker}.")
    if refused:
        notify(f"{len(refused)} not handed back: {refused[0]}", "warn")
    return redirect(url_for(".index"))
