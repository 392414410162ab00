"""Bulk actions over every job of one state of a queue: requeue, purge, cancel.

They work on a snapshot: the highest score present when the action starts bounds it, and it
proceeds in bounded batches, so it never runs one giant script and never chases jobs that
arrive while it runs. Two forms: `requeue_all`/`purge_all` iterate to the end, yielding
progress (the CLI); `start`/`step`/`status` record the operation in Redis and advance it a
time budget per request (the dashboard), optionally only over jobs matching a filter.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import redis

from .config import Settings
from .connection import redis_errors
from .dependencies import Dependencies
from .errors import ConfigError, InvalidState, JobNotFound
from .inspect import Inspector
from .job import PENDING, PRIORITY_BAND, PURGE_STATES, REQUEUE_STATES, SCHEDULED
from .keys import Keyspace, check_queue_name, valid_job_id
from .records import JobFilter, JobRow
from .scripts import Scripts

# States each bulk action may act on.
BULK_ACTIONS: Mapping[str, frozenset[str]] = {
    "requeue": REQUEUE_STATES,
    "purge": PURGE_STATES,
    "cancel": frozenset({PENDING, SCHEDULED}),
}
BULK_TTL_S = 24 * 3600  # a bulk operation's record lives this long after its last step


@dataclass(frozen=True)
class Progress:
    done: int  # jobs acted on so far
    left: int  # jobs of the snapshot still to do


@dataclass(frozen=True)
class BulkOp:
    """A bulk action over the jobs of one state and queue present when it started.

    `total` is the size of that snapshot; `examined` how many of its entries were looked
    at, `done` how many jobs were acted on (fewer than examined when a filter is set),
    `left` how many entries of the snapshot are still to look at.
    """

    id: str
    queue: str
    state: str
    action: str
    task: str
    text: str
    actor: str
    total: int
    done: int
    examined: int
    left: int
    finished: bool
    started_ms: int
    updated_ms: int

    @property
    def filtered(self) -> bool:
        return bool(self.task or self.text)

    @property
    def percent(self) -> int:
        if self.finished or self.total <= 0:
            return 100
        return min(99, int(100 * (self.total - self.left) / self.total))


def check_state(queue: str, state: str, allowed: frozenset[str], verb: str) -> None:
    """Raise ConfigError for a bad queue name, InvalidState when `verb` cannot act on
    jobs of `state`."""
    check_queue_name(queue)
    if state not in allowed:
        raise InvalidState(f"cannot {verb} {state} jobs; allowed: {', '.join(sorted(allowed))}")


class Bulk:
    """The bulk actions on one Redis (Admin.bulk)."""

    def __init__(self, settings: Settings, client: redis.Redis, scripts: Scripts) -> None:
        self.settings = settings
        self.client = client
        self.scripts = scripts
        self.keys = Keyspace(settings.prefix)
        self._inspector: Inspector | None = None  # built by the first filtered batch

    def requeue_all(self, queue: str, state: str, batch: int = 500) -> Iterator[Progress]:
        """Requeue every job of `state` present now, in batches; yields progress."""
        check_state(queue, state, REQUEUE_STATES, "requeue")
        return self._bulk(self.scripts.requeue, queue, state, batch)

    def purge_all(self, queue: str, state: str, batch: int = 500) -> Iterator[Progress]:
        """Delete every job of `state` present now, in batches; yields progress."""
        check_state(queue, state, PURGE_STATES, "purge")
        since = self.arrivals_cutoff(queue, state)
        return self._bulk(partial(self.scripts.purge, since_ms=since), queue, state, batch)

    def _bulk(self, action: object, queue: str, state: str, batch: int) -> Iterator[Progress]:
        batch = max(1, min(int(batch), 5000))
        cutoff = self.snapshot(queue, state)
        done = 0
        if cutoff is None:
            yield Progress(0, 0)
            return
        before = float("inf")
        while True:
            moved, left = self._step(action, queue, state, cutoff, batch)
            done += moved
            yield Progress(done, left)
            # A batch may move nothing yet progress (ids whose hash expired are dropped), so
            # stop only when none are left or the count of those left stops shrinking.
            if left == 0 or left >= before:
                return
            before = left

    @redis_errors
    def arrivals_cutoff(self, queue: str, state: str) -> int:
        """What bounds an "all" action on pending or scheduled jobs, where a job arriving later
        may score below the snapshot's top (higher priority, earlier due): the queue's seq
        counter for pending, the Redis time (ms) for scheduled; 0 for the other states (scored
        by retention, so the score cutoff suffices). See purge.lua."""
        if state == PENDING:
            return int(self.client.get(self.keys.seq(queue)) or 0)
        if state == SCHEDULED:
            sec, usec = self.client.time()
            return int(sec) * 1000 + int(usec) // 1000
        return 0

    def _arrived_later(self, state: str, since: int, row: JobRow) -> bool:
        if not since:
            return False
        if state == PENDING:
            return int(row.score) % PRIORITY_BAND > since
        return (row.enqueued_ms or 0) > since

    @redis_errors
    def snapshot(self, queue: str, state: str) -> float | None:
        top = self.client.zrevrange(self.keys.state_set(queue, state), 0, 0, withscores=True)
        return float(top[0][1]) if top else None

    @redis_errors
    def _step(self, action: object, queue: str, state: str, cutoff: float,
              batch: int) -> tuple[int, int]:
        result: tuple[int, int] = action(queue, state, upto=cutoff, batch=batch)  # type: ignore[operator]
        return result

    @redis_errors
    def start(self, queue: str, state: str, action: str, *, task: str = "",
                   text: str = "", actor: str = "") -> BulkOp:
        """Record a bulk `action` (requeue | purge | cancel) over the jobs of `state` now
        present (optionally only those matching task/text); run it with `step`.

        Raises ConfigError for an unknown action, InvalidState for a state it cannot act on.
        """
        allowed = BULK_ACTIONS.get(action)
        if allowed is None:
            raise ConfigError(f"unknown bulk action {action!r}; use {', '.join(BULK_ACTIONS)}")
        check_state(queue, state, allowed, action)
        cutoff = self.snapshot(queue, state)
        total = 0 if cutoff is None else int(
            self.client.zcount(self.keys.state_set(queue, state), "-inf", repr(cutoff)))
        op_id = secrets.token_hex(6)
        now = int(time.time() * 1000)
        fields: dict[str, Any] = {
            "queue": queue, "state": state, "action": action, "task": task[:200],
            "text": text[:200], "actor": actor[:100], "cutoff": repr(cutoff or 0.0),
            "cursor": "", "skip": 0, "total": total, "done": 0, "examined": 0, "left": total,
            "since_ms": self.arrivals_cutoff(queue, state),
            "finished": int(cutoff is None or total == 0), "started_ms": now, "updated_ms": now}
        key = self.keys.bulk(queue, op_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(key, mapping=_any(fields))
        pipe.expire(key, BULK_TTL_S)
        pipe.execute()
        return _bulk_op(op_id, {k: str(v) for k, v in fields.items()})

    @redis_errors
    def status(self, queue: str, op_id: str) -> BulkOp | None:
        """The bulk operation's progress, or None if unknown or expired."""
        check_queue_name(queue)
        if not valid_job_id(op_id):
            return None
        fields: Any = self.client.hgetall(self.keys.bulk(queue, op_id))
        return _bulk_op(op_id, fields) if fields else None

    @redis_errors
    def step(self, queue: str, op_id: str, *, budget_s: float = 0.25,
                  batch: int = 500) -> BulkOp:
        """Advance a bulk operation by batches of at most `batch` jobs for about `budget_s`
        seconds; returns its progress. A step that finds another step running returns at
        once. Raises JobNotFound if the operation is unknown or expired."""
        op = self.status(queue, op_id)
        if op is None:
            raise JobNotFound(f"bulk operation {op_id} not found (finished over a day ago?)")
        if op.finished:
            return op
        lock = self.keys.bulk_lock(queue, op_id)
        if not self.client.set(lock, "1", nx=True, px=int(max(budget_s, 1.0) * 10_000)):
            return op
        try:
            raw: Any = self.client.hgetall(self.keys.bulk(queue, op_id))
            cur: dict[str, str] = dict(raw)
            batch = max(1, min(int(batch), 5000))
            deadline = time.monotonic() + max(0.0, budget_s)
            while cur["finished"] != "1":
                self._batch(queue, cur, batch)
                if time.monotonic() >= deadline:
                    break
            cur["updated_ms"] = str(int(time.time() * 1000))
            key = self.keys.bulk(queue, op_id)
            pipe = self.client.pipeline(transaction=False)
            pipe.hset(key, mapping=_any(cur))
            pipe.expire(key, BULK_TTL_S)
            pipe.execute()
            return _bulk_op(op_id, cur)
        finally:
            self.client.delete(lock)

    def _batch(self, queue: str, cur: dict[str, str], batch: int) -> None:
        state, action, cutoff = cur["state"], cur["action"], float(cur["cutoff"])
        match = JobFilter(task=cur.get("task", ""), text=cur.get("text", ""))
        if not match and action in ("requeue", "purge"):
            # Unfiltered: the script takes the lowest entries up to the cutoff itself.
            if action == "requeue":
                moved, left = self.scripts.requeue(queue, state, upto=cutoff, batch=batch)
            else:
                moved, left = self.scripts.purge(queue, state, upto=cutoff, batch=batch,
                                                 since_ms=int(cur.get("since_ms", "0") or 0))
            # As in _bulk: a batch of expired ids moves nothing but still makes progress.
            before = int(cur["left"])
            cur["done"] = str(int(cur["done"]) + moved)
            cur["left"] = str(left)
            cur["examined"] = str(int(cur["total"]) - left)
            cur["finished"] = "1" if left == 0 or left >= before else "0"
            return
        # Filtered (or cancel): walk the snapshot by score with a cursor. Entries acted on
        # leave the set; `skip` counts the entries at the cursor's score that stayed.
        key = self.keys.state_set(queue, state)
        low = cur["cursor"] or "-inf"
        skip = int(cur["skip"])
        raw: Any = self.client.zrangebyscore(key, low, repr(cutoff), start=skip, num=batch,
                                        withscores=True)
        entries = [(str(m), float(sc)) for m, sc in raw]
        if not entries:
            cur.update(finished="1", left="0")
            return
        rows = self._rows_reader().rows(queue, entries,
                                                                 full_error=bool(match.text))
        since = int(cur.get("since_ms", "0") or 0)
        hits = [r.id for r in rows if r.exists and match.matches(r)
                and not self._arrived_later(state, since, r)]
        done = self._act(queue, state, action, hits)
        last = entries[-1][1]
        hit_set = set(hits)
        stayed = sum(1 for m, sc in entries if sc == last and m not in hit_set)
        prev = float(cur["cursor"]) if cur["cursor"] else None
        new_skip = stayed + (skip if prev == last else 0)
        cur["skip"] = str(new_skip)
        cur["cursor"] = repr(last)
        cur["done"] = str(int(cur["done"]) + done)
        cur["examined"] = str(int(cur["examined"]) + len(entries))
        # Still to look at: entries from the cursor's score on, less those seen there.
        left = max(0, int(self.client.zcount(key, repr(last), repr(cutoff))) - new_skip)
        cur["left"] = str(left)
        cur["finished"] = "1" if len(entries) < batch or left == 0 else "0"

    def _rows_reader(self) -> Inspector:
        if self._inspector is None:
            self._inspector = Inspector(self.settings, redis=self.client)
        return self._inspector

    def _act(self, queue: str, state: str, action: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        if action == "requeue":
            return self.scripts.requeue(queue, state, ids)[0]
        if action == "purge":
            return self.scripts.purge(queue, state, ids)[0]
        n = 0
        for job_id in ids:
            try:
                self.scripts.cancel(queue, job_id)
                n += 1
            except (InvalidState, JobNotFound):
                continue
            Dependencies(self.scripts).ended(queue, job_id, "cancelled")
        return n


def _bulk_op(op_id: str, f: Mapping[str, str]) -> BulkOp:
    def num(name: str) -> int:
        try:
            return int(f.get(name) or 0)
        except ValueError:
            return 0

    return BulkOp(id=op_id, queue=f.get("queue", ""), state=f.get("state", ""),
                  action=f.get("action", ""), task=f.get("task", ""), text=f.get("text", ""),
                  actor=f.get("actor", ""), total=num("total"), done=num("done"),
                  examined=num("examined"), left=num("left"), finished=f.get("finished") == "1",
                  started_ms=num("started_ms"), updated_ms=num("updated_ms"))


def _any(mapping: Mapping[str, Any]) -> Any:
    # redis-py types `mapping` with an invariant key type that a dict[str, ...] never meets.
    return mapping
