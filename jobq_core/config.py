"""Settings: every knob of jobq with its default, in one frozen dataclass.

Nothing else in jobq reads the environment: `Settings.from_env()` does, once.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import ConfigError

ENV_PREFIX = "JOBQ_"
# Settings.prefetch meaning "size it from what the worker measures" (JOBQ_PREFETCH=auto).
AUTO_PREFETCH = -1
# Settings.concurrency 0 with the thread pool.
THREAD_SLOTS = 8
POOLS = ("process", "thread", "async")
# Settings.concurrency 0 with the async pool: coroutines mostly wait, so many at once.
ASYNC_SLOTS = 100


@dataclass(frozen=True)
class Settings:
    """All defaults of the engine, worker and dashboard. Each has an env var JOBQ_<NAME>."""

    # Where Redis is; from_env() falls back to REDIS_URL (Heroku), then to the Redis of a
    # `jobq up` running in this folder or one above it (see discover.py), then to this.
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Where `jobq up` keeps its Redis data, the URL file other processes find it by, and the
    # dashboard password. Relative: looked for in the current folder and those above it.
    data_dir: str = ".jobq"
    # Prefix of every key jobq writes, so several apps can share one Redis.
    prefix: str = "jobq"
    # How long a claimed job is owned before the reaper may hand it to another worker.
    lease_s: float = 30.0
    # How often a worker extends its leases, beats its registry entry and reaps/promotes.
    heartbeat_s: float = 5.0
    # Lost leases / killed workers before a job is declared poison and moved to dead.
    max_deliveries: int = 3
    # Largest encoded args+kwargs accepted at enqueue (and largest result stored).
    max_payload_bytes: int = 1024 * 1024
    # Retries after a failed attempt, unless the task or job says otherwise.
    max_retries: int = 3
    # Exponential backoff between retries: base * 2**(retry-1), capped, with full jitter.
    retry_backoff_s: float = 1.0
    retry_backoff_max_s: float = 3600.0
    # Job time limit unless the task or job says otherwise (0 = none).
    timeout_s: float = 0.0
    # Extra time a timed-out job gets to stop before its process is killed.
    kill_grace_s: float = 2.0
    # How long the scheduler leader's lease lasts without renewal; a follower takes over
    # within this (plus up to a second) after the leader dies.
    scheduler_lease_s: float = 15.0
    # Longest a unique job key is held; it is free earlier, as soon as its job ends.
    unique_for_s: float = 24 * 3600.0
    # Retention: completed results, failed and dead jobs, cancelled jobs (seconds).
    result_ttl_s: int = 24 * 3600
    failed_ttl_s: int = 7 * 24 * 3600
    dead_ttl_s: int = 30 * 24 * 3600
    cancelled_ttl_s: int = 24 * 3600
    # Replicas that must hold an enqueue, a scheduler's tick, a claim, a lease renewal, a
    # completion or a failure before it counts as done (WAIT on the write's connection), so a
    # primary's failover cannot lose it; 0: none asked (no WAIT sent). See docs/production.md.
    wait_replicas: int = 0
    # Longest a write waits for those replicas (below socket_timeout_s and heartbeat_s); then
    # a producer gets ReplicationTimeout and a worker logs a warning and goes on.
    wait_replicas_timeout_s: float = 1.0
    # Redis client timeouts; every connection has them so a dead server can't hang us.
    socket_timeout_s: float = 5.0
    connect_timeout_s: float = 3.0
    # Sentinel: a producer (Queue, AsyncQueue) asks the sentinels which server is master at
    # most this often, before a write, and leaves a server they no longer name (0: before
    # every write). A worker asks once a heartbeat.
    sentinel_check_s: float = 0.25
    # Longest a worker blocks waiting for new jobs before re-checking signals.
    block_s: float = 1.0
    # Reconnect backoff cap when Redis is unreachable.
    reconnect_max_s: float = 5.0
    # Worker defaults. Jobs run at once; 0 = from the pool: the CPU count for the process
    # pool (as Celery's prefork and Dramatiq's processes), 8 threads for the thread pool (as
    # Dramatiq; the thread pool suits I/O-bound jobs, whose threads mostly wait).
    concurrency: int = 0
    # "process" (a child per slot), "thread", or "async" (one event loop running up to
    # `concurrency` jobs; sync tasks each in a thread beside it).
    pool: str = "process"
    # Async pool: log the task and stack when a coroutine blocks the event loop this long.
    loop_block_warn_s: float = 0.5
    # Jobs claimed ahead of free slots (held under lease in the worker). AUTO_PREFETCH (-1,
    # JOBQ_PREFETCH=auto): sized from the measured run times, so short jobs are claimed and
    # settled in batches and a long job never has jobs waiting behind it; N pins it; 0 = off.
    prefetch: int = -1
    # An idle worker claims in the same round trip as its wait (the claim is pipelined behind
    # the blocking pop): about a round trip less idle latency. Such a claim takes a short
    # pick-up lease (pickup_s) that the worker renews to lease_s as soon as it reads the
    # reply, so a worker frozen while idle (SIGSTOP, a paused container) holds that claim's
    # jobs for seconds, not for a whole lease.
    claim_on_wake: bool = True
    # A worker that claims a job whose task it does not know hands it back while a live
    # worker serving the queue knows the task (a rolling deploy); while none does, for this
    # long from the first time, then the job goes to dead "unknown task" (0: at once).
    unknown_task_grace_s: float = 120.0
    grace_s: float = 30.0
    # A burst worker (--burst) also waits for scheduled jobs due within this long: retries
    # waiting out their backoff, delayed jobs. One due later stays scheduled, and the worker
    # says so as it exits.
    burst_wait_s: float = 60.0
    # Per-job logs: what a task prints (stdout, stderr) and logs (`logging` records of its
    # thread or coroutine) is kept with its job, expiring with it. Off: nothing captured,
    # no cost (JOBQ_CAPTURE_LOGS=0, `jobq worker --no-capture-logs`).
    capture_logs: bool = True
    # Cap of one attempt's log; past it lines are only counted ("[... N lines / B bytes
    # dropped]"), so a job printing megabytes costs neither Redis nor worker memory.
    log_max_lines: int = 1000
    log_max_bytes: int = 64 * 1024
    # Also write a job's output through to the worker's own stdout/stderr, as without capture.
    log_echo: bool = True
    # How often a running job's new lines are written (a live tail); the rest goes with the
    # job's completion or failure write.
    log_flush_s: float = 1.0
    # Bounded batches for the maintenance scripts (promote due, reap expired).
    batch_size: int = 100
    # History of processed/failed counts per minute kept in Redis.
    history_minutes: int = 1440
    # Per-minute run-time histograms per task kept in Redis (a ring: older minutes are
    # overwritten), read by the Tasks page, `jobq tasks` and /metrics.
    runtime_minutes: int = 180
    # A problem is raised when a queue's next pending job has waited longer than this
    # (0 = never); a queue may set its own in its meta hash (field pending_age_warn_s).
    pending_age_warn_s: float = 300.0
    # Read API: largest page a caller may ask for.
    max_page_size: int = 500
    # Worker registry entries expire this long after the last heartbeat (multiples of it).
    worker_ttl_factor: float = 3.0
    # Dashboard.
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 5000
    dashboard_user: str = ""
    dashboard_password_hash: str = ""
    dashboard_readonly_user: str = ""
    dashboard_readonly_password_hash: str = ""
    dashboard_secret_key: str = ""
    # How many reverse proxies in front of the dashboard set X-Forwarded-For/-Proto/-Host/
    # -Prefix; only then are those headers believed (client address for throttling, https
    # for the cookie's Secure flag). 0: none are, whoever sends them.
    dashboard_trusted_proxies: int = 0
    # Extra Host names (comma-separated) the no-login mode answers to besides localhost,
    # 127.0.0.1 and ::1; with a login configured, when set, the only Host names accepted.
    dashboard_allowed_hosts: str = ""
    # Failed logins a client address or an account may make before each further one waits
    # 1, 2, 4 ... s, at most dashboard_login_lockout_max_s (kept short: the operator too).
    dashboard_login_free_attempts: int = 5
    dashboard_login_lockout_max_s: float = 60.0
    # Run jobs inline at enqueue (for users' own unit tests).
    eager: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.lease_s <= 0 or self.heartbeat_s <= 0:
            raise ConfigError("lease_s and heartbeat_s must be positive")
        if self.heartbeat_s * 2 > self.lease_s:
            raise ConfigError(
                f"heartbeat_s ({self.heartbeat_s}) must be at most half of lease_s ({self.lease_s})"
                " so a lease is renewed at least twice before it can expire"
            )
        if self.scheduler_lease_s < 0.3:
            raise ConfigError("scheduler_lease_s must be at least 0.3 seconds")
        if self.pool not in POOLS:
            raise ConfigError(f"pool must be one of {', '.join(POOLS)}, not {self.pool!r}")
        if self.loop_block_warn_s <= 0:
            raise ConfigError("loop_block_warn_s must be positive")
        if self.concurrency < 0:
            raise ConfigError("concurrency must be at least 1 (0: from the pool)")
        if self.prefetch < AUTO_PREFETCH:
            raise ConfigError("prefetch must be 0 or more, or auto")
        if self.unknown_task_grace_s < 0 or self.sentinel_check_s < 0:
            raise ConfigError("unknown_task_grace_s and sentinel_check_s must be 0 or more")
        self._check_wait_replicas()
        self._check_logs()
        if self.max_deliveries < 1 or self.runtime_minutes < 1:
            raise ConfigError("max_deliveries and runtime_minutes must be at least 1")
        if self.dashboard_trusted_proxies < 0 or self.dashboard_login_free_attempts < 1 \
                or self.dashboard_login_lockout_max_s <= 0:
            raise ConfigError("dashboard_trusted_proxies must be 0 or more, "
                              "dashboard_login_free_attempts at least 1 and "
                              "dashboard_login_lockout_max_s positive")
        if not self.prefix or any(c in self.prefix for c in "{} "):
            raise ConfigError(f"prefix must be non-empty without braces or spaces: {self.prefix!r}")

    def _check_wait_replicas(self) -> None:
        if self.wait_replicas < 0:
            raise ConfigError("wait_replicas must be 0 or more")
        # The heartbeat's client times out after min(socket_timeout_s, heartbeat_s) and its
        # lease renewals WAIT too: the client must outwait the WAIT.
        bound = min(self.socket_timeout_s, self.heartbeat_s)
        if self.wait_replicas and not 0 < self.wait_replicas_timeout_s < bound:
            raise ConfigError(f"wait_replicas_timeout_s ({self.wait_replicas_timeout_s}) must be "
                              f"positive and below socket_timeout_s and heartbeat_s ({bound})")

    def _check_logs(self) -> None:
        if self.log_max_lines < 1 or self.log_max_bytes < 256 or self.log_flush_s <= 0:
            raise ConfigError("log_max_lines must be at least 1, log_max_bytes at least 256 "
                              "and log_flush_s positive")

    @property
    def slots(self) -> int:
        """Jobs a worker runs at once: `concurrency`, or when it is 0 the pool's default."""
        if self.concurrency:
            return self.concurrency
        if self.pool == "async":
            return ASYNC_SLOTS
        return max(1, os.cpu_count() or 1) if self.pool == "process" else THREAD_SLOTS

    @property
    def pickup_wait_s(self) -> float:
        """Longest an idle wait that claims in its round trip blocks before it is sent again:
        a third of the lease, at most 3 s, divided in three (the wait, the reply, the
        renewal). See pickup_s."""
        return min(self.lease_s / 3, 3.0) / 3

    @property
    def pickup_s(self) -> float:
        """The lease of a claim made in an idle wait's round trip, until the worker that
        read the reply renews it: a third of the lease, at most 3 s, and with wait_replicas
        one WAIT timeout more. The claim's reply comes after its WAIT, which takes the whole
        timeout while a replica lags; without it in the lease every reply in that time
        was too late to start or left its renewal too little time (the renewal's own WAIT
        comes after the renewal is applied, so it does not count). Never above lease_s."""
        return min(3 * self.pickup_wait_s + self._wait_s, self.lease_s)

    @property
    def pickup_late_s(self) -> float:
        """How old a claim-on-wake reply may be (from when its wait was sent) for its jobs
        to start: pickup_s less a third of the base (pickup_wait_s), left for the renewal.
        An older one may carry pick-up leases reaped meanwhile: its jobs are handed back
        unstarted."""
        return self.pickup_s - self.pickup_wait_s

    @property
    def _wait_s(self) -> float:
        """How long a write's WAIT may hold its reply (0 without wait_replicas)."""
        return self.wait_replicas_timeout_s if self.wait_replicas else 0.0

    @property
    def lease_ms(self) -> int:
        return int(self.lease_s * 1000)

    @property
    def fence_after_s(self) -> float:
        """How long after its last renewal was sent a worker still runs a job. A lease renewed
        then expires no earlier than lease_s later by Redis's clock; the worker stops the job
        a margin before that: a heartbeat, or less when the lease is short, so a healthy
        worker (renewing every heartbeat) never trips it."""
        return self.lease_s - min(self.heartbeat_s, (self.lease_s - self.heartbeat_s) / 2)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from JOBQ_* variables (and REDIS_URL), then `overrides` on top; with no
        URL from either, the Redis of a `jobq up` found from the current folder
        (discover.find), else the default.

        Raises ConfigError naming the variable when a value does not parse.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        if "REDIS_URL" in env:
            values["redis_url"] = env["REDIS_URL"]
        for f in fields(cls):
            if f.name == "extra":
                continue
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            values[f.name] = _parse(f.name, f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if not values.get("redis_url"):
            from .discover import find

            found = find(values.get("data_dir") or cls.data_dir)
            if found:
                values["redis_url"] = found
            else:
                values.pop("redis_url", None)
        return cls(**values)


def _parse(name: str, type_name: Any, raw: str) -> Any:
    kind = str(type_name)
    try:
        if kind == "bool":
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind == "int":
            if name == "prefetch" and raw.strip().lower() == "auto":
                return AUTO_PREFETCH
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {kind}") from None
    return raw
