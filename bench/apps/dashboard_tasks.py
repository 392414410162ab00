"""The task behind the dashboard benchmark's job-logs page: a job that prints and logs up to
the per-job log cap (Settings.log_max_lines), so the page shows the largest log a job keeps."""

from __future__ import annotations

import logging

from jobq_core import task

log = logging.getLogger("bench.chatty")


@task(queue="logsq")
def chatty(lines: int) -> None:
    """`lines` lines: two of three printed, every third a logging record."""
    for i in range(lines):
        if i % 3 == 2:
            log.warning("record %d of %d: card declined for customer %d", i, lines, i)
        else:
            print(f"line {i} of {lines}: charging card {i} EUR for order {i * 7}")
