"""Settings.wait_replicas against a real primary and replica: writes of jobs return once the
replica holds them, a frozen replica gives ReplicationTimeout within the timeout, an enqueue
retried with the same job_id stores the job once, and the default sends no WAIT."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator

import pytest

from jobq_core import AsyncQueue, ConfigError, JobqError, Queue, ReplicationTimeout, Settings
from jobq_core.job import JobSpec
from jobq_core.scripts import Scripts
from tests.helpers import drain, run_async, worker_thread
from tests.replicaset import ReplicaSet, replica_set

TIMEOUT_S = 0.3


@pytest.fixture(scope="module")
def pair() -> Iterator[ReplicaSet]:
    with replica_set(1) as rs:
        yield rs


def _settings(pair: ReplicaSet, wait: int = 1) -> Settings:
    return Settings(redis_url=pair.url, prefix=f"t{uuid.uuid4().hex[:10]}", lease_s=4.0,
                    heartbeat_s=1.0, retry_backoff_s=0.01, block_s=0.2, concurrency=1,
                    prefetch=0, wait_replicas=wait, wait_replicas_timeout_s=TIMEOUT_S)


def test_enqueue_returns_once_the_replica_holds_the_job(pair: ReplicaSet) -> None:
    s = _settings(pair)
    q = Queue("default", settings=s)
    q.enqueue("tests.tasks.add", 0, 0)  # loads the script (its first try is NOSCRIPT)
    before = pair.waits()
    job = q.enqueue("tests.tasks.add", 1, 2)
    assert pair.waits() == before + 1
    # WAIT counted the replica, so it has applied the write already: no polling here.
    replica = pair.client(pair.replicas[0])
    assert replica.hget(q.keys.job("default", job.id), "state") == "pending"
    jobs = q.enqueue_many([("tests.tasks.add", (i, i)) for i in range(3)])
    assert all(replica.exists(q.keys.job("default", j.id)) for j in jobs)


def test_the_default_sends_no_wait(pair: ReplicaSet) -> None:
    s = _settings(pair, wait=0)
    q = Queue("default", settings=s)
    before = pair.waits()
    job = q.enqueue("tests.tasks.add", 1, 2)
    assert drain(s) == 1
    assert job.result(timeout_s=1) == 3
    assert pair.waits() == before


def test_a_frozen_replica_gives_a_clear_error_within_the_timeout(pair: ReplicaSet) -> None:
    q = Queue("default", settings=_settings(pair))
    with pair.frozen(pair.replicas[0]):
        t0 = time.monotonic()
        with pytest.raises(ReplicationTimeout) as err:
            q.enqueue_call("tests.tasks.add", (1, 2), job_id="order-1")
        took = time.monotonic() - t0
    assert TIMEOUT_S <= took < TIMEOUT_S + 0.5
    message = str(err.value)
    assert isinstance(err.value, JobqError)
    assert "0 of 1 replica(s)" in message and "may or may not survive" in message
    assert "same job_id" in message and "at most once" in message
    assert err.value.job_ids == ["order-1"]


def test_an_enqueue_retried_with_its_job_id_stores_the_job_once(pair: ReplicaSet) -> None:
    s = _settings(pair)
    q = Queue("default", settings=s)
    with pair.frozen(pair.replicas[0]), pytest.raises(ReplicationTimeout) as err:
        q.enqueue("tests.tasks.add", 2, 3)
    (job_id,) = err.value.job_ids  # an id the caller did not choose is handed back
    again = q.enqueue_call("tests.tasks.add", (2, 3), job_id=job_id)
    assert not again.created and again.id == job_id
    assert q.count("pending") == 1
    assert drain(s) == 1
    assert q.job(job_id).result(timeout_s=1) == 5  # type: ignore[union-attr]
    assert q.count("completed") == 1


def test_a_batch_names_every_job_it_wrote(pair: ReplicaSet) -> None:
    q = Queue("default", settings=_settings(pair))
    with pair.frozen(pair.replicas[0]), pytest.raises(ReplicationTimeout) as err:
        q.enqueue_many([{"task": "tests.tasks.add", "args": (i, i), "job_id": f"b{i}"}
                        for i in range(3)])
    assert err.value.job_ids == ["b0", "b1", "b2"]


def test_async_queue_waits_for_the_replica(pair: ReplicaSet) -> None:
    s = _settings(pair)

    async def main() -> None:
        aq = AsyncQueue("default", settings=s)
        try:
            before = pair.waits()
            job = await aq.enqueue("tests.tasks.add", 1, 1)
            assert job.created and pair.waits() >= before + 1
            with pair.frozen(pair.replicas[0]):
                results = await asyncio.gather(
                    aq.enqueue_call("tests.tasks.add", (1, 2), job_id="a1"),
                    aq.enqueue_call("tests.tasks.add", (1, 3), job_id="a2"),
                    return_exceptions=True)
            assert all(isinstance(r, ReplicationTimeout) for r in results), results
            assert [r.job_ids for r in results] == [["a1"], ["a2"]]  # type: ignore[union-attr]
            again = await aq.enqueue_call("tests.tasks.add", (1, 2), job_id="a1")
            assert not again.created
        finally:
            await aq.aclose()

    run_async(main)


def test_group_commit_callers_each_get_their_own_job_id(pair: ReplicaSet) -> None:
    q = Queue("default", settings=_settings(pair))
    with pair.frozen(pair.replicas[0]), pytest.raises(ReplicationTimeout) as err:
        q.enqueue("tests.tasks.add", 1, 2)
    assert len(err.value.job_ids) == 1


def test_the_worker_waits_for_completions_and_warns_when_the_replica_lags(
        pair: ReplicaSet, caplog: pytest.LogCaptureFixture) -> None:
    s = _settings(pair)
    q = Queue("default", settings=s.replace(wait_replicas=0))
    job = q.enqueue("tests.tasks.add", 4, 4)
    before = pair.waits()
    assert drain(s) == 1
    assert pair.waits() >= before + 2  # the claim and the completion, at least
    assert job.result(timeout_s=1) == 8
    lagging = q.enqueue("tests.tasks.add", 5, 5)
    with caplog.at_level(logging.WARNING, "jobq.replication"), \
            pair.frozen(pair.replicas[0]):
        assert drain(s) == 1  # the worker goes on: no exception, no exit
    assert lagging.result(timeout_s=1) == 10  # completed on the primary
    warned = [r.getMessage() for r in caplog.records if r.name == "jobq.replication"]
    assert warned and "at-least-once" in warned[0], warned


def test_a_scheduler_tick_waits_for_the_replica(pair: ReplicaSet) -> None:
    s = _settings(pair)
    scripts = Scripts(Queue("default", settings=s).client, s)
    spec = JobSpec(id="sched:s:1", task="tests.tasks.add", args_json="[1, 1]",
                   kwargs_json="{}", priority=0, delay_ms=0, ttl_ms=0, options={})
    with pair.frozen(pair.replicas[0]), pytest.raises(ReplicationTimeout):
        scripts.fire("default", "s", 1, 0, spec)
    assert scripts.fire("default", "s", 1, 0, spec) == 0  # fired once, not twice


def test_settings_check_the_wait() -> None:
    env = {"JOBQ_WAIT_REPLICAS": "2", "JOBQ_WAIT_REPLICAS_TIMEOUT_S": "0.5"}
    s = Settings.from_env(env, redis_url="redis://127.0.0.1:1/0")
    assert (s.wait_replicas, s.wait_replicas_timeout_s) == (2, 0.5)
    with pytest.raises(ConfigError, match="wait_replicas_timeout_s"):
        Settings(wait_replicas=1, wait_replicas_timeout_s=2.0, heartbeat_s=1.0, lease_s=3.0)
    with pytest.raises(ConfigError, match="wait_replicas"):
        Settings(wait_replicas=-1)
    # Unused, the timeout is not checked (fault workers run with a 1 s socket timeout).
    Settings(socket_timeout_s=1.0)


def test_an_idle_workers_claim_outlives_a_lagging_replica(
        pair: ReplicaSet, caplog: pytest.LogCaptureFixture) -> None:
    """While the replica does not acknowledge, every claim reply waits out WAIT's timeout.
    A job enqueued for an idle worker (claim on wake, the default) must still start from
    that claim: its reply is not too late to start, its pick-up lease not lost before the
    renewal. With the pick-up lease of a worker without WAIT (1 s for a 3 s lease; replies
    older than 2/3 s handed back), a job arriving in the later half of a wait came back
    late and was claimed again (deliveries 2). Here a WAIT of 0.9 s makes every reply late
    on that rule (2/3 s); on the new one (1.9 s less 1/3 s) none is, by about 1/3 s."""
    s = Settings(redis_url=pair.url, prefix=f"t{uuid.uuid4().hex[:10]}", lease_s=3.0,
                 heartbeat_s=1.0, concurrency=1, wait_replicas=1, wait_replicas_timeout_s=0.9)
    assert (s.pickup_s, s.pickup_late_s) == (pytest.approx(1.9), pytest.approx(1.9 - 1 / 3))
    assert s.claim_on_wake
    q = Queue("default", settings=s.replace(wait_replicas=0))
    jobs = []
    with caplog.at_level(logging.WARNING, "jobq"), pair.frozen(pair.replicas[0]), \
            worker_thread(s) as w:
        # Jobs come one at a time, at offsets spread over a wait (a third of the pick-up
        # lease's base), each once the one before has ended and the worker waits again.
        for k in range(4):
            assert w.blocked.wait(5)
            time.sleep(0.1 * k)  # the arrival's place in the wait is what is tested
            job = q.enqueue("tests.tasks.add", k, k)
            assert job.result(timeout_s=10) == 2 * k
            jobs.append(job)
    deliveries = [int(j.refresh().fields.get("deliveries", 0)) for j in jobs]
    assert deliveries == [1] * 4, (deliveries, caplog.text)
    assert "handing its" not in caplog.text and "pick-up lease" not in caplog.text, caplog.text
