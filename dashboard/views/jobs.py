"""Jobs: lists per state (one queue or all), job detail, and actions on one or selected jobs."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from flask import Blueprint, Response, make_response, redirect, render_template, request, url_for
from werkzeug.exceptions import BadRequest, Conflict, NotFound
from werkzeug.wrappers.response import Response as BaseResponse

from jobq_core.admin import BULK_ACTIONS
from jobq_core.inspect import Dependency, JobFilter
from jobq_core.job import DEFERRED_MS, FINAL_STATES, PURGE_STATES, REQUEUE_STATES, STATES
from jobq_core.keys import QUEUE_NAME_RE, valid_job_id
from jobq_core.tracing import trace_id

from .. import params
from ..actions import audit, back_to_list, job_or_404, known_queues, notify
from ..engine import current_user, engine
from ..htmx import is_htmx
from ..listing import list_jobs, search_jobs
from ..models import totals
from ..render import page

bp = Blueprint("jobs", __name__)

RAW_FIELDS = ("args", "kwargs", "result", "error", "meta", "progress", "depends_on")
MAX_SELECTED = 500
# Actions that lose information: asked to confirm first.
DESTRUCTIVE = frozenset({"purge", "cancel"})
PAST = {"requeue": "Requeued", "purge": "Purged", "cancel": "Cancelled"}
MAX_DEPS_SHOWN = 200  # parents listed on a job's page (a group's callback may have thousands)


def actions_for(state: str) -> list[str]:
    """The actions an operator may take on jobs in `state`."""
    return [a for a, allowed in BULK_ACTIONS.items() if state in allowed]


@bp.get("/jobs/<state>")
def listing(state: str) -> Response | BaseResponse:
    state = params.state_or_404(state)
    insp = engine().inspector
    names = known_queues()
    queue = params.queue_name(request.args.get("queue", ""), names, allow_all=True)
    default_order = "newest" if state in FINAL_STATES else "oldest"
    order = params.choice_arg("order", default_order, ("newest", "oldest"))
    per_page = params.per_page_arg()
    match = JobFilter(task=params.text_arg("task"), text=params.text_arg("text"))
    start = params.int_arg("start", 0, 0, 10**12)
    wanted_id = params.text_arg("id")
    if wanted_id:
        params.job_id(wanted_id)
        detail = insp.job(wanted_id, None if queue == params.ALL_QUEUES else queue)
        if detail is None:
            raise NotFound(f"no job with id {wanted_id!r}"
                           + ("" if queue == params.ALL_QUEUES else f" in queue {queue!r}")
                           + ". It may have expired after its retention time or been purged.")
        return redirect(url_for(".detail", queue=detail.queue, job_id=detail.id))
    queues = names if queue == params.ALL_QUEUES else [queue]
    newest = order == "newest"
    if match:
        result = search_jobs(insp, state, queues, match, start=start, limit=per_page,
                             newest_first=newest)
        page_no, last_page = 1, 1
    else:
        page_no = params.int_arg("page", 1, 1, params.MAX_PAGE)
        result = list_jobs(insp, state, queues, offset=(page_no - 1) * per_page,
                           limit=per_page, newest_first=newest)
        last_page = max(1, -(-result.total // per_page))
        if page_no > last_page and not is_htmx():
            raise NotFound(f"page {page_no:,} is past the last page ({last_page:,}) of "
                           f"{result.total:,} {state} jobs")
    now = insp.server_time_ms()
    alive: dict[str, bool] = {}
    progress: dict[str, Any] = {}
    if state == "processing":
        alive = insp.workers_alive([r.worker for r in result.rows if r.worker])
        progress = insp.progress([(r.queue, r.id) for r in result.rows])
    query = {"queue": queue, "order": order, "per_page": per_page, "task": match.task,
             "text": match.text}
    # The job page URL of each listed queue without the id ('-' is a valid id, cut off): one
    # url_for per queue instead of one per row; the template writes each id with the
    # jobq_url_id filter (jobids.py), as url_for would.
    links = {q: url_for(".detail", queue=q, job_id="-")[:-1] for q in {r.queue for r in
                                                                       result.rows}}
    # Counts on the state tabs: one ZCARD per state and queue (only for the full page).
    tab_counts = {} if is_htmx() else totals(insp.counts(queues))
    return page("jobq/jobs/list.html", "jobq/jobs/_rows.html", state=state, queue=queue,
                queues=names, order=order, per_page=per_page, match=match, result=result,
                page_no=page_no, last_page=last_page, now_ms=now, alive=alive,
                query={k: v for k, v in query.items() if v}, actions=actions_for(state),
                per_page_choices=params.PER_PAGE_CHOICES, states=STATES, deferred_ms=DEFERRED_MS,
                links=links, tab_counts=tab_counts, progress=progress)


@bp.get("/job/<jobid:job_id>")
def find(job_id: str) -> BaseResponse:
    """Jump to a job by id alone (looked up in every queue)."""
    params.job_id(job_id)
    detail = engine().inspector.job(job_id)
    if detail is None:
        raise NotFound(f"no job with id {job_id!r} in any queue. It may have expired after "
                       "its retention time or been purged.")
    return redirect(url_for(".detail", queue=detail.queue, job_id=detail.id))


def _detail_or_404(queue: str, job_id: str) -> Any:
    return job_or_404(queue, job_id, lambda q, i: engine().inspector.job(i, q))


@bp.get("/jobs/<queue>/<jobid:job_id>")
def detail(queue: str, job_id: str) -> Response:
    job = _detail_or_404(queue, job_id)
    insp = engine().inspector
    worker = job.fields.get("worker", "")
    alive = insp.workers_alive([worker]).get(worker) if worker else None
    deps = insp.dependencies(job.queue, job.id) if job.fields.get("depends_on") else []
    return page("jobq/jobs/detail.html", "jobq/jobs/_detail.html", job=job,
                logs=insp.logs(job.queue, job.id),
                now_ms=insp.server_time_ms(), worker_alive=alive, timeline=_timeline(job),
                actions=actions_for(job.state), deps=[_dep_view(d) for d in deps],
                waiting=sum(1 for d in deps if d.waiting), max_deps=MAX_DEPS_SHOWN,
                trace_id=trace_id(job.fields))


def _dep_view(dep: Dependency) -> dict[str, Any]:
    queue, _, job_id = dep.ref.rpartition("/")
    linkable = valid_job_id(job_id) and bool(QUEUE_NAME_RE.fullmatch(queue))
    return {"ref": dep.ref, "queue": queue, "id": job_id, "state": dep.state,
            "waiting": dep.waiting, "linkable": linkable}


def _timeline(job: Any) -> list[tuple[int, str]]:
    f = job.fields
    events: list[tuple[int, str]] = []
    for name, label in (("enqueued_ms", "enqueued"), ("requeued_ms", "requeued by an operator"),
                        ("started_ms", "started (latest attempt)"),
                        ("finished_ms", f"ended: {f.get('state', '')}")):
        try:
            if f.get(name):
                events.append((int(f[name]), label))
        except ValueError:
            continue
    for a in job.attempts:
        if isinstance(a, dict):
            label = f"attempt {a.get('attempt', '?')}: {a.get('outcome', '?')}"
            if a.get("worker"):
                label += f" on {a['worker']}"
            try:
                events.append((int(a.get("finished_ms") or 0), label))
            except (TypeError, ValueError):
                continue
    return sorted(e for e in events if e[0])


@bp.get("/jobs/<queue>/<jobid:job_id>/logs")
def logs(queue: str, job_id: str) -> Response:
    """The job's captured output (the log section of its page), polled while it runs."""
    log = job_or_404(queue, job_id, engine().inspector.logs)
    return make_response(render_template("jobq/jobs/_logs.html", logs=log))


@bp.get("/jobs/<queue>/<jobid:job_id>/raw/<field>")
def raw(queue: str, job_id: str, field: str) -> Response:
    """One stored field in full, as plain text (never rendered as HTML)."""
    if field not in RAW_FIELDS:
        raise NotFound(f"no field {field[:40]!r}; fields are {', '.join(RAW_FIELDS)}")
    job = _detail_or_404(queue, job_id)
    resp = make_response(job.fields.get(field, ""))
    resp.mimetype = "text/plain"
    resp.headers["Content-Disposition"] = "inline"
    return resp


@bp.post("/jobs/<queue>/<jobid:job_id>/<action>")
def act(queue: str, job_id: str, action: str) -> Response | BaseResponse:
    job = _detail_or_404(queue, job_id)
    admin = engine().admin
    state = job.state
    if action not in ("requeue", "cancel", "purge", "release", "retry-now", "kill"):
        raise NotFound(f"no job action {action[:40]!r}")
    if action in DESTRUCTIVE and request.form.get("confirm") != "1":
        return make_response(render_template(
            "jobq/confirm.html", action=action, count=1, state=state, queue=job.queue,
            ids=[f"{job.queue}/{job.id}"], target=url_for(".act", queue=job.queue,
                                                         job_id=job.id, action=action),
            back=url_for(".detail", queue=job.queue, job_id=job.id), hidden={}))
    if action == "requeue":
        if state not in REQUEUE_STATES:
            raise Conflict(f"job {job.id} is {state}; only "
                           f"{', '.join(sorted(REQUEUE_STATES))} jobs can be requeued")
        # The form carries what the page showed: a second click or a resubmitted form finds
        # the job requeued since and is refused (409) instead of running it once more.
        seen = params.form_int("requeues", job.requeues)
        admin.requeue_job(job.queue, job.id, request.form.get("state", state)[:32], seen)
        audit("requeue", queue=job.queue, state=state, count=1, detail=job.id)
        notify(f"Requeued job {job.id}: it is pending again.")
    elif action == "cancel":
        admin.cancel(job.queue, job.id)
        audit("cancel", queue=job.queue, state=state, count=1, detail=job.id)
        notify(f"Cancelled job {job.id}.")
    elif action == "purge":
        if state not in PURGE_STATES or admin.purge(job.queue, state, [job.id]) == 0:
            raise Conflict(f"job {job.id} is {state}; it cannot be purged now")
        audit("purge", queue=job.queue, state=state, count=1, detail=job.id)
        notify(f"Purged job {job.id}.")
        return redirect(url_for(".listing", state=state, queue=job.queue))
    elif action == "retry-now":
        admin.retry_now(job.queue, job.id)
        audit("retry now", queue=job.queue, state=state, count=1, detail=job.id)
        notify(f"Job {job.id} runs again now instead of at the end of its backoff.")
    elif action == "kill":
        admin.kill(job.queue, job.id, current_user().name)
        audit("kill", queue=job.queue, state=state, count=1, detail=job.id)
        notify(f"Killed job {job.id}: it is dead (requeue brings it back).")
    else:
        worker = request.form.get("worker", "")[:200]  # also bounds the flash message
        new_state = admin.release_orphan(job.queue, job.id, worker)
        audit("hand back orphan", queue=job.queue, state="processing", count=1,
              detail=f"{job.id} from lost worker {worker[:100]} -> {new_state}")
        notify(f"Handed back job {job.id} from lost worker {worker}: now {new_state}.")
    return redirect(url_for(".detail", queue=job.queue, job_id=job.id))


@bp.post("/selection/<state>")
def selection(state: str) -> Response | BaseResponse:
    """Requeue, cancel or purge the jobs ticked on a list page."""
    state = params.state_or_404(state)
    action = request.form.get("action", "")
    if action not in actions_for(state):
        raise BadRequest(f"cannot {action[:40] or '(no action)'} {state} jobs")
    picked = request.form.getlist("ids")
    if not picked:
        raise BadRequest("no jobs selected: tick one or more rows first")
    if len(picked) > MAX_SELECTED:
        raise BadRequest(f"at most {MAX_SELECTED} jobs at a time; use the action on all "
                         "matching jobs instead")
    names = set(known_queues())
    by_queue: dict[str, list[str]] = defaultdict(list)
    for item in picked:
        queue, _, job_id = item.partition("/")
        params.job_id(job_id)
        if queue not in names:
            raise BadRequest(f"unknown queue in selection: {queue[:64]!r}")
        by_queue[queue].append(job_id)
    list_queue = request.form.get("queue", params.ALL_QUEUES)
    if list_queue != params.ALL_QUEUES and list_queue not in names:
        list_queue = params.ALL_QUEUES
    if action in DESTRUCTIVE and request.form.get("confirm") != "1":
        hidden = {k: v for k, v in request.form.items()
                  if k in ("queue", "order", "per_page", "task", "text") and len(v) <= 200}
        return make_response(render_template(
            "jobq/confirm.html", action=action, count=len(picked), state=state,
            queue=list_queue, ids=picked, target=url_for(".selection", state=state),
            back=back_to_list(state, list_queue), hidden=hidden))
    admin = engine().admin
    done = 0
    for queue, ids in by_queue.items():
        if action == "requeue":
            done += admin.requeue(queue, state, ids)
        elif action == "purge":
            done += admin.purge(queue, state, ids)
        else:
            for job_id in ids:
                done += int(admin.queue(queue).cancel(job_id))
        audit(f"{action} selected", queue=queue, state=state, count=len(ids),
              detail=" ".join(ids)[:500])
    skipped = len(picked) - done
    notify(f"{PAST[action]} {done} of {len(picked)} selected {state} jobs"
           + (f" ({skipped} had moved on meanwhile)" if skipped else "") + ".",
           "ok" if not skipped else "warn")
    return redirect(back_to_list(state, list_queue))
