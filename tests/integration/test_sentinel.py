"""jobq through Sentinel (`redis+sentinel://`) against real sentinels, with writes that wait
for a replica: the pooled connection the Sentinel client hands out carries the write and its
WAIT, sync and async, and a worker drains through it. Workers and producers follow the master
the sentinels name while the one they left stays writable."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobq_core import AsyncQueue, Queue, Settings, wire
from jobq_core.connection import connect
from jobq_core.follow import AsyncMasterCheck
from jobq_core.keys import Keyspace
from jobq_core.server import temp_dir
from jobq_core.workers import connection_name
from tests.faults.harness.sentinel import SERVICE, SentinelSet
from tests.faults.harness.server import RedisServer
from tests.helpers import drain, run_async, worker_thread


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


def _name_another_master(sentinels: SentinelSet) -> tuple[RedisServer, RedisServer]:
    """Make the replica a primary and have every sentinel name it, while the old primary
    stays up and writable (as the first promoted server is after a second failover, until
    the sentinels convert it): (old, new)."""
    old, new = sentinels.primary, sentinels.replicas[0]
    new.client().execute_command("REPLICAOF", "NO", "ONE")
    for sentinel in sentinels.sentinels:
        c = sentinel.client()
        c.execute_command("SENTINEL", "REMOVE", SERVICE)
        c.execute_command("SENTINEL", "MONITOR", SERVICE, "127.0.0.1", new.port, 2)
    assert sentinels.master_port() == new.port
    assert old.client().info("replication")["role"] == "master"
    return old, new


def _until(check: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_worker_follows_the_master_the_sentinels_name_while_the_old_one_stays_writable(
        pool: str, caplog: pytest.LogCaptureFixture) -> None:
    root = Path(temp_dir("jq-sent-"))
    sentinels = SentinelSet(root, replicas=1)
    try:
        sentinels.start()
        s = Settings(redis_url=sentinels.url, prefix=f"t{uuid.uuid4().hex[:10]}", lease_s=4.0,
                     heartbeat_s=0.5, concurrency=1, prefetch=0)
        q = Queue("default", settings=s)
        with caplog.at_level(logging.WARNING, logger="jobq"), \
                worker_thread(s, pool=pool, concurrency=1) as w:
            assert q.enqueue("tests.tasks.add", 1, 1).result(timeout_s=10) == 2
            assert w.blocked.wait(10)  # its kept connection waits on the old primary
            old, new = _name_another_master(sentinels)
            fresh = Queue("default", settings=s)  # connects to the master named now
            jobs = [fresh.enqueue("tests.tasks.add", i, i) for i in range(3)]
            # Claimed on the new master: the old one never had these jobs. (Before the fix
            # the worker's connections all stayed on the old primary and never claimed them.)
            assert [j.result(timeout_s=20) for j in jobs] == [0, 2, 4]
            assert not old.client().exists(fresh.keys.job("default", jobs[0].id))
            assert new.client().hget(fresh.keys.job("default", jobs[0].id),
                                     "state") == "completed"
            if pool == "thread":
                # Every connection of the worker leaves the old primary (the claim connection
                # it kept, once its wait there ends, and its pools' idle ones).
                assert _until(lambda: connection_name(w.id) not in {
                    c.get("name") for c in old.client().client_list()}, 20)
        assert not [r for r in caplog.records if "lost" in r.getMessage()]
    finally:
        sentinels.stop()


def test_silent_sentinels_hold_back_no_renewal(
        sentinels: SentinelSet, caplog: pytest.LogCaptureFixture) -> None:
    # The heartbeat asks the sentinels for the master once a beat. Silent sentinels (here
    # frozen: they accept and never answer) cost a timeout each, one after another. Asked in
    # the beat, they held back its renewals past the fence: the running job was stopped,
    # reaped and claimed again until it went to dead (3 lost leases). The master is fine, so
    # the job must run once, to its end.
    s = Settings(redis_url=sentinels.url, prefix=f"t{uuid.uuid4().hex[:10]}", lease_s=4.0,
                 heartbeat_s=1.0, socket_timeout_s=1.0, concurrency=1, prefetch=0)
    q = Queue("default", settings=s)
    primary = sentinels.primary.client()  # read directly: no new connection finds it now
    with caplog.at_level(logging.WARNING, logger="jobq"), worker_thread(s) as w:
        job = q.enqueue("tests.tasks.sleep_for", 5.0)
        key = q.keys.job("default", job.id)
        assert _until(lambda: bool(w.pool.running()), 10)
        for sentinel in sentinels.sentinels:
            sentinel.freeze()
        try:
            assert _until(lambda: primary.hget(key, "state") == "completed", 15)
        finally:
            for sentinel in sentinels.sentinels:
                sentinel.thaw()
    assert primary.hget(key, "deliveries") == "1"
    assert "stopping job" not in caplog.text, caplog.text
    assert "asking the sentinels for the master failed" in caplog.text  # said once
    assert caplog.text.count("asking the sentinels for the master failed") == 1


@pytest.fixture
def own_sentinels() -> Iterator[SentinelSet]:
    """1 primary, 1 replica, 3 sentinels of this test's own (it names another master)."""
    s = SentinelSet(Path(temp_dir("jq-sent-")), replicas=1)
    try:
        yield s.start()
    finally:
        s.stop()


@pytest.mark.parametrize("producer", ["queue", "shared client", "async"])
def test_producer_follows_the_master_the_sentinels_name_while_the_old_one_stays_writable(
        own_sentinels: SentinelSet, producer: str) -> None:
    # A producer has no heartbeat: its writes have the sentinels asked, at most every
    # sentinel_check_s. Before, its connections stayed on the old primary (a Queue's kept
    # one, a pool's idle ones): every job went there, to be lost when it became a replica.
    s = Settings(redis_url=own_sentinels.url, prefix=f"t{uuid.uuid4().hex[:10]}")

    async def main() -> tuple[list[str], list[str]]:
        close: Callable[[], Awaitable[None]]
        if producer == "async":
            aq = AsyncQueue("default", settings=s)

            async def enqueue(i: int) -> str:
                return (await aq.enqueue("tests.tasks.add", i, i)).id
            close = aq.aclose
        else:
            client = connect(s) if producer == "shared client" else None
            q = Queue("default", settings=s, redis=client)

            async def enqueue(i: int) -> str:
                return q.enqueue("tests.tasks.add", i, i).id

            async def close() -> None:
                q.client.close()
        try:
            before = [await enqueue(i) for i in range(3)]
            _name_another_master(own_sentinels)
            # The contract is a time: a write this long after the sentinels name another
            # master goes there (nothing to wait on but the clock).
            time.sleep(s.sentinel_check_s)
            return before, [await enqueue(i) for i in range(20)]
        finally:
            await close()

    before, after = run_async(main)
    keys = Keyspace(s.prefix)
    old, new = (own_sentinels.primary.client(), own_sentinels.replicas[0].client())
    assert all(old.exists(keys.job("default", i)) for i in before)
    assert [i for i in after if old.exists(keys.job("default", i))] == []
    assert all(new.hget(keys.job("default", i), "state") == "pending" for i in after)


@pytest.mark.parametrize("seen", ["on the re-send", "before the send"])
def test_a_kept_connection_the_old_primary_closes_is_replaced_through_the_sentinels(
        own_sentinels: SentinelSet, seen: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # No check due (sentinel_check_s: an hour): only the close makes the Queue move. The
    # close is met by evalsha's re-send after a failed send, or (with IDLE_CHECK_S 0) by
    # the check of a kept connection before the send. Either reconnected the connection to
    # its last address, the old primary: the job was written there.
    s = Settings(redis_url=own_sentinels.url, prefix=f"t{uuid.uuid4().hex[:10]}",
                 sentinel_check_s=3600.0)
    q = Queue("default", settings=s)
    q.enqueue("tests.tasks.add", 1, 1)
    old, new = _name_another_master(own_sentinels)
    written = q.enqueue("tests.tasks.add", 2, 2)  # right before: no idle check
    assert old.client().exists(q.keys.job("default", written.id))
    if seen == "before the send":
        monkeypatch.setattr(wire, "IDLE_CHECK_S", 0.0)
    assert old.client().client_kill_filter(_type="normal") >= 1  # the kept one among them
    job = q.enqueue("tests.tasks.add", 3, 3)
    assert not old.client().exists(q.keys.job("default", job.id))
    assert new.client().hget(q.keys.job("default", job.id), "state") == "pending"
    q.client.close()


@pytest.mark.parametrize("asked_by", ["the AsyncQueue's writes", "a check of its own"])
def test_an_async_connection_in_use_as_the_master_changes_leaves_the_old_primary(
        own_sentinels: SentinelSet, asked_by: str) -> None:
    # redis.asyncio's pool, unlike the sync one, checks no connection on release against the
    # master it knows. One in use (another coroutine's command) when the pool learned of the
    # new master came back to it on the old primary, was the next one lent (the pool lends
    # the one released last), and stayed there: before, every later job went to the old
    # primary (the sync pool drops such a connection on release).
    s = Settings(redis_url=own_sentinels.url, prefix=f"t{uuid.uuid4().hex[:10]}",
                 sentinel_check_s=0.0)  # every write asks: no clock to wait on

    async def main() -> list[str]:
        aq = AsyncQueue("default", settings=s)
        try:
            await aq.enqueue("tests.tasks.add", 0, 0)
            pool: Any = aq.client.connection_pool
            busy = await pool.get_connection()  # the idle one, on the old primary
            _name_another_master(own_sentinels)
            if asked_by == "a check of its own":
                # Asked while `busy` is in use: it is dropped as it is released.
                await AsyncMasterCheck(aq.client, 3600.0).ask()
                await pool.release(busy)
                await aq.client.set(f"{s.prefix}:probe", "1")  # not through AsyncQueue
                return [f"{s.prefix}:probe"]
            first = (await aq.enqueue("tests.tasks.add", 1, 1)).id  # its ask sees the change
            await pool.release(busy)
            return [aq.keys.job("default", first),
                    aq.keys.job("default", (await aq.enqueue("tests.tasks.add", 2, 2)).id)]
        finally:
            await aq.aclose()

    written = run_async(main)
    old, new = (own_sentinels.primary.client(), own_sentinels.replicas[0].client())
    assert [key for key in written if old.exists(key)] == []
    assert all(new.exists(key) for key in written)
