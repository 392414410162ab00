"""The read API: what the dashboard and `jobq info` show. Every call is bounded.

Counts are ZCARDs, pages are ranged reads of one zset, job details one hash: nothing here
scans the keyspace, and nothing here writes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import redis

from .config import Settings
from .connection import configure, redis_errors, server_info, translated
from .errors import ConfigError
from .job import DEFERRED_MS, FINAL_STATES, JSON_ERRORS, STATES, loads_or_raw
from .keys import QUEUE_NAME_RE, Keyspace, check_queue_name, stored_job_id
from .limits import Limit
from .logread import read_log
from .nodes import NodeHealth, node_health, queue_nodes
from .records import (
    AuditEntry,
    AuditPage,
    Dependency,
    HistoryPoint,
    JobDetail,
    JobFilter,
    JobLog,
    JobPage,
    JobRow,
    LimitInfo,
    ScheduleInfo,
    SchedulerInfo,
    WorkerInfo,
    int_field,
    job_row,
    schedule_info,
)
from .schedule import check_schedule_name
from .scripts import Scripts
from .workers import connected_names, worker_alive

# Entries one search.lua call examines: a few ms of Redis time, so a budget is kept closely.
SEARCH_SLICE = 250


class Inspector:
    """Read-only views of queues, jobs, workers, history and the Redis server."""

    def __init__(self, settings: Settings | None = None, *, url: str | None = None,
                 redis: redis.Redis | None = None) -> None:
        self.settings, self.client = configure(settings, url, redis)
        self.keys = Keyspace(self.settings.prefix)
        self._scripts: Scripts | None = None

    def _check(self, queue: str, state: str | None = None) -> None:
        check_queue_name(queue)
        if state is not None and state not in STATES:
            raise ConfigError(f"unknown state {state!r}; states are {', '.join(STATES)}")

    @redis_errors
    def queues(self) -> list[str]:
        """Known queue names, sorted. An entry that is no valid queue name (another writer's,
        or an old version's: names ending in a newline were once accepted) is left out, so
        that it cannot fail every page and command that lists the queues."""
        names = map(str, self.client.smembers(self.keys.queues()))
        return sorted(q for q in names if QUEUE_NAME_RE.fullmatch(q))

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
        """Lifetime counters (enqueued, completed, failed, dead, ...), paused, max_length, and
        how many of the scheduled jobs are deferred (waiting on dependencies)."""
        self._check(queue)
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.keys.stats(queue))
        pipe.hgetall(self.keys.meta(queue))
        pipe.zcount(self.keys.scheduled(queue), DEFERRED_MS, "+inf")
        stats, meta, deferred = pipe.execute()
        return {"stats": {k: int(v) for k, v in stats.items()},
                "paused": meta.get("paused") == "1",
                "max_length": int_field(meta.get("max_length")),
                "deferred": int(deferred)}

    @redis_errors
    def jobs(self, state: str, queue: str, *, offset: int = 0, limit: int = 50,
             newest_first: bool | None = None) -> JobPage:
        """One page of jobs in `state`. Pending defaults to queue order (next first);
        final states to newest first."""
        self._check(queue, state)
        limit = max(1, min(int(limit), self.settings.max_page_size))
        offset = max(0, int(offset))
        newest = (state in FINAL_STATES) if newest_first is None else newest_first
        # One bounded script call: the count, the page's entries and their row fields.
        total, records = self._scripts_().rows_page(queue, state, offset, limit,
                                                    newest_first=newest)
        return JobPage(state, queue, total, offset, limit, newest,
                       [job_row(queue, rec, float(rec[1]), False) for rec in records])

    @redis_errors
    def search(self, state: str, queue: str, *, task: str = "", text: str = "",
               limit: int = 50, scan_limit: int = 5000, newest_first: bool | None = None,
               offset: int = 0, budget_s: float | None = None) -> JobPage:
        """Jobs in `state` whose task contains `task` and whose error/reason/args contain
        `text`, looking at no more than `scan_limit` entries from position `offset`, and,
        with `budget_s`, starting no new slice of SEARCH_SLICE entries once that many
        seconds have passed (the first slice always runs, so a scan always advances).

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
        scripts = self._scripts_()
        hits: list[tuple[str, float]] = []
        pos, end_pos = offset, min(total, offset + scan_limit)
        deadline = None if budget_s is None else time.monotonic() + max(0.0, budget_s)
        while pos < end_pos and len(hits) < limit:
            count = min(SEARCH_SLICE, end_pos - pos)
            examined, found = scripts.search(queue, state, pos, count, newest_first=newest,
                                             task=task, text=text, limit=limit - len(hits))
            if examined == 0:
                break
            pos += examined
            hits += found
            if deadline is not None and time.monotonic() >= deadline:
                break
        found_rows = self._rows(queue, hits, full_error=bool(text), state=state)
        return JobPage(state, queue, total, offset, limit, newest, found_rows,
                       scanned=pos - offset)

    def rows(self, queue: str, entries: Sequence[tuple[str, float]],
             full_error: bool = False) -> list[JobRow]:
        """List rows for (id, score) entries of `queue`, in one script call (rows.lua);
        `full_error` reads errors whole (up to 64 KiB) instead of a preview of their end."""
        check_queue_name(queue)
        with translated(self.settings.redis_url):
            return self._rows(queue, entries, full_error)

    def _scripts_(self) -> Scripts:
        if self._scripts is None:
            self._scripts = Scripts(self.client, self.settings)
        return self._scripts

    def _rows(self, queue: str, entries: Sequence[tuple[str, float]],
              full_error: bool = False, state: str = "pending") -> list[JobRow]:
        # `state` only names the set KEYS[1] of rows.lua; with ids it is not read.
        rows: list[JobRow] = []
        for i in range(0, len(entries), 500):
            part = entries[i:i + 500]
            records = self._scripts_().rows_of(queue, state, [job_id for job_id, _ in part],
                                               whole_error=full_error)
            rows += [job_row(queue, rec, score, full_error)
                     for rec, (_, score) in zip(records, part, strict=True)]
        return rows

    @redis_errors
    def job(self, job_id: str, queue: str | None = None) -> JobDetail | None:
        """Everything stored about one job, with its attempt log; None if unknown.

        Without `queue`, every known queue is looked at (one pipelined EXISTS each)."""
        if not stored_job_id(job_id):
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
            except JSON_ERRORS:
                log.append({"raw": raw})
        ttl = pttl / 1000 if isinstance(pttl, int) and pttl >= 0 else None
        return JobDetail(job_id, queue, fields, log, ttl)

    @redis_errors
    def logs(self, queue: str, job_id: str, offset: int = 0) -> JobLog | None:
        """What the job printed and logged from byte `offset` (logread.read_log)."""
        self._check(queue)
        return read_log(self.client, self.keys, queue, job_id, offset)

    @redis_errors
    def workers(self, limit: int = 1000) -> list[WorkerInfo]:
        """Registered workers, most recent heartbeat first; alive=False for a worker whose
        registry entry expired or, where the server lists its clients, that has no
        connection open (killed: workers.worker_alive)."""
        ids = [str(w) for w in self.client.zrevrange(self.keys.workers(), 0, max(0, limit - 1))]
        pipe = self.client.pipeline(transaction=False)
        for wid in ids:
            pipe.hgetall(self.keys.worker(wid))
        found = pipe.execute()
        names = connected_names(self.client) if any(f.get("conn") for f in found) else None
        return [WorkerInfo(wid, worker_alive(f, names), f)
                for wid, f in zip(ids, found, strict=True)]

    @redis_errors
    def workers_alive(self, worker_ids: Sequence[str]) -> dict[str, bool]:
        """worker id -> whether it is alive, as in workers()."""
        ids = sorted(set(worker_ids))[:1000]
        pipe = self.client.pipeline(transaction=False)
        for wid in ids:
            pipe.hmget(self.keys.worker(wid), ["id", "conn"])
        found = [{k: v for k, v in zip(("id", "conn"), got, strict=True) if v is not None}
                 for got in pipe.execute()]
        names = connected_names(self.client) if any(f.get("conn") for f in found) else None
        return {wid: worker_alive(f, names) for wid, f in zip(ids, found, strict=True)}

    @redis_errors
    def progress(self, jobs: Sequence[tuple[str, str]]) -> dict[str, Any]:
        """(queue, job id) -> the progress its task reported (set_progress: a number or a
        dict), for the jobs that reported any; at most max_page_size jobs, one round trip."""
        refs = list(jobs)[:self.settings.max_page_size]
        pipe = self.client.pipeline(transaction=False)
        for q, job_id in refs:
            self._check(q)
            pipe.hget(self.keys.job(q, job_id), "progress")
        out: dict[str, Any] = {}
        for (_, job_id), raw in zip(refs, pipe.execute(), strict=True):
            if raw is not None:
                out[job_id] = loads_or_raw(raw)
        return out

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
                    if minute.isascii() and minute.isdigit() and int(minute) == m:
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

    @redis_errors
    def nodes(self, queues: Sequence[str] | None = None) -> list[NodeHealth]:
        """Every Redis node with its role, link state, memory, ops/s and CPU, primaries
        first, each with the queues it holds (one node, 'standalone', off a cluster)."""
        return node_health(self.client, self.keys, self.queues() if queues is None else queues)

    @redis_errors
    def queue_nodes(self, queues: Sequence[str] | None = None) -> dict[str, str]:
        """queue -> address of the cluster primary holding it ('' off a cluster)."""
        return queue_nodes(self.client, self.keys, self.queues() if queues is None else queues)

    # -- flow control: deferred jobs, dependencies, limits, pause, schedules ---------------
    @redis_errors
    def deferred(self, queue: str, *, offset: int = 0, limit: int = 50) -> JobPage:
        """One page of deferred jobs (status scheduled, waiting on dependencies), oldest
        check first; a row's score is the time its dependencies are next checked (ms).
        These jobs are also in jobs("scheduled", ...), with scores of DEFERRED_MS or more."""
        self._check(queue)
        limit = max(1, min(int(limit), self.settings.max_page_size))
        offset = max(0, int(offset))
        key = self.keys.scheduled(queue)
        pipe = self.client.pipeline(transaction=False)
        pipe.zcount(key, DEFERRED_MS, "+inf")
        pipe.zrangebyscore(key, DEFERRED_MS, "+inf", start=offset, num=limit, withscores=True)
        total, entries = pipe.execute()
        rows = [(str(m), float(sc) - DEFERRED_MS) for m, sc in entries]
        return JobPage("scheduled", queue, int(total), offset, limit, False,
                       self._rows(queue, rows, state="scheduled"))

    @redis_errors
    def dependencies(self, queue: str, job_id: str) -> list[Dependency]:
        """The parents a job was enqueued with (depends_on), each with its current state."""
        self._check(queue)
        if not stored_job_id(job_id):
            return []
        raw = self.client.hget(self.keys.job(queue, job_id), "depends_on")
        try:
            refs = [r for r in json.loads(str(raw)) if isinstance(r, str)] if raw else []
        except (*JSON_ERRORS, TypeError):
            return []
        pipe = self.client.pipeline(transaction=False)
        for ref in refs:
            pq, _, pid = ref.rpartition("/")
            pipe.hget(self.keys.job(pq or queue, pid), "state")
            pipe.hexists(self.keys.job(queue, job_id), f"dep:{ref}")
        replies = pipe.execute(raise_on_error=False)
        return [Dependency(ref, replies[2 * i] if isinstance(replies[2 * i], str) else "",
                           replies[2 * i + 1] is True)
                for i, ref in enumerate(refs)]

    @redis_errors
    def limits(self, queue: str) -> list[LimitInfo]:
        """The limits set on a queue with their running, started and parked counts."""
        self._check(queue)
        raw: Any = self.client.hgetall(self.keys.limits(queue))
        limits = [lim for k, v in sorted(raw.items()) if (lim := Limit.decode(k, v))]
        now = self.server_time_ms()
        pipe = self.client.pipeline(transaction=False)
        for lim in limits:
            pipe.scard(self.keys.limit_running(queue, lim.key))
            pipe.zcount(self.keys.limit_started(queue, lim.key),
                        f"({now - int(lim.per_s * 1000)}", "+inf")
            pipe.zcard(self.keys.limit_parked(queue, lim.key))
            pipe.zscore(self.keys.limited(queue), lim.key)
        r = pipe.execute()
        return [LimitInfo(lim, int(r[4 * i]), int(r[4 * i + 1]), int(r[4 * i + 2]),
                          None if r[4 * i + 3] is None else int(r[4 * i + 3]))
                for i, lim in enumerate(limits)]

    @redis_errors
    def paused(self, queues: Sequence[str] | None = None) -> list[str]:
        """The queues (of `queues`, default all known) that are paused."""
        names = list(queues) if queues is not None else self.queues()
        pipe = self.client.pipeline(transaction=False)
        for q in names:
            self._check(q)
            pipe.hget(self.keys.meta(q), "paused")
        return [q for q, p in zip(names, pipe.execute(), strict=True) if p == "1"]

    @redis_errors
    def schedules(self, limit: int = 500) -> list[ScheduleInfo]:
        """Stored schedules, soonest next run first (disabled ones last)."""
        names = [str(n) for n in self.client.zrange(self.keys.schedules(), 0,
                                                    max(0, min(int(limit), 10_000) - 1))]
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.keys.schedule(name))
        return [schedule_info(name, f) for name, f in zip(names, pipe.execute(), strict=True)
                if f]

    @redis_errors
    def schedule(self, name: str) -> ScheduleInfo | None:
        """One stored schedule, or None."""
        fields: Any = self.client.hgetall(self.keys.schedule(check_schedule_name(name)))
        return schedule_info(name, fields) if fields else None

    @redis_errors
    def scheduler(self) -> SchedulerInfo:
        """The current scheduler leader (leader '' when none holds the lease)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.keys.scheduler_leader())
        pipe.pttl(self.keys.scheduler_leader())
        fields, pttl = pipe.execute()
        return SchedulerInfo(fields.get("owner", ""), int_field(fields.get("epoch")) or 0,
                             int_field(fields.get("since_ms")), int_field(fields.get("renewed_ms")),
                             max(0, int(pttl)) if fields else 0)


__all__ = [
    "AuditEntry", "AuditPage", "Dependency", "HistoryPoint", "Inspector", "JobDetail",
    "JobFilter", "JobLog", "JobPage", "JobRow", "LimitInfo", "ScheduleInfo", "SchedulerInfo",
    "WorkerInfo",
]
