"""Commands on jobs and queues: enqueue, job, jobs, cancel, requeue, purge, pause, resume."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError, InvalidState, JobNotFound, JobqError
from ..job import FINAL_STATES, PURGE_STATES, REQUEUE_STATES, STATES
from ..keys import check_queue_name
from ..queue import Queue
from ..records import JobDetail, JobRow
from ..registry import lookup
from .app import (
    EXISTS_EXIT,
    BadUsage,
    Failure,
    Target,
    common_options,
    main,
    progress,
    wait_replicas_option,
)
from .options import call_args, job_option_flags, job_options, read_calls
from .show import ago, console, duration, fmt_ms, job_table, list_table, state_text

BULK_CHUNK = 1000


def _import(modules: Sequence[str]) -> None:
    sys.path.insert(0, os.getcwd())
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise Failure(f"cannot import {module}: {exc}") from None


@main.command()
@common_options
@click.argument("task", required=False)
@click.argument("args", required=False, metavar="[ARGS]")
@click.option("-q", "--queue", help="Queue to put it on [the task's queue, else default].")
@click.option("--kwargs", "kwargs_json", metavar="JSON", help="Keyword arguments (JSON object).")
@job_option_flags
@click.option("-i", "--import", "imports", multiple=True,
              help="Module registering the task, so its defaults (queue, retries) apply.")
@click.option("-f", "--file", "file", type=click.Path(dir_okay=False, path_type=Path),
              help="Bulk: one job per line, a JSON object with task, args, kwargs, queue, "
                   "priority, delay_s ... ('-' reads stdin).")
@click.option("--wait", "wait_s", type=float, help="Wait up to this long and print the result.")
@wait_replicas_option
def enqueue(t: Target, task: str | None, args: str | None, queue: str | None,
            kwargs_json: str | None, imports: Sequence[str], file: Path | None,
            wait_s: float | None, wait_replicas: int | None, **flags: Any) -> None:
    """Enqueue TASK with ARGS (a JSON array, or a JSON object of keyword arguments).

    \b
    jobq enqueue myapp.tasks.add '[1, 2]' --wait 5
    jobq enqueue myapp.tasks.report '{"day": "2026-11-23"}' --queue low --delay-s 60
    jobq enqueue --file jobs.jsonl            # {"task": "myapp.tasks.add", "args": [1, 2]}
    """
    _import(imports)
    if wait_replicas is not None:
        t.settings = t.settings.replace(wait_replicas=wait_replicas)
    registered = lookup(task) if task else None
    queue = queue or (registered.options.queue if registered else "default")
    if file is not None:
        _enqueue_file(t, file, task, queue)
        return
    if task is None:
        raise BadUsage("missing TASK (or --file)")
    positional, keywords = call_args(args, kwargs_json)
    q = Queue(queue, settings=t.settings, redis=t.inspector.client)
    job = q.enqueue_with(task, job_options(flags), positional, keywords)
    if job.created:
        t.admin.record(actor(), "enqueue", queue=q.name, count=1,
                       detail=f"{job.task} {job.id}")
    out: dict[str, Any] = {"id": job.id, "queue": q.name, "task": job.task, "state": job.status,
                           "created": job.created}
    # An existing id leaves that job as it is, which a script must be able to tell from a
    # fresh enqueue: the words, "created": false, and exit status EXISTS_EXIT.
    said = (f"enqueued {job.id} ({job.task}) on {q.name}: {job.status}" if job.created else
            f"job {job.id} already exists ({job.status or 'unknown state'}, "
            f"{job.task or '?'} on {q.name}); nothing was enqueued")
    if wait_s is None:
        t.emit(out, said)
    else:
        if not job.created and not t.as_json:
            click.echo(said, err=True)
        result = job.result(timeout_s=wait_s)  # JobFailed / Timeout end as one line, exit 1
        out.update(state="completed", result=result)
        t.emit(out, json.dumps(result, ensure_ascii=False))
    if not job.created:
        raise click.exceptions.Exit(EXISTS_EXIT)


def _enqueue_file(t: Target, file: Path, task: str | None, queue: str) -> None:
    calls = list(read_calls(file, task, queue))
    by_queue: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for call in calls:
        by_queue[call.pop("queue")].append(call)
    ids: list[str] = []
    with progress("enqueue", len(calls), not t.as_json) as update:
        for name, group in by_queue.items():
            q = Queue(name, settings=t.settings, redis=t.inspector.client)
            for i in range(0, len(group), BULK_CHUNK):
                try:
                    ids += [j.id for j in q.enqueue_many(group[i:i + BULK_CHUNK])]
                except JobqError as exc:
                    raise Failure(f"{exc} ({len(ids)} jobs were enqueued before this "
                                  "batch)") from None
                update(len(ids), len(calls))
    for name, group in by_queue.items():
        tasks = sorted({str(c["task"]) for c in group})
        t.admin.record(actor(), "enqueue", queue=name, count=len(group),
                       detail=f"from {file}: {', '.join(tasks)}")
    t.emit({"enqueued": len(ids), "queues": {q: len(g) for q, g in by_queue.items()},
            "ids": ids},
           f"enqueued {len(ids)} jobs on {', '.join(sorted(by_queue)) or 'no queue'}")


@main.command()
@common_options
@click.argument("job_id", metavar="ID")
@click.option("-q", "--queue", help="The job's queue (default: look in every queue).")
def job(t: Target, job_id: str, queue: str | None) -> None:
    """Show everything stored about one job, with its attempts."""
    detail = _find(t, job_id, queue)
    t.emit(_detail_json(detail), lambda: _print_detail(detail))


def _find(t: Target, job_id: str, queue: str | None) -> JobDetail:
    detail = t.inspector.job(job_id, queue)
    if detail is None:
        where = f"queue {queue!r}" if queue else "any queue"
        raise JobNotFound(f"no job {job_id!r} in {where} (never enqueued, or its retention "
                          "ended)")
    return detail


def _detail_json(d: JobDetail) -> dict[str, Any]:
    return {"id": d.id, "queue": d.queue, "state": d.state, "task": d.fields.get("task", ""),
            "args": d.json_field("args"), "kwargs": d.json_field("kwargs") or {},
            "result": d.json_field("result"), "error": d.fields.get("error", ""),
            "reason": d.fields.get("reason", ""), "meta": d.json_field("meta"),
            "progress": d.json_field("progress"), "ttl_s": d.ttl_s,
            "fields": dict(d.fields), "attempts": d.attempts}


_TIME_FIELDS = ("enqueued_ms", "due_ms", "started_ms", "finished_ms", "requeued_ms")
_SHOWN = ("task", "args", "kwargs", "priority", "retries", "max_retries", "timeout_s",
          "worker", "reason", "progress", "meta", "result")


def _print_detail(d: JobDetail) -> None:
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    grid.add_row("job", Text(f"{d.id}  (queue {d.queue})"))
    grid.add_row("state", state_text(d.state))
    for name in _SHOWN:
        if d.fields.get(name) not in (None, ""):
            grid.add_row(name, Text(d.fields[name]))
    for name in _TIME_FIELDS:
        if d.fields.get(name):
            grid.add_row(name.removesuffix("_ms"), fmt_ms(int(d.fields[name])))
    if d.ttl_s is not None:
        grid.add_row("kept for", duration(d.ttl_s))
    con = console()
    con.print(grid, highlight=False)
    if d.fields.get("error"):
        con.print("[bold]error[/]")
        con.print(d.fields["error"].rstrip(), highlight=False, markup=False)
    if d.attempts:
        con.print("[bold]attempts[/]")
        for a in d.attempts:
            err = str(a.get("error", "")).strip().splitlines()[-1:] or [""]
            con.print(f"  #{a.get('attempt', '?')} {a.get('outcome', '?')} "
                      f"{a.get('runtime_ms', '?')} ms on {a.get('worker', '?')}: {err[0]}",
                      highlight=False, markup=False)


@main.command()
@common_options
@click.argument("state", metavar="STATE", type=click.Choice(STATES))
@click.option("-q", "--queue", "queues", multiple=True, help="Only this queue (repeatable).")
@click.option("--task", default="", help="Only jobs whose task name contains this.")
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0, help="Skip this many (per queue).")
def jobs(t: Target, state: str, queues: Sequence[str], task: str, limit: int,
         offset: int) -> None:
    """List jobs in STATE, newest first for ended jobs, next first for pending."""
    names = list(queues) or t.inspector.queues()
    rows: list[JobRow] = []
    total = 0
    for name in names:
        if task:
            page = t.inspector.search(state, name, task=task, limit=limit + offset)
            page_rows = page.rows[offset:]
        else:
            page = t.inspector.jobs(state, name, offset=offset, limit=limit)
            page_rows = page.rows
        total += page.total
        rows += page_rows
    newest = state in FINAL_STATES
    rows.sort(key=lambda r: r.score, reverse=newest)
    rows = rows[:limit]
    t.emit({"state": state, "queues": names, "total": total,
            "jobs": [dataclasses.asdict(r) for r in rows]},
           lambda: _print_rows(state, rows, total))


def _print_rows(state: str, rows: Sequence[JobRow], total: int) -> None:
    con = console()
    if not rows:
        con.print(f"no {state} jobs")
        return
    con.print(job_table(rows))
    if total > len(rows):
        con.print(f"{len(rows)} of {total} {state} jobs shown (--limit, --offset)")


def _locate(t: Target, ids: Sequence[str], queues: Sequence[str],
            state: str) -> dict[str, list[JobDetail]]:
    """queue -> jobs, checking that every id exists in `state` before anything changes."""
    out: dict[str, list[JobDetail]] = defaultdict(list)
    for job_id in ids:
        detail = _find(t, job_id, queues[0] if len(queues) == 1 else None)
        if queues and detail.queue not in queues:
            raise JobNotFound(f"job {job_id} is in queue {detail.queue!r}, not in "
                              f"{', '.join(queues)}")
        if detail.state != state:
            raise InvalidState(f"job {job_id} is {detail.state}, not {state}; nothing was "
                               "changed")
        out[detail.queue].append(detail)
    return out


def actor() -> str:
    """Who the audit log names for CLI actions: cli:<user>@<host>."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"cli:{user}@{socket.gethostname()}"


def _bulk(t: Target, verb: str, state: str, ids: Sequence[str], every: bool,
          queues: Sequence[str], task: str = "", text: str = "") -> dict[str, int]:
    """Act on the given ids (checked first) or on every job of `state` (optionally matching
    task/text) present now, with a progress bar; records each queue's action in the audit
    log. Returns queue -> jobs acted on."""
    if every == bool(ids):
        raise BadUsage("give job IDs or --all, one of the two")
    if ids and (task or text):
        raise BadUsage("--task/--text filter --all, not job IDs")
    done: dict[str, int] = {}
    if ids:
        for name, found in _locate(t, ids, queues, state).items():
            group = [d.id for d in found]
            if verb == "cancel":
                for job_id in group:
                    t.admin.cancel(name, job_id)
                done[name] = len(group)
            elif verb == "requeue":
                # The rule the dashboard and API apply too: each job as it was just read.
                for detail in found:
                    t.admin.requeue_job(name, detail.id, state, detail.requeues)
                done[name] = len(group)
            else:
                done[name] = t.admin.purge(name, state, group)
            t.admin.record(actor(), verb, queue=name, state=state, count=done[name],
                           detail=" ".join(group)[:500])
        return done
    names = list(queues) or t.inspector.queues()
    ops = [t.admin.start_bulk(name, state, verb, task=task, text=text, actor=actor())
           for name in names]
    total = sum(op.total for op in ops)
    with progress(f"{verb} {state}", total, not t.as_json) as update:
        finished = 0
        for op in ops:
            while not op.finished:
                op = t.admin.step_bulk(op.queue, op.id)
                update(finished + op.total - op.left, total)
            finished += op.total
            done[op.queue] = op.done
            what = " ".join(f"{k}={v!r}" for k, v in (("task", task), ("text", text)) if v)
            t.admin.record(actor(), f"{verb} all", queue=op.queue, state=state,
                           count=op.done, detail=what)
    return done


_FILTERS = [
    click.option("--task", default="", help="With --all: only jobs whose task contains this."),
    click.option("--text", default="",
                 help="With --all: only jobs whose error, reason or args contain this."),
]


def _filters(f: Any) -> Any:
    for option in reversed(_FILTERS):
        f = option(f)
    return f


@main.command()
@common_options
@click.argument("state", metavar="STATE", type=click.Choice(sorted(REQUEUE_STATES)))
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option("--all", "every", is_flag=True, help="Every job in STATE (of the queues).")
@click.option("-q", "--queue", "queues", multiple=True, help="Only this queue (repeatable).")
@_filters
def requeue(t: Target, state: str, ids: Sequence[str], every: bool, queues: Sequence[str],
            task: str, text: str) -> None:
    """Move jobs in STATE back to pending: the given IDs, or --all (optionally filtered)."""
    done = _bulk(t, "requeue", state, ids, every, queues, task, text)
    n = sum(done.values())
    t.emit({"action": "requeue", "state": state, "count": n, "queues": done},
           f"requeued {n} {state} job{'s' * (n != 1)}")


@main.command()
@common_options
@click.argument("state", metavar="STATE",
                type=click.Choice([s for s in STATES if s in PURGE_STATES]))
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option("--all", "every", is_flag=True, help="Every job in STATE (of the queues).")
@click.option("-q", "--queue", "queues", multiple=True, help="Only this queue (repeatable).")
@_filters
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def purge(t: Target, state: str, ids: Sequence[str], every: bool, queues: Sequence[str],
          task: str, text: str, yes: bool) -> None:
    """Delete jobs in STATE for good: the given IDs, or --all (asks first unless --yes)."""
    if every == bool(ids):
        raise BadUsage("give job IDs or --all, one of the two")
    if not yes:
        what = f"{len(ids)} {state} job(s)" if ids else f"every {state} job"
        if task or text:
            what += " matching the filter"
        where = ", ".join(queues) if queues else "all queues"
        if not sys.stdin.isatty():
            raise BadUsage(f"purge deletes {what} of {where} for good; add --yes to confirm")
        click.confirm(f"Delete {what} of {where}?", abort=True)
    done = _bulk(t, "purge", state, ids, every, queues, task, text)
    n = sum(done.values())
    t.emit({"action": "purge", "state": state, "count": n, "queues": done},
           f"purged {n} {state} job{'s' * (n != 1)}")


@main.command()
@common_options
@click.argument("ids", nargs=-1, metavar="[ID]...")
@click.option("--all", "every", is_flag=True, help="Every job in --state (of the queues).")
@click.option("--state", type=click.Choice(["pending", "scheduled"]), default="pending",
              show_default=True, help="With --all: which jobs to cancel.")
@click.option("-q", "--queue", "queues", multiple=True, help="Only this queue (repeatable).")
@_filters
def cancel(t: Target, ids: Sequence[str], every: bool, state: str, queues: Sequence[str],
           task: str, text: str) -> None:
    """Cancel pending or scheduled jobs: the given IDs, or --all of --state."""
    if ids and (every or task or text):
        raise BadUsage("give job IDs or --all (with its filters), one of the two")
    if ids:
        done: dict[str, int] = {}
        for job_id in ids:  # each id in its own state (pending or scheduled)
            detail = _find(t, job_id, queues[0] if len(queues) == 1 else None)
            t.admin.cancel(detail.queue, job_id)
            t.admin.record(actor(), "cancel", queue=detail.queue, state=detail.state,
                           count=1, detail=job_id)
            done[detail.queue] = done.get(detail.queue, 0) + 1
        if len(ids) == 1:
            t.emit({"id": ids[0], "queue": next(iter(done)), "state": "cancelled"},
                   f"cancelled {ids[0]} (queue {next(iter(done))})")
            return
    else:
        done = _bulk(t, "cancel", state, ids, every, queues, task, text)
    n = sum(done.values())
    t.emit({"action": "cancel", "count": n, "queues": done},
           f"cancelled {n} job{'s' * (n != 1)}")


@main.command()
@common_options
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
def audit(t: Target, limit: int, offset: int) -> None:
    """The operator audit log (dashboard and CLI actions), newest first."""
    page = t.inspector.audit(offset, limit)
    t.emit({"total": page.total, "offset": page.offset,
            "entries": [dataclasses.asdict(e) for e in page.entries]},
           lambda: _print_audit(page.entries))


def _print_audit(entries: Sequence[Any]) -> None:
    from rich.text import Text

    con = console()
    if not entries:
        con.print("no audit entries")
        return
    table = list_table("when", "actor", "action", "queue", "state", "count", "detail")
    for e in entries:
        table.add_row(ago(e.at_ms) if e.at_ms else "?", Text(e.actor), Text(e.action),
                      Text(e.queue), Text(e.state), str(e.count), Text(e.detail))
    con.print(table)


def _known_queue(t: Target, name: str) -> str:
    check_queue_name(name)
    known = t.inspector.queues()
    if name not in known:
        raise ConfigError(f"unknown queue {name!r}; known queues: {', '.join(known) or 'none'}")
    return name


@main.command()
@common_options
@click.argument("queue")
def pause(t: Target, queue: str) -> None:
    """Stop workers claiming from QUEUE (enqueues are still accepted)."""
    t.admin.pause(_known_queue(t, queue))
    t.admin.record(actor(), "pause", queue=queue)
    t.emit({"queue": queue, "paused": True},
           f"paused {queue}: workers stop claiming from it; `jobq resume {queue}` undoes it")


@main.command()
@common_options
@click.argument("queue")
def resume(t: Target, queue: str) -> None:
    """Let workers claim from QUEUE again."""
    t.admin.resume(_known_queue(t, queue))
    t.admin.record(actor(), "resume", queue=queue)
    t.emit({"queue": queue, "paused": False}, f"resumed {queue}")


@main.command()
@common_options
@click.argument("queue")
@click.argument("seconds")
def threshold(t: Target, queue: str, seconds: str) -> None:
    """Warn (jobq doctor, jobq info, the overview) when QUEUE's next pending job has waited
    longer than SECONDS; 0 turns the warning off, 'default' returns to JOBQ_PENDING_AGE_WARN_S."""
    name = _known_queue(t, queue)
    if seconds == "default":
        value: float | None = None
    else:
        try:
            value = float(seconds)
        except ValueError:
            raise BadUsage(f"SECONDS is a number or 'default', not {seconds!r}") from None
    t.admin.set_pending_age_warn(name, value)
    shown = "the default" if value is None else f"{value:g} s"
    t.admin.record(actor(), "pending age threshold", queue=name, detail=shown)
    t.emit({"queue": name, "pending_age_warn_s": value},
           f"{name}: a problem when its next pending job has waited longer than {shown}")
