"""A cluster worker whose queues share one slot claims and waits on that slot's node as on
one Redis (worker/node_fetch.py), and goes the routed way when the slot moves."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from redis.crc import key_slot

from jobq_core import Queue, Settings
from jobq_core.connection import connect
from jobq_core.localcluster import LocalCluster
from jobq_core.scripts import Scripts
from jobq_core.worker import node_fetch
from jobq_core.worker.cluster_fetch import ClusterFetcher
from jobq_core.worker.fetch import Fetcher
from jobq_core.worker.node_fetch import NodeFetcher, fetcher_class
from tests import tasks
from tests.helpers import worker_thread

QUEUE = "nodefetch"


def test_the_fetcher_follows_the_queues_slots() -> None:
    assert fetcher_class(False, ["a", "b"]) is Fetcher
    assert fetcher_class(True, ["a"]) is NodeFetcher
    assert key_slot(b"a") != key_slot(b"b")
    assert fetcher_class(True, ["a", "b"]) is ClusterFetcher
    # Names whose {queue} tags hash alike share a slot: one claim call, one node.
    same = next(f"q{i}" for i in range(100_000) if key_slot(f"q{i}".encode()) == key_slot(b"a"))
    assert fetcher_class(True, ["a", same]) is NodeFetcher


def test_a_one_queue_worker_claims_and_wakes_on_the_node(csettings: Settings) -> None:
    s = csettings.replace(block_s=30.0)
    q = Queue(QUEUE, settings=s)
    with worker_thread(s, [QUEUE]) as w:
        assert isinstance(w.fetch, NodeFetcher)
        for i in range(3):
            assert w.blocked.wait(10), "the worker never blocked on the marker"
            assert q.enqueue(tasks.add, i, 1).result(timeout_s=5) == i + 1
        direct: Any = w.fetch._direct
        assert direct is not None and not direct.scripts.cluster  # a plain client of the node


def _port(fetcher: NodeFetcher) -> int:
    direct: Any = fetcher._direct
    assert direct is not None
    return int(direct.scripts.client.connection_pool.connection_kwargs["port"])


def test_a_moved_slot_is_claimed_the_routed_way_then_on_its_new_node(
        csettings: Settings, redis_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    slot = key_slot(QUEUE.encode())
    home = redis_cluster.owner_of(slot)
    other = next(p for p in redis_cluster.primaries if p is not home)
    client = connect(csettings)
    fetch = NodeFetcher(csettings, [QUEUE], "w1", Scripts(client, csettings),
                        connect(csettings, blocking=True))
    q = Queue(QUEUE, settings=csettings)
    try:
        assert fetch.claim(10) == [] and _port(fetch) == home.port
        redis_cluster.migrate_slot(slot, other)
        job = q.enqueue(tasks.add, 1, 2)
        # The direct call meets MOVED (nothing ran there): the job is claimed the routed way.
        assert [j.id for j in fetch.claim(10)] == [job.id]
        assert fetch._direct is None
        job2 = q.enqueue(tasks.add, 2, 3)
        assert [j.id for j in fetch.claim(10)] == [job2.id]  # routed for REROUTE_S
        assert fetch._direct is None
        monkeypatch.setattr(node_fetch, "REROUTE_S", 0.0)
        fetch._routed_until = 0.0
        job3 = q.enqueue(tasks.add, 3, 4)
        assert [j.id for j in fetch.claim(10)] == [job3.id]
        assert _port(fetch) == other.port  # looked up again: the slot's new node
    finally:
        fetch.close()
        redis_cluster.migrate_slot(slot, home)  # other tests expect the initial layout


def test_a_direct_wait_ends_when_its_slot_moves(csettings: Settings,
                                                redis_cluster: LocalCluster) -> None:
    slot = key_slot(QUEUE.encode())
    home = redis_cluster.owner_of(slot)
    other = next(p for p in redis_cluster.primaries if p is not home)
    s = csettings.replace(block_s=20.0)
    fetch = NodeFetcher(s, [QUEUE], "w1", Scripts(connect(s), s), connect(s, blocking=True))
    got: list[object] = []
    try:
        assert fetch.claim(10) == [] and _port(fetch) == home.port
        waiter = threading.Thread(target=lambda: got.append(fetch.wait(10)))
        began = time.monotonic()
        waiter.start()
        assert fetch.blocked.wait(5)
        redis_cluster.migrate_slot(slot, other)
        waiter.join(15)
        # The node unblocks the wait with a redirect: no error, nothing claimed, and the
        # next claim goes the routed way.
        assert not waiter.is_alive() and got == [[]], got
        assert time.monotonic() - began < 15 and fetch._direct is None
        job = Queue(QUEUE, settings=s).enqueue(tasks.add, 1, 2)
        assert [j.id for j in fetch.claim(10)] == [job.id]
    finally:
        fetch.close()
        redis_cluster.migrate_slot(slot, home)
