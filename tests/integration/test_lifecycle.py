"""Worker processes under real faults: SIGKILL, SIGTERM, Redis stopped and restarted."""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobq_core import Queue, Settings
from jobq_core.keys import Keyspace
from jobq_core.server import LocalRedis, temp_dir
from tests import tasks
from tests.helpers import kill_group, start_worker, wait_for_lines, worker_thread

pytestmark = pytest.mark.cluster  # also on the Redis Cluster (tests/conftest.py)


def test_sigkilled_worker_job_runs_again_elsewhere_after_the_lease(
        settings: Settings, queue: Queue, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    job = queue.enqueue(tasks.record_pid, str(ledger), 1.0)
    a = start_worker(settings)
    try:
        first = wait_for_lines(ledger, 1, a)  # the job started on worker A
        kill_group(a)  # the whole worker: parent and job child
        a.wait(10)
        assert queue.job(job.id).status == "processing"  # type: ignore[union-attr]
        # A is dead: the lease deadline it last renewed (Redis time, ms) is final.
        deadline_ms = queue.client.zscore(Keyspace(settings.prefix).processing("default"),
                                          job.id)
        assert deadline_ms is not None
        with worker_thread(settings):  # worker B: reaps once the lease expires, runs the job
            pid = job.result(timeout_s=settings.lease_s + settings.heartbeat_s + 30)
        assert pid != int(first[0].split()[1])
        lines = ledger.read_text().split("\n")
        assert [ln.split()[0] for ln in lines if ln] == ["start", "start", "end"]
        fields = job.refresh().fields
        assert fields["lost"] == "1" and fields["deliveries"] == "2"
        # "After the lease", in Redis's own clock: B's claim (started_ms of the second
        # delivery) came after the deadline A's lease ran to, not before it.
        assert int(fields["started_ms"]) >= deadline_ms
    finally:
        kill_group(a)


def test_sigterm_finishes_running_job_then_exits(settings: Settings, queue: Queue,
                                                 tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    job = queue.enqueue(tasks.record_pid, str(ledger), 0.5)
    w = start_worker(settings, "--grace-s", "10")
    try:
        wait_for_lines(ledger, 1, w)
        kill_group(w, signal.SIGTERM)
        assert w.wait(15) == 0
        assert job.result(timeout_s=1) > 0
        assert queue.count("processing") == 0
    finally:
        kill_group(w)


def test_job_past_grace_is_handed_back_and_second_signal_stops_at_once(
        settings: Settings, queue: Queue, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    long = queue.enqueue(tasks.record_pid, str(ledger), 60)
    w = start_worker(settings, "--grace-s", "60")
    try:
        wait_for_lines(ledger, 1, w)
        kill_group(w, signal.SIGTERM)
        time.sleep(0.3)  # the first signal is being handled; the job keeps running
        assert w.poll() is None
        kill_group(w, signal.SIGINT)
        assert w.wait(15) == 0
        # Handed back at once (not left to lease expiry), not counted as a lost lease.
        long.refresh()
        assert long.status == "pending" and "lost" not in long.fields
    finally:
        kill_group(w)


def test_short_grace_hands_back(settings: Settings, queue: Queue, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    long = queue.enqueue(tasks.record_pid, str(ledger), 60)
    w = start_worker(settings, "--grace-s", "0.5")
    try:
        wait_for_lines(ledger, 1, w)
        kill_group(w, signal.SIGTERM)
        assert w.wait(15) == 0
        assert long.refresh().status == "pending"
    finally:
        kill_group(w)


@pytest.fixture
def own_redis() -> Iterator[LocalRedis]:
    """A server of this test's own, with AOF, so it can be stopped and restarted."""
    server = LocalRedis(temp_dir("jq-own-"), persist=True,
                        extra_args=["--appendfsync", "always"]).start()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


def test_redis_stopped_and_restarted_worker_carries_on(own_redis: LocalRedis,
                                                       tmp_path: Path) -> None:
    settings = Settings(redis_url=own_redis.url, prefix="restart", lease_s=4.0,
                        heartbeat_s=1.0, block_s=0.2, reconnect_max_s=1.0,
                        socket_timeout_s=1.0, connect_timeout_s=0.5)
    q = Queue("default", settings=settings)
    ledger = tmp_path / "ledger"
    for i in range(5):
        q.enqueue(tasks.append_line, str(ledger), f"before-{i}")
    w = start_worker(settings)
    try:
        wait_for_lines(ledger, 5, w)
        own_redis.stop()
        time.sleep(5)  # the outage itself: the worker must ride it out
        assert w.poll() is None, "worker exited while Redis was down"
        own_redis.start()
        q2 = Queue("default", settings=settings)
        jobs = [q2.enqueue(tasks.append_line, str(ledger), f"after-{i}") for i in range(5)]
        for job in jobs:
            assert job.result(timeout_s=15) is None
        assert w.poll() is None
    finally:
        kill_group(w)
    out = w.stdout.read().decode() if w.stdout else ""
    assert "cannot reach Redis" in out


def test_poison_job_goes_dead_while_others_flow(settings: Settings, queue: Queue) -> None:
    poison = queue.enqueue(tasks.exit_hard, 1)
    good = [queue.enqueue(tasks.add, i, 1) for i in range(20)]
    w = start_worker(settings, "--concurrency", "2", "--burst")
    try:
        assert w.wait(60) == 0
    finally:
        kill_group(w)
    assert [g.result(timeout_s=1) for g in good] == [i + 1 for i in range(20)]
    poison.refresh()
    assert poison.status == "dead" and "poison" in poison.reason
    assert "exited with code 1" in poison.reason
