"""Worker: claims jobs from its queues, runs them in a pool, and stops cleanly on signals.

    Worker(["high", "default"], settings, imports=["myapp.tasks"]).work(burst=False)

The main loop: wait for a free slot, claim up to that many jobs, hand them to the pool;
when there is nothing to claim, block on the queues' markers. A heartbeat thread renews
leases, and any error from Redis is logged and waited out, never fatal.
"""

from __future__ import annotations

import importlib
import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any

import redis

from ..config import Settings
from ..connection import check_not_cluster_node, connect, is_sentinel, translated
from ..durations import duration
from ..errors import ConfigError, JobqError, RedisUnavailable
from ..hooks import Hooks, WorkerContext, WorkerHook
from ..job import DEFERRED_MS, Claimed, Job
from ..keys import Keyspace, check_queue_name
from ..queue import Queue
from ..registry import registered
from ..runner import Outcome
from ..scripts import Scripts
from ..workers import connection_name
from .builtin_hooks import builtin_hooks
from .child_wait import ChildWait
from .heartbeat import Heartbeat
from .node_fetch import fetcher_class
from .pool import Pool
from .recorder import Recorder

log = logging.getLogger("jobq.worker")
# How long the loop waits, after an idle wait's claim, for its first job to reach an idle
# slot before it renews the claim's pick-up leases (see Worker._wait_and_take).
HAND_OFF_WAIT_S = 0.005
# How long the loop waits, after a wait's job started, for it to end before it waits on the
# queues itself, where a child's wait could serve the next job (see Worker._let_it_end).
SETTLE_WAIT_S = 0.005
# How long each of the stop's own Redis calls (hand-backs, unregistering) may wait for its
# reply, and how long the stop waits for a beat under way to end. With Redis cut off each
# waited out a socket timeout (the beat's with its hooks' calls: 11 s in all, measured), and
# what they leave undone is undone anyway: the leases bring the jobs back, the registry entry
# expires.
STOP_TIMEOUT_S = 1.0


class Worker:
    """Runs jobs from `queues` (earlier queues first) until stopped.

    `imports` are modules that register the tasks this worker may run. Settings give the
    concurrency, pool ("process", "thread" or "async"), lease, heartbeat and grace. `hooks` add
    optional behaviour (see jobq_core.hooks); `with_scheduler=True` also runs a periodic
    scheduler in a thread (it fires only while it holds the scheduler leader lease).

    Two events tell a test or an embedding program where the worker is: `ready` is set once
    it is registered and about to claim; `blocked` is set while its main loop waits on the
    queues' markers (its claim found nothing), so a job enqueued then reaches it only by
    waking that wait.
    """

    def __init__(self, queues: Sequence[str] | str = ("default",),
                 settings: Settings | None = None, *, imports: Sequence[str] = (),
                 name: str | None = None, hooks: Sequence[WorkerHook] = (),
                 with_scheduler: bool = False, **overrides: Any) -> None:
        queue_list = [queues] if isinstance(queues, str) else list(queues)
        if not queue_list:
            raise JobqError("a worker needs at least one queue")
        self.queues = [check_queue_name(q) for q in dict.fromkeys(queue_list)]
        base = settings or Settings.from_env()
        self.settings = base.replace(**overrides) if overrides else base
        self.imports = list(imports)
        for module in self.imports:
            importlib.import_module(module)
        self.id = name or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"
        s = self.settings
        # Every connection is named after the worker, so readers see at once that a killed
        # worker is gone (its sockets close with its process; workers.py).
        cname = connection_name(self.id)
        self.client = connect(s, name=cname)
        # The heartbeat gets its own client with a socket timeout of one heartbeat, so a
        # silent Redis is noticed in time to stop jobs before their leases expire.
        self.beat_client = connect(s.replace(socket_timeout_s=min(s.socket_timeout_s,
                                                                  s.heartbeat_s)), name=cname)
        self.scripts = Scripts(self.client, s)
        # A job's end is final here whatever the replicas say: warn, never raise (see
        # replication.py).
        self.scripts.strict_replicas = False
        self.stopping = threading.Event()
        self.hard_stop = threading.Event()
        # When the stop was asked (monotonic): the grace period runs from the signal, not from
        # when the main loop next wakes up (it may sit in a wait of up to block_s).
        self._stop_asked: float | None = None
        self.ready = threading.Event()  # set once the worker is registered and claiming
        self.recorder = Recorder(s, self.scripts, self.id, self.hard_stop, self._job_handle)
        self.pool = Pool(s, self._child_imports(), self._on_done, self.client)
        # A cluster claims per slot and waits per slot (worker/cluster_fetch.py), unless every
        # queue is in one slot: then on that slot's node as on one Redis (node_fetch.py).
        fetcher = fetcher_class(self.scripts.cluster, self.queues)
        self.fetch = fetcher(s, self.queues, self.id, self.scripts,
                             connect(s, blocking=True, name=cname))
        # Set while the main loop blocks on the queues' markers (see Fetcher.blocked): once
        # set, a job enqueued can reach this worker only by waking that wait.
        self.blocked = self.fetch.blocked
        # An idle process pool's wait is done by the child that will run the job.
        self.child_wait = ChildWait(s, self.fetch, self.pool)
        self.hooks = Hooks(WorkerContext(self.id, tuple(self.queues), s, self.client,
                                         self.scripts),
                           [*builtin_hooks(with_scheduler), *hooks])
        self.heartbeat = Heartbeat(s, self.id, self.queues, self.pool, self.scripts,
                                   self.beat_client,
                                   lambda: (self.recorder.done, self.recorder.failed),
                                   after_beat=self.hooks.after_beat,
                                   **self._sentinel_watch())
        self._queue_handles: dict[str, Queue] = {}
        # How long the loop waits for room before checking again: with auto prefetch, often
        # enough to hand back jobs held behind long ones within a few of its wait budgets.
        self._capacity_wait = (min(s.block_s, 0.05) if self.pool.ledger.auto else s.block_s)

    def work(self, burst: bool = False) -> int:
        """Run jobs until stopped (SIGTERM/SIGINT or stop()); with `burst`, until there is
        nothing pending, running, or scheduled and due within `burst_wait_s` (a retry waiting
        out its backoff). Returns the jobs processed."""
        self._start()
        pause = 0.0
        try:
            while not self.stopping.is_set():
                if not self.pool.wait_capacity(self._capacity_wait):
                    # Auto prefetch: jobs claimed behind jobs that turned out long go back
                    # to the queue, where an idle worker can take them.
                    self._hand_back(self.pool.stuck_waiting())
                    continue
                try:
                    if not self._claim_round(burst):
                        break
                    pause = 0.0
                except RedisUnavailable as exc:
                    pause = min(max(pause * 2, 0.1), self.settings.reconnect_max_s)
                    log.error("%s; retrying in %.1fs", exc, pause)
                    self.stopping.wait(pause)
                except (JobqError, redis.RedisError) as exc:
                    # Redis refused a command (e.g. WRONGTYPE: a jobq key overwritten by
                    # hand). A burst run reports it; a long-running worker waits it out.
                    if burst:
                        raise
                    pause = min(max(pause * 2, 0.1), self.settings.reconnect_max_s)
                    log.error("claiming failed: %s; retrying in %.1fs", exc, pause)
                    self.stopping.wait(pause)
        finally:
            self._stop()
        return self.recorder.done + self.recorder.failed

    def _claim_round(self, burst: bool) -> bool:
        """Claim what there is room for and start it; when there was nothing, wait for work
        (claiming it as it comes, with claim_on_wake). False: a burst run is done."""
        # Read before claiming: a job settling meanwhile may enqueue more (its hooks run
        # before it stops counting as busy), which this claim missed.
        idle = not self.pool.busy()
        room = self.pool.capacity()
        # Submitted as each claim call returns (a cluster claims slot by slot), each with its
        # own send time: a slot's jobs never wait, leased, behind a later slot's stalled call.
        jobs = self.fetch.claim(room, self.pool.submit)
        if not jobs:
            if burst and idle and not self.fetch.due_within(self.settings.burst_wait_s):
                self._left_scheduled()
                return False
            if burst and self.pool.busy():
                self.pool.wait_change(self.settings.block_s)
            elif not burst or idle:
                self._wait_and_take(again=not burst)
        elif len(jobs) < room and not burst:
            # Fewer than asked: nothing else was ready. Claiming again now would find nothing
            # and compete with the jobs just started for the CPU; the marker wakes this wait
            # as soon as anything is enqueued.
            self._wait_and_take(again=True)
        return True

    def _left_scheduled(self) -> None:
        # A burst run that leaves retries behind must say so: the caller may take "it
        # returned" for "every job ended".
        last = self.fetch.last
        if last is None or not 0 <= last.next_due_ms < DEFERRED_MS:
            return
        with translated(self.settings.redis_url):
            left = sum(int(self.client.zcount(Keyspace(self.settings.prefix).scheduled(q), "-inf",
                                              f"({DEFERRED_MS}"))
                       for q in self.queues)
        log.info("burst: nothing left to run now; %d scheduled job%s left scheduled, the next "
                 "due in %s (burst_wait_s is %s)", left, "s" * (left != 1),
                 duration((last.next_due_ms - last.now_ms) / 1000),
                 duration(self.settings.burst_wait_s))

    def stop(self, hard: bool = False) -> None:
        """Ask the worker to stop: finish running jobs within grace_s (hard: at once)."""
        self._stop_asked = self._stop_asked or time.monotonic()
        self.stopping.set()
        if hard:
            self.hard_stop.set()
        self.child_wait.withdraw()  # before the wake: a job claimed on it is not begun
        self.fetch.wake()

    # -- lifecycle -----------------------------------------------------------------------
    def _start(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        self._check_redis()
        self.pool.start()
        self.heartbeat.state = "running"
        try:
            with translated(self.settings.redis_url):
                self.heartbeat.register()
        except (RedisUnavailable, JobqError) as exc:
            # JobqError: the key layout migration lost its lock (nothing half done). Either
            # way the next beat registers and checks the layout again, off its own thread.
            log.error("%s (the worker keeps trying)", exc)
        self.heartbeat.start()
        self.hooks.after_start()
        self.ready.set()
        log.info("worker %s started: queues=%s pool=%s concurrency=%d", self.id,
                 ",".join(self.queues), self.settings.pool, self.settings.slots)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping.is_set():
            log.warning("second %s: stopping now; unfinished jobs are handed back",
                        signal.Signals(signum).name)
            self.hard_stop.set()
        else:
            log.warning("%s: stopping after running jobs finish (up to %.0fs); send again to "
                        "stop now", signal.Signals(signum).name, self.settings.grace_s)
            self._stop_asked = time.monotonic()
            self.stopping.set()

    def _stop(self) -> None:
        self.heartbeat.state = "stopping"
        self.hooks.before_stop()
        asked = self._stop_asked or time.monotonic()
        # Prefetched jobs go back now: once stopping they are no longer renewed, and held
        # through the grace period their leases would run out (counted as lost).
        brief = self._brief_client()
        self._hand_back(self.pool.take_waiting(), brief)
        grace = max(0.0, asked + self.settings.grace_s - time.monotonic())
        left = self.pool.stop(grace, self.hard_stop)
        self.heartbeat.stopping.set()
        self.heartbeat.join(STOP_TIMEOUT_S)
        self._hand_back(left, brief)
        if self.heartbeat.is_alive():
            # Its beat waits (for Redis, most likely): its registration could follow ours.
            log.warning("the heartbeat under way did not end within %.0fs (Redis "
                        "unreachable?); the worker's registry entry is left to expire",
                        STOP_TIMEOUT_S)
        else:
            self.heartbeat.unregister(brief)
        # The fetcher first: a cluster's waiters put a marker they popped back with the
        # command client, which a closed cluster client can no longer reach.
        self.fetch.close()
        for c in (self.client, self.beat_client):
            c.close()
        if brief is not self.client:
            brief.close()
        log.info("worker %s stopped (%d handed back)", self.id, len(left))

    def _wait_and_take(self, again: bool) -> None:
        """Wait for work. With Settings.claim_on_wake (the default), claim it in the same
        round trip under a short pick-up lease (Settings.pickup_s, counted from when the
        wait was sent: Redis granted it no earlier), start what was claimed if the reply is
        fresh, and renew those leases to lease_s at once. A reply older than two thirds of
        the pick-up lease (this process was stopped, or its connection stalled) may carry
        leases that expired and were reaped meanwhile, so those jobs may already run
        elsewhere: they are handed back (refused by Redis if no longer ours), never started.
        A job whose pick-up lease cannot be renewed is stopped at once (it had just begun).
        So a worker frozen while idle holds one claim's jobs for pickup_s, not a lease.
        A fully idle process pool has a child do the wait and claim one job, which it begins
        before the report (worker/child_wait.py): the same rules apply, in the child.

        With `again`, a claim that got fewer jobs than asked (the queues are empty again)
        is followed by another wait, not by a claim that would find nothing."""
        if not self.settings.claim_on_wake:
            self.fetch.wait()
            return
        while not self.stopping.is_set():
            room = self.pool.capacity()
            # A fully idle process pool has the child of its first idle slot wait and
            # claim; the job it claims has begun there (child_wait.py).
            jobs = self.child_wait.wait(self.stopping, self._renew_pickup)
            if jobs is None:
                jobs = self._wait_here(room)
            if jobs and again and self.child_wait.enabled:
                self._let_it_end()
            if not jobs or not again or len(jobs) >= room:
                return

    def _let_it_end(self) -> None:
        """After a wait started a job (where a child's wait may serve the next): wait (up to
        SETTLE_WAIT_S, unless jobs ran longer of late) until it has ended and its slot waits
        again (Pool.wait_idle), so that the next wait is a child's, the warm one's. A wait of
        this loop's own, begun while the job runs, would outlast its end, and while jobs
        come more often than block_s every next one would come through such a wait and the
        worker loop's hand-off. A job enqueued meanwhile waits that long at most (the marker
        stays set for it)."""
        ledger = self.pool.ledger
        if ledger.runtime_s is not None and ledger.runtime_s > SETTLE_WAIT_S:
            return
        self.pool.wait_idle(SETTLE_WAIT_S)

    def _wait_here(self, room: int) -> list[Claimed]:
        """The wait of _wait_and_take in this process: the jobs started ([] if none)."""
        sent = time.monotonic()
        jobs = self.fetch.wait(room)
        if not jobs:
            return []
        late = time.monotonic() - sent > self.settings.pickup_late_s
        if late or self.stopping.is_set():
            if late:
                log.warning("claim reply arrived %.1fs after the wait began; handing its "
                            "%d job(s) back unstarted", time.monotonic() - sent, len(jobs))
            self._hand_back(jobs)
            return []
        idle = self.pool.idle()
        # A process slot given a job here is told after the renewal (its child has the job
        # already): see Pool.telling_later.
        with self.pool.telling_later():
            for job in jobs:
                self.pool.submit(job, sent)
            if idle:
                # Let the first job reach its slot (its child, in the process pool) before
                # this thread wants the GIL and a core again to renew and wait: on a 2-core
                # machine that work delayed the job's start by 0.1-0.3 ms. The renewal comes
                # a few ms late at worst; the pick-up lease runs for seconds.
                self.pool.wait_on_way(jobs[0], HAND_OFF_WAIT_S)
            self._renew_pickup(jobs, sent)
        return jobs

    def _renew_pickup(self, jobs: Sequence[Claimed], began: float | None = None) -> None:
        """Renew the pick-up leases of jobs just claimed in a wait's reply to the full lease
        (one extend.lua call per queue); stop any whose lease could not be renewed. `began`:
        when the claim's wait was sent (monotonic), if known, for the log."""
        by_queue: dict[str, list[Claimed]] = {}
        for job in jobs:
            by_queue.setdefault(job.queue, []).append(job)
        for q, held in by_queue.items():
            sent = time.monotonic()
            try:
                with translated(self.settings.redis_url):
                    lost = set(self.scripts.extend(q, [(j.id, j.token) for j in held]))
            except (JobqError, redis.RedisError) as exc:
                for job in held:
                    self.pool.abort(q, job.id, f"its pick-up lease could not be renewed ({exc});"
                                    " another worker will run it", job.token)
                continue
            # How late the renewal was tells a lease that ran out (a slow renewal) from one
            # that was never there to renew (the claim went to a server that has failed over).
            when = (f" (renewal sent {sent - began:.2f} s after the wait began, answered in "
                    f"{time.monotonic() - sent:.2f} s; pick-up lease "
                    f"{self.settings.pickup_s:g} s)" if lost and began is not None else "")
            for job in held:
                # Also a job that already ended (its outcome dropped the lease): abort()
                # leaves a job whose outcome is being recorded alone.
                if job.id in lost:
                    self.pool.abort(q, job.id, "its pick-up lease was lost before it was "
                                    f"renewed{when}", job.token)
            self.pool.renewed(q, [j.id for j in held if j.id not in lost], sent)

    def _hand_back(self, jobs: Sequence[Claimed], client: redis.Redis | None = None) -> None:
        if jobs:  # one release.lua call per queue (Fetcher.hand_back_many)
            self.fetch.hand_back_many(jobs, client)

    def _brief_client(self) -> redis.Redis:
        """The stop's client: a reply waits STOP_TIMEOUT_S at most (one WAIT timeout more
        with wait_replicas), its connect as long. A cluster's client would ask the cluster
        for its slots as it is made: there, the command client."""
        if self.scripts.cluster:
            return self.client
        s = self.settings
        timeout = min(s.socket_timeout_s, STOP_TIMEOUT_S
                      + (s.wait_replicas_timeout_s if s.wait_replicas else 0.0))
        return connect(s.replace(socket_timeout_s=timeout,
                                 connect_timeout_s=min(s.connect_timeout_s, timeout)),
                       name=connection_name(self.id))

    def _check_redis(self) -> None:
        url = self.settings.redis_url
        try:
            with translated(url):
                check_not_cluster_node(self.client, url)  # raises ConfigError: fatal
                policy = self.client.config_get("maxmemory-policy").get("maxmemory-policy")
        except ConfigError:
            raise
        except (RedisUnavailable, JobqError, Exception) as exc:  # CONFIG may be disabled (ACL)
            log.debug("cannot read maxmemory-policy: %s", exc)
            return
        if policy and policy != "noeviction":
            log.warning("Redis maxmemory-policy is %r: Redis may EVICT queued jobs when memory "
                        "is full. Set maxmemory-policy noeviction for a job queue.", policy)

    # -- helpers -------------------------------------------------------------------------
    def _on_done(self, outcomes: Sequence[tuple[Claimed, Outcome]]) -> None:
        for job, state in self.recorder.record_many(outcomes):
            self.hooks.after_job(job, state)

    def _sentinel_watch(self) -> dict[str, Any]:
        """The Heartbeat's Sentinel arguments: the worker's clients and its kept claim
        connection, checked against the master the sentinels name once a beat (the
        heartbeat's client first: its sentinel timeout is the shortest). None otherwise."""
        if not is_sentinel(self.settings):
            return {}
        pinned = self.fetch.pinned
        return {"sentinel_clients": [self.beat_client, self.client, self.fetch.blocking],
                "kept": [pinned] if pinned is not None else []}

    def _child_imports(self) -> list[str]:
        modules = {t.fn.__module__ for t in registered().values()}
        modules.discard("__main__")
        return list(dict.fromkeys([*self.imports, *sorted(modules)]))

    def _job_handle(self, job: Claimed) -> Job:
        q = self._queue_handles.get(job.queue)
        if q is None:
            q = self._queue_handles[job.queue] = Queue(job.queue, settings=self.settings,
                                                       redis=self.client)
        return Job(q, job.id, job.fields)

