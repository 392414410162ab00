"""Upgrading a running install to the control-slot key layout (layout.py, issue 14).

The old layout is written by the previous version's own code pointed at the old key names
(LegacyKeyspace: Scheduler.add, Admin.record, SessionStore.create, lead.lua) or, for the
worker heartbeat, by hand as it wrote it; after the migration everything reads back through
the normal read API, on one server and across the cluster's nodes."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import redis

from dashboard import app as dashboard_app
from dashboard import create_app
from dashboard.auth import Account
from dashboard.sessions import SessionStore, _digest
from jobq_core import JobqError, Settings
from jobq_core.admin import Admin
from jobq_core.inspect import Inspector
from jobq_core.keys import Keyspace, LegacyKeyspace
from jobq_core.layout import LAYOUT, ensure_layout, migrate, parse
from jobq_core.schedule import Schedule
from jobq_core.scheduler import Scheduler
from jobq_core.scripts import Scripts
from tests.helpers import drain

pytestmark = pytest.mark.cluster  # also on the Redis Cluster (tests/conftest.py)

ACCOUNT = Account("ops", "admin", "hash")


def old_version(obj: Any, settings: Settings) -> Any:
    """`obj` (anything with a `keys` Keyspace) writing the old key names, as before."""
    obj.keys = LegacyKeyspace(settings.prefix)
    if hasattr(obj, "scripts"):
        obj.scripts.keys = obj.keys
    return obj


def old_worker_beat(r: redis.Redis, settings: Settings, worker_id: str) -> None:
    """What the previous version's heartbeat wrote (Heartbeat.register)."""
    old = LegacyKeyspace(settings.prefix)
    now = int(time.time() * 1000)
    r.hset(old.worker(worker_id), mapping={"id": worker_id, "host": "h", "pid": 1,
                                           "queues": "default", "state": "idle",
                                           "beat_ms": now, "started_ms": now})
    r.pexpire(old.worker(worker_id), 30_000)
    r.zadd(old.workers(), {worker_id: now})


def write_old_layout(r: redis.Redis, settings: Settings) -> str:
    """A running install of the previous version; returns a dashboard session id."""
    old = LegacyKeyspace(settings.prefix)
    r.sadd(old.queues(), "default", "emails")
    old_worker_beat(r, settings, "w-old")
    sched = old_version(Scheduler(settings), settings)
    sched.add(Schedule("nightly", "tests.tasks.add", every_s=3600, args=(1, 2)))
    sched.add(Schedule("off", "tests.tasks.add", every_s=60, args=(3, 4), enabled=False))
    assert sched.scripts.lead("old-token", 30_000, "old-host")[0] == 1
    admin = old_version(Admin(settings), settings)
    for i in range(3):
        admin.record("ops", f"action {i}", queue="default")
    admin.shared_secret("dashboard")
    session_id = "a-session-id"  # as SessionStore.create wrote it
    record = {"name": ACCOUNT.name, "role": ACCOUNT.role, "fp": ACCOUNT.fingerprint}
    r.set(old.dashboard(f"session:{_digest(session_id)}"), json.dumps(record), ex=3600)
    return session_id


def assert_readable(settings: Settings, r: redis.Redis, session_id: str, secret: str,
                    epoch: int = 2) -> None:
    insp = Inspector(settings)
    assert insp.queues() == ["default", "emails"]
    assert [(w.id, w.alive) for w in insp.workers()] == [("w-old", True)]
    infos = {i.name: i for i in insp.schedules()}
    assert set(infos) == {"nightly", "off"}
    assert infos["nightly"].enabled and not infos["off"].enabled
    assert [e.action for e in insp.audit().entries] == ["action 2", "action 1", "action 0"]
    assert Admin(settings).shared_secret("dashboard") == secret
    assert SessionStore(settings, r, 3600).valid(session_id, ACCOUNT)
    # A new leader's epoch is above the old leader's, so fire.lua fences the old one.
    assert Scripts(r, settings).lead("new-token", 30_000, "new-host")[0] == epoch


def test_migration_moves_everything_and_a_second_run_changes_nothing(
        settings: Settings, r: redis.Redis) -> None:
    session_id = write_old_layout(r, settings)
    secret = str(r.get(LegacyKeyspace(settings.prefix).secret("dashboard")))
    dry = migrate(r, settings.prefix, dry_run=True)
    assert dry.moved >= 6 and Inspector(settings).queues() == []  # a dry run writes nothing

    report = migrate(r, settings.prefix)
    assert report.lines == dry.lines
    assert parse(r.get(Keyspace(settings.prefix).layout()))[0] == LAYOUT
    assert_readable(settings, r, session_id, secret)
    again = migrate(r, settings.prefix)
    assert again.moved == 0, again.lines
    r.delete(Keyspace(settings.prefix).scheduler_leader())  # lets assert_readable lead again
    assert_readable(settings, r, session_id, secret, epoch=3)
    old = LegacyKeyspace(settings.prefix)
    left = [k for k in (old.queues(), old.workers(), old.schedules(), old.audit(),
                        old.scheduler_epoch(), old.schedule("nightly")) if r.exists(k)]
    assert left == []


def test_startup_migrates_once_then_picks_up_what_old_processes_write(
        settings: Settings, r: redis.Redis) -> None:
    session_id = write_old_layout(r, settings)
    secret = str(r.get(LegacyKeyspace(settings.prefix).secret("dashboard")))
    until = ensure_layout(r, settings.prefix)
    assert until > time.time() * 1000 + 3600_000
    assert_readable(settings, r, session_id, secret)
    # Old processes of a rolling deploy go on writing the old names: a new producer's queue,
    # an old worker's beats, an old operator's action. The next check moves them.
    old = LegacyKeyspace(settings.prefix)
    r.sadd(old.queues(), "late")
    old_worker_beat(r, settings, "w-old-2")
    old_version(Admin(settings), settings).record("ops", "late action")
    assert ensure_layout(r, settings.prefix) >= until  # moved something: window extended
    insp = Inspector(settings)
    assert insp.queues() == ["default", "emails", "late"]
    assert {w.id for w in insp.workers() if w.alive} == {"w-old", "w-old-2"}
    assert insp.audit().entries[0].action == "late action"
    assert len(insp.audit().entries) == 4
    # Once the window closed, a start costs one GET and touches nothing.
    keys = Keyspace(settings.prefix)
    r.set(keys.layout(), f"{LAYOUT} {int(time.time() * 1000) - 1}")
    r.sadd(old.queues(), "after")
    assert ensure_layout(r, settings.prefix) == 0
    assert "after" not in Inspector(settings).queues()


def test_a_fresh_install_records_the_layout_without_scanning(
        settings: Settings, r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_scan(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a fresh install needs no SCAN of the keyspace")

    monkeypatch.setattr(r, "scan_iter", no_scan)
    # No sweep window: nothing of an old version to look for at each beat.
    assert ensure_layout(r, settings.prefix) == 0
    assert parse(r.get(Keyspace(settings.prefix).layout())) == (LAYOUT, 0)
    assert Inspector(settings).queues() == []


def test_an_old_dashboard_alone_is_found_and_its_sessions_copied(settings: Settings,
                                                                 r: redis.Redis) -> None:
    old = LegacyKeyspace(settings.prefix)
    old_version(Admin(settings), settings).shared_secret("dashboard")
    r.set(old.dashboard("session:abc"), "{}", ex=600)
    ensure_layout(r, settings.prefix)
    moved = Keyspace(settings.prefix).dashboard("session:abc")
    assert r.get(moved) == "{}" and 0 < int(r.ttl(moved)) <= 600
    assert r.exists(old.dashboard("session:abc"))  # copied: old dashboards still find it


def test_the_new_layout_wins_over_a_late_old_schedule(settings: Settings, r: redis.Redis
                                                       ) -> None:
    ensure_layout(r, settings.prefix)
    Scheduler(settings).add(Schedule("s", "tests.tasks.add", every_s=60, args=(1, 2)))
    late = Schedule("s", "tests.tasks.add", every_s=5, args=(1, 2))
    old_version(Scheduler(settings), settings).add(late)
    migrate(r, settings.prefix)
    info = Inspector(settings).schedule("s")
    assert info is not None and json.loads(str(r.hget(Keyspace(settings.prefix).schedule("s"),
                                                       "def")))["every_s"] == 60
    assert not r.exists(LegacyKeyspace(settings.prefix).schedule("s"))


@pytest.mark.parametrize("starts", ["worker", "scheduler", "dashboard"])
def test_each_long_running_process_migrates_when_it_starts(settings: Settings, r: redis.Redis,
                                                          starts: str) -> None:
    session_id = write_old_layout(r, settings)
    secret = str(r.get(LegacyKeyspace(settings.prefix).secret("dashboard")))
    if starts == "worker":
        drain(settings)
    elif starts == "scheduler":
        Scheduler(settings).step()
    else:
        create_app(settings)
    keys = Keyspace(settings.prefix)
    assert parse(r.get(keys.layout()))[0] == LAYOUT
    r.delete(keys.scheduler_leader())  # a scheduler that started leads: lead again below
    assert_readable(settings, r, session_id, secret, epoch=3 if starts == "scheduler" else 2)


def test_migrating_while_an_old_process_writes_loses_and_doubles_nothing(
        settings: Settings, r: redis.Redis) -> None:
    old_admin = old_version(Admin(settings), settings)
    old = LegacyKeyspace(settings.prefix)
    done = threading.Event()

    def old_process() -> None:  # an old dashboard's operator and an old producer, meanwhile
        for i in range(300):
            old_admin.record("ops", f"old {i}")
            r.sadd(old.queues(), f"q{i}")
        done.set()

    writer = threading.Thread(target=old_process)
    writer.start()
    while not done.is_set():
        migrate(r, settings.prefix, full=False)
    writer.join()
    migrate(r, settings.prefix)
    actions = [e.action for e in Inspector(settings).audit(limit=1000).entries]
    assert sorted(actions) == sorted(f"old {i}" for i in range(300))
    assert len(Inspector(settings).queues()) == 300


def test_old_dashboard_sessions_stay_valid_on_both_and_a_logout_ends_both(
        settings: Settings, r: redis.Redis) -> None:
    session_id = write_old_layout(r, settings)
    old = LegacyKeyspace(settings.prefix)
    ensure_layout(r, settings.prefix)
    # Copied, not moved: an old dashboard pod of the rolling deploy still finds it.
    assert r.exists(old.dashboard(f"session:{_digest(session_id)}"))
    # A session an old pod creates after the migration is valid on a new dashboard too.
    late = "late-session-id"
    record = {"name": ACCOUNT.name, "role": ACCOUNT.role, "fp": ACCOUNT.fingerprint}
    r.set(old.dashboard(f"session:{_digest(late)}"), json.dumps(record), ex=600)
    store = SessionStore(settings, r, 3600)
    assert store.valid(late, ACCOUNT)
    assert 0 < int(r.ttl(Keyspace(settings.prefix).dashboard_session(_digest(late)))) <= 600
    for sid in (session_id, late):  # a logout on a new dashboard ends it on the old ones
        store.end(sid)
        assert not store.valid(sid, ACCOUNT)
        assert not r.exists(old.dashboard(f"session:{_digest(sid)}"))


def test_a_dashboard_that_cannot_migrate_at_start_keeps_the_old_secret(
        settings: Settings, r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """The layout check failed (Redis trouble, or another migrator still running) and the
    dashboard created a new secret under {@control}; the migration then kept that one, and
    every session cookie signed with the old secret was invalid: everyone logged out."""
    write_old_layout(r, settings)
    secret = str(r.get(LegacyKeyspace(settings.prefix).secret("dashboard")))

    def failing(*args: Any, **kwargs: Any) -> int:
        raise JobqError("injected: the layout check failed")

    monkeypatch.setattr(dashboard_app, "ensure_layout", failing)
    assert create_app(settings).secret_key == secret
    monkeypatch.undo()
    ensure_layout(r, settings.prefix)
    assert Admin(settings).shared_secret("dashboard") == secret


def test_a_key_name_that_is_not_utf8_is_left_alone_and_the_rest_migrates(
        settings: Settings, r: redis.Redis) -> None:
    """Another writer's key under a scanned prefix whose name is not UTF-8 (every component
    migrates at start: with strict decoding it raised out of the SCAN and no worker,
    scheduler or dashboard could start)."""
    from jobq_core.connection import connect

    session_id = write_old_layout(r, settings)
    secret = str(r.get(LegacyKeyspace(settings.prefix).secret("dashboard")))
    old = LegacyKeyspace(settings.prefix)
    odd = [start.encode() + b"\xff\xfe" for start in
           (old.schedule(""), old.secret(""), old.dashboard(""))]
    for key in odd:
        r.execute_command("SET", key, b"x")
    report = migrate(connect(settings), settings.prefix)
    assert report.moved >= 6, report.lines
    assert_readable(settings, r, session_id, secret)
    assert all(r.exists(key) for key in odd)  # not ours: not moved, not deleted
