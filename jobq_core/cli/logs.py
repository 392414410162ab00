"""`jobq logs ID [--follow]`: what a job printed and logged (per-job logs)."""

from __future__ import annotations

import json
import time

import click

from ..errors import JobNotFound
from ..records import JobLog
from .app import Target, common_options, main

FOLLOW_POLL_S = 0.5  # how often --follow asks for new lines (a running job's are written ~1/s)


@main.command()
@common_options
@click.argument("job_id", metavar="ID")
@click.option("-q", "--queue", help="The job's queue (default: look in every queue).")
@click.option("-f", "--follow", is_flag=True,
              help="While the job runs, keep printing its new lines; exit when it ends.")
def logs(t: Target, job_id: str, queue: str | None, follow: bool) -> None:
    """Print what a job printed (stdout, stderr) and logged (`logging` records), in order.

    Lines past the cap (Settings.log_max_lines / log_max_bytes per attempt) end in a
    "[... N lines / B bytes dropped]" line. --json: one JSON object with every line, or with
    --follow one object per line."""
    if queue is None:
        found = t.inspector.job(job_id)
        queue = found.queue if found is not None else "default"
    log = _read(t, queue, job_id, 0)
    if not follow:
        t.emit({"id": log.id, "queue": log.queue, "state": log.state,
                "lines": [{"stream": ln.stream, "text": ln.text} for ln in log.lines]},
               lambda: _print(t, log))
        return
    _print(t, log)
    while log.running:
        time.sleep(FOLLOW_POLL_S)
        log = _read(t, queue, job_id, log.next_offset)
        _print(t, log)


def _read(t: Target, queue: str, job_id: str, offset: int) -> JobLog:
    log = t.inspector.logs(queue, job_id, offset)
    if log is None:
        raise JobNotFound(f"no job {job_id!r} in queue {queue!r} (never enqueued, or its "
                          "retention ended)")
    return log


def _print(t: Target, log: JobLog) -> None:
    for ln in log.lines:
        if t.as_json:
            click.echo(json.dumps({"stream": ln.stream, "text": ln.text}, ensure_ascii=False))
        else:
            click.echo(ln.text, err=ln.stream == "stderr")
