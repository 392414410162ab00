"""Dependencies: deferred jobs, chains, transitive failure, groups, and the sweep."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import redis

from jobq_core import Job, JobNotFound, Queue, Settings, Worker, group, task
from jobq_core.dependencies import Dependencies
from jobq_core.errors import ConfigError
from jobq_core.job import DEFERRED_MS
from jobq_core.keys import Keyspace
from tests import tasks
from tests.helpers import drain

pytestmark = pytest.mark.cluster  # also on the Redis Cluster (tests/conftest.py)


def work(settings: Settings, queues: tuple[str, ...] = ("default",)) -> None:
    drain(settings, queues, concurrency=4)


def test_chain_runs_in_order(queue: Queue, settings: Settings, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    a = queue.enqueue(tasks.append_line, str(ledger), "A")
    b = queue.enqueue_call(tasks.append_line, args=(str(ledger), "B"), depends_on=a)
    c = queue.enqueue_call(tasks.append_line, args=(str(ledger), "C"), depends_on=[b])
    assert (a.status, b.status, c.status) == ("pending", "scheduled", "scheduled")
    assert queue.count("pending") == 1
    work(settings)
    assert ledger.read_text().split() == ["A", "B", "C"]
    for j in (a, b, c):
        assert j.refresh().status == "completed"
    assert int(b.fields["started_ms"]) >= int(a.fields["finished_ms"])
    assert int(c.fields["started_ms"]) >= int(b.fields["finished_ms"])


def test_failing_parent_sends_the_chain_to_dead(queue: Queue, settings: Settings,
                                                tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    a = queue.enqueue(tasks.boom_once)
    b = queue.enqueue_call(tasks.append_line, args=(str(ledger), "B"), depends_on=a)
    c = queue.enqueue_call(tasks.append_line, args=(str(ledger), "C"), depends_on=b)
    work(settings)
    assert a.refresh().status == "failed"
    assert b.refresh().status == "dead" and c.refresh().status == "dead"
    assert b.reason == f"dependency failed: job default/{a.id} ended failed"
    assert c.reason == f"dependency failed: job default/{b.id} ended dead"
    assert not ledger.exists()
    assert queue.count("scheduled") == 0 and queue.count("dead") == 2


def test_allow_failure_runs_after_a_failed_parent(queue: Queue, settings: Settings) -> None:
    a = queue.enqueue(tasks.boom_once)
    b = queue.enqueue_call(tasks.add, args=(1, 1), depends_on=a, allow_failure=True)
    work(settings)
    assert a.refresh().status == "failed"
    assert b.refresh().status == "completed"


def test_parent_that_already_ended(queue: Queue, settings: Settings) -> None:
    done = queue.enqueue(tasks.add, 1, 1)
    bad = queue.enqueue(tasks.boom_once)
    work(settings)
    assert queue.enqueue_call(tasks.add, args=(2, 2), depends_on=done).status == "pending"
    dead = queue.enqueue_call(tasks.add, args=(2, 2), depends_on=[done, bad])
    assert dead.status == "dead"
    assert dead.refresh().reason.startswith("dependency failed")


def test_missing_parent_is_refused_before_writing(queue: Queue) -> None:
    with pytest.raises(JobNotFound):
        queue.enqueue_call(tasks.add, args=(1, 1), depends_on="nope")
    assert queue.count("scheduled") == 0 and queue.count("pending") == 0


def test_dependencies_across_queues(settings: Settings, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    first, second = Queue("first", settings=settings), Queue("second", settings=settings)
    a = first.enqueue(tasks.append_line, str(ledger), "A")
    b = second.enqueue_call(tasks.append_line, args=(str(ledger), "B"), depends_on=a)
    c = first.enqueue_call(tasks.append_line, args=(str(ledger), "C"),
                           depends_on=f"second/{b.id}")
    work(settings, ("second", "first"))
    assert ledger.read_text().split() == ["A", "B", "C"]
    assert c.refresh().status == "completed"


def test_cancelled_parent_sends_child_to_dead(queue: Queue) -> None:
    a = queue.enqueue_call(tasks.add, args=(1, 1), delay_s=60)
    b = queue.enqueue_call(tasks.add, args=(1, 1), depends_on=a)
    assert a.cancel()
    assert b.refresh().status == "dead"
    assert b.reason.endswith("ended cancelled")


def test_cancel_a_deferred_job(queue: Queue) -> None:
    a = queue.enqueue_call(tasks.add, args=(1, 1), delay_s=60)
    b = queue.enqueue_call(tasks.add, args=(1, 1), depends_on=a)
    assert b.cancel()
    assert b.refresh().status == "cancelled"
    assert queue.count("scheduled") == 1


def test_group_fans_out_and_in(queue: Queue, settings: Settings) -> None:
    g = group(queue, [(tasks.add, (i, i)) for i in range(5)], tasks.echo,
              callback_args=("done",))
    assert g.callback is not None and g.callback.status == "scheduled"
    work(settings)
    assert g.results(timeout_s=1) == [0, 2, 4, 6, 8]
    assert g.callback.result(timeout_s=1) == {"args": ["done"], "kwargs": {}}
    assert g.callback.refresh().meta["group"] == [f"default/{j.id}" for j in g.jobs]
    finished = max(int(j.refresh().fields["finished_ms"]) for j in g.jobs)
    assert int(g.callback.fields["started_ms"]) >= finished


def test_group_with_a_failure(queue: Queue, settings: Settings) -> None:
    g = group(queue, [(tasks.add, (1, 1)), (tasks.boom_once, ())], tasks.echo)
    work(settings)
    assert g.callback is not None and g.callback.refresh().status == "dead"
    g2 = group(queue, [(tasks.boom_once, ())], tasks.echo, allow_failure=True)
    work(settings)
    assert g2.callback is not None and g2.callback.refresh().status == "completed"


def test_sweep_releases_a_child_whose_parent_ended_unnoticed(
        queue: Queue, settings: Settings, r: redis.Redis) -> None:
    a = queue.enqueue(tasks.add, 1, 1)
    b = queue.enqueue_call(tasks.add, args=(2, 2), depends_on=a)
    # Lose the fast path, as when a worker dies between ending A and resolving B.
    r.delete(queue.keys.dependents("default", a.id))
    r.hdel(queue.keys.job("default", a.id), "dependents")
    work(settings)
    assert a.refresh().status == "completed" and b.refresh().status == "scheduled"
    deps = Dependencies(queue.scripts)
    r.zadd(queue.keys.scheduled("default"), {b.id: DEFERRED_MS})  # due for a check now
    assert deps.sweep("default") == 1
    assert b.refresh().status == "pending"
    score = r.zscore(queue.keys.scheduled("default"), b.id)
    assert score is None


def test_sweep_backs_off_while_parents_run(queue: Queue, r: redis.Redis) -> None:
    a = queue.enqueue(tasks.add, 1, 1)
    b = queue.enqueue_call(tasks.add, args=(2, 2), depends_on=a)
    r.zadd(queue.keys.scheduled("default"), {b.id: DEFERRED_MS})
    assert Dependencies(queue.scripts).sweep("default") == 0
    score = r.zscore(queue.keys.scheduled("default"), b.id)
    now_ms = int(r.time()[0]) * 1000
    assert score is not None and score >= DEFERRED_MS + now_ms


# -- release at once, whatever the parent's state when `depend` ran ---------------------------
# The periodic sweep is switched off in these tests: a child released at all was released by
# the worker that ended its parent (or by the producer), in the same step, not seconds later.

HOLD_STARTED, HOLD_GATE = threading.Event(), threading.Event()


@task(name="tests.deps.hold")
def hold(fail: bool) -> str:
    """Run until the test opens HOLD_GATE, then complete (or fail without retries)."""
    HOLD_STARTED.set()
    assert HOLD_GATE.wait(30)
    if fail:
        raise RuntimeError("parent failed on purpose")
    return "held"


@pytest.fixture
def no_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Dependencies, "sweep", lambda self, queue, limit=100: 0)


def _released_after(parent: Job, child: Job) -> int:
    """How long after its parent ended the child was released (ms, Redis clock)."""
    return int(child.refresh().fields["released_ms"]) - int(parent.refresh().fields["finished_ms"])


def test_release_when_the_parent_was_pending_at_depend(queue: Queue, settings: Settings,
                                                       no_sweep: None) -> None:
    parent = queue.enqueue(tasks.add, 1, 1)
    child = queue.enqueue_call(tasks.add, args=(2, 2), depends_on=parent)
    work(settings)
    assert child.refresh().status == "completed"
    assert _released_after(parent, child) < 100


@pytest.mark.parametrize("fails", [False, True], ids=["completes", "fails"])
def test_release_when_the_parent_was_processing_at_depend(
        queue: Queue, settings: Settings, no_sweep: None, fails: bool) -> None:
    # The parent was claimed (its fields read) before the child registered with it: the
    # worker learns about the dependent from the completion (or failure) write itself.
    HOLD_STARTED.clear()
    HOLD_GATE.clear()
    parent = queue.enqueue_call(hold, args=(fails,), max_retries=0)
    w = Worker(["default"], settings, imports=["tests.tasks"], pool="thread", concurrency=2)
    t = threading.Thread(target=w.work, kwargs={"burst": True}, daemon=True)
    t.start()
    try:
        assert HOLD_STARTED.wait(10)
        child = queue.enqueue_call(tasks.add, args=(2, 2), depends_on=parent)
        assert child.status == "scheduled"
    finally:
        HOLD_GATE.set()
        t.join(30)
    assert parent.refresh().status == ("failed" if fails else "completed")
    if fails:
        assert child.refresh().status == "dead"
        assert child.reason == f"dependency failed: job default/{parent.id} ended failed"
        assert int(child.fields["finished_ms"]) - int(parent.fields["finished_ms"]) < 100
    else:
        assert child.refresh().status == "completed"
        assert _released_after(parent, child) < 100


@pytest.mark.parametrize("ended", ["completed", "failed", "dead"])
def test_release_when_the_parent_had_ended_at_depend(queue: Queue, settings: Settings,
                                                     r: redis.Redis, no_sweep: None,
                                                     ended: str) -> None:
    if ended == "completed":
        parent = queue.enqueue(tasks.add, 1, 1)
    elif ended == "failed":
        parent = queue.enqueue_call(tasks.boom, max_retries=0)
    else:  # its ttl passed before it started: the claim sends it to dead
        parent = queue.enqueue_call(tasks.add, args=(1, 1), ttl_s=60)
        r.hset(queue.keys.job("default", parent.id), "expires_ms", 1)
    work(settings)
    assert parent.refresh().status == ended
    child = queue.enqueue_call(tasks.add, args=(2, 2), depends_on=parent)
    # Resolved by the producer in the enqueue call itself.
    assert child.status == ("pending" if ended == "completed" else "dead")


def expire(r: redis.Redis, settings: Settings, *jobs: Job) -> None:
    """As the end of the jobs' retention does: their hashes go."""
    keys = Keyspace(settings.prefix)
    for job in jobs:
        assert r.delete(keys.job(job.queue.name, job.id)) == 1


def test_a_named_group_run_again_after_its_jobs_expired_writes_nothing(
        queue: Queue, settings: Settings, r: redis.Redis) -> None:
    """Review finding 10: the group ran, its jobs' retention ended, the producer runs the
    same group() again: nothing is written (every job was created anew and ran twice)."""
    calls = [(tasks.add, (i, i)) for i in range(2)]
    g = group(queue, calls, tasks.echo, group_id="nightly-1")
    work(settings)
    assert g.callback is not None and g.callback.refresh().status == "completed"
    expire(r, settings, *g.all_jobs)
    again = group(queue, calls, tasks.echo, group_id="nightly-1")
    assert [j.id for j in again.all_jobs] == [j.id for j in g.all_jobs]
    assert queue.count("pending") == queue.count("scheduled") == 0
    assert not r.exists(*(Keyspace(settings.prefix).job("default", j.id) for j in g.all_jobs))


def test_a_named_group_cut_before_its_callback_with_a_job_gone_raises_clearly(
        queue: Queue, settings: Settings, r: redis.Redis,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The producer stopped after the fan-out; the jobs ran and one's retention ended
    before the call was repeated: how that job ended is unknown, so the callback cannot be
    written to wait for it. A clear error, not the job created again (it ran twice)."""
    calls = [(tasks.add, (i, i)) for i in range(2)]
    real = Queue.enqueue_call
    monkeypatch.setattr(Queue, "enqueue_call", lambda *a, **k: (_ for _ in ()).throw(
        KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        group(queue, calls, tasks.echo, group_id="nightly-2")
    monkeypatch.setattr(Queue, "enqueue_call", real)
    work(settings)
    expire(r, settings, Job(queue, "nightly-2:0"))
    with pytest.raises(JobNotFound, match=r"group 'nightly-2'.*new group_id"):
        group(queue, calls, tasks.echo, group_id="nightly-2")
    assert queue.count("pending") == 0


def test_a_group_id_used_for_another_number_of_calls_is_refused(queue: Queue) -> None:
    group(queue, [(tasks.add, (1, 1))], group_id="nightly-3")
    with pytest.raises(ConfigError, match="group of 1 jobs; this call has 2"):
        group(queue, [(tasks.add, (1, 1)), (tasks.add, (2, 2))], group_id="nightly-3")
