"""`jobq errors`: failed and dead jobs grouped by task, exception type and message; requeue
or purge a whole group."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import click

from ..errorgroups import ErrorGroup, act_on_group, error_group, error_groups
from .app import BadUsage, Target, common_options, main, progress
from .show import ago, console


@main.command()
@common_options
@click.option("-q", "--queue", "queues", multiple=True, help="Only this queue (repeatable).")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True,
              help="Groups shown, most recently seen first.")
@click.option("--requeue", "requeue_id", metavar="GROUP",
              help="Requeue every failed and dead job of this group (id from the list).")
@click.option("--purge", "purge_id", metavar="GROUP",
              help="Delete every failed and dead job of this group.")
@click.option("-y", "--yes", is_flag=True, help="Purge without asking.")
def errors(t: Target, queues: Sequence[str], limit: int, requeue_id: str | None,
           purge_id: str | None, yes: bool) -> None:
    """Failed and dead jobs grouped by task, exception type and normalised message (numbers,
    ids and quoted values masked), with counts, first and last seen and the latest error."""
    if requeue_id and purge_id:
        raise BadUsage("--requeue or --purge, not both")
    group_id = requeue_id or purge_id
    if group_id:
        _act(t, queues, group_id, "requeue" if requeue_id else "purge", yes)
        return
    groups = error_groups(t.inspector, list(queues) or None, limit)
    now = t.inspector.server_time_ms()
    t.emit([dataclasses.asdict(g) for g in groups], lambda: console().print(_table(groups, now)))


def _act(t: Target, queues: Sequence[str], group_id: str, action: str, yes: bool) -> None:
    from .jobs import actor

    found = [g for q in (list(queues) or t.inspector.queues())
             if (g := error_group(t.inspector, q, group_id)) is not None]
    if not found:
        raise BadUsage(f"no error group {group_id} (see `jobq errors`)")
    g = found[0]
    if action == "purge" and not yes and not t.as_json:
        click.confirm(f"Purge {g.jobs} failed/dead jobs of {g.task} {g.type}: {g.message}?",
                      abort=True)
    done = 0
    with progress(f"{action} group", g.jobs, not t.as_json) as update:
        for step in act_on_group(t.admin, g.queue, g.id, action):
            done = step.done
            update(step.done, step.done + step.left)
    t.admin.record(actor(), f"{action} error group", queue=g.queue, state="failed+dead",
                   count=done, detail=f"{g.task} {g.type}: {g.message}"[:500])
    verb = "requeued" if action == "requeue" else "purged"
    t.emit({"queue": g.queue, "group": g.id, "action": action, "done": done},
           f"{verb} {done} job(s) of {g.type or 'error'}: {g.message} ({g.queue})")


def _table(groups: list[ErrorGroup], now_ms: int) -> Any:
    from rich.table import Table
    from rich.text import Text

    if not groups:
        return Text("no error groups: no job has ended failed or dead", style="green")
    table = Table(show_edge=False, pad_edge=False, box=None, highlight=False)
    for name, justify in (("group", "left"), ("queue", "left"), ("task", "left"),
                          ("error", "left"), ("failures", "right"), ("jobs", "right"),
                          ("first", "right"), ("last", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for g in groups:
        error = Text(g.type or "error", style="bold red")
        if g.message:
            error.append(f": {g.message}")
        table.add_row(g.id, g.queue, g.task, error, f"{g.count:,}", f"{g.jobs:,}",
                      ago(g.first_ms, now_ms), ago(g.last_ms, now_ms))
    return table
