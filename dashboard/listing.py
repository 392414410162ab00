"""Job lists over one queue or all of them, unfiltered (paged) or filtered (resumable scan).

"All queues" is the queues' lists one after the other, in name order: a position in it is
a queue and a position in that queue, found from the per-queue counts, so every page costs
the same at any depth (ranged reads of one or two zsets, never a merge of whole lists).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from jobq_core.inspect import Inspector, JobFilter, JobRow

SCAN_LIMIT = 2000  # entries a filtered page looks at before it stops and offers "more"
# ... or the time it may spend looking: a filter that matches little costs about 6 µs of
# Redis time per entry, more on a busy server, and the page should stay quick either way.
SCAN_BUDGET_S = 0.025


@dataclass(frozen=True)
class Listing:
    state: str
    queues: list[str]  # the queues listed, in order
    total: int  # jobs in `state` over those queues
    offset: int  # position of the first row (unfiltered) or of the scan start (filtered)
    limit: int
    newest_first: bool
    rows: list[JobRow]
    filter: JobFilter = field(default_factory=JobFilter)
    scanned: int = 0  # filtered: entries examined from `offset`
    scan_limit: int = 0  # filtered: the most entries one page looks at
    budget_s: float = 0.0  # filtered: the time one page may spend looking

    @property
    def next_start(self) -> int | None:
        """Filtered: where the next scan starts, or None when the end was reached."""
        end = self.offset + self.scanned
        return end if end < self.total else None


def list_jobs(insp: Inspector, state: str, queues: Sequence[str], *, offset: int, limit: int,
              newest_first: bool) -> Listing:
    totals = _totals(insp, state, queues)
    rows: list[JobRow] = []
    pos = offset
    for q, n in zip(queues, totals, strict=True):
        if len(rows) >= limit:
            break
        if pos >= n:
            pos -= n
            continue
        rows += insp.jobs(state, q, offset=pos, limit=limit - len(rows),
                          newest_first=newest_first).rows
        pos = 0
    return Listing(state, list(queues), sum(totals), offset, limit, newest_first, rows)


def search_jobs(insp: Inspector, state: str, queues: Sequence[str], match: JobFilter, *,
                start: int, limit: int, newest_first: bool,
                scan_limit: int = SCAN_LIMIT, budget_s: float | None = None) -> Listing:
    """Matches from position `start` on, looking at up to `scan_limit` entries or for about
    `budget_s` (default SCAN_BUDGET_S) seconds; `scanned` says how far it got."""
    budget = SCAN_BUDGET_S if budget_s is None else budget_s
    deadline = time.monotonic() + budget
    totals = _totals(insp, state, queues)
    found: list[JobRow] = []
    scanned = 0
    pos = start
    for q, n in zip(queues, totals, strict=True):
        if len(found) >= limit or scanned >= scan_limit:
            break
        if pos >= n:
            pos -= n
            continue
        page = insp.search(state, q, task=match.task, text=match.text, limit=limit - len(found),
                           scan_limit=scan_limit - scanned, newest_first=newest_first,
                           offset=pos, budget_s=max(0.0, deadline - time.monotonic()))
        found += page.rows
        scanned += page.scanned
        pos = 0
        if time.monotonic() >= deadline:
            break
    return Listing(state, list(queues), sum(totals), start, limit, newest_first, found, match,
                   scanned, scan_limit, budget)


def _totals(insp: Inspector, state: str, queues: Sequence[str]) -> list[int]:
    counts = insp.counts(queues)
    return [counts[q][state] for q in queues]
