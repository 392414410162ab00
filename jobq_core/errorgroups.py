"""Error groups: failed and dead jobs grouped by task, exception type and normalised
message (grouping.py), read and acted on without scanning.

fail.lua keeps, per queue, an index of groups (last seen first), each group's counters and
sample, and the ids of its jobs with when they failed. Reading a page of groups costs one
ranged read of the index and one hash per group; acting on a group walks its ids in
batches, from a snapshot taken when the action starts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .admin import Admin, Progress
from .connection import redis_errors, translated
from .errors import ConfigError
from .inspect import Inspector
from .keys import check_queue_name

GROUP_ID_RE = re.compile(r"[0-9a-f]{16}")
GROUP_STATES = ("failed", "dead")


@dataclass(frozen=True)
class ErrorGroup:
    queue: str
    id: str
    task: str
    type: str  # exception class name ('' when the error was not a traceback)
    message: str  # normalised: numbers, ids and quoted values masked
    count: int  # failures recorded in the group (jobs that ended failed or dead)
    jobs: int  # ids kept: jobs of the group not yet requeued or purged through it
    first_ms: int
    last_ms: int
    sample_id: str  # the latest job of the group, and the end of its error text
    sample: str


def check_group_id(group_id: str) -> str:
    if not isinstance(group_id, str) or not GROUP_ID_RE.fullmatch(group_id):
        raise ConfigError(f"invalid error group id {group_id!r}: 16 hex digits")
    return group_id


@redis_errors
def error_groups(insp: Inspector, queues: Sequence[str] | None = None,
                 limit: int = 100) -> list[ErrorGroup]:
    """The `limit` most recently seen groups of each of `queues` (default all), most
    recently seen first over all of them."""
    names = list(queues) if queues is not None else insp.queues()
    limit = max(1, min(int(limit), insp.settings.max_page_size))
    pipe = insp.client.pipeline(transaction=False)
    for q in names:
        check_queue_name(q)
        pipe.zrevrange(insp.keys.error_groups(q), 0, limit - 1)
    refs = [(q, str(g)) for q, ids in zip(names, pipe.execute(), strict=True) for g in ids]
    pipe = insp.client.pipeline(transaction=False)
    for q, g in refs:
        pipe.hgetall(insp.keys.error_group(q, g))
        pipe.zcard(insp.keys.error_group_ids(q, g))
    replies = pipe.execute()
    out = []
    for i, (q, g) in enumerate(refs):
        f, n = replies[2 * i], replies[2 * i + 1]
        if not f:
            continue
        out.append(ErrorGroup(q, g, f.get("task", ""), f.get("type", ""), f.get("message", ""),
                              _int(f.get("count")), int(n), _int(f.get("first_ms")),
                              _int(f.get("last_ms")), f.get("sample_id", ""),
                              f.get("sample", "")))
    return sorted(out, key=lambda e: -e.last_ms)[:limit]


@redis_errors
def error_group(insp: Inspector, queue: str, group_id: str) -> ErrorGroup | None:
    check_queue_name(queue)
    check_group_id(group_id)
    return next((g for g in error_groups(insp, [queue], insp.settings.max_page_size)
                 if g.id == group_id), None)


def act_on_group(admin: Admin, queue: str, group_id: str, action: str,
                 batch: int = 500, cutoff_ms: float | None = None) -> Iterator[Progress]:
    """Requeue or purge every job of a group that is failed or dead now, in batches of
    `batch` ids; yields progress after each batch. The snapshot is the group's ids at the
    start: a job that fails into the group meanwhile (a requeued one failing again) is
    after it and left alone, so the walk ends. Ids whose job moved on (requeued elsewhere,
    expired) are dropped from the group as they are met. `cutoff_ms` continues a walk
    begun earlier with the snapshot it had (group_cutoff)."""
    check_queue_name(queue)
    check_group_id(group_id)
    if action not in ("requeue", "purge"):
        raise ConfigError(f"unknown group action {action!r}: requeue or purge")
    return _walk(admin, queue, group_id, action, max(1, min(int(batch), 5000)), cutoff_ms)


@redis_errors
def group_cutoff(admin: Admin, queue: str, group_id: str) -> float | None:
    """The snapshot of a group action started now: when its newest job failed (ms), None
    for an empty group."""
    top = admin.client.zrevrange(admin.keys.error_group_ids(queue, check_group_id(group_id)),
                                 0, 0, withscores=True)
    return float(top[0][1]) if top else None


def _walk(admin: Admin, queue: str, group_id: str, action: str, batch: int,
          cutoff_ms: float | None) -> Iterator[Progress]:
    client, keys = admin.client, admin.keys
    ids_key = keys.error_group_ids(queue, group_id)
    verb = admin.requeue if action == "requeue" else admin.purge
    cutoff = cutoff_ms if cutoff_ms is not None else group_cutoff(admin, queue, group_id)
    if cutoff is None:
        yield Progress(0, 0)
        return
    done = 0
    while True:
        with translated(admin.settings.redis_url):
            ids = [str(i) for i in client.zrangebyscore(ids_key, "-inf", cutoff, start=0,
                                                        num=batch)]
            if not ids:
                break
            pipe = client.pipeline(transaction=False)
            for job_id in ids:
                pipe.hmget(keys.job(queue, job_id), ["state", "error_group"])
            by_state: dict[str, list[str]] = {s: [] for s in GROUP_STATES}
            for job_id, (state, group) in zip(ids, pipe.execute(), strict=True):
                if state in by_state and group == group_id:
                    by_state[state].append(job_id)
            for state, members in by_state.items():
                if members:
                    done += verb(queue, state, members)
            # Every id of the batch leaves the group: acted on, or its job moved on.
            client.zrem(ids_key, *ids)
            left = int(client.zcount(ids_key, "-inf", cutoff))
        yield Progress(done, left)
        if not left:
            return
    yield Progress(done, 0)


def _int(v: str | None) -> int:
    try:
        return int(v or 0)
    except ValueError:
        return 0
