"""The read API: what the dashboard and `jobq info` show. Every call is bounded.

Counts are ZCARDs, pages are ranged reads of one zset, job details one hash: nothing here
scans the keyspace, and nothing here writes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from .config import Settings
from .connection import connect, redis_errors, server_info, translated
from .errors import ConfigError
from .job import FINAL_STATES, STATES
from .keys import Keyspace, check_queue_name, valid_job_id
from .scripts import Scripts

# Fields read for list rows (never the possibly huge args/result themselves).
_ROW_FIELDS = ("task", "state", "enqueued_ms", "started_ms", "finished_ms", "reason",
               "retries", "worker", "priority", "lost", "runtime_ms")
PREVIEW_BYTES = 200


@dataclass(frozen=True)
class JobRow:
    """One line of a job list: small fields plus a short preview of args and error."""

    id: str
    queue: str
    state: str
    task: str
    score: float  # pending order, lease deadline, due time or retention expiry (ms)
    enqueued_ms: int | None
    started_ms: int | None
    finished_ms: int | None
    retries: int
    worker: str
    reason: str
    args_preview: str
    error_preview: str
    exists: bool = True


@dataclass(frozen=True)
class JobPage:
    state: str
    queue: str
    total: int
    offset: int
    limit: int
    newest_first: bool
    rows: list[JobRow]
    scanned: int = 0  # for filtered pages: how many entries were examined


@dataclass(frozen=True)
class JobDetail:
    id: str
    queue: str
    fields: Mapping[str, str]
    attempts: list[dict[str, Any]]
    ttl_s: float | None  # seconds until the job's retention ends; None = kept until it ends

    @property
    def state(self) -> str:
        return self.fields.get("state", "")

    def json_field(self, name: str) -> Any:
        raw = self.fields.get(name)
        if raw is None or raw == "":
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    alive: bool  # False when its registry entry expired: the worker stopped beating
    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def current(self) -> list[str]:
        raw = self.fields.get("current", "")
        return [c for c in raw.split(",") if c]


@dataclass(frozen=True)
class HistoryPoint:
    minute_ms: int
    completed: int
    failed: int


@dataclass(frozen=True)
class JobFilter:
    """What the job lists filter on: a task-name substring and a text substring found in
    the error, the reason or the args (both case-insensitive; empty matches everything)."""

    task: str = ""
    text: str = ""

    def __bool__(self) -> bool:
        return bool(self.task or self.text)

    def matches(self, row: JobRow) -> bool:
        if self.task and self.task.lower() not in row.task.lower():
            return False
        if self.text:
            hay = f"{row.error_preview}\n{row.reason}\n{row.args_preview}".lower()
            return self.text.lower() in hay
        return True


@dataclass(frozen=True)
class AuditEntry:
    """One operator action: who did what to how many jobs, when (ms since the epoch)."""

    at_ms: int
    actor: str
    action: str
    queue: str
    state: str
    count: int
    detail: str


@dataclass(frozen=True)
class AuditPage:
    total: int
    offset: int
    entries: list[AuditEntry]


def _int(v: str | None) -> int | None:
    try:
        return int(v) if v not in (None, "") else None
    except ValueError:
        return None


def _preview(text: str | None) -> str:
    if not text:
        return ""
    return text if len(text) <= PREVIEW_BYTES else text[:PREVIEW_BYTES] + "…"


class Inspector:
    """Read-only views of queues, jobs, workers, history and the Redis server."""

    def __init__(self, settings: Settings | None = None, *, url: str | None = None,
                 redis: redis.Redis | None = None) -> None:
        base = settings or Settings.from_env()
        self.settings = base.replace(redis_url=url) if url else base
        self.client = redis if redis is not None else connect(self.settings)
        self.keys = Keyspace(self.settings.prefix)
        self._scripts: Scripts | None = None

    def _check(self, queue: str, state: str | None = None) -> None:
        check_queue_name(queue)
        if state is not None and state not in STATES:
            raise ConfigError(f"unknown state {state!r}; states are {', '.join(STATES)}")

    @redis_errors
    def queues(self) -> list[str]:
        """Known queue names, sorted."""
        return sorted(str(q) for q in self.client.smembers(self.keys.queues()))

    @redis_errors
    def counts(self, queues: Sequence[str] | None = None) -> dict[str, dict[str, int]]:
        """queue -> state -> number of jobs, for every state."""
        names = list(queues) if queues is not None else self.queues()
        for q in names:
            self._check(q)
        pipe = self.client.pipeline(transaction=False)
        for q in names:
            for s in STATES:
                pipe.zcard(self.keys.state_set(q, s))
        flat = pipe.execute()
        n = len(STATES)
        return {q: dict(zip(STATES, flat[i * n:(i + 1) * n], strict=True))
                for i, q in enumerate(names)}

    @redis_errors
    def queue_info(self, queue: str) -> dict[str, Any]:
        """Lifetime counters (enqueued, completed, failed, dead, ...), paused, max_length."""
        self._check(queue)
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.keys.stats(queue))
        pipe.hgetall(self.keys.meta(queue))
        stats, meta = pipe.execute()
        return {"stats": {k: int(v) for k, v in stats.items()},
                "paused": meta.get("paused") == "1",
                "max_length": _int(meta.get("max_length"))}

    @redis_errors
    def jobs(self, state: str, queue: str, *, offset: int = 0, limit: int = 50,
             newest_first: bool | None = None) -> JobPage:
        """One page of jobs in `state`. Pending defaults to queue order (next first);
        final states to newest first."""
        self._check(queue, state)
        limit = max(1, min(int(limit), self.settings.max_page_size))
        offset = max(0, int(offset))
        newest = (state in FINAL_STATES) if newest_first is None else newest_first
        key = self.keys.state_set(queue, state)
        pipe = self.client.pipeline(transaction=False)
        pipe.zcard(key)
        if newest:
            pipe.zrevrange(key, offset, offset + limit - 1, withscores=True)
        else:
            pipe.zrange(key, offset, offset + limit - 1, withscores=True)
        total, entries = pipe.execute()
        entries = [(str(m), float(sc)) for m, sc in entries]
        return JobPage(state, queue, int(total), offset, limit, newest,
                       self._rows(queue, entries))

    @redis_errors
    def search(self, state: str, queue: str, *, task: str = "", text: str = "",
               limit: int = 50, scan_limit: int = 5000, newest_first: bool | None = None,
               offset: int = 0) -> JobPage:
        """Jobs in `state` whose task contains `task` and whose error/reason/args contain
        `text`, looking at no more than `scan_limit` entries from position `offset`.

        `scanned` is the number of entries examined, so `offset + scanned` is where the
        next page of matches starts (positions are in the same order as `jobs`)."""
        self._check(queue, state)
        limit = max(1, min(int(limit), self.settings.max_page_size))
        scan_limit = max(1, min(int(scan_limit), 100_000))
        offset = max(0, int(offset))
        newest = (state in FINAL_STATES) if newest_first is None else newest_first
        key = self.keys.state_set(queue, state)
        total = int(self.client.zcard(key))
        # The scan runs in Redis in bounded slices (search.lua), so only matches travel.
        if self._scripts is None:
            self._scripts = Scripts(self.client, self.settings)
        scripts = self._scripts
        hits: list[tuple[str, float]] = []
        pos, end_pos = offset, min(total, offset + scan_limit)
        while pos < end_pos and len(hits) < limit:
            examined, found = scripts.search(queue, state, pos, min(500, end_pos - pos),
                                             newest_first=newest, task=task, text=text,
                                             limit=limit - len(hits))
            if examined == 0:
                break
            pos += examined
            hits += found
        found_rows = self._rows(queue, hits, full_error=bool(text)) if hits else []
        return JobPage(state, queue, total, offset, limit, newest, found_rows,
                       scanned=pos - offset)

    def rows(self, queue: str, entries: Sequence[tuple[str, float]],
             full_error: bool = False) -> list[JobRow]:
        """List rows for (id, score) entries of `queue`, in one or two pipelined round trips."""
        check_queue_name(queue)
        with translated(self.settings.redis_url):
            return self._rows(queue, entries, full_error)

    def _rows(self, queue: str, entries: Sequence[tuple[str, float]],
              full_error: bool = False) -> list[JobRow]:
        pipe = self.client.pipeline(transaction=False)
        for job_id, _ in entries:
            key = self.keys.job(queue, job_id)
            pipe.hmget(key, _ROW_FIELDS)
            pipe.hstrlen(key, "args")
            pipe.hstrlen(key, "error")
        replies = pipe.execute(raise_on_error=False)
        small = pipe = self.client.pipeline(transaction=False)
        for i, (job_id, _) in enumerate(entries):
            key = self.keys.job(queue, job_id)
            args_len, err_len = replies[3 * i + 1], replies[3 * i + 2]
            # Read args and errors only when small; big ones are previewed by their size.
            small.hget(key, "args") if _is_small(args_len, 4096) else small.echo("")
            limit = 65536 if full_error else 4096
            small.hget(key, "error") if _is_small(err_len, limit) else small.echo("")
        texts = small.execute(raise_on_error=False)
        rows = []
        for i, (job_id, score) in enumerate(entries):
            values = replies[3 * i]
            if isinstance(values, Exception):
                values = [None] * len(_ROW_FIELDS)
            f = dict(zip(_ROW_FIELDS, values, strict=True))
            args, err = texts[2 * i], texts[2 * i + 1]
            args_len, err_len = replies[3 * i + 1], replies[3 * i + 2]
            args_text = args if isinstance(args, str) and args else (
                f"<{args_len} bytes>" if isinstance(args_len, int) and args_len else "")
            err_text = err if isinstance(err, str) and err else (
                f"<{err_len} bytes of error text>" if isinstance(err_len, int) and err_len
                else "")
            rows.append(JobRow(
                id=job_id, queue=queue, state=f.get("state") or "", task=f.get("task") or "",
                score=score, enqueued_ms=_int(f.get("enqueued_ms")),
                started_ms=_int(f.get("started_ms")), finished_ms=_int(f.get("finished_ms")),
                retries=_int(f.get("retries")) or 0, worker=f.get("worker") or "",
                reason=f.get("reason") or "", args_preview=_preview(args_text),
                error_preview=err_text[-PREVIEW_BYTES:] if not full_error else err_text,
                exists=f.get("state") is not None))
        return rows

    @redis_errors
    def job(self, job_id: str, queue: str | None = None) -> JobDetail | None:
        """Everything stored about one job, with its attempt log; None if unknown.

        Without `queue`, every known queue is looked at (one pipelined EXISTS each)."""
        if not valid_job_id(job_id):
            return None
        if queue is None:
            names = self.queues()
            pipe = self.client.pipeline(transaction=False)
            for q in names:
                pipe.exists(self.keys.job(q, job_id))
            hits = [q for q, n in zip(names, pipe.execute(), strict=True) if n]
            if not hits:
                return None
            queue = hits[0]
        self._check(queue)
        key = self.keys.job(queue, job_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(key)
        pipe.lrange(self.keys.attempts(queue, job_id), 0, -1)
        pipe.pttl(key)
        fields, attempts, pttl = pipe.execute(raise_on_error=False)
        if isinstance(fields, Exception) or not fields:
            return None
        log = []
        for raw in attempts if isinstance(attempts, list) else []:
            try:
                log.append(json.loads(raw))
            except json.JSONDecodeError:
                log.append({"raw": raw})
        ttl = pttl / 1000 if isinstance(pttl, int) and pttl >= 0 else None
        return JobDetail(job_id, queue, fields, log, ttl)

    @redis_errors
    def workers(self, limit: int = 1000) -> list[WorkerInfo]:
        """Registered workers, most recent heartbeat first; alive=False for stale entries."""
        ids = [str(w) for w in self.client.zrevrange(self.keys.workers(), 0, max(0, limit - 1))]
        pipe = self.client.pipeline(transaction=False)
        for wid in ids:
            pipe.hgetall(self.keys.worker(wid))
        return [WorkerInfo(wid, bool(f), f) for wid, f in zip(ids, pipe.execute(), strict=True)]

    @redis_errors
    def workers_alive(self, worker_ids: Sequence[str]) -> dict[str, bool]:
        """worker id -> whether its registry entry still exists (heartbeat not stopped)."""
        ids = sorted(set(worker_ids))[:1000]
        pipe = self.client.pipeline(transaction=False)
        for wid in ids:
            pipe.exists(self.keys.worker(wid))
        return {wid: bool(n) for wid, n in zip(ids, pipe.execute(), strict=True)}

    @redis_errors
    def audit(self, offset: int = 0, limit: int = 50) -> AuditPage:
        """A page of the operator audit log, newest first."""
        offset = max(0, int(offset))
        limit = max(1, min(int(limit), self.settings.max_page_size))
        pipe = self.client.pipeline(transaction=False)
        pipe.llen(self.keys.audit())
        pipe.lrange(self.keys.audit(), offset, offset + limit - 1)
        total, raw = pipe.execute()
        entries = []
        for item in raw:
            try:
                d = json.loads(item)
                entries.append(AuditEntry(int(d.get("at_ms", 0)), str(d.get("actor", "")),
                                          str(d.get("action", "")), str(d.get("queue", "")),
                                          str(d.get("state", "")), int(d.get("count", 0)),
                                          str(d.get("detail", ""))))
            except (json.JSONDecodeError, TypeError, ValueError, AttributeError):
                entries.append(AuditEntry(0, "", "unreadable entry", "", "", 0, str(item)[:200]))
        return AuditPage(int(total), offset, entries)

    @redis_errors
    def history(self, queues: Sequence[str] | None = None, minutes: int = 60,
                ) -> list[HistoryPoint]:
        """Completed and failed attempts per minute, oldest first, summed over `queues`."""
        names = list(queues) if queues is not None else self.queues()
        minutes = max(1, min(int(minutes), self.settings.history_minutes))
        size = self.settings.history_minutes
        now_min = int(self.server_time_ms() // 60000)
        wanted = range(now_min - minutes + 1, now_min + 1)
        sums = {m: [0, 0] for m in wanted}
        pipe = self.client.pipeline(transaction=False)
        for q in names:
            self._check(q)
            for kind in ("completed", "failed"):
                pipe.hmget(self.keys.history(q), [f"{kind}:{m % size}" for m in wanted])
        replies = pipe.execute()
        for i, values in enumerate(replies):
            col = i % 2
            for m, v in zip(wanted, values, strict=True):
                if v:
                    minute, _, count = v.partition(" ")
                    if minute.isdigit() and int(minute) == m:
                        sums[m][col] += int(count or 0)
        return [HistoryPoint(m * 60000, c, f) for m, (c, f) in sums.items()]

    @redis_errors
    def server_time_ms(self) -> int:
        sec, usec = self.client.time()
        return int(sec) * 1000 + int(usec) // 1000

    @redis_errors
    def server(self) -> dict[str, Any]:
        """Redis version, memory, clients and warnings an operator should see."""
        info = server_info(self.client)
        warnings = []
        policy = info.get("maxmemory_policy", "")
        if policy and policy != "noeviction":
            warnings.append(f"maxmemory-policy is {policy}: Redis may evict queued jobs; "
                            "use noeviction")
        return {
            "version": info.get("redis_version", "?"),
            "used_memory_human": info.get("used_memory_human", "?"),
            "maxmemory_human": info.get("maxmemory_human", "0B"),
            "maxmemory_policy": policy,
            "connected_clients": info.get("connected_clients", 0),
            "uptime_s": info.get("uptime_in_seconds", 0),
            "warnings": warnings,
            "checked_ms": int(time.time() * 1000),
        }


def _is_small(length: object, limit: int) -> bool:
    return isinstance(length, int) and 0 < length <= limit
