"""Jobs a worker holds go back to their queues in one release.lua call per queue
(Fetcher.hand_back_many), not a round trip each: up to 512 with auto prefetch, in the main
loop, which claims nothing meanwhile (review 2026-12-06-session5, Left 1)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import redis

from jobq_core import Queue, Settings, Worker
from jobq_core.config import AUTO_PREFETCH
from jobq_core.connection import connect
from jobq_core.job import Claimed
from jobq_core.keys import Keyspace
from jobq_core.scripts import Scripts
from jobq_core.worker import fetch as fetch_mod
from jobq_core.worker.fetch import Fetcher
from tests import tasks
from tests.integration.test_supervisor import GATE, STARTED, hold

pytestmark = pytest.mark.cluster  # also on the Redis Cluster (tests/conftest.py)

def counting(scripts: Scripts, after: Callable[[], object] = lambda: None) -> list[str]:
    """The names of the scripts `scripts` runs from now on, one entry per call (an EVALSHA
    each, but for a reload after NOSCRIPT); `after` is called after each."""
    names: list[str] = []
    real = scripts._run

    def run(name: str, *args: Any, **kwargs: Any) -> Any:
        names.append(name)
        try:
            return real(name, *args, **kwargs)
        finally:
            after()

    scripts._run = run  # type: ignore[method-assign]
    return names


@pytest.fixture
def fetch(settings: Settings) -> Iterator[Fetcher]:
    f = Fetcher(settings, ["a"], "w1", Scripts(connect(settings), settings),
                connect(settings, blocking=True))
    yield f
    f.close()


def pending(r: redis.Redis, settings: Settings, q: str) -> set[str]:
    return set(r.zrange(Keyspace(settings.prefix).pending(q), 0, -1))


def claimed(settings: Settings, fetch: Fetcher, queues: Sequence[str], n: int) -> list[Claimed]:
    """`n` jobs of each queue, leased to the fetcher's worker (one claim a queue: on a
    cluster the queues are on different nodes)."""
    jobs: list[Claimed] = []
    for q in queues:
        Queue(q, settings=settings).enqueue_many([(tasks.add, (i, 1)) for i in range(n)])
        jobs += fetch.scripts.claim([q], n, fetch.worker_id).jobs
    assert len(jobs) == n * len(queues)
    return jobs


def handed_back_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "hand back" in r.getMessage()
            or r.getMessage().startswith("handed back")]


def test_jobs_of_two_queues_go_back_in_one_call_per_queue(
        settings: Settings, fetch: Fetcher, r: redis.Redis,
        caplog: pytest.LogCaptureFixture) -> None:
    """One release.lua call a job before: 200 round trips here, and 200 log lines."""
    jobs = claimed(settings, fetch, ["a", "b"], 100)
    calls = counting(fetch.scripts)
    with caplog.at_level(logging.WARNING, logger="jobq.worker"):
        fetch.hand_back_many(jobs)
    assert calls == ["release", "release"]
    for q in ("a", "b"):
        assert pending(r, settings, q) == {j.id for j in jobs if j.queue == q}
        assert r.zcard(Keyspace(settings.prefix).processing(q)) == 0
    lines = handed_back_lines(caplog)
    assert len(lines) == 2 and all(" and 95 more" in line for line in lines), lines
    assert all(r.hget(Keyspace(settings.prefix).job(j.queue, j.id), "lost") is None
               for j in jobs)


def test_a_batch_with_a_lost_lease_hands_back_the_others(
        settings: Settings, fetch: Fetcher, r: redis.Redis,
        caplog: pytest.LogCaptureFixture) -> None:
    jobs = claimed(settings, fetch, ["a"], 5)
    k = Keyspace(settings.prefix)
    lost, gone = jobs[1], jobs[3]
    r.hset(k.job("a", lost.id), "lease", "another/1")  # reaped and claimed by another worker
    r.delete(k.job("a", gone.id))  # purged meanwhile
    with caplog.at_level(logging.WARNING, logger="jobq.worker"):
        fetch.hand_back_many(jobs)
    assert pending(r, settings, "a") == {j.id for j in jobs} - {lost.id, gone.id}
    assert r.hget(k.job("a", lost.id), "lease") == "another/1"
    assert r.hget(k.job("a", lost.id), "state") == "processing"
    lines = handed_back_lines(caplog)
    assert len(lines) == 3, lines
    assert any(lost.id in line and "no longer holds" in line for line in lines)
    assert any(gone.id in line and "gone" in line for line in lines)


def test_a_queue_whose_hand_back_fails_leaves_its_jobs_to_the_lease(
        settings: Settings, fetch: Fetcher, r: redis.Redis,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    jobs = claimed(settings, fetch, ["a", "b"], 3)
    real = fetch.scripts.release_many

    def release_many(queue: str, held: Sequence[Claimed], *args: Any) -> list[int]:
        if queue == "a":
            raise redis.ConnectionError("injected: the node of queue a is down")
        return real(queue, held, *args)

    monkeypatch.setattr(fetch.scripts, "release_many", release_many)
    with caplog.at_level(logging.WARNING, logger="jobq.worker"):
        fetch.hand_back_many(jobs)
    assert pending(r, settings, "a") == set()
    assert pending(r, settings, "b") == {j.id for j in jobs if j.queue == "b"}
    assert "leases will bring them back" in caplog.text


def test_a_large_batch_is_split(settings: Settings, fetch: Fetcher, r: redis.Redis,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch_mod, "RELEASE_CHUNK", 3)
    jobs = claimed(settings, fetch, ["a"], 7)
    calls = counting(fetch.scripts)
    fetch.hand_back_many(jobs)
    assert calls == ["release"] * 3
    assert pending(r, settings, "a") == {j.id for j in jobs}


@pytest.mark.single_only("one worker's life; the calls are the Fetcher's, tested above")
@pytest.mark.parametrize("path", ["stuck", "stop"])
def test_a_worker_hands_back_its_held_jobs_in_one_call(
        settings: Settings, queue: Queue, r: redis.Redis, path: str) -> None:
    """Auto prefetch holds jobs behind a job that turns out long: when every slot runs one,
    the main loop hands them back (stuck); a stopping worker hands back the jobs it holds
    waiting (stop). Each was one release.lua call a job: 64 and 100 here."""
    GATE.clear()
    STARTED.clear()
    running = queue.enqueue(hold)
    n = 64 if path == "stuck" else 100
    held = {j.id for j in queue.enqueue_many([(tasks.add, (i, 1)) for i in range(n)])}
    prefetch = AUTO_PREFETCH if path == "stuck" else n
    w = Worker(["default"], settings.replace(grace_s=60.0), imports=["tests.tasks"],
               pool="thread", concurrency=1, prefetch=prefetch)
    if path == "stuck":
        w.pool.ledger.ran(0.0001)  # as after a run of short jobs: 64 held beyond the slot
    back = threading.Event()
    calls = counting(w.scripts,
                     lambda: pending(r, settings, "default") == held and back.set())
    t = threading.Thread(target=w.work, daemon=True)
    t.start()
    try:
        assert STARTED.wait(10)
        if path == "stop":
            w.stop()
        assert back.wait(10), "the held jobs were not handed back"
        assert calls.count("release") == 1
        assert pending(r, settings, "default") == held
    finally:
        GATE.set()
        w.stop()
        t.join(30)
    assert running.refresh().status == "completed"
