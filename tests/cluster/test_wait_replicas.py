"""wait_replicas on a Redis Cluster: the write and its WAIT go to the primary that took the
write (so WAIT counts that primary's replica), for queues on three different primaries; a
frozen replica gives ReplicationTimeout, and the retry with the job's id stores it once."""

from __future__ import annotations

import os
import signal
import uuid

import pytest

from jobq_core import AsyncQueue, Queue, ReplicationTimeout, Settings
from jobq_core.localcluster import LocalCluster, queue_names_on_distinct_primaries
from tests.helpers import drain, run_async


def _waits(cluster: LocalCluster, i: int) -> int:
    with cluster.client(cluster.primaries[i]) as c:
        return int(c.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))


@pytest.fixture
def wsettings(cluster_url: str) -> Settings:
    return Settings(redis_url=cluster_url, prefix=f"t{uuid.uuid4().hex[:10]}", lease_s=4.0,
                    heartbeat_s=1.0, block_s=0.2, concurrency=1, prefetch=0,
                    wait_replicas=1, wait_replicas_timeout_s=0.3)


def test_each_write_waits_on_the_primary_that_took_it(wsettings: Settings,
                                                       redis_cluster: LocalCluster) -> None:
    for name in queue_names_on_distinct_primaries(3, 3):
        owner = redis_cluster.primary_of(f"{{{name}}}")
        q = Queue(name, settings=wsettings)
        q.enqueue("tests.tasks.add", 0, 0)  # loads the script on that node
        before = [_waits(redis_cluster, i) for i in range(3)]
        job = q.enqueue("tests.tasks.add", 1, 2)
        after = [_waits(redis_cluster, i) for i in range(3)]
        assert [a - b for a, b in zip(after, before, strict=True)] == \
            [int(i == owner) for i in range(3)]
        replica = redis_cluster.replicas[owner]
        with redis_cluster.client(replica) as c:
            c.execute_command("READONLY")
            assert c.hget(q.keys.job(name, job.id), "state") == "pending"

        async def produce(queue: str = name) -> bool:
            aq = AsyncQueue(queue, settings=wsettings)
            try:
                return (await aq.enqueue("tests.tasks.add", 2, 2)).created
            finally:
                await aq.aclose()

        assert run_async(produce)
        assert drain(wsettings, [name]) == 3


def test_a_frozen_replica_times_out_and_the_retry_stores_once(
        wsettings: Settings, redis_cluster: LocalCluster) -> None:
    name = queue_names_on_distinct_primaries(3, 3)[1]
    replica = redis_cluster.replicas[redis_cluster.primary_of(f"{{{name}}}")]
    assert replica.proc is not None
    q = Queue(name, settings=wsettings)
    os.kill(replica.proc.pid, signal.SIGSTOP)
    try:
        with pytest.raises(ReplicationTimeout, match="0 of 1 replica"):
            q.enqueue_call("tests.tasks.add", (1, 1), job_id="c-1")
    finally:
        os.kill(replica.proc.pid, signal.SIGCONT)
    assert not q.enqueue_call("tests.tasks.add", (1, 1), job_id="c-1").created
    assert q.count("pending") == 1
