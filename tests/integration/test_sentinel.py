"""jobq through Sentinel (`redis+sentinel://`) against real sentinels, with writes that wait
for a replica: the pooled connection the Sentinel client hands out carries the write and its
WAIT, sync and async, and a worker drains through it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobq_core import AsyncQueue, Queue, Settings
from jobq_core.server import temp_dir
from tests.faults.harness.sentinel import SentinelSet
from tests.helpers import drain, run_async


@pytest.fixture(scope="module")
def sentinels() -> Iterator[SentinelSet]:
    """1 primary, 2 replicas, 3 sentinels on loopback ports."""
    root = Path(temp_dir("jq-sent-"))
    s = SentinelSet(root, replicas=2)
    try:
        yield s.start()
    finally:
        s.stop()


def test_enqueue_and_drain_through_sentinel_waiting_for_a_replica(
        sentinels: SentinelSet) -> None:
    s = Settings(redis_url=sentinels.url, prefix=f"t{uuid.uuid4().hex[:10]}", lease_s=4.0,
                 heartbeat_s=1.0, block_s=0.2, concurrency=1, prefetch=0, wait_replicas=2,
                 wait_replicas_timeout_s=0.5)
    q = Queue("default", settings=s)
    job = q.enqueue("tests.tasks.add", 2, 2)
    # wait_replicas=2: both replicas hold the job the moment enqueue returned.
    for replica in sentinels.replicas:
        assert replica.client().hget(q.keys.job("default", job.id), "state") == "pending"

    async def produce() -> str:
        aq = AsyncQueue("default", settings=s)
        try:
            return (await aq.enqueue("tests.tasks.add", 3, 3)).id
        finally:
            await aq.aclose()

    other = run_async(produce)
    assert drain(s) == 2
    assert job.result(timeout_s=1) == 4
    assert q.job(other).result(timeout_s=1) == 6  # type: ignore[union-attr]
    waits = sentinels.primary.client().info("commandstats")["cmdstat_wait"]["calls"]
    assert waits >= 6  # 2 enqueues, 2 claims, 2 completions at least
