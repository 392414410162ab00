"""Overview: counts per state and queue, throughput, workers, Redis health."""

from __future__ import annotations

from flask import Blueprint, Response

from ..engine import engine
from ..models import ALERT_STATES, chart, totals, worker_rows, worker_summary
from ..render import page

bp = Blueprint("overview", __name__)


@bp.get("/")
def index() -> Response:
    insp = engine().inspector
    counts = insp.counts()
    infos = {q: insp.queue_info(q) for q in counts}
    heads = {}
    for q in counts:
        head = insp.jobs("pending", q, limit=1).rows if counts[q]["pending"] else []
        heads[q] = head[0].enqueued_ms if head else None
    workers = worker_rows(insp.workers())
    return page("jobq/overview.html", "jobq/_overview.html", counts=counts,
                totals=totals(counts), infos=infos, heads=heads,
                chart=chart(insp.history(minutes=60)), workers=worker_summary(workers),
                server=insp.server(), now_ms=insp.server_time_ms(), alert=ALERT_STATES)
