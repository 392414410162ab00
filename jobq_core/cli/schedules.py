"""`jobq schedules`: list periodic schedules, enable, disable, run now or delete one."""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from ..errors import JobqError
from .app import BadUsage, Target, common_options, main
from .show import ago, console, duration, list_table

ACTIONS = ("list", "enable", "disable", "run", "delete")
# What the audit log calls each change (the dashboard's words for the same actions).
SCHEDULE_AUDIT = {"enable": "enable schedule", "disable": "disable schedule",
                  "run": "run schedule now", "delete": "delete schedule"}


def scheduler_api(t: Target) -> Any:
    """A `jobq_core.scheduler.Scheduler` on the target's connection."""
    from ..scheduler import Scheduler

    return Scheduler(t.settings, redis=t.inspector.client)


def _as_json(info: Any) -> dict[str, Any]:
    out = {k: v for k, v in dataclasses.asdict(info).items() if k not in ("schedule", "fields")}
    out["when"] = getattr(info, "when", "")
    schedule = getattr(info, "schedule", None)
    if dataclasses.is_dataclass(schedule) and not isinstance(schedule, type):
        out["schedule"] = {k: v for k, v in dataclasses.asdict(schedule).items()
                           if not callable(v)}
    return out


@main.command()
@common_options
@click.argument("action", type=click.Choice(ACTIONS), default="list")
@click.argument("name", required=False)
@click.option("-y", "--yes", is_flag=True, help="Delete without asking.")
def schedules(t: Target, action: str, name: str | None, yes: bool) -> None:
    """List periodic schedules, or enable/disable/run/delete the schedule NAME.

    \b
    jobq schedules                  # name, when, next tick, last job, fired/missed
    jobq schedules disable nightly  # stop firing it (enable turns it back on)
    jobq schedules run nightly      # enqueue one job now, outside the timetable
    """
    api = scheduler_api(t)
    if action == "list":
        infos = list(api.list())
        t.emit([_as_json(i) for i in infos], lambda: _print(infos))
        return
    if not name:
        raise BadUsage(f"`jobq schedules {action}` needs the schedule's NAME")
    if action == "delete" and not yes:
        click.confirm(f"Delete schedule {name!r}?", abort=True)
    info = api.get(name)  # its queue, for the audit log (read before a delete)
    queue = str(getattr(info.schedule, "queue", "") or "") if info is not None else ""
    if action == "run":
        job = api.run_now(name)
        _audit(t, action, job.queue.name, f"{name}: {job.id}", 1)
        t.emit({"schedule": name, "action": "run", "id": job.id, "queue": job.queue.name},
               f"enqueued {job.id} on {job.queue.name} from schedule {name}")
        return
    result = getattr(api, action)(name)
    if action == "delete" and result is False:
        raise JobqError(f"no schedule named {name!r}")
    _audit(t, action, queue, name, 0)
    t.emit({"schedule": name, "action": action}, f"{action}d schedule {name}")


def _audit(t: Target, action: str, queue: str, detail: str, count: int) -> None:
    """Record a schedule change in the operator audit log, in the dashboard's words."""
    from .jobs import actor

    t.admin.record(actor(), SCHEDULE_AUDIT[action], queue=queue, count=count, detail=detail)


def _print(infos: list[Any]) -> None:
    from rich.text import Text

    con = console()
    if not infos:
        con.print("no schedules")
        return
    table = list_table("name", "task", "when", "enabled", "next", "last job", "fired",
                       "missed")
    for i in infos:
        task = getattr(i.schedule, "task", "?") if i.schedule is not None else "?"
        every = getattr(i.schedule, "every_s", None) if i.schedule is not None else None
        when = f"every {duration(every)}" if every is not None else i.when  # not "86400s"
        table.add_row(Text(i.name), Text(str(task)), Text(when),
                      Text("yes", style="green") if i.enabled else Text("no", style="yellow"),
                      ago(i.next_ms) if i.next_ms else "-",
                      Text(i.last_job_id or "-"), str(i.fired), str(i.missed))
    con.print(table)
