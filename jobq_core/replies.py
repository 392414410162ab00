"""Decoding the replies of the Lua scripts that return structures: claim.lua's jobs,
fail.lua's and unknown.lua's outcomes, and the list rows of rows.lua (whose field order
ROW_FIELDS mirrors)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .job import Claimed

# fail.lua's codes: the job's new state, and whether it has dependents to resolve now.
_FAILED = {1: ("scheduled", False), 2: ("failed", False), 3: ("dead", False),
           4: ("pending", False), 5: ("failed", True), 6: ("dead", True)}


@dataclass(frozen=True)
class Unknown:
    """What unknown.lua did with a job whose task the worker does not know."""

    state: str  # "pending" or "scheduled" (handed back, at once or later) or "dead"
    known_by: str = ""  # a live worker of the queue that knows the task, if one does
    grace_left_ms: int = 0  # handed back while no live worker knows it: time left
    reason: str = ""  # dead: why
    dependents: bool = False  # dead, with dependents to resolve


@dataclass(slots=True)
class ClaimResult:
    """A claim's jobs and what it saw. Treat as immutable; not frozen (see job.JobSpec):
    one is made per claim, before its jobs start."""

    jobs: list[Claimed]
    notes: list[str]
    next_due_ms: int  # -1 when nothing is scheduled
    now_ms: int
    # None: a new claim, its jobs leased for the whole lease it asked for from now_ms. A
    # claim re-sent after its reply was lost (claim.lua answers with the jobs its first send
    # leased): what is left of those leases at now_ms.
    lease_left_ms: int | None = None


# The job fields a list row reads, in the order lua/rows.lua returns them (its FIELDS).
ROW_FIELDS = ("task", "state", "enqueued_ms", "started_ms", "finished_ms", "reason", "retries",
              "worker", "priority", "lost", "runtime_ms")
ROW_WIDTH = 2 + len(ROW_FIELDS) + 4  # id, score, fields, args text/bytes, error text/bytes


def _records(flat: Sequence[Any]) -> list[list[Any]]:
    return [list(flat[i:i + ROW_WIDTH]) for i in range(1, len(flat), ROW_WIDTH)]


def _claimed(out: Any, queues: Sequence[str], worker_id: str) -> ClaimResult:
    """claim.lua's reply as Claimed jobs with the fields the claim set."""
    claimed, notes, next_due, now, left = out
    jobs = []
    now_s = str(now)
    for qi, job_id, token, deliveries, limit, raw in claimed:
        fields = dict(zip(raw[::2], raw[1::2], strict=True))
        # what claim.lua set, as it set it (a re-sent claim's fields are read after the
        # first send set them: its started_ms, not the re-send's now)
        fields.update(state="processing", lease=token, worker=worker_id,
                      started_ms=now_s if int(left) < 0 else fields.get("started_ms", now_s),
                      deliveries=deliveries)
        if limit:
            fields["limit"] = limit
        jobs.append(Claimed(id=job_id, queue=queues[int(qi) - 1], token=token, fields=fields))
    return ClaimResult(jobs, list(notes), int(next_due), int(now),
                       None if int(left) < 0 else int(left))
