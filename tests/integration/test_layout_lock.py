"""The key layout migration's lock (layout.py) is renewed while a migration runs, so a
process that starts meanwhile waits for it instead of migrating at the same time (review
finding: LOCK_MS without renewal). On one server and on the cluster."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis

from jobq_core import Queue, Settings, layout
from jobq_core.errors import JobqError, RedisUnavailable
from jobq_core.keys import Keyspace, LegacyKeyspace
from jobq_core.layout import ensure_layout
from jobq_core.scripts import Scripts
from jobq_core.worker import heartbeat
from tests import tasks
from tests.helpers import worker_thread
from tests.integration.test_layout import write_old_layout

pytestmark = pytest.mark.cluster

LOCK_MS = 600
STEP_S = 0.05  # each dashboard key's move, made slow: 30 of them outlast the lock twice


def failing_at_start(monkeypatch: pytest.MonkeyPatch, error: Exception) -> list[str]:
    """The worker's layout check raises `error` the first time (at its start), then runs as
    it would; returns the list of calls made so far (it grows)."""
    real, calls = heartbeat.ensure_layout, []

    def check(client: redis.Redis, prefix: str) -> int:
        calls.append(prefix)
        if len(calls) == 1:
            raise error
        return real(client, prefix)

    monkeypatch.setattr(heartbeat, "ensure_layout", check)
    return calls


def test_a_slow_migration_keeps_its_lock_and_a_process_starting_meanwhile_waits(
        settings: Settings, r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lock (60 s) expired under a long migration (SCANs over a big keyspace): the next
    process to start took it and migrated at the same time (two audit merges at once can
    drop an entry), and waiters went on before the layout was recorded."""
    monkeypatch.setattr(layout, "LOCK_MS", LOCK_MS)
    write_old_layout(r, settings)
    old = LegacyKeyspace(settings.prefix)
    for i in range(30):
        r.set(old.dashboard(f"login:{i}"), "1", ex=3600)
    running, most = [0], [0]
    count = threading.Lock()
    began = [0.0]
    lock_expired = threading.Event()  # as it would have without renewal
    restore, run = layout._Migration._restore, layout._Migration.run

    def slow_restore(self: Any, *args: Any, **kwargs: Any) -> str:
        time.sleep(STEP_S)
        if time.monotonic() - began[0] > LOCK_MS / 1000 * 1.5:
            lock_expired.set()
        return restore(self, *args, **kwargs)

    def counted_run(self: Any, full: bool) -> Any:
        with count:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            return run(self, full)
        finally:
            with count:
                running[0] -= 1

    monkeypatch.setattr(layout._Migration, "_restore", slow_restore)
    monkeypatch.setattr(layout._Migration, "run", counted_run)
    results: list[int] = []
    began[0] = time.monotonic()
    first = threading.Thread(target=lambda: results.append(ensure_layout(r, settings.prefix)))
    first.start()
    try:
        assert lock_expired.wait(20)
        second = ensure_layout(r, settings.prefix)  # a process that starts now
    finally:
        first.join(30)
    assert most[0] == 1, "two processes migrated at once"
    assert results and second == results[0] > 0  # it waited for the first one's result


def test_a_waiter_takes_over_from_a_migrator_that_stopped(
        settings: Settings, r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """A migrator killed mid-run leaves its lock to expire; a waiter went on without the
    layout recorded (and migrated nothing until the process restarted)."""
    monkeypatch.setattr(layout, "LOCK_MS", LOCK_MS)
    write_old_layout(r, settings)
    keys = Keyspace(settings.prefix)
    r.set(keys.layout_lock(), "a-killed-migrator", px=300)
    assert ensure_layout(r, settings.prefix) > 0
    assert layout.parse(r.get(keys.layout()))[0] == layout.LAYOUT


def test_a_beat_that_waits_for_a_migration_still_renews_the_running_jobs_leases(
        settings: Settings, r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker whose layout check at start failed (Redis not up yet) checks at its next
    beat; with the layout not recorded and another process migrating, that beat waited for
    the migration (as long as it runs since 6f2b43e; a full one, SCANs over a big keyspace,
    ran in the beat when this worker took the lock). Its heartbeat neither renewed nor fenced
    the running job: the lease ran out and another worker's reaper took the job while it
    ran here (two runs at once)."""
    settings = settings.replace(lease_s=2.0, heartbeat_s=0.5)
    keys = Keyspace(settings.prefix)
    r.set(keys.layout_lock(), "another-process", px=60_000)  # migrating, not recorded yet
    calls = failing_at_start(monkeypatch, RedisUnavailable("Redis is not up yet"))
    job = Queue("default", settings=settings).enqueue(tasks.sleep_for, 4.0)
    try:
        with worker_thread(settings):
            deadline = time.monotonic() + 10
            while job.refresh().status != "processing":
                assert time.monotonic() < deadline, "the job never started"
                time.sleep(0.02)
            time.sleep(settings.lease_s + 2 * settings.heartbeat_s)  # the lease, unrenewed
            assert len(calls) > 1, "no beat checked the layout"
            assert Scripts(r, settings).reap("default") == [], "its lease ran out"
            assert job.result(timeout_s=10) == 4.0
    finally:
        r.set(keys.layout(), f"{layout.LAYOUT} 0")  # the other process is done


def test_a_migrator_whose_lock_was_taken_over_as_it_ends_leaves_the_new_holders_lock(
        settings: Settings, r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lock was released with a GET, then a DEL: when it expired between the two and
    another process took it, the DEL removed that process's lock, and a third could then
    migrate at the same time as it. Here the other process takes it right after the
    release's first command."""
    lock_key = Keyspace(settings.prefix).layout_lock()
    real = type(r).execute_command
    taken = []

    def then_taken_over(self: redis.Redis, *args: Any, **kwargs: Any) -> Any:
        out = real(self, *args, **kwargs)
        if not taken and lock_key in args:
            taken.append(args[0])
            real(self, "SET", lock_key, "the-next-holder")
        return out

    with layout.migration_lock(r, settings.prefix) as lock:
        assert lock
        monkeypatch.setattr(type(r), "execute_command", then_taken_over)
    monkeypatch.undo()
    assert taken
    assert r.get(lock_key) == "the-next-holder"


def test_a_worker_whose_start_migration_lost_its_lock_starts_and_checks_again(
        settings: Settings, r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """A migration that loses its lock raises JobqError (nothing half done); at a worker's
    start only RedisUnavailable was caught there, so the worker exited instead of leaving
    the layout to its next beat, as it does when Redis is down."""
    settings = settings.replace(heartbeat_s=0.2)
    calls = failing_at_start(monkeypatch, JobqError("the key layout migration lost its lock"))
    job = Queue("default", settings=settings).enqueue(tasks.add, 2, 3)
    with worker_thread(settings):
        assert job.result(timeout_s=10) == 5
        deadline = time.monotonic() + 10
        while len(calls) < 2:  # the next beat checks again, aside
            assert time.monotonic() < deadline, "no beat checked the layout again"
            time.sleep(0.02)


def test_a_migrator_resumed_from_a_host_suspend_finds_its_lock_gone(
        settings: Settings, r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """CLOCK_MONOTONIC (time.monotonic) stops while the host is suspended, Redis's TTLs do
    not: after a suspend longer than the lock's TTL, renew() skipped its round trip (less
    than a third of LOCK_MS had passed on that clock) and the migration's next steps ran
    without the lock, perhaps beside another migrator's. Here the suspend is the boot clock
    moving on by a TTL while the monotonic clock does not."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    if boottime is None:
        pytest.skip("no CLOCK_BOOTTIME on this system: renew() reads the monotonic clock")
    lock_key = Keyspace(settings.prefix).layout_lock()
    real = time.clock_gettime
    suspend_s = layout.LOCK_MS / 1000

    def suspended(clock: int) -> float:
        return real(clock) + (suspend_s if clock == boottime else 0.0)

    with layout.migration_lock(r, settings.prefix) as lock:
        assert lock
        r.set(lock_key, "the-next-holder")  # the TTL ran out meanwhile and another took it
        monkeypatch.setattr(time, "clock_gettime", suspended)
        with pytest.raises(JobqError, match="lost its lock"):
            lock.renew()
    assert r.get(lock_key) == "the-next-holder"
