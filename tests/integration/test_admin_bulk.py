"""Engine additions the dashboard uses: stepped bulk operations with filters, the audit log,
handing back a dead worker's job, paged search and the shared secret."""

from __future__ import annotations

import pytest

from jobq_core import ConfigError, InvalidState, JobNotFound, Queue, Settings
from jobq_core.admin import Admin, Progress
from jobq_core.inspect import Inspector
from jobq_core.scripts import Scripts
from tests import tasks
from tests.helpers import drain

pytestmark = pytest.mark.cluster  # also on the Redis Cluster (tests/conftest.py)


@pytest.fixture
def admin(settings: Settings) -> Admin:
    return Admin(settings)


@pytest.fixture
def inspector(settings: Settings) -> Inspector:
    return Inspector(settings)


def _failed(settings: Settings, queue: Queue, messages: list[str]) -> None:
    queue.enqueue_many([(tasks.boom_once, [m]) for m in messages])
    drain(settings)


def test_bulk_requeue_all_in_small_steps(settings: Settings, queue: Queue, admin: Admin,
                                         inspector: Inspector) -> None:
    _failed(settings, queue, [f"m{i}" for i in range(23)])
    op = admin.start_bulk("default", "failed", "requeue", actor="alice")
    assert (op.total, op.done, op.finished) == (23, 0, False)
    queue.enqueue(tasks.boom_once, "late")  # not failed yet: never part of the snapshot
    steps = 0
    while not op.finished:
        op = admin.step_bulk("default", op.id, batch=5, budget_s=0)
        steps += 1
    assert steps >= 5 and op.done == 23 and op.left == 0
    assert inspector.counts()["default"]["pending"] == 24
    assert admin.bulk_status("default", op.id) == op


def test_bulk_purge_with_filter_only_touches_matches(settings: Settings, queue: Queue,
                                                     admin: Admin, inspector: Inspector) -> None:
    _failed(settings, queue, ["needle a", "hay", "needle b", "hay", "hay", "needle c"])
    op = admin.start_bulk("default", "failed", "purge", text="NEEDLE")
    while not op.finished:
        op = admin.step_bulk("default", op.id, batch=2, budget_s=0)
    assert op.done == 3 and op.examined == 6
    left = inspector.jobs("failed", "default").rows
    assert sorted(r.error_preview.splitlines()[-1] for r in left) == ["ValueError: hay"] * 3


def test_bulk_filter_cursor_handles_equal_scores(settings: Settings, queue: Queue,
                                                 admin: Admin, r: object) -> None:
    # Failed jobs retire at the same ms when drained together: scores tie.
    _failed(settings, queue, ["x"] * 12)
    key = admin.keys.failed("default")
    for m in admin.client.zrange(key, 0, -1):
        admin.client.zadd(key, {m: 1000})
    op = admin.start_bulk("default", "failed", "requeue", task="boom_once")
    while not op.finished:
        op = admin.step_bulk("default", op.id, batch=5, budget_s=0)
    assert op.done == 12


def test_bulk_cancel_pending_and_bad_requests(queue: Queue, admin: Admin) -> None:
    for i in range(4):
        queue.enqueue(tasks.add, i, i)
    op = admin.start_bulk("default", "pending", "cancel", task="add")
    op = admin.step_bulk("default", op.id)
    assert op.finished and op.done == 4
    with pytest.raises(ConfigError):
        admin.start_bulk("default", "failed", "explode")
    with pytest.raises(InvalidState):
        admin.start_bulk("default", "processing", "purge")
    with pytest.raises(JobNotFound):
        admin.step_bulk("default", "nosuchop")
    assert admin.bulk_status("default", "bad id!") is None


def test_empty_snapshot_is_finished_at_once(admin: Admin) -> None:
    op = admin.start_bulk("default", "dead", "purge")
    assert op.finished and op.total == 0 and op.percent == 100


def test_audit_log_newest_first_and_capped_fields(admin: Admin, inspector: Inspector) -> None:
    admin.record("alice", "requeue", queue="default", state="failed", count=3)
    admin.record("bob", "purge", queue="default", state="dead", count=1, detail="x" * 1000)
    page = inspector.audit()
    assert page.total == 2
    assert [e.actor for e in page.entries] == ["bob", "alice"]
    assert len(page.entries[0].detail) == 500 and page.entries[1].count == 3


def test_release_orphan_hands_back_a_dead_workers_job(settings: Settings, queue: Queue,
                                                      admin: Admin, inspector: Inspector) -> None:
    job = queue.enqueue(tasks.add, 1, 2)
    Scripts(admin.client, settings).claim(["default"], 1, "ghost-worker")
    assert inspector.workers_alive(["ghost-worker"]) == {"ghost-worker": False}
    with pytest.raises(InvalidState):
        admin.release_orphan("default", job.id, "some-other-worker")
    assert admin.release_orphan("default", job.id, "ghost-worker") == "pending"
    assert job.refresh().status == "pending"
    with pytest.raises(InvalidState):
        admin.release_orphan("default", job.id, "ghost-worker")


def test_search_pages_with_offset(settings: Settings, queue: Queue,
                                  inspector: Inspector) -> None:
    _failed(settings, queue, [f"needle {i}" if i % 2 else "hay" for i in range(10)])
    first = inspector.search("failed", "default", text="needle", limit=3)
    assert len(first.rows) == 3
    second = inspector.search("failed", "default", text="needle", limit=3,
                              offset=first.offset + first.scanned)
    assert len(second.rows) == 2
    assert not {r.id for r in first.rows} & {r.id for r in second.rows}


def test_shared_secret_is_stable(admin: Admin, settings: Settings) -> None:
    assert admin.shared_secret("dash") == Admin(settings).shared_secret("dash")
    assert len(admin.shared_secret("dash")) >= 32


def test_requeue_all_goes_past_entries_whose_retention_ended(settings: Settings, queue: Queue,
                                                            admin: Admin,
                                                            inspector: Inspector) -> None:
    # Retention expires the hashes; their ids stay in the set (lowest scores first) until a
    # later arrival trims them. A batch made only of those requeues nothing yet progresses.
    _failed(settings, queue, ["live a", "live b"])
    key = admin.keys.failed("default")
    admin.client.zadd(key, {f"expired-{i}": 1 + i for i in range(4)})
    progress = list(admin.requeue_all("default", "failed", batch=2))
    assert progress[-1] == Progress(2, 0)
    assert inspector.counts()["default"]["pending"] == 2
    drain(settings)  # both fail again
    admin.client.zadd(key, {f"expired-{i}": 1 + i for i in range(4)})
    op = admin.start_bulk("default", "failed", "requeue")
    while not op.finished:
        op = admin.step_bulk("default", op.id, batch=2, budget_s=0)
    assert op.done == 2 and op.left == 0
    assert inspector.counts()["default"]["pending"] == 2


def test_purge_all_pending_spares_jobs_enqueued_after_it_started(settings: Settings) -> None:
    """A higher-priority job enqueued mid-purge scores below the snapshot's top: the score
    cutoff alone would delete it (found by review)."""
    from jobq_core import Queue
    from jobq_core.admin import Admin
    from tests import tasks

    q = Queue("default", settings=settings)
    old = q.enqueue_many([(tasks.add, (i, i)) for i in range(30)])
    admin = Admin(settings)
    steps = admin.purge_all("default", "pending", batch=10)
    first = next(steps)
    assert first.done == 10
    urgent = q.enqueue_call(tasks.add, args=(1, 1), priority=5)
    later = q.enqueue(tasks.add, 2, 2)
    rest = list(steps)
    assert rest[-1].done == 30
    assert all(q.job(j.id) is None for j in old)
    assert q.job(urgent.id) is not None and q.job(later.id) is not None
    assert q.count("pending") == 2


def test_stepped_purge_spares_new_jobs_too(settings: Settings) -> None:
    from jobq_core import Queue
    from jobq_core.admin import Admin
    from tests import tasks

    q = Queue("default", settings=settings)
    q.enqueue_many([(tasks.add, (i, i)) for i in range(20)])
    admin = Admin(settings)
    op = admin.start_bulk("default", "pending", "purge")
    urgent = q.enqueue_call(tasks.add, args=(1, 1), priority=9)
    while not op.finished:
        op = admin.step_bulk("default", op.id, batch=5)
    assert q.job(urgent.id) is not None and q.count("pending") == 1
