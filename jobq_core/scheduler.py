"""The scheduler: periodic schedules stored in Redis, fired by one leader among any number of
scheduler processes.

    run_scheduler(settings, schedules=[Schedule("ping", "myapp.tasks.ping", every_s=30)])
    Worker(["default"], settings, with_scheduler=True).work()     # or inside a worker

Schedules are stored in Redis (Scheduler.add, or declared in code and stored when a scheduler
starts) and can be listed, enabled, disabled, run now and deleted by any process.

Leadership is a lease (lead.lua): an owner token with a PEXPIRE in Redis time, renewed every
third of `scheduler_lease_s`; followers retry at most every second (sooner when the lease is
about to end), so failover takes the lease plus at most a second. The leader fires each due
tick with fire.lua: the job id is `sched:<name>:<tick ms>`, and the queue's ticks hash lets a
schedule's ticks only go forward, under a leader epoch at least as new as the last one. So a
tick yields one job even when two processes believe they lead, and a leader that was paused
(GC, SIGSTOP, a migrating VM) and wakes up after losing its lease is refused. Besides, a leader
fires only within two thirds of a lease since its last successful renewal.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

import redis

from .config import Settings
from .connection import configure, redis_errors, translated
from .errors import ConfigError, JobqError, ScheduleNotFound
from .inspect import Inspector
from .job import Job, JobSpec
from .keys import Keyspace
from .layout import ensure_layout
from .options import JobOptions
from .queue import Queue
from .schedule import Schedule, check_schedule_name
from .scripts import Code, Scripts
from .spec import build_spec

if TYPE_CHECKING:
    from .records import ScheduleInfo

log = logging.getLogger("jobq.scheduler")
NOT_LEADER = 0  # advance.lua: the caller does not hold the leader lease
MAX_DUE_PER_STEP = 100

_DECLARED: dict[str, Schedule] = {}


def declare(schedule: Schedule) -> Schedule:
    """Declare a schedule in code (e.g. at import of a module passed to `jobq scheduler
    --import`); every scheduler stores declared schedules when it starts."""
    _DECLARED[schedule.name] = schedule
    return schedule


def declared() -> list[Schedule]:
    return list(_DECLARED.values())


class Scheduler:
    """Stores and manages schedules; `run()` takes part in leader election and fires ticks."""

    def __init__(self, settings: Settings | None = None, *, url: str | None = None,
                 redis: redis.Redis | None = None, name: str | None = None) -> None:
        self.settings, self.client = configure(settings, url, redis)
        self.keys = Keyspace(self.settings.prefix)
        self.scripts = Scripts(self.client, self.settings)
        self.token = secrets.token_hex(8)
        self.owner = name or f"{socket.gethostname()}:{os.getpid()}:{self.token[:4]}"
        self.epoch = 0  # >0 while this scheduler believes it leads
        self._valid_until = 0.0  # monotonic time up to which it may fire without renewing
        self._to_store: list[Schedule] = []
        self._layout_checked = False  # step(): an older jobq's keys moved before leading
        self._queues: dict[str, Queue] = {}
        lease = self.settings.scheduler_lease_s
        self._renew_s = lease / 3
        self._follow_s = min(1.0, lease / 3)

    # -- managing schedules ---------------------------------------------------------------
    @redis_errors
    def add(self, schedule: Schedule) -> bool:
        """Store a schedule, or update it when its definition changed (its next tick is then
        computed afresh). An unchanged definition keeps its state, so every process may add
        its schedules at start. Returns True if something was written."""
        key = self.keys.schedule(schedule.name)
        raw = schedule.to_json()
        stored: Any = self.client.hmget(key, ["def", "rev", "enabled"])
        old, rev, enabled = stored
        if old == raw:
            return False
        now = self._server_ms()
        on = enabled == "1" if old is not None else schedule.enabled
        next_ms = schedule.next_after(now)
        pipe = self.client.pipeline()
        pipe.hset(key, mapping={"def": raw, "rev": int(rev or 0) + 1, "enabled": int(on),
                                "next_ms": next_ms, "updated_ms": now})
        pipe.hsetnx(key, "created_ms", now)
        pipe.hdel(key, "error")
        pipe.zadd(self.keys.schedules(), {schedule.name: next_ms if on else math.inf})
        pipe.execute()
        log.info("schedule %s stored (next run at %d ms)", schedule.name, next_ms)
        return True

    def get(self, name: str) -> ScheduleInfo | None:
        """The stored schedule and its state (next/last run, counters), or None."""
        return Inspector(self.settings, redis=self.client).schedule(name)

    def list(self) -> list[ScheduleInfo]:
        """Every stored schedule, soonest next run first (disabled ones last)."""
        return Inspector(self.settings, redis=self.client).schedules()

    @redis_errors
    def enable(self, name: str) -> None:
        """Enable a schedule from its next tick after now; raises ScheduleNotFound."""
        schedule = self._load(name)
        next_ms = schedule.next_after(self._server_ms())
        pipe = self.client.pipeline()
        pipe.hset(self.keys.schedule(name), mapping={"enabled": 1, "next_ms": next_ms})
        pipe.zadd(self.keys.schedules(), {name: next_ms})
        pipe.execute()

    @redis_errors
    def disable(self, name: str) -> None:
        """Stop firing a schedule (it stays stored); raises ScheduleNotFound."""
        self._load(name)
        pipe = self.client.pipeline()
        pipe.hset(self.keys.schedule(name), "enabled", 0)
        pipe.zadd(self.keys.schedules(), {name: math.inf})
        pipe.execute()

    @redis_errors
    def delete(self, name: str) -> bool:
        """Forget a schedule; False if there was none. Jobs it made are not touched."""
        check_schedule_name(name)
        pipe = self.client.pipeline()
        pipe.delete(self.keys.schedule(name))
        pipe.zrem(self.keys.schedules(), name)
        return bool(pipe.execute()[0])

    @redis_errors
    def run_now(self, name: str) -> Job:
        """Enqueue one job of the schedule now, outside its ticks (enabled or not)."""
        schedule = self._load(name)
        now = self._server_ms()
        opts = JobOptions(job_id=f"sched:{name}:now:{now}:{secrets.token_hex(2)}",
                          **schedule.options)
        job = self._queue(str(schedule.queue)).enqueue_with(schedule.task, opts, schedule.args,
                                                            schedule.kwargs)
        self.client.hset(self.keys.schedule(name), mapping={"last_run_now_job_id": job.id,
                                                            "last_run_now_ms": now})
        return job

    def _load(self, name: str) -> Schedule:
        check_schedule_name(name)
        stored: Any = self.client.hmget(self.keys.schedule(name), ["def", "enabled"])
        raw, enabled = stored
        if raw is None:
            raise ScheduleNotFound(f"no schedule named {name!r}; list them with the read API "
                                   "or `jobq` and check the name")
        return Schedule.from_json(name, raw, enabled == "1")

    # -- the loop -------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None, schedules: Sequence[Schedule] = ()) -> None:
        """Store `schedules`, then lead or stand by until `stop` is set; Redis errors are
        logged and waited out. A leader resigns on the way out so another takes over."""
        stop = stop or threading.Event()
        self._to_store = list(schedules)
        log.info("scheduler %s started (lease %.1fs)", self.owner, self.settings.scheduler_lease_s)
        pause = 0.0
        try:
            while not stop.is_set():
                try:
                    with translated(self.settings.redis_url):
                        wait = self.step()
                    pause = 0.0
                except (JobqError, redis.RedisError) as exc:
                    self._valid_until = 0.0
                    pause = min(max(pause * 2, 0.1), self.settings.reconnect_max_s)
                    log.error("scheduler %s: %s; retrying in %.1fs", self.owner, exc, pause)
                    wait = pause
                stop.wait(wait)
        finally:
            self.resign()
            log.info("scheduler %s stopped", self.owner)

    def step(self) -> float:
        """One round: store pending schedules, hold or seek the lease, and as leader fire the
        due ticks and promote due delayed jobs. Returns the seconds to wait before the next."""
        if not self._layout_checked:
            # Before storing or leading: an older jobq's schedules and epoch move first, so
            # the schedules are found and a new leader's epoch fences every old one.
            ensure_layout(self.client, self.settings.prefix)
            self._layout_checked = True
        while self._to_store:
            self.add(self._to_store[0])
            self._to_store.pop(0)
        sent = time.monotonic()
        epoch, now, left_ms = self.scripts.lead(self.token, self._lease_ms, self.owner)
        if not epoch:
            self._lost_lease()
            # Retry when the holder's lease ends, or within a second (a lease without a
            # TTL, left_ms < 0, is never waited on closely).
            left_s = left_ms / 1000 if left_ms > 0 else self._follow_s
            return max(0.01, min(self._follow_s, left_s))
        if epoch != self.epoch:
            log.info("scheduler %s leads (epoch %d)", self.owner, epoch)
        self.epoch = epoch
        self._valid_until = sent + self.settings.scheduler_lease_s * 2 / 3
        due: Any = self.client.zrangebyscore(self.keys.schedules(), "-inf", now, start=0,
                                             num=MAX_DUE_PER_STEP)
        for name in due:
            if not self._holding():
                break
            self._fire(str(name), now + int((time.monotonic() - sent) * 1000))
        if self.epoch:
            self._promote()
        nxt: Any = self.client.zrange(self.keys.schedules(), 0, 0, withscores=True)
        now += int((time.monotonic() - sent) * 1000)
        until_due = (nxt[0][1] - now) / 1000 if nxt else math.inf
        return max(0.0, min(self._renew_s, until_due))

    def resign(self) -> None:
        """Give the lease up if held (best effort), so a follower takes over at once."""
        if not self.epoch:
            return
        self.epoch = 0
        try:
            with translated(self.settings.redis_url):
                self.scripts.resign(self.token)
        except JobqError as exc:
            log.warning("scheduler %s could not resign: %s (the lease will expire)",
                        self.owner, exc)

    def _holding(self) -> bool:
        """Whether this scheduler may fire now: within 2/3 of a lease since the last renewal,
        else after renewing it."""
        if self.epoch and time.monotonic() < self._valid_until:
            return True
        sent = time.monotonic()
        epoch, _, _ = self.scripts.lead(self.token, self._lease_ms, self.owner)
        if not epoch:
            self._lost_lease()
            return False
        self.epoch = epoch
        self._valid_until = sent + self.settings.scheduler_lease_s * 2 / 3
        return True

    def _fire(self, name: str, now: int) -> None:
        fields: Any = self.client.hgetall(self.keys.schedule(name))
        if not fields or fields.get("enabled") != "1":
            # A stray entry (deleted or disabled meanwhile): park it out of the due range.
            self.client.zadd(self.keys.schedules(), {name: math.inf}, xx=True)
            return
        try:
            schedule = Schedule.from_json(name, fields["def"])
        except ConfigError as exc:
            log.error("%s; disabling it", exc)
            self.client.hset(self.keys.schedule(name), mapping={"enabled": 0, "error": str(exc)})
            self.client.zadd(self.keys.schedules(), {name: math.inf})
            return
        plan = schedule.plan(int(fields.get("next_ms") or now), now)
        last_tick, last_job, created, missed = 0, "", 0, plan.missed
        if missed:
            log.warning("schedule %s missed %d tick(s) (policy %s)", name, missed,
                        schedule.missed)
        for tick in plan.ticks:
            if not self._holding():
                return
            spec = self._spec(schedule, tick)
            code = self.scripts.fire(str(schedule.queue), name, tick, self.epoch, spec)
            if code == Code.FENCED:
                log.warning("scheduler %s: a newer leader fired %s; stepping down", self.owner,
                            name)
                self.epoch, self._valid_until = 0, 0.0
                return
            if code == Code.QUEUE_FULL:
                log.warning("schedule %s: queue %s is full; tick %d missed", name,
                            schedule.queue, tick)
                missed += 1
                continue
            created += code
            last_tick, last_job = tick, spec.id
        if self.scripts.advance(self.token, name, fields.get("rev", ""), plan.next_ms, last_tick,
                                last_job, created, missed) == NOT_LEADER:
            self._lost_lease()

    def _lost_lease(self) -> None:
        """Redis says another scheduler holds the lease (or none does): stop firing, and say
        so once, whichever call noticed (lead.lua or advance.lua)."""
        if self.epoch:
            log.warning("scheduler %s lost the leader lease", self.owner)
        self.epoch, self._valid_until = 0, 0.0

    def _spec(self, schedule: Schedule, tick: int) -> JobSpec:
        # An enqueue's validation and encoding, with the tick's deterministic id.
        return build_spec(str(schedule.queue), self.settings, schedule.task, schedule.args,
                          schedule.kwargs, JobOptions(job_id=schedule.job_id(tick),
                                                      **schedule.options))

    def _promote(self) -> None:
        queues: Any = self.client.smembers(self.keys.queues())
        for q in sorted(str(q) for q in queues)[:100]:
            self.scripts.promote(q)

    def _queue(self, name: str) -> Queue:
        q = self._queues.get(name)
        if q is None:
            q = self._queues[name] = Queue(name, settings=self.settings, redis=self.client)
        return q

    def _server_ms(self) -> int:
        reply: Any = self.client.time()
        sec, usec = reply
        return int(sec) * 1000 + int(usec) // 1000

    @property
    def _lease_ms(self) -> int:
        return int(self.settings.scheduler_lease_s * 1000)


def run_scheduler(settings: Settings | None = None, *, schedules: Sequence[Schedule] = (),
                  imports: Sequence[str] = (), stop: threading.Event | None = None) -> None:
    """Run a scheduler process until SIGTERM/SIGINT (or `stop`): import `imports` (modules
    that declare schedules), store the declared and given schedules, then lead or stand by.
    Any number may run; exactly one fires each tick. This is what `jobq scheduler` runs."""
    settings = settings or Settings.from_env()
    for module in imports:
        importlib.import_module(module)
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.warning("%s: scheduler stopping", signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    Scheduler(settings).run(stop, [*declared(), *schedules])
