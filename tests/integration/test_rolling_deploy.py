"""Rolling deploys: old and new workers share a queue. A worker that does not know a job's
task hands it back while a live worker of the queue knows it, and sends it to dead
("unknown task") only when none has for the grace period (unknown.lua, advertise.lua)."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from jobq_core import Queue, Settings
from jobq_core.scripts import Scripts
from tests.helpers import kill_group, start_worker, wait_for_lines

NEW = "tests.tasks_new.new_feature"  # imported by the "new" workers only


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        kill_group(p)
        p.wait(10)


def old_worker(settings: Settings, procs: list[subprocess.Popen[bytes]],
               grace_s: float) -> subprocess.Popen[bytes]:
    p = start_worker(settings, "--pool", "thread", "-c", "2", "--name", "old",
                     env={"JOBQ_UNKNOWN_TASK_GRACE_S": str(grace_s)})
    procs.append(p)
    return p


def new_worker(settings: Settings, procs: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    p = start_worker(settings, "--pool", "thread", "--import", "tests.tasks_new", "--name", "new")
    procs.append(p)
    return p


def advertised(r: redis.Redis, queue: Queue) -> set[str]:
    return set(r.hkeys(queue.keys.tasks("default")))


def test_old_worker_hands_a_new_task_to_the_new_worker(
        settings: Settings, queue: Queue, r: redis.Redis, tmp_path: Path,
        workers: list[subprocess.Popen[bytes]]) -> None:
    ledger = tmp_path / "ledger"
    old_worker(settings, workers, grace_s=60)
    wait_until(lambda: advertised(r, queue) == {"old"}, "the old worker to register")
    first = queue.enqueue(NEW, str(ledger), "first")
    # Only the old worker lives: it hands the job back (no one knows it yet), not to dead.
    wait_until(lambda: "unknown_since_ms" in first.refresh().fields, "a hand-back")
    assert first.status in ("scheduled", "processing", "pending")
    new_worker(settings, workers)
    more = [queue.enqueue(NEW, str(ledger), f"job {i}") for i in range(20)]
    lines = wait_for_lines(ledger, 21, timeout_s=30)
    assert sorted(lines) == sorted(["first", *(f"job {i}" for i in range(20))])
    for job in [first, *more]:
        job.refresh()
        assert (job.status, job.retries, job.fields["worker"]) == ("completed", 0, "new")
        assert job.fields["deliveries"] == "1"  # hand-backs are not deliveries
        assert "lost" not in job.fields
    assert queue.count("dead") == 0


def test_a_task_no_live_worker_knows_goes_dead_after_the_grace_period(
        settings: Settings, queue: Queue, r: redis.Redis, tmp_path: Path,
        workers: list[subprocess.Popen[bytes]]) -> None:
    # A worker that knew the task stopped (its advertisement is withdrawn): the old one
    # waits out the grace period, then sends the job to dead saying why.
    new = new_worker(settings, workers)
    wait_until(lambda: advertised(r, queue) == {"new"}, "the new worker to register")
    new.send_signal(signal.SIGTERM)
    assert new.wait(20) == 0
    assert advertised(r, queue) == set()
    old_worker(settings, workers, grace_s=1)
    job = queue.enqueue(NEW, str(tmp_path / "ledger"), "never")
    wait_until(lambda: job.refresh().status == "dead", "the job to reach dead")
    assert re.fullmatch(r"unknown task 'tests\.tasks_new\.new_feature': no live worker serving "
                        r"queue 'default' knows it after [12] s", job.reason), job.reason
    assert (job.retries, job.fields["deliveries"]) == (0, "1")
    assert int(job.fields["finished_ms"]) - int(job.fields["unknown_since_ms"]) >= 1000


def test_unknown_lua_hands_back_while_a_live_peer_advertises_the_task(
        settings: Settings, queue: Queue, r: redis.Redis) -> None:
    # The decision itself, step by step: a fresh entry counts, the caller's own, a stale
    # or withdrawn one does not.
    scripts = Scripts(queue.client, settings)
    job = queue.enqueue(NEW, "/dev/null", "x")

    def claim_and_ask(grace_ms: int = 60_000, known_delay_ms: int = 1) -> object:
        (claimed,) = scripts.claim(["default"], 1, "old").jobs
        return scripts.unknown(claimed, "old", grace_ms=grace_ms, known_delay_ms=known_delay_ms,
                               unknown_delay_ms=1)

    def due_now() -> None:
        r.zadd(queue.keys.scheduled("default"), {job.id: 0})

    scripts.advertise("default", "old", 10_000, ["tests.tasks.add", NEW])  # itself: no
    scripts.advertise("default", "new", 10_000, ["tests.tasks.add", NEW])
    # Back to pending at once (the marker set), for an idle worker that knows the task.
    res = claim_and_ask()
    assert (res.state, res.known_by) == ("pending", "new")  # type: ignore[attr-defined]
    fields = job.refresh().fields
    assert (job.status, fields["deliveries"], job.retries) == ("pending", "0", 0)
    assert "unknown_since_ms" not in fields and "lease" not in fields
    assert r.zscore(queue.keys.pending("default"), job.id) is not None
    assert r.zcard(queue.keys.marker("default")) == 1
    # Claimed again by a worker that does not know it (the one that knows it is busy): not
    # straight back, which would bounce it between claim and hand-back, but a little later.
    res = claim_and_ask(known_delay_ms=60_000)
    assert (res.state, res.known_by) == ("scheduled", "new")  # type: ignore[attr-defined]
    assert (job.refresh().status, job.fields["deliveries"]) == ("scheduled", "0")
    scripts.advertise("default", "new", 0, [])  # withdrawn (the new worker stopped)
    due_now()
    res = claim_and_ask()
    assert (res.state, res.known_by) == ("scheduled", "")  # type: ignore[attr-defined]
    assert "unknown_since_ms" in job.refresh().fields
    scripts.advertise("default", "late", 1, [NEW])  # out of date by the time it is read
    r.hset(queue.keys.tasks("default"), "late", f"1 {NEW}")
    due_now()
    assert claim_and_ask().state == "scheduled"  # type: ignore[attr-defined]
    assert "late" not in advertised(r, queue)  # dropped on the way
    due_now()
    res = claim_and_ask(grace_ms=0)
    assert res.state == "dead"  # type: ignore[attr-defined]
    assert job.refresh().status == "dead" and job.fields["deliveries"] == "1"


def test_a_claim_after_a_hand_back_has_a_lease_token_of_its_own(
        settings: Settings, queue: Queue) -> None:
    # A hand-back takes its delivery back, so the worker's next claim of the job has the
    # same delivery count: a late renewal (or settlement) of the claim handed back must
    # still not pass for the new one.
    scripts = Scripts(queue.client, settings)
    scripts.advertise("default", "new", 10_000, [NEW])
    job = queue.enqueue(NEW, "/dev/null", "x")
    (first,) = scripts.claim(["default"], 1, "old").jobs
    assert scripts.unknown(first, "old", grace_ms=60_000, known_delay_ms=1_000,
                           unknown_delay_ms=1_000).state == "pending"
    (second,) = scripts.claim(["default"], 1, "old").jobs
    assert (second.id, job.refresh().fields["deliveries"]) == (job.id, "1")
    assert second.token != first.token
    assert scripts.extend("default", [(job.id, first.token)]) == [job.id]
    assert scripts.extend("default", [(job.id, second.token)]) == []
