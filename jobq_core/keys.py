"""Keyspace: the only place a Redis key name is built.

Every key of one queue sits under a `{queue}` hash tag so the whole queue lives in one
Redis Cluster slot and a Lua script may touch all of it. Every global key (the queue and
worker registries, the scheduler's keys, the audit log, the dashboard's secret and sessions)
sits under the one control tag `{@control}`: a queue name cannot contain '@', so no queue's
tag equals it, and every control script (lead, resign, advance) touches one slot. No script
is given control keys together with queue keys (tests/unit/test_key_slots.py).

The global keys' names before the control tag (`<prefix>:queues`, `<prefix>:{scheduler}:...`)
are LegacyKeyspace's; layout.py moves them.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from dataclasses import dataclass

from .errors import ConfigError

# Matched with fullmatch: `$` also matches before a trailing newline, so match() with
# `^...$` let "default\n" through.
AUDIT_MAX_ENTRIES = 10_000  # the audit log keeps this many newest records

# The hash tag of every global key: '@' is not allowed in a queue name (QUEUE_NAME_RE).
CONTROL_TAG = "{@control}"
QUEUE_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
# The characters and the longest length of an id jobq makes: JOB_ID_RE, its error message
# (JOB_ID_RULE), and the characters dashboard/jobids.py writes as they are in a URL.
JOB_ID_PUNCTUATION = "_.:-"
JOB_ID_CHARS = string.ascii_letters + string.digits + JOB_ID_PUNCTUATION
MAX_JOB_ID = 128
JOB_ID_RE = re.compile(f"[{re.escape(JOB_ID_CHARS)}]{{1,{MAX_JOB_ID}}}")
# What scripts append to a job's key for its side keys (Keyspace.attempts, logs, notify,
# dependents; ':settled' in _lib.lua, ':corrupt' in claim.lua and reap.lua). A job id that
# ends with one names another job's side key ('a:settled' is where job 'a' leaves its
# outcome when its retention is 0, overwriting that job): enqueue refuses it.
SIDE_KEY_SUFFIXES = (":attempts", ":logs", ":notify", ":dependents", ":settled", ":corrupt")
# The longest id of a stored job that reads and operator actions accept (stored_job_id).
MAX_STORED_JOB_ID = 1024
# Any id another client may have stored, but no control characters: a newline in a URL or
# form is an attack on a log or a header, never an id anyone can read.
STORED_JOB_ID_RE = re.compile(rf"[^\x00-\x1f\x7f]{{1,{MAX_STORED_JOB_ID}}}")
# What an id must be, as the errors of require_job_id and require_stored_job_id (and the
# dashboard's 400) say it.
JOB_ID_RULE = (f"use 1-{MAX_JOB_ID} letters, digits, {', '.join(map(repr, JOB_ID_PUNCTUATION))},"
               f" not ending with {', '.join(SIDE_KEY_SUFFIXES)} (another job's keys)")
STORED_JOB_ID_RULE = (f"a job id is 1-{MAX_STORED_JOB_ID:,} characters, none a control "
                      "character")


def check_queue_name(name: str) -> str:
    """Return `name` if it is a valid queue name, else raise ConfigError."""
    if not isinstance(name, str) or not QUEUE_NAME_RE.fullmatch(name):
        raise ConfigError(
            f"invalid queue name {name!r}: use 1-64 letters, digits, '_', '.', '-'"
        )
    return name


def valid_job_id(job_id: object) -> bool:
    """Whether `job_id` is an id jobq makes and enqueue accepts (JOB_ID_RE, and not ending
    with one of SIDE_KEY_SUFFIXES)."""
    return (isinstance(job_id, str) and bool(JOB_ID_RE.fullmatch(job_id))
            and not job_id.endswith(SIDE_KEY_SUFFIXES))


def stored_job_id(job_id: object) -> bool:
    """Whether `job_id` may name a job already stored: 1 to MAX_STORED_JOB_ID characters,
    none a control character (STORED_JOB_ID_RE).

    Another client may have written an id jobq would not make ('/', spaces, markup ...);
    reads and operator actions (requeue, purge, cancel) must still reach that job. A key
    built from such an id stays in the queue's slot: the queue's hash tag comes first."""
    return isinstance(job_id, str) and bool(STORED_JOB_ID_RE.fullmatch(job_id))


@dataclass(frozen=True)
class Keyspace:
    """Builds every key name from the configured prefix."""

    prefix: str = "jobq"

    def _q(self, queue: str, suffix: str) -> str:
        return f"{self.prefix}:{{{queue}}}:{suffix}"

    # Per-queue keys (one cluster slot per queue).
    def pending(self, queue: str) -> str:
        """zset id -> (100 - priority) * 1e13 + seq: highest priority first, FIFO within it."""
        return self._q(queue, "pending")

    def processing(self, queue: str) -> str:
        """zset id -> lease deadline in ms (Redis TIME)."""
        return self._q(queue, "processing")

    def claim_record(self, queue: str, worker_id: str) -> str:
        """string: the ids of a worker's last claim that leased jobs, and its jobs' ids and
        lease tokens (claim.lua), so a re-sent claim answers as the first; expires with the
        lease."""
        return self._q(queue, f"claimed:{worker_id}")

    def scheduled(self, queue: str) -> str:
        """zset id -> due time in ms (delayed jobs and retries waiting out their backoff)."""
        return self._q(queue, "scheduled")

    def completed(self, queue: str) -> str:
        """zset id -> retention expiry in ms."""
        return self._q(queue, "completed")

    def failed(self, queue: str) -> str:
        return self._q(queue, "failed")

    def dead(self, queue: str) -> str:
        return self._q(queue, "dead")

    def cancelled(self, queue: str) -> str:
        return self._q(queue, "cancelled")

    def state_set(self, queue: str, state: str) -> str:
        """The zset that holds the ids of jobs in `state`."""
        return self._q(queue, state)

    def marker(self, queue: str) -> str:
        """zset with at most one member: present while there may be work to claim.

        Workers block on it with BZPOPMIN; a marker is state, not a message, so a
        wake-up sent between a worker's empty claim and its block is not lost.
        """
        return self._q(queue, "marker")

    def seq(self, queue: str) -> str:
        """Counter giving FIFO order inside a priority."""
        return self._q(queue, "seq")

    def stats(self, queue: str) -> str:
        """hash of lifetime counters: enqueued, completed, failed, dead, retried, ..."""
        return self._q(queue, "stats")

    def history(self, queue: str) -> str:
        """hash ring of per-minute counts: field '<kind>:<minute mod N>' -> '<minute> <count>'."""
        return self._q(queue, "history")

    def runtime_prefix(self, queue: str) -> str:
        """Prefix of the run-time histograms; complete.lua and fail.lua append
        '<minute mod Settings.runtime_minutes>' (a ring of per-minute hashes, field 'm' -> the
        minute it holds) and 'all' (lifetime totals). Fields: '<task>|<bucket index>' ->
        attempts whose run time fell in that bucket of runtimes.BUCKETS_MS, '<task>|sum' ->
        their total ms, '<task>|fail' -> how many of them failed."""
        return self._q(queue, "runtime:")

    def runtime(self, queue: str, slot: int) -> str:
        return self.runtime_prefix(queue) + str(slot)

    def runtime_total(self, queue: str) -> str:
        return self.runtime_prefix(queue) + "all"

    def meta(self, queue: str) -> str:
        """hash of queue settings: paused, max_length."""
        return self._q(queue, "meta")

    def job_prefix(self, queue: str) -> str:
        """Prefix of job hashes; scripts append the id (same slot through the tag)."""
        return self._q(queue, "job:")

    def job(self, queue: str, job_id: str) -> str:
        return self.job_prefix(queue) + job_id

    def attempts(self, queue: str, job_id: str) -> str:
        """list of JSON records of finished attempts (capped)."""
        return self.job(queue, job_id) + ":attempts"

    def logs(self, queue: str, job_id: str) -> str:
        """string: the job's captured output (joblog.py's stored form), capped per attempt;
        scripts append ':logs' to the job's key, and it expires with the job."""
        return self.job(queue, job_id) + ":logs"

    def notify(self, queue: str, job_id: str) -> str:
        """list a result waiter blocks on; pushed only when someone waits."""
        return self.job(queue, job_id) + ":notify"

    def group(self, queue: str, group_id: str) -> str:
        """hash: how far group(group_id=...) got writing its group (n, started_ms, fanned,
        written); kept longer than the group's jobs, so a call repeated after their
        retention ended writes nothing again (dependencies.group)."""
        return self._q(queue, f"group:{group_id}")

    def dependents(self, queue: str, job_id: str) -> str:
        """set of 'queue/id' refs of deferred jobs waiting for this job to end."""
        return self.job(queue, job_id) + ":dependents"

    def unique_prefix(self, queue: str) -> str:
        """Prefix of unique-key locks (string -> id of the job holding the key, with a TTL)."""
        return self._q(queue, "unique:")

    def unique(self, queue: str, unique_key: str) -> str:
        return self.unique_prefix(queue) + unique_key

    def limits(self, queue: str) -> str:
        """hash limit key (a task name or a job's limit_key) -> '<concurrency> <rate> <per ms>'."""
        return self._q(queue, "limits")

    def limited(self, queue: str) -> str:
        """zset limit key with parked jobs -> when it may have room (ms; 0: when a job ends)."""
        return self._q(queue, "limited")

    def limit_prefix(self, queue: str) -> str:
        """Prefix of per-limit-key keys; claim.lua appends '<key>:running|parked|started'."""
        return self._q(queue, "limit:")

    def limit_running(self, queue: str, key: str) -> str:
        """set of ids of processing jobs counted against a concurrency cap (cleaned lazily)."""
        return f"{self.limit_prefix(queue)}{key}:running"

    def limit_parked(self, queue: str, key: str) -> str:
        """zset of ids of pending jobs waiting for room under a limit -> their pending score."""
        return f"{self.limit_prefix(queue)}{key}:parked"

    def limit_started(self, queue: str, key: str) -> str:
        """zset of the starts of a rate-limited key in its last period -> start time, ms."""
        return f"{self.limit_prefix(queue)}{key}:started"

    def ticks(self, queue: str) -> str:
        """hash schedule name -> '<last tick fired ms> <leader epoch>' (fire.lua's fence)."""
        return self._q(queue, "ticks")

    def error_groups(self, queue: str) -> str:
        """zset error group id -> last seen ms (capped: the oldest group is dropped)."""
        return self._q(queue, "errors")

    def error_group_prefix(self, queue: str) -> str:
        """Prefix of error group hashes; fail.lua appends the id (and ':ids' for the zset of
        the ids of the group's failed and dead jobs -> when they failed, ms)."""
        return self._q(queue, "error:")

    def error_group(self, queue: str, group_id: str) -> str:
        return self.error_group_prefix(queue) + group_id

    def error_group_ids(self, queue: str, group_id: str) -> str:
        return self.error_group(queue, group_id) + ":ids"

    def corrupt(self, queue: str, what: str) -> str:
        """Where a key of the wrong type is moved so the queue can carry on."""
        return self._q(queue, f"corrupt:{what}")

    def tasks(self, queue: str) -> str:
        """hash worker id -> '<valid until ms> <task>,<task>,...': the tasks each live worker
        serving the queue can run (advertise.lua), read when a worker meets a task it does
        not know (unknown.lua)."""
        return self._q(queue, "tasks")

    def bulk(self, queue: str, op_id: str) -> str:
        """hash describing one bulk operation (snapshot cutoff, cursor, progress); expires."""
        return self._q(queue, f"bulk:{op_id}")

    def bulk_lock(self, queue: str, op_id: str) -> str:
        """short-lived lock so two requests never step the same bulk operation at once."""
        return self._q(queue, f"bulk:{op_id}:lock")

    # Global keys: all in the one control slot, never in a script with a queue's keys.
    def _c(self, suffix: str) -> str:
        return f"{self.prefix}:{CONTROL_TAG}:{suffix}"

    def layout(self) -> str:
        """string '<layout version> <sweep until ms>': which key layout this keyspace has
        (layout.py), and until when processes look for keys an older version still writes."""
        return self._c("layout")

    def layout_lock(self) -> str:
        """held (SET NX PX) by the one process moving an older layout's keys."""
        return self._c("layout:lock")

    def queues(self) -> str:
        """set of known queue names."""
        return self._c("queues")

    def workers(self) -> str:
        """zset worker id -> last heartbeat ms."""
        return self._c("workers")

    def worker(self, worker_id: str) -> str:
        """hash describing one worker; expires when its heartbeats stop."""
        return self._c(f"worker:{worker_id}")

    def schedules(self) -> str:
        """zset schedule name -> next tick ms (+inf while disabled)."""
        return self._c("schedules")

    def schedule(self, name: str) -> str:
        """hash: def (JSON), rev, enabled, next_ms, last_tick_ms, last_job_id, fired, missed."""
        return self._c(f"schedule:{name}")

    def scheduler_leader(self) -> str:
        """hash token, epoch, owner, since_ms, renewed_ms; expires with the leader's lease."""
        return self._c("scheduler:leader")

    def scheduler_epoch(self) -> str:
        """Counter: the epoch of the latest leader (fencing token)."""
        return self._c("scheduler:epoch")

    def audit(self) -> str:
        """list of JSON records of operator actions, newest first, capped."""
        return self._c("audit")

    def secret(self, name: str) -> str:
        """a random secret shared by every process of one deployment (e.g. the dashboard's)."""
        return self._c(f"secret:{name}")

    def dashboard(self, rest: str) -> str:
        """A dashboard key: 'session:...', 'failures:...', 'wait:...' or 'known:...'."""
        return self._c(f"dashboard:{rest}")

    def dashboard_session(self, digest: str) -> str:
        """a dashboard login session, by the hash of its id: the account it belongs to
        (deleted at logout; a copied cookie is worth nothing without it)."""
        return self.dashboard(f"session:{digest}")

    def login_throttle(self, what: str, kind: str, digest: str) -> str:
        """dashboard login throttling of one client or account (`kind`), by hash: its count of
        recent failures (`what` = failures), or present while it must wait (`what` = wait)."""
        return self.dashboard(f"{what}:{kind}:{digest}")

    def login_known(self, account: str, client: str) -> str:
        """present while `client` (hash) logged in as `account` (hash) recently."""
        return self.dashboard(f"known:{account}:{client}")

    @staticmethod
    def check(queue: str) -> None:
        check_queue_name(queue)


def checked_job_id(job_id: object, ok: Callable[[object], bool], rule: str,
                   error: Callable[[str], Exception] = ConfigError,
                   adjective: str = "invalid") -> str:
    """Return `job_id` if `ok(job_id)` (ok implies a str), else raise `error` with the one
    message every check of an id gives: "<adjective> job id '<its first 60 characters>':
    <rule>" (never megabytes of a caller's input echoed into a log or a page)."""
    if not ok(job_id) or not isinstance(job_id, str):
        shown = str(job_id)
        shown = shown if len(shown) <= 60 else shown[:60] + "…"
        raise error(f"{adjective} job id {shown!r}: {rule}")
    return job_id


def require_job_id(job_id: object) -> str:
    """Return `job_id` if well-formed, else raise ConfigError (used for user-given ids)."""
    return checked_job_id(job_id, valid_job_id, JOB_ID_RULE)


def require_stored_job_id(job_id: object) -> str:
    """Return `job_id` if it may name a stored job (stored_job_id), else raise ConfigError
    (used for operator actions on jobs that exist, whoever wrote them)."""
    return checked_job_id(job_id, stored_job_id, STORED_JOB_ID_RULE)


@dataclass(frozen=True)
class LegacyKeyspace:
    """The global keys' names before the control tag (layout 1), for layout.py to move.
    Per-queue keys did not change."""

    prefix: str = "jobq"

    def queues(self) -> str:
        return f"{self.prefix}:queues"

    def workers(self) -> str:
        return f"{self.prefix}:workers"

    def worker(self, worker_id: str) -> str:
        return f"{self.prefix}:worker:{worker_id}"

    def schedules(self) -> str:
        return f"{self.prefix}:{{scheduler}}:schedules"

    def schedule(self, name: str) -> str:
        return f"{self.prefix}:{{scheduler}}:schedule:{name}"

    def scheduler_leader(self) -> str:
        return f"{self.prefix}:{{scheduler}}:leader"

    def scheduler_epoch(self) -> str:
        return f"{self.prefix}:{{scheduler}}:epoch"

    def audit(self) -> str:
        return f"{self.prefix}:audit"

    def secret(self, name: str) -> str:
        return f"{self.prefix}:secret:{name}"

    def dashboard(self, rest: str) -> str:
        """A dashboard key (session:..., failures:..., wait:..., known:...)."""
        return f"{self.prefix}:dashboard:{rest}"
