"""Long-running commands: `jobq worker`, `jobq scheduler`, `jobq dashboard`."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from ..config import AUTO_PREFETCH
from ..errors import JobqError
from .app import json_logs, main, make_settings, shared_options, wait_replicas_option


class PrefetchType(click.ParamType[int]):
    """`auto` (Settings' AUTO_PREFETCH) or a number of jobs, 0 to 10,000."""

    name = "auto|N"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if text == "auto":
            return AUTO_PREFETCH
        try:
            n = int(text)
        except ValueError:
            self.fail(f"{value!r} is not 'auto' or a number of jobs", param, ctx)
        if n == AUTO_PREFETCH:  # the Settings value of auto, as JOBQ_PREFETCH may carry it
            return n
        if not 0 <= n <= 10_000:
            self.fail(f"{n} is not in the range 0 to 10,000 (or 'auto')", param, ctx)
        return n


@main.command()
@shared_options
@click.option("-q", "--queue", "queues", multiple=True, default=["default"], show_default=True,
              envvar="JOBQ_QUEUES",
              help="Queue to serve; repeat for several, first served first "
                   "[env JOBQ_QUEUES, space-separated].")
@click.option("-i", "--import", "imports", multiple=True, envvar="JOBQ_IMPORTS",
              help="Module that registers tasks [env JOBQ_IMPORTS, space-separated].")
@click.option("-c", "--concurrency", type=click.IntRange(0, 1024), envvar="JOBQ_CONCURRENCY",
              help="Jobs run at once; 0: the pool's default [env JOBQ_CONCURRENCY; process "
                   "pool: the CPU count, thread pool: 8, async pool: 100].")
@click.option("--pool", type=click.Choice(["process", "thread", "async"]), envvar="JOBQ_POOL",
              help="Run jobs in child processes, threads, or coroutines of one event loop "
                   "(async; sync tasks in threads beside it) [env JOBQ_POOL; process].")
@click.option("--prefetch", type=PrefetchType(), envvar="JOBQ_PREFETCH",
              help="Jobs claimed ahead of free slots: auto sizes it from measured run times "
                   "(short jobs in batches, none behind long ones); N pins it; 0 turns it off "
                   "[env JOBQ_PREFETCH; auto].")
@click.option("--claim-on-wake/--no-claim-on-wake", default=None, envvar="JOBQ_CLAIM_ON_WAKE",
              help="Claim in the round trip of the idle wait, under a short pick-up lease "
                   "renewed once the reply is read: lower idle latency [on].")
@click.option("--capture-logs/--no-capture-logs", default=None, envvar="JOBQ_CAPTURE_LOGS",
              help="Keep what each job prints and logs with the job (`jobq logs ID`, its "
                   "dashboard page) [on].")
@click.option("--lease-s", type=float, envvar="JOBQ_LEASE_S", help="Lease length [30].")
@click.option("--heartbeat-s", type=float, envvar="JOBQ_HEARTBEAT_S",
              help="Heartbeat period [5].")
@click.option("--grace-s", type=float, envvar="JOBQ_GRACE_S",
              help="How long running jobs may finish after SIGTERM [30].")
@click.option("--name", help="Worker id (default host:pid:random).")
@click.option("--burst", is_flag=True,
              help="Exit when nothing is pending or running and no scheduled job (a retry "
                   "waiting out its backoff, a delayed job) is due within --burst-wait-s.")
@click.option("--burst-wait-s", type=click.FloatRange(0), envvar="JOBQ_BURST_WAIT_S",
              help="With --burst: wait for scheduled jobs due within this long; later ones "
                   "stay scheduled and the worker says so [env JOBQ_BURST_WAIT_S; 60].")
@click.option("--with-scheduler", is_flag=True, envvar="JOBQ_WITH_SCHEDULER",
              help="Also run a scheduler in this worker (any number may run; one fires each "
                   "tick).")
@wait_replicas_option
def worker(url: str | None, prefix: str | None, as_json: bool, queues: Sequence[str],
           imports: Sequence[str], concurrency: int | None, pool: str | None,
           prefetch: int | None, claim_on_wake: bool | None, capture_logs: bool | None,
           lease_s: float | None,
           heartbeat_s: float | None,
           grace_s: float | None, name: str | None, burst: bool, burst_wait_s: float | None,
           with_scheduler: bool, wait_replicas: int | None) -> None:
    """Run jobs from the given queues until SIGTERM/SIGINT (twice: at once).

    --json logs one JSON object per line.
    """
    from ..worker import Worker

    json_logs(as_json)
    sys.path.insert(0, os.getcwd())  # so --import finds the project's own modules
    settings = make_settings(url, prefix, concurrency=concurrency, pool=pool, prefetch=prefetch,
                             claim_on_wake=claim_on_wake, capture_logs=capture_logs,
                             lease_s=lease_s,
                             heartbeat_s=heartbeat_s, grace_s=grace_s,
                             burst_wait_s=burst_wait_s, wait_replicas=wait_replicas)
    for module in imports:
        import_task_module(module)
    w = Worker(queues, settings, imports=imports, name=name, with_scheduler=with_scheduler)
    w.work(burst=burst)


def import_task_module(module: str) -> None:
    """Import a module given to --import; JobqError saying which failed, and how to fix it:
    a module not found (a typo, a file path, the wrong folder) or one whose own import failed
    (a missing dependency read as the --import being wrong)."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        missing = exc.name or ""
        if missing and (module == missing or module.startswith(missing + ".")):
            hint = ("--import takes a module name such as myapp.tasks, not a file path"
                    if "/" in module or module.endswith(".py") else "run the worker from the "
                    "folder that holds it, or put that folder on PYTHONPATH")
            raise JobqError(f"cannot import task module {module!r}: no module named "
                            f"{missing!r} ({hint})") from None
        raise JobqError(f"task module {module!r} failed to import: {exc}") from None


@main.command()
@shared_options
@click.option("-i", "--import", "imports", multiple=True,
              help="Module that registers tasks or schedules.")
@wait_replicas_option
def scheduler(url: str | None, prefix: str | None, as_json: bool,
              imports: Sequence[str], wait_replicas: int | None) -> None:
    """Run the scheduler: promotes due jobs and enqueues periodic (interval/cron) jobs.

    Run one or more; they agree through Redis so each tick enqueues one job.
    """
    json_logs(as_json)
    sys.path.insert(0, os.getcwd())
    run = scheduler_entry()
    for module in imports:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise JobqError(f"cannot import {module}: {exc}") from None
    run(make_settings(url, prefix, wait_replicas=wait_replicas))


def scheduler_entry() -> Any:
    """`jobq_core.scheduler.run_scheduler` (imported late: only this command needs croniter)."""
    from ..scheduler import run_scheduler

    return run_scheduler


@main.command()
@shared_options
@click.option("--host", envvar="JOBQ_DASHBOARD_HOST", default=None,
              help="Interface to listen on [env JOBQ_DASHBOARD_HOST; 127.0.0.1].")
@click.option("--port", type=click.IntRange(0, 65535), envvar=["JOBQ_DASHBOARD_PORT", "PORT"],
              default=None, help="Port [env JOBQ_DASHBOARD_PORT, then PORT; 5000].")
def dashboard(url: str | None, prefix: str | None, as_json: bool, host: str | None,
              port: int | None) -> None:
    """Serve the operator dashboard (for production use gunicorn: see the Procfile)."""
    json_logs(as_json)
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # One line per request (htmx polls every few seconds) only with -vv.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    settings = make_settings(url, prefix)
    serve = dashboard_entry()
    serve(settings, host or settings.dashboard_host,
          settings.dashboard_port if port is None else port)


def dashboard_entry() -> Any:
    """`dashboard.serve`, or JobqError when the dashboard extra (Flask) is not installed."""
    try:
        from dashboard import serve
    except ImportError as exc:
        raise JobqError(f"the dashboard cannot be loaded ({exc}); install jobq[dashboard]"
                        ) from None
    return serve
