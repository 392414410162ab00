"""How the CLI draws things on a terminal: state colours, times, job tables (rich)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..durations import duration
from ..records import JobRow

__all__ = ["ago", "console", "duration", "fmt_ms", "job_table", "list_table", "state_text"]

# One colour per state, the same in every command.
STATE_STYLE = {"pending": "yellow", "scheduled": "blue", "processing": "cyan",
               "completed": "green", "failed": "red", "dead": "magenta",
               "cancelled": "bright_black"}


def console(**kwargs: Any) -> Any:
    """A rich Console on stdout (colour off on pipes and with NO_COLOR).

    On a pipe, lines are not wrapped at 80 columns, so `| grep` sees whole rows."""
    import sys

    from rich.console import Console

    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        kwargs.setdefault("width", 200)
    return Console(**kwargs)


def ago(ms: int, now_ms: int | None = None) -> str:
    """'12s ago' / 'in 3m' for a time in epoch ms."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    delta = (now - ms) / 1000
    text = _span(abs(delta))
    return f"{text} ago" if delta >= 0 else f"in {text}"


def _span(s: float) -> str:
    if s < 60:
        return f"{s:.0f}s"
    if s < 3600:
        return f"{s / 60:.0f}m"
    if s < 86400:
        return f"{s / 3600:.1f}h"
    return f"{s / 86400:.1f}d"


def fmt_ms(ms: int) -> str:
    """Local date and time of epoch ms, with how long ago."""
    when = datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")
    return f"{when} ({ago(ms)})"


def list_table(*columns: str) -> Any:
    """A rich Table in the style of the CLI's lists (a rule under the heading, no edges),
    with `columns` as plain columns (a caller adds others with add_column)."""
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, highlight=False)
    for name in columns:
        table.add_column(name)
    return table


def job_table(rows: Sequence[JobRow]) -> Any:
    from rich.text import Text

    table = list_table()
    for name in ("id", "queue", "task", "state", "when", "retries", "info"):
        table.add_column(name, overflow="fold", no_wrap=name not in ("task", "info"),
                         min_width=20 if name == "info" else None)
    for r in rows:
        when_ms = r.finished_ms or r.started_ms or r.enqueued_ms
        info = r.reason or (r.error_preview.strip().splitlines() or [""])[-1] or r.args_preview
        # Text, not markup: ids, task names and previews come from jobs, and a '[' in them
        # must print as itself.
        table.add_row(Text(r.id), Text(r.queue), Text(r.task), state_text(r.state),
                      ago(when_ms) if when_ms else "", str(r.retries), Text(info))
    return table


def state_text(state: str) -> Any:
    from rich.text import Text

    return Text(state, style=STATE_STYLE.get(state, ""))
