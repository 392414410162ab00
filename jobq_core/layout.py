"""Moving the global keys of an older jobq into the control slot (key layout 2).

Layout 1 kept the global keys outside any hash tag (`<prefix>:queues`, `:workers`,
`:worker:<id>`, `:audit`, `:secret:<name>`, `:dashboard:...`) and the scheduler's under
`{scheduler}`; layout 2 puts all of them under `{@control}` (keys.py). `migrate()` moves each
old key to its new name, one key at a time with DUMP/RESTORE or a read and a write (on a
cluster the old and the new key may live on different nodes, so never RENAME), merging with
what the new version may have written already:

- the queue registry and the workers zset: members added, then removed from the old key
  (only those read: a member an old process adds meanwhile stays for the next run);
- a worker's hash: the old one replaces the new one (only its own old process writes it);
- a schedule: moved unless the new layout has it already (then a new-version process stored
  it, and that definition stands); the epoch counter becomes the larger of the two, so a
  new leader fences every old one (fire.lua);
- the audit log: merged newest first by time, without duplicates, capped;
- the dashboard's shared secret: copied (kept, so an old dashboard that restarts signs with
  the same key); sessions and login throttling: moved with their TTL.

Every step is idempotent: running it twice, or in two processes at once, or while processes
of the old version still write the old names, loses nothing and doubles nothing. The old
scheduler lease is left alone (it expires on its own). `ensure_layout()` runs at the start of
workers, schedulers and dashboards: one GET of the layout key when there is nothing to do.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis

from .errors import JobqError
from .keys import AUDIT_MAX_ENTRIES, Keyspace, LegacyKeyspace

log = logging.getLogger("jobq.layout")

LAYOUT = 2
# How long after a migration processes look for keys an old-version process wrote since (a
# rolling deploy's old workers, producers and schedulers): long enough for any deploy.
SWEEP_MS = 24 * 3600 * 1000
# One process migrates under a lock of this TTL, renewed while it runs (MigrationLock); the
# others wait for it as long as it is renewed, and take over when it ends unrecorded.
LOCK_MS = 60_000

# The audit log of the new layout merged with entries of the old one: newest first by at_ms,
# each entry once, capped. One key, so one slot.
_MERGE_AUDIT = """
local seen, rows = {}, {}
local function add(e)
  if seen[e] then return end
  seen[e] = true
  rows[#rows + 1] = {tonumber(string.match(e, '"at_ms": *(%d+)') or '0'), #rows, e}
end
for _, e in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do add(e) end
for i = 2, #ARGV do add(ARGV[i]) end
table.sort(rows, function(a, b)
  if a[1] ~= b[1] then return a[1] > b[1] end
  return a[2] < b[2]
end)
redis.call('DEL', KEYS[1])
local n = math.min(#rows, tonumber(ARGV[1]))
for i = 1, n, 1000 do
  local chunk = {}
  for j = i, math.min(n, i + 999) do chunk[#chunk + 1] = rows[j][3] end
  redis.call('RPUSH', KEYS[1], unpack(chunk))
end
return n
"""

# The old audit log without the entries a migration read (ARGV[1]: the newest of them, read
# at the head): it and everything after it go, what an old process pushed since stays. Not an
# LTRIM by the count read: an old process trims its full log to the cap after each push,
# which drops read entries from the tail, and the count then cut the new one off too.
_DROP_READ_AUDIT = """
local rows = redis.call('LRANGE', KEYS[1], 0, -1)
for i, e in ipairs(rows) do
  if e == ARGV[1] then
    if i == 1 then redis.call('DEL', KEYS[1]) else redis.call('LTRIM', KEYS[1], 0, i - 2) end
    return i - 1
  end
end
return #rows
"""

# The migration lock's TTL set to ARGV[2] ms again if this process still holds it.
# KEYS[1] layout lock  ARGV[1] the holder's token  ARGV[2] lock ms
# Returns 1 renewed; 0 not held (it expired and another process may hold it now)
_RENEW_LOCK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

# The migration lock deleted if this process still holds it: a GET then a DEL could delete
# the lock of a process that took it after ours expired between the two.
# KEYS[1] layout lock  ARGV[1] the holder's token. Returns 1 deleted; 0 not held.
_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""

# The epoch counter raised to at least ARGV[1] (never lowered: a new leader may have counted).
_RAISE_EPOCH = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"""


@dataclass
class Report:
    """What a migration moved (or, in a dry run, would move): one line per old key."""

    dry_run: bool = False
    lines: list[str] = field(default_factory=list)
    moved: int = 0  # old keys (or members) that had data for the new layout
    sweep_until: int = 0  # the sweep window's end (ms) recorded by this run; 0: unchanged

    def add(self, old: str, new: str, what: str, counts: bool = True) -> None:
        self.lines.append(f"{old} -> {new}: {what}")
        self.moved += counts


def old_keys_written(client: redis.Redis, old: LegacyKeyspace) -> bool:
    """Whether any old key an old-version process keeps writing exists (one round trip on
    one server; one per node holding them on a cluster)."""
    pipe = client.pipeline(transaction=False)
    for key in (old.queues(), old.workers(), old.schedules(), old.scheduler_epoch(),
                old.audit()):
        pipe.exists(key)
    return any(pipe.execute())


class _Migration:
    """One run over every kind of old key. A full run also SCANs for the keys only a SCAN
    finds (dashboard sessions, secrets, schedules missing from the old schedules zset); a
    sweep (not full) looks only at what old-version processes keep writing: the registries,
    the schedules, the epoch and the audit log."""

    def __init__(self, client: redis.Redis, prefix: str, dry_run: bool, scan: bool,
                 renew: Callable[[], None]) -> None:
        self.c = client
        self.new, self.old = Keyspace(prefix), LegacyKeyspace(prefix)
        self.report = Report(dry_run)
        self.dry = dry_run
        self.scan = scan  # False: the SCANs find nothing (see migrate)
        self.renew = renew  # called between steps and keys: keeps the lock (MigrationLock)

    def run(self, full: bool) -> Report:
        if not full and not old_keys_written(self.c, self.old):
            return self.report
        steps = [self._queues, self._workers, lambda: self._schedules(full), self._epoch,
                 self._audit]
        if full:
            steps += [self._secrets, self._dashboard]
        for step in steps:
            self.renew()
            step()
        return self.report

    def _scan(self, pattern_prefix: str) -> Iterator[str]:
        """Keys starting with `pattern_prefix` on every primary (a cluster's SCAN goes to all)."""
        if not self.scan:
            return
        escaped = re.sub(r"([*?\[\]\\])", r"\\\1", pattern_prefix)
        for key in self.c.scan_iter(match=escaped + "*", count=1000):
            self.renew()
            yield key.decode() if isinstance(key, bytes) else str(key)

    def _restore(self, src: str, dst: str, *, replace: bool, keep_src: bool = False) -> str:
        """Copy `src` to `dst` with its TTL (DUMP/RESTORE: works across slots and nodes), then
        delete `src` unless `keep_src`. Returns 'moved', 'kept' (dst existed and not
        `replace`: the new layout's value stands) or '' (no src)."""
        # The TTL first: a key that expires between the two reads is then gone at DUMP, never
        # restored without its TTL (a worker's hash that would never expire).
        ttl: Any = self.c.pttl(src)
        data: Any = self.c.dump(src) if int(ttl) != -2 else None
        if data is None:
            return ""
        if not replace and self.c.exists(dst):
            outcome = "kept"
        else:
            outcome = "moved"
            if not self.dry:
                try:
                    self.c.restore(dst, max(int(ttl), 0), data, replace=replace)
                except redis.ResponseError as exc:  # created meanwhile: it stands
                    if "BUSYKEY" not in str(exc):
                        raise
                    outcome = "kept"
        if not self.dry and not keep_src:
            self.c.delete(src)
        return outcome

    def _queues(self) -> None:
        old, new = self.old.queues(), self.new.queues()
        names: Any = self.c.smembers(old)
        if not names:
            return
        if not self.dry:
            self.c.sadd(new, *names)
            self.c.srem(old, *names)  # only these: a name added meanwhile waits for next run
        self.report.add(old, new, f"{len(names)} queue name(s)")

    def _workers(self) -> None:
        old, new = self.old.workers(), self.new.workers()
        beats: Any = self.c.zrange(old, 0, -1, withscores=True)
        for worker_id, beat in beats:
            self.renew()
            # The old worker's hash is the fresh one: only that process writes its id.
            self._restore(self.old.worker(worker_id), self.new.worker(worker_id), replace=True)
            if not self.dry:
                self.c.zadd(new, {worker_id: beat})
                self.c.zrem(old, worker_id)
        if beats:
            self.report.add(old, new, f"{len(beats)} worker(s) with their hashes")

    def _schedules(self, full: bool) -> None:
        old_zset = self.old.schedules()
        listed: Any = self.c.zrange(old_zset, 0, -1, withscores=True)
        nexts: dict[str, float] = dict(listed)
        if full:
            start = self.old.schedule("")
            for key in self._scan(start):
                nexts.setdefault(key[len(start):], -1.0)
        for name, next_ms in sorted(nexts.items()):
            self._schedule(name, next_ms)
            if not self.dry:
                self.c.zrem(old_zset, name)

    def _schedule(self, name: str, next_ms: float) -> None:
        src, dst = self.old.schedule(name), self.new.schedule(name)
        fields: Any = self.c.hmget(src, ["enabled", "next_ms"])
        outcome = self._restore(src, dst, replace=False)
        if outcome == "moved":
            if next_ms < 0:  # not in the old zset: where add() would have put it
                enabled, stored = fields
                next_ms = float(stored or 0) if enabled == "1" else float("inf")
            if not self.dry:
                self.c.zadd(self.new.schedules(), {name: next_ms})
            self.report.add(src, dst, "schedule moved")
        elif outcome == "kept":
            self.report.add(src, dst, "the new layout has this schedule: kept, old one dropped")

    def _epoch(self) -> None:
        old, new = self.old.scheduler_epoch(), self.new.scheduler_epoch()
        value: Any = self.c.get(old)
        if value is None:
            return
        if not self.dry:
            self.c.eval(_RAISE_EPOCH, 1, new, int(value))
            self.c.delete(old)
        self.report.add(old, new, f"scheduler epoch {value} (the larger one kept)")

    def _audit(self) -> None:
        old, new = self.old.audit(), self.new.audit()
        entries: Any = self.c.lrange(old, 0, -1)
        if not entries:
            return
        if not self.dry:
            self.c.eval(_MERGE_AUDIT, 1, new, AUDIT_MAX_ENTRIES, *entries)
            # Drop only what was read (the oldest, at the tail): an entry an old process
            # pushed meanwhile stays at the head for the next run.
            self.c.eval(_DROP_READ_AUDIT, 1, old, entries[0])
        self.report.add(old, new, f"{len(entries)} audit entries merged")

    def _secrets(self) -> None:
        start = self.old.secret("")
        for name in sorted({key[len(start):] for key in self._scan(start)}):
            src, dst = self.old.secret(name), self.new.secret(name)
            # Copied, not moved: an old dashboard that restarts during the deploy reads it.
            if self._restore(src, dst, replace=False, keep_src=True) == "moved":
                self.report.add(src, dst, "secret copied (the old key stays)")

    def _dashboard(self) -> None:
        start = self.old.dashboard("")
        n = 0
        for key in self._scan(start):
            rest = key[len(start):]
            # Sessions are copied: an old dashboard still serving during the deploy keeps
            # finding them (a logout on a new one deletes both: SessionStore.end).
            n += self._restore(key, self.new.dashboard(rest), replace=False,
                               keep_src=rest.startswith("session:")) == "moved"
        if n:
            self.report.add(start + "*", self.new.dashboard("*"),
                            f"{n} dashboard session/login key(s) with their TTL")


def migrate(client: redis.Redis, prefix: str = "jobq", *, dry_run: bool = False,
            full: bool = True, scan: bool = True, lock: MigrationLock | None = None) -> Report:
    """Move every global key of the old layout to the control slot (see the module doc) and
    record layout 2; with `dry_run`, only report what would move. Idempotent; safe while
    old-version processes run. Not `full`: a sweep for what old processes wrote since, without
    the SCANs (_Migration). Not `scan`: a full run without them, where nothing says an old
    version ran (a fresh install). The caller holds `lock` (migration_lock; unless `dry_run`),
    renewed here as the run goes on; raises JobqError (nothing half done: every step is
    idempotent) if it was lost meanwhile."""
    renew = lock.renew if lock is not None else lambda: None
    report = _Migration(client, prefix, dry_run, scan, renew).run(full)
    renew()  # still held: no other process has begun meanwhile
    if not dry_run and (full or report.moved):
        report.sweep_until = _record(client, Keyspace(prefix), report.moved > 0)
    return report


def _record(client: redis.Redis, keys: Keyspace, moved: bool) -> int:
    """Write layout 2, and open or extend the window in which processes keep looking for
    old keys when this run moved something (an old version ran: its processes may still
    run); returns its end (ms; 0: none, e.g. a fresh install, whose workers then never look)."""
    now = int(time.time() * 1000)
    _, until = parse(client.get(keys.layout()))
    if moved:
        until = max(until, now + SWEEP_MS)
    client.set(keys.layout(), f"{LAYOUT} {until}")
    return until


def parse(raw: Any) -> tuple[int, int]:
    """(layout version, sweep until ms) of a layout key's value; (1, 0) when absent."""
    if raw is None:
        return 1, 0
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    version, _, until = text.partition(" ")
    try:
        return int(version), int(until or 0)
    except ValueError:
        return 1, 0


# A clock that runs on through a host's suspend, as the lock's TTL in Redis does (CLOCK_BOOTTIME,
# Linux); time.monotonic (CLOCK_MONOTONIC) stops during one. Monotonic where there is none.
_BOOTTIME: int | None = getattr(time, "CLOCK_BOOTTIME", None)


def _lock_clock_s() -> float:
    return time.clock_gettime(_BOOTTIME) if _BOOTTIME is not None else time.monotonic()


class MigrationLock:
    """The migration lock as migration_lock() took it: true if this process holds it."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self.client, self.key = client, key
        self.token = secrets.token_hex(8)
        self.held = bool(client.set(key, self.token, nx=True, px=LOCK_MS))
        self._set_at = _lock_clock_s()

    def __bool__(self) -> bool:
        return self.held

    def renew(self) -> None:
        """Set the lock's TTL to LOCK_MS again once a third of it has passed (a round trip
        then, a clock read otherwise: called for every key a migration SCANs). Raises
        JobqError when the lock is no longer this process's: it expired (a step took longer
        than two thirds of LOCK_MS, or the host was suspended: the clock read counts that)
        and another process may be migrating now."""
        if not self.held or _lock_clock_s() - self._set_at < LOCK_MS / 3000:
            return
        if not self.client.eval(_RENEW_LOCK, 1, self.key, self.token, LOCK_MS):
            self.held = False
            raise JobqError("the key layout migration lost its lock (a step took over "
                            f"{LOCK_MS * 2 // 3000} s); another process takes it over")
        self._set_at = _lock_clock_s()

    def release(self) -> None:
        if self.held:
            self.client.eval(_RELEASE_LOCK, 1, self.key, self.token)


@contextmanager
def migration_lock(client: redis.Redis, prefix: str = "jobq") -> Iterator[MigrationLock]:
    """Take the migration lock (the MigrationLock yielded is true) unless another process
    holds it (false): one process migrates at a time, so the others do not all SCAN at once.
    The holder passes it to migrate(), which renews it as the migration goes on."""
    lock = MigrationLock(client, Keyspace(prefix).layout_lock())
    try:
        yield lock
    finally:
        lock.release()


def ensure_layout(client: redis.Redis, prefix: str = "jobq",
                  wait: Callable[[float], Any] = time.sleep) -> int:
    """Make sure the keyspace has layout 2, at a process's start (and at a worker's beats
    while the sweep window is open). Costs one GET when the migration is done and its window
    closed. Otherwise: the first process migrates (under a lock; the others wait for it),
    and within the window each call moves what old-version processes wrote since (no SCAN).
    Returns the end of the sweep window in ms (0: closed, nothing more to look for)."""
    keys = Keyspace(prefix)
    version, until = parse(client.get(keys.layout()))
    now = int(time.time() * 1000)
    if version >= LAYOUT:
        if now >= until:
            return 0
        if not old_keys_written(client, LegacyKeyspace(prefix)):
            return until
        with migration_lock(client, prefix) as lock:
            # Not held: another process is moving them (two at once could drop an audit
            # entry an old process pushed between their reads); the next beat looks again.
            report = migrate(client, prefix, full=False, lock=lock) if lock else Report()
        if report.moved:
            log.info("moved %d key(s) an older jobq wrote to the old layout (rolling deploy)",
                     report.moved)
        return report.sweep_until or until
    while True:
        with migration_lock(client, prefix) as lock:
            if lock:
                return _first_migration(client, prefix, lock)
        done = _wait_for_migration(client, keys, wait)
        if done is not None:
            return done
        log.warning("the process migrating the key layout stopped before it was done; "
                    "taking over")


def _first_migration(client: redis.Redis, prefix: str, lock: MigrationLock) -> int:
    """The migration of a keyspace without layout 2, under `lock`; the sweep window's end."""
    # SCAN the whole keyspace only where an old version ran: it wrote one of these.
    old = LegacyKeyspace(prefix)
    ran = old_keys_written(client, old) or bool(client.exists(old.secret("dashboard")))
    report = migrate(client, prefix, scan=ran, lock=lock)
    if report.moved:
        log.warning("moved %d global key(s) of the older key layout to the control "
                    "slot {@control} (see docs/production.md, Upgrading)", report.moved)
    return report.sweep_until


def _wait_for_migration(client: redis.Redis, keys: Keyspace,
                        wait: Callable[[float], Any]) -> int | None:
    """Wait while another process migrates (holds the lock, which it renews as it goes):
    the sweep window's end once it recorded layout 2; None when its lock ended first (it
    stopped, or lost the lock: the caller takes over)."""
    while True:
        version, until = parse(client.get(keys.layout()))
        if version >= LAYOUT:
            return until
        if not client.exists(keys.layout_lock()):
            # Recorded between the two reads (the layout is written before the lock goes)?
            version, until = parse(client.get(keys.layout()))
            return until if version >= LAYOUT else None
        wait(0.1)
