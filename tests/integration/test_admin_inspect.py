"""The read API (counts, pages, details, history, workers) and admin actions."""

from __future__ import annotations

import pytest

from jobq_core import InvalidState, JobNotFound, Queue, Settings
from jobq_core.admin import Admin
from jobq_core.inspect import Inspector
from tests import tasks
from tests.helpers import drain

pytestmark = pytest.mark.cluster  # also on the Redis Cluster (tests/conftest.py)


@pytest.fixture
def admin(settings: Settings) -> Admin:
    return Admin(settings)


@pytest.fixture
def inspector(settings: Settings) -> Inspector:
    return Inspector(settings)


def test_counts_for_every_state(settings: Settings, queue: Queue, inspector: Inspector) -> None:
    queue.enqueue(tasks.add, 1, 1)
    queue.enqueue(tasks.boom_once)
    queue.enqueue("tests.tasks.nope")
    drain(settings, unknown_task_grace_s=0)  # the unknown task: dead at once
    queue.enqueue(tasks.add, 2, 2)
    queue.enqueue_in(3600, tasks.add, 3, 3)
    queue.enqueue(tasks.add, 4, 4).cancel()
    counts = inspector.counts()
    assert counts == {"default": {"pending": 1, "scheduled": 1, "processing": 0,
                                  "completed": 1, "failed": 1, "dead": 1, "cancelled": 1}}
    info = inspector.queue_info("default")
    assert info["stats"]["enqueued"] == 6 and info["stats"]["completed"] == 1
    assert info["paused"] is False


def test_pages_are_bounded_and_ordered(settings: Settings, queue: Queue,
                                       inspector: Inspector) -> None:
    jobs = queue.enqueue_many([(tasks.add, (i, i)) for i in range(30)])
    page = inspector.jobs("pending", "default", offset=0, limit=10)
    assert page.total == 30 and [r.id for r in page.rows] == [j.id for j in jobs[:10]]
    last = inspector.jobs("pending", "default", offset=25, limit=10)
    assert [r.id for r in last.rows] == [j.id for j in jobs[25:]]
    newest = inspector.jobs("pending", "default", limit=3, newest_first=True)
    assert [r.id for r in newest.rows] == [j.id for j in reversed(jobs[-3:])]
    huge = inspector.jobs("pending", "default", limit=10**9, offset=10**12)
    assert huge.limit == settings.max_page_size and huge.rows == []
    row = page.rows[0]
    assert row.task == "tests.tasks.add" and row.args_preview == "[0,0]"


def test_big_args_are_previewed_not_read(queue: Queue, inspector: Inspector) -> None:
    queue.enqueue(tasks.echo, "x" * 100_000)
    row = inspector.jobs("pending", "default").rows[0]
    assert row.args_preview.startswith("<1000") and "bytes" in row.args_preview


def test_previews_cut_on_characters_not_bytes(settings: Settings, queue: Queue,
                                              inspector: Inspector) -> None:
    # 4-byte characters: rows.lua cuts bytes, never inside a character, and the row still
    # shows exactly 200 characters of args (head) and of error (tail).
    queue.enqueue(tasks.boom_once, "\U0001f600" * 300 + "\u00e9")
    drain(settings)
    row = inspector.jobs("failed", "default").rows[0]
    assert row.args_preview == '["' + "\U0001f600" * 198 + "…"
    assert row.error_preview.endswith("\U0001f600" * 10 + "\u00e9\n")
    assert len(row.error_preview) == 200 and row.task == "tests.tasks.boom_once"
    whole = inspector.rows("default", [(row.id, row.score)], full_error=True)[0]
    assert whole.error_preview.startswith("Traceback") and len(whole.error_preview) > 300


def test_error_previews_by_size(settings: Settings, queue: Queue,
                                inspector: Inspector) -> None:
    from jobq_core.keys import Keyspace

    ids = [j.id for j in queue.enqueue_many([(tasks.boom_once, ["x" * n])
                                             for n in (10_000, 19_000, 20)])]
    drain(settings)
    huge = "Traceback ...\n" + "y" * 70_000 + "\nValueError: huge\n"
    queue.client.hset(Keyspace(settings.prefix).job("default", ids[2]), "error", huge)
    rows = {r.id: r for r in inspector.jobs("failed", "default").rows}
    assert rows[ids[0]].error_preview.endswith("x" * 50 + "\n")  # the tail of the error
    assert len(rows[ids[1]].error_preview) == 200
    assert rows[ids[2]].error_preview == f"<{len(huge)} bytes of error text>"  # not read
    entries = [(i, rows[i].score) for i in ids]
    whole = {r.id: r for r in inspector.rows("default", entries, full_error=True)}
    assert len(whole[ids[1]].error_preview) > 19_000  # filters read errors whole
    assert "bytes of error text" in whole[ids[2]].error_preview


def test_rows_of_missing_or_broken_jobs(settings: Settings, queue: Queue,
                                        inspector: Inspector) -> None:
    from jobq_core.keys import Keyspace

    gone, broken, fine = queue.enqueue_many([(tasks.add, [i, i]) for i in range(3)])
    k = Keyspace(settings.prefix)
    queue.client.delete(k.job("default", gone.id))
    queue.client.delete(k.job("default", broken.id))
    queue.client.set(k.job("default", broken.id), "not a hash")
    page = inspector.jobs("pending", "default")
    assert [(r.id, r.exists) for r in page.rows] == [(gone.id, False), (broken.id, False),
                                                     (fine.id, True)]
    assert page.rows[0].task == "" and page.rows[0].args_preview == ""
    assert inspector.jobs("pending", "default", offset=3).rows == []
    assert inspector.jobs("pending", "default", offset=3).total == 3


def test_bad_state_or_queue_is_a_clear_error(inspector: Inspector) -> None:
    from jobq_core import ConfigError

    with pytest.raises(ConfigError, match="unknown state"):
        inspector.jobs("exploded", "default")
    with pytest.raises(ConfigError, match="queue name"):
        inspector.jobs("pending", "{evil}")


def test_job_detail_and_lookup_without_queue(settings: Settings, inspector: Inspector) -> None:
    q = Queue("mail", settings=settings)
    job = q.enqueue(tasks.boom, "x")
    drain(settings, ["mail"])
    detail = inspector.job(job.id)
    assert detail is not None and detail.queue == "mail" and detail.state == "failed"
    assert len(detail.attempts) == 3 and detail.json_field("args") == ["x"]
    assert detail.ttl_s is not None and detail.ttl_s > 0
    assert inspector.job("no-such-id") is None
    assert inspector.job("../../etc/passwd") is None


def test_search_filters_by_task_and_text(settings: Settings, queue: Queue,
                                         inspector: Inspector) -> None:
    queue.enqueue(tasks.boom_once, "needle in error")
    queue.enqueue(tasks.boom_once, "hay")
    queue.enqueue(tasks.add, 1, 1)
    drain(settings)
    found = inspector.search("failed", "default", text="needle")
    assert len(found.rows) == 1 and "needle" in found.rows[0].error_preview
    assert found.scanned == 2
    by_task = inspector.search("completed", "default", task="add")
    assert len(by_task.rows) == 1


def test_search_budget_stops_after_a_slice(settings: Settings, queue: Queue,
                                           inspector: Inspector,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from jobq_core import inspect

    monkeypatch.setattr(inspect, "SEARCH_SLICE", 5)
    queue.enqueue_many([(tasks.add, [i, i]) for i in range(12)])
    unbounded = inspector.search("pending", "default", text="nothing like it")
    assert unbounded.scanned == 12 and unbounded.rows == []
    # A spent budget still examines one slice, so a resumed scan always moves on.
    first = inspector.search("pending", "default", text="nothing like it", budget_s=0)
    assert first.scanned == 5
    second = inspector.search("pending", "default", text="nothing like it", budget_s=0,
                              offset=first.scanned)
    assert second.scanned == 5 and second.offset == 5
    hit = inspector.search("pending", "default", text="[11,", budget_s=0, offset=10)
    assert hit.scanned == 2 and len(hit.rows) == 1


def test_history_counts_per_minute(settings: Settings, queue: Queue,
                                   inspector: Inspector) -> None:
    for i in range(3):
        queue.enqueue(tasks.add, i, i)
    queue.enqueue(tasks.boom_once)
    drain(settings)
    points = inspector.history(minutes=5)
    assert len(points) == 5
    assert sum(p.completed for p in points) == 3 and sum(p.failed for p in points) == 1


def test_server_info(inspector: Inspector) -> None:
    info = inspector.server()
    assert info["version"] and info["maxmemory_policy"] == "noeviction"
    assert info["warnings"] == []


def test_cancel(queue: Queue, admin: Admin, settings: Settings) -> None:
    pending = queue.enqueue(tasks.add, 1, 1)
    scheduled = queue.enqueue_in(3600, tasks.add, 1, 1)
    admin.cancel("default", pending.id)
    assert scheduled.cancel() is True
    assert pending.refresh().status == "cancelled" and scheduled.refresh().status == "cancelled"
    with pytest.raises(JobNotFound):
        admin.cancel("default", "missing")
    done = queue.enqueue(tasks.add, 1, 1)
    drain(settings)
    with pytest.raises(InvalidState, match="completed"):
        admin.cancel("default", done.id)
    assert done.cancel() is False


@pytest.mark.single_only("registers a task in this process: a second run finds it registered")
def test_requeue_dead_after_deploy(settings: Settings, queue: Queue, admin: Admin) -> None:
    from jobq_core import task

    job = queue.enqueue("tests.late.deployed", 5)
    drain(settings, unknown_task_grace_s=0)  # no worker knows it: dead at once
    assert job.refresh().status == "dead"

    @task(name="tests.late.deployed")
    def deployed(x: int) -> int:
        return x * 2

    assert admin.requeue("default", "dead", [job.id]) == 1
    drain(settings)
    assert job.result(timeout_s=1) == 10


def test_requeue_all_is_batched_over_a_snapshot(settings: Settings, queue: Queue,
                                                admin: Admin) -> None:
    for i in range(25):
        queue.enqueue(tasks.boom_once, str(i))
    drain(settings)
    steps = list(admin.requeue_all("default", "failed", batch=10))
    assert [s.done for s in steps] == [10, 20, 25] and steps[-1].left == 0
    assert queue.count("pending") == 25 and queue.count("failed") == 0
    with pytest.raises(InvalidState):
        list(admin.requeue_all("default", "pending"))


def test_purge(settings: Settings, queue: Queue, admin: Admin) -> None:
    jobs = [queue.enqueue(tasks.boom_once) for _ in range(5)]
    drain(settings)
    assert admin.purge("default", "failed", [jobs[0].id]) == 1
    assert queue.job(jobs[0].id) is None
    steps = list(admin.purge_all("default", "failed", batch=2))
    assert steps[-1].done == 4 and queue.count("failed") == 0
    assert all(queue.job(j.id) is None for j in jobs)
    with pytest.raises(InvalidState):
        admin.purge("default", "processing", ["x"])
    assert list(admin.purge_all("default", "dead")) == [type(steps[0])(0, 0)]


def test_prune_workers(settings: Settings, admin: Admin, inspector: Inspector) -> None:
    from jobq_core.keys import Keyspace

    admin.client.zadd(Keyspace(settings.prefix).workers(), {"ghost": 1})
    assert [w.alive for w in inspector.workers()] == [False]
    assert admin.prune_workers() == 1
    assert inspector.workers() == []


def test_requeue_job_refuses_a_job_requeued_since_it_was_read(
        settings: Settings, queue: Queue, admin: Admin, inspector: Inspector) -> None:
    job = queue.enqueue(tasks.add, 1, 2)
    drain(settings)
    seen = inspector.job(job.id, "default")
    assert seen is not None and (seen.state, seen.requeues) == ("completed", 0)
    admin.requeue_job("default", job.id, seen.state, seen.requeues)
    drain(settings)  # ran a second time: completed again, requeued once
    with pytest.raises(InvalidState, match="requeued since it was read"):
        admin.requeue_job("default", job.id, seen.state, seen.requeues)
    again = inspector.job(job.id, "default")
    assert again is not None and (again.state, again.requeues) == ("completed", 1)
    admin.requeue_job("default", job.id, again.state, again.requeues)  # a fresh read may
    assert queue.job(job.id).status == "pending"
    with pytest.raises(InvalidState, match="is pending, not completed"):
        admin.requeue_job("default", job.id, "completed", 1)
    with pytest.raises(InvalidState, match="cannot requeue pending"):
        admin.requeue_job("default", job.id, "pending", 1)
    with pytest.raises(JobNotFound):
        admin.requeue_job("default", "0123456789abcdef", "failed", 0)
