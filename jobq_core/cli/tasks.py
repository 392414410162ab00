"""`jobq tasks`: run time per task and per queue (count, failures, p50/p95/p99) over the
last minutes, from the histograms the worker keeps in Redis (jobq_core.runtimes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from ..runtimes import RunTimes, queue_runtimes, task_runtimes
from .app import Target, common_options, main
from .show import console


@main.command()
@common_options
@click.option("-q", "--queue", "queues", multiple=True, help="Only this queue (repeatable).")
@click.option("-m", "--minutes", type=click.IntRange(1, 100_000), default=60,
              show_default=True, help="Window: the last this many minutes (at most "
              "JOBQ_RUNTIME_MINUTES, the minutes kept).")
def tasks(t: Target, queues: Sequence[str], minutes: int) -> None:
    """Run time of the attempts that ran (completed or failed) per task and per queue:
    attempts, failures, p50/p95/p99 and mean, exact to a histogram bucket's width."""
    rows = task_runtimes(t.inspector, list(queues) or None, minutes)
    totals = queue_runtimes(rows)
    t.emit({"minutes": min(minutes, t.inspector.settings.runtime_minutes),
            "queues": [r.as_dict() for r in totals], "tasks": [r.as_dict() for r in rows]},
           lambda: console().print(_table(totals + rows, minutes)))


def _ms(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms <= 1:  # inside the first bucket: the histogram cannot tell more
        return "< 1 ms"
    if ms < 10:
        return f"{ms:.1f} ms"
    return f"{ms:,.0f} ms" if ms < 10_000 else f"{ms / 1000:,.1f} s"


def _table(rows: list[RunTimes], minutes: int) -> Any:
    from rich.table import Table
    from rich.text import Text

    if not rows:
        return Text(f"no attempt ran in the last {minutes} min", style="yellow")
    table = Table(show_edge=False, pad_edge=False, box=None, highlight=False,
                  title=f"last {minutes} min", title_justify="left")
    for name, justify in (("queue", "left"), ("task", "left"), ("attempts", "right"),
                          ("failed", "right"), ("p50", "right"), ("p95", "right"),
                          ("p99", "right"), ("mean", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(r.queue, r.task or Text("(all tasks)", style="bold"), f"{r.count:,}",
                      Text(f"{r.failures:,}", style="red" if r.failures else ""),
                      _ms(r.p50), _ms(r.p95), _ms(r.p99),
                      _ms(r.sum_ms / r.count if r.count else None))
    return table
