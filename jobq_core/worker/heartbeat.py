"""The heartbeat thread: renews leases, beats the worker registry, reaps and promotes.

It runs on its own client with a short socket timeout, so a Redis that stops answering is
noticed within a heartbeat; the pool fences (stops) jobs whose lease it could not renew.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import redis

from ..config import Settings
from ..connection import follow_master, translated
from ..errors import JobqError
from ..follow import AskFailures
from ..keys import Keyspace
from ..layout import ensure_layout
from ..records import current_field
from ..registry import registered
from ..scripts import Scripts
from ..wire import Pinned
from ..workers import connection_name, forget_stopped_workers
from .pool import Pool

log = logging.getLogger("jobq.worker")
# Most task names a worker advertises per queue (each beat writes them): bounds the entry.
MAX_ADVERTISED = 1000


class Aside:
    """Runs `work` in a daemon thread of its own, beside the caller, one run at a time."""

    def __init__(self, work: Callable[[], None], name: str) -> None:
        self.work = work
        self.name = name
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start a run, unless the last one still goes on (then nothing: none is queued)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._thread = threading.Thread(target=self.work, name=self.name, daemon=True)
        self._thread.start()


class Heartbeat(threading.Thread):
    def __init__(self, settings: Settings, worker_id: str, queues: Sequence[str], pool: Pool,
                 scripts: Scripts, client: redis.Redis, counters: Callable[[], tuple[int, int]],
                 after_beat: Callable[[], None] | None = None,
                 sentinel_clients: Sequence[redis.Redis] = (),
                 kept: Sequence[Pinned] = ()) -> None:
        super().__init__(name="jobq-heartbeat", daemon=True)
        self.settings = settings
        self.worker_id = worker_id
        self.queues = list(queues)
        self.pool = pool
        self.scripts = scripts
        self.client = client
        self.counters = counters
        self.after_beat = after_beat
        # With Sentinel: the clients whose pools follow the master the sentinels name, and
        # the connections kept out of them (see follow()). Empty otherwise: no cost.
        self.sentinel_clients = list(sentinel_clients)
        self.kept = list(kept)
        self.keys = Keyspace(settings.prefix)
        self.stopping = threading.Event()
        self.state = "starting"
        self.started_ms = int(time.time() * 1000)
        self._down_since: float | None = None
        self._warned_many = False
        self._sweep_until: int | None = None  # see register()
        self._checker = Aside(self._check_first, "jobq-layout")  # see check_layout()
        self._follower = Aside(self.follow, "jobq-sentinel")  # see beat()
        self._follow_failures = AskFailures(
            "a worker connection on a demoted primary is not dropped until they answer; "
            "the leases are renewed meanwhile", log)

    def run(self) -> None:
        while not self.stopping.wait(self.settings.heartbeat_s):
            self.beat()

    def beat(self) -> None:
        """One round: renew, register, reap, promote; with Sentinel, have the sentinels
        asked which server is master (follow(), beside the beat). Never raises."""
        sent = time.monotonic()
        try:
            with translated(self.settings.redis_url):
                self._renew(sent)
                self.register()
                for q in self.queues:
                    for job_id, state in self.scripts.reap(q, client=self.client):
                        log.warning("reaped job %s (lease expired) -> %s", job_id, state)
                    self.scripts.promote(q)
                    self.scripts.trim(q, client=self.client)
                self._prune_registry()
            if self._down_since is not None:
                log.warning("Redis reachable again after %.1fs", sent - self._down_since)
                self._down_since = None
        except (JobqError, redis.RedisError) as exc:
            if self._down_since is None:
                self._down_since = sent
                log.error("heartbeat failed: %s", exc)
        self.pool.fence(time.monotonic())
        if self.sentinel_clients:
            # Beside the beat: the sentinels are asked one after another, each within its own
            # timeouts. Silent ones took 15 s a round, and in the beat that held back the
            # renewals and the fencing of running jobs (a fence then, and with a partition a
            # lease run out before the fence).
            self._follower.start()
        if self.after_beat is not None:
            self.after_beat()

    def follow(self) -> None:
        """Ask the sentinels which server is master, and have every connection of the
        worker's that talks to another one dropped before its next use: after a second
        failover the first promoted server can stay up and writable for a while, and a
        connection left on it claims jobs there that renewals on the new master call lost.
        Never raises; no sentinel answering is logged once (a warning), until one does."""
        try:
            master = follow_master(self.sentinel_clients)
        except (redis.RedisError, OSError) as exc:
            self._follow_failures.failed(exc)
            return
        self._follow_failures.answered()
        for pinned in self.kept:
            pinned.follow(master)

    def _prune_registry(self) -> None:
        """Forget (a bounded number of) workers whose registry hash expired: SIGKILLed ones
        never unregister themselves."""
        stale_before = int(time.time() * 1000) - int(
            self.settings.heartbeat_s * self.settings.worker_ttl_factor * 1000)
        ids = [str(w) for w in self.client.zrangebyscore(self.keys.workers(), "-inf",
                                                         stale_before, start=0, num=100)]
        forget_stopped_workers(self.client, self.keys, ids, self.queues)

    def _renew(self, sent: float) -> None:
        by_queue: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for job in self.pool.leases():
            by_queue[job.queue].append((job.id, job.token))
        for q, leases in by_queue.items():
            lost = set(self.scripts.extend(q, leases, client=self.client))
            for job_id, token in leases:
                if job_id in lost:
                    self.pool.abort(q, job_id, "its lease was lost (reaped, requeued or "
                                    "purged)", token)
            self.pool.renewed(q, [i for i, _ in leases if i not in lost], sent)

    def register(self) -> None:
        """Beat the worker's registry entry, and advertise its tasks on each of its queues
        (so a worker that meets a task it does not know can tell whether one of its peers
        knows it)."""
        self.check_layout()
        held = self.pool.running()
        # The jobs a slot runs (Running.slot), not those held waiting for one (prefetched:
        # up to AUTO_CAP with auto prefetch), which would read as running on the dashboard.
        running = [r for r in held if r.slot is not None]
        names = self.task_names()
        done, failed = self.counters()
        fields: Any = {
            "id": self.worker_id, "host": socket.gethostname(), "pid": os.getpid(),
            "queues": ",".join(self.queues), "pool": self.settings.pool,
            "concurrency": self.settings.slots,
            "state": self.state if self.state != "running" else ("busy" if held else "idle"),
            "current": current_field((r.job.queue, r.job.id) for r in running),
            "started_ms": self.started_ms, "beat_ms": int(time.time() * 1000),
            "done": done, "failed": failed, "tasks": ",".join(names),
            "conn": connection_name(self.worker_id),  # see workers.py
        }
        ttl_ms = int(self.settings.heartbeat_s * self.settings.worker_ttl_factor * 1000)
        key = self.keys.worker(self.worker_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(key, mapping=fields)
        pipe.pexpire(key, ttl_ms)
        pipe.zadd(self.keys.workers(), {self.worker_id: fields["beat_ms"]})
        pipe.execute()
        for q in self.queues:
            self.scripts.advertise(q, self.worker_id, ttl_ms, names, client=self.client)

    def check_layout(self) -> None:
        """Move an older jobq's global keys at the first beat (layout.py), and while the sweep
        window after a migration is open, at every beat what old-version processes of a
        rolling deploy wrote since: their workers stay listed. One GET at start otherwise."""
        if self._sweep_until is None and threading.current_thread() is self:
            self._checker.start()
        elif self._sweep_until is None or time.time() * 1000 < self._sweep_until:
            self._sweep_until = ensure_layout(self.client, self.settings.prefix)

    def _check_first(self) -> None:
        """The first layout check, at a beat (the one at start failed: Redis was down), run
        beside the beat (self._checker): it may migrate or wait for another process's
        migration as long as that runs, and the beat's renewals and fencing must go on
        meanwhile. Never raises."""
        try:
            with translated(self.settings.redis_url):
                self._sweep_until = ensure_layout(self.client, self.settings.prefix)
        except (JobqError, redis.RedisError) as exc:
            log.error("checking the key layout failed: %s (the next beat tries again)", exc)

    def task_names(self) -> list[str]:
        """The tasks this worker runs (registered in its process), at most MAX_ADVERTISED."""
        names = sorted(registered())
        if len(names) > MAX_ADVERTISED and not self._warned_many:
            self._warned_many = True
            log.warning("%d tasks registered; only the first %d are advertised to other "
                        "workers", len(names), MAX_ADVERTISED)
        return names[:MAX_ADVERTISED]

    def unregister(self, client: redis.Redis | None = None) -> None:
        """Remove the worker's registry entry and task adverts (on `client`, else the
        heartbeat's); if Redis does not answer, they expire by themselves."""
        c = client or self.client
        try:
            with translated(self.settings.redis_url):
                c.delete(self.keys.worker(self.worker_id))
                c.zrem(self.keys.workers(), self.worker_id)
                for q in self.queues:
                    self.scripts.advertise(q, self.worker_id, 0, (), client=c)
        except JobqError:
            pass
