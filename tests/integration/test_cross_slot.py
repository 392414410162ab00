"""Work that spans queues, hence cluster slots and nodes: dependencies, groups (fan-in),
schedule ticks and bulk actions. Each cross-slot step is two one-slot steps; these tests
crash between them (an exception where the process would die) and retry, and check that no
job is lost or doubled. Every test runs on one Redis and on the session's cluster, with its
queues on three different primaries."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobq_core import Queue, Settings, group
from jobq_core.admin import Admin
from jobq_core.dependencies import Dependencies
from jobq_core.job import DEFERRED_MS
from jobq_core.schedule import Schedule
from jobq_core.scheduler import Scheduler
from tests import tasks
from tests.helpers import drain


@dataclass
class Place:
    settings: Settings
    queues: list[str]  # three queue names (on three different primaries on a cluster)
    cluster: bool

    def queue(self, i: int) -> Queue:
        return Queue(self.queues[i], settings=self.settings)


@pytest.fixture(params=["one-redis", "cluster"])
def place(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Place]:
    if request.param == "one-redis":
        yield Place(settings, ["qa", "qb", "qc"], False)
        return
    spread = pytest.importorskip("jobq_core.localcluster").queue_names_on_distinct_primaries
    url = request.getfixturevalue("cluster_url")
    stem = f"x{uuid.uuid4().hex[:6]}-"
    yield Place(settings.replace(redis_url=url), spread(3, 3, stem),
                True)


class Crash(Exception):
    """Stands for the process dying at this point."""


def drain_each(place: Place, order: tuple[int, ...] = (0, 1, 2)) -> None:
    """Burst workers on one queue each, in `order`: each claim touches one slot."""
    for i in order:
        drain(place.settings, [place.queues[i]])


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_a_job_waits_on_a_job_on_another_node(place: Place, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    a = place.queue(0).enqueue(tasks.append_line, str(ledger), "A")
    b = place.queue(1).enqueue_call(tasks.append_line, args=(str(ledger), "B"), depends_on=a)
    c = place.queue(2).enqueue_call(tasks.append_line, args=(str(ledger), "C"),
                                    depends_on=[a, b])
    assert (b.status, c.status) == ("scheduled", "scheduled")
    drain_each(place)
    assert lines(ledger) == ["A", "B", "C"]
    assert c.refresh().status == "completed"


def test_a_crash_between_writing_a_job_and_registering_it_then_a_retry(
        place: Place, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The child is written (its slot), then registered with its parent (the parent's slot).
    A producer dying in between and enqueuing again with the same job_id registers it: the
    parent's worker then releases it at once (no sweep needed), and it runs once."""
    ledger = tmp_path / "ledger"
    parent = place.queue(0).enqueue(tasks.append_line, str(ledger), "P")
    real = Dependencies.register
    monkeypatch.setattr(Dependencies, "register", lambda *a, **k: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        place.queue(1).enqueue_call(tasks.append_line, args=(str(ledger), "C"),
                                    depends_on=parent, job_id="child-1")
    monkeypatch.setattr(Dependencies, "register", real)
    child = place.queue(1).enqueue_call(tasks.append_line, args=(str(ledger), "C"),
                                        depends_on=parent, job_id="child-1")
    assert child.status == "scheduled"
    keys = Queue(place.queues[0], settings=place.settings).keys
    deps = set(parent.queue.client.smembers(keys.dependents(place.queues[0], parent.id)))
    assert deps == {f"{place.queues[1]}/child-1"}  # registered once, with its parent
    monkeypatch.setattr(Dependencies, "sweep", lambda self, queue, limit=100: 0)
    drain_each(place)
    assert lines(ledger) == ["P", "C"]
    assert place.queue(1).count("completed") == 1


def test_a_crash_between_a_parent_ending_and_its_dependents_then_a_retry(
        place: Place, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent ends (its slot), then its dependents are resolved (theirs). The worker
    dies in between: resolving again, twice, releases each dependent exactly once."""
    ledger = tmp_path / "ledger"
    parent = place.queue(0).enqueue(tasks.append_line, str(ledger), "P")
    kids = [place.queue(i).enqueue_call(tasks.append_line, args=(str(ledger), f"K{i}"),
                                        depends_on=parent) for i in (1, 2)]
    real = Dependencies.ended
    monkeypatch.setattr(Dependencies, "ended", lambda *a, **k: (_ for _ in ()).throw(Crash()))
    monkeypatch.setattr(Dependencies, "sweep", lambda self, queue, limit=100: 0)
    drain(place.settings, [place.queues[0]])
    assert parent.refresh().status == "completed"
    assert [k.refresh().status for k in kids] == ["scheduled", "scheduled"]
    monkeypatch.setattr(Dependencies, "ended", real)
    deps = Dependencies(parent.queue.scripts)
    deps.ended(place.queues[0], parent.id, "completed")
    deps.ended(place.queues[0], parent.id, "completed")  # a second retry changes nothing
    assert [k.refresh().status for k in kids] == ["pending", "pending"]
    assert [place.queue(i).count("pending") for i in (1, 2)] == [1, 1]
    drain_each(place)
    assert sorted(lines(ledger)) == ["K1", "K2", "P"]


def test_a_group_fans_in_across_nodes(place: Place) -> None:
    calls = [{"task": tasks.add, "args": (i, i), "queue": place.queues[i % 3]}
             for i in range(6)]
    g = group(place.queue(0), calls, tasks.add, callback_args=(100, 1),
              callback_queue=place.queues[2])
    assert [j.queue.name for j in g.jobs] == [place.queues[i % 3] for i in range(6)]
    assert g.callback is not None and g.callback.queue.name == place.queues[2]
    assert g.callback.status == "scheduled"
    drain_each(place, (0, 1, 2, 2))  # the callback (queue 2) after every job
    assert g.results() == [0, 2, 4, 6, 8, 10]
    assert g.callback.refresh().status == "completed"
    assert g.callback.fields["meta"].count("/") == 6


def test_a_group_run_again_after_a_crash_doubles_nothing(
        place: Place, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The producer dies after the fan-out (jobs on three nodes), before the callback; it
    runs the same group() again: every job once, the callback once, after all of them."""
    ledger = tmp_path / "ledger"
    calls = [{"task": tasks.append_line, "args": (str(ledger), f"J{i}"),
              "queue": place.queues[i]} for i in range(3)]
    real = Queue.enqueue_call
    monkeypatch.setattr(Queue, "enqueue_call", lambda *a, **k: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        group(place.queue(0), calls, tasks.append_line, callback_args=(str(ledger), "CB"),
              group_id="nightly-1")
    monkeypatch.setattr(Queue, "enqueue_call", real)
    g = group(place.queue(0), calls, tasks.append_line, callback_args=(str(ledger), "CB"),
              group_id="nightly-1")
    assert [j.id for j in g.jobs] == ["nightly-1:0", "nightly-1:1", "nightly-1:2"]
    assert [place.queue(i).count("pending") for i in range(3)] == [1, 1, 1]
    # A third call (say the retry's reply was lost) adds nothing either.
    group(place.queue(0), calls, tasks.append_line, callback_args=(str(ledger), "CB"),
          group_id="nightly-1")
    assert [place.queue(i).count("pending") for i in range(3)] == [1, 1, 1]
    assert place.queue(0).count("scheduled") == 1
    drain_each(place, (0, 1, 2, 0))  # the callback (queue 0) after every job
    assert sorted(lines(ledger)[:3]) == ["J0", "J1", "J2"] and lines(ledger)[3:] == ["CB"]


def test_a_tick_fired_before_a_crash_is_not_fired_again(place: Place) -> None:
    """A tick creates its job in the target queue's slot, then advances the schedule in the
    scheduler's slot. A leader that dies in between: the next leader fires that tick again,
    which creates nothing, and advances."""
    sched = Scheduler(place.settings)
    name = f"tick-{uuid.uuid4().hex[:6]}"
    sched.add(Schedule(name, "tests.tasks.add", every_s=3600, args=(1, 2),
                       queue=place.queues[2], grace_s=7200))
    # Make its next tick due now, then have a leader fire it and die before advancing.
    tick = int(sched.client.hget(sched.keys.schedule(name), "next_ms")) - 3600_000
    sched.client.hset(sched.keys.schedule(name), "next_ms", tick)
    sched.client.zadd(sched.keys.schedules(), {name: tick})
    real_advance = sched.scripts.advance
    sched.scripts.advance = lambda *a, **k: (_ for _ in ()).throw(Crash())  # type: ignore[method-assign]
    with pytest.raises(Crash):
        sched.step()
    target = place.queue(2)
    assert target.count("pending") == 1
    sched.resign()
    sched.scripts.advance = real_advance  # type: ignore[method-assign]
    follower = Scheduler(place.settings)
    follower.step()
    assert target.count("pending") == 1  # not a second job for the same tick
    info = follower.get(name)
    assert info is not None and info.last_tick_ms == tick and (info.next_ms or 0) > tick
    assert info.last_job_id == f"sched:{name}:{tick}"
    follower.resign()


def test_a_bulk_cancel_reaches_dependents_on_other_nodes_even_after_a_crash(
        place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cancelling the pending jobs of one queue in bulk sends their dependents in the other
    queues to dead. A step that dies between cancelling a job (its slot) and resolving its
    dependent (another) and is run again acts on no job twice; the dependent left behind is
    finished by the deferred sweep, which reads its parent's state."""
    parents = [place.queue(0).enqueue(tasks.add, i, i) for i in range(4)]
    kids = [place.queue(1 + i % 2).enqueue_call(tasks.add, args=(i, 0), depends_on=p)
            for i, p in enumerate(parents)]
    admin = Admin(place.settings)
    op = admin.bulk.start(place.queues[0], "pending", "cancel")
    real = Dependencies.ended
    monkeypatch.setattr(Dependencies, "ended", lambda *a, **k: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        admin.bulk.step(place.queues[0], op.id, batch=2, budget_s=5)
    monkeypatch.setattr(Dependencies, "ended", real)
    assert parents[0].refresh().status == "cancelled"
    assert kids[0].refresh().status == "scheduled"  # its resolution was lost with the crash
    op = admin.bulk.step(place.queues[0], op.id, batch=2, budget_s=5)
    assert op.finished and op.done == 3  # the other three; the first is not cancelled twice
    assert place.queue(0).count("cancelled") == 4 and place.queue(0).count("pending") == 0
    assert [k.refresh().status for k in kids[1:]] == ["dead"] * 3
    # The sweep checks a deferred job 1-60 s after the last check; make that now.
    q = kids[0].queue
    q.client.zadd(q.keys.scheduled(q.name), {kids[0].id: DEFERRED_MS}, xx=True)
    assert Dependencies(q.scripts).sweep(q.name) == 1
    assert kids[0].refresh().status == "dead"
    assert all("ended cancelled" in k.reason for k in kids)


def test_one_worker_serving_three_nodes_runs_a_fan_in(place: Place) -> None:
    """One worker on the three queues (one claim per slot, in queue order) drains a group
    whose jobs and callback live on three nodes."""
    calls = [{"task": tasks.add, "args": (i, 1), "queue": place.queues[i % 3]}
             for i in range(9)]
    g = group(place.queue(0), calls, tasks.add, callback_args=(0, 0),
              callback_queue=place.queues[1], group_id=f"g{uuid.uuid4().hex[:6]}")
    drain(place.settings, place.queues, concurrency=2)
    assert g.results() == [i + 1 for i in range(9)]
    assert g.callback is not None and g.callback.refresh().status == "completed"
