"""A worker whose queues live on different primaries: claims every slot in queue order and
wakes on an enqueue on any node without polling (worker/cluster_fetch.py)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest

from jobq_core import Queue, Settings
from jobq_core.localcluster import LocalCluster, queue_names_on_distinct_primaries
from jobq_core.worker.cluster_fetch import ClusterFetcher
from tests import tasks
from tests.helpers import drain, worker_thread

QUEUES = queue_names_on_distinct_primaries(3, 3)


def test_the_queues_live_on_three_primaries(redis_cluster: LocalCluster) -> None:
    assert sorted(redis_cluster.primary_of(q) for q in QUEUES) == [0, 1, 2]


def test_burst_worker_drains_three_queues_on_three_primaries(csettings: Settings) -> None:
    jobs = [Queue(q, settings=csettings).enqueue(tasks.add, i, k)
            for k, q in enumerate(QUEUES) for i in range(10)]
    assert drain(csettings, QUEUES, concurrency=4) == 30
    assert [j.result(timeout_s=5) for j in jobs] == [i + k for k in range(3) for i in range(10)]


def test_queues_listed_first_are_served_first_across_slots(csettings: Settings,
                                                            tmp_path: Path) -> None:
    out = tmp_path / "order"
    low, mid, high = (Queue(q, settings=csettings) for q in QUEUES)
    for i in range(3):
        low.enqueue(tasks.append_line, str(out), f"low-{i}")
        mid.enqueue(tasks.append_line, str(out), f"mid-{i}")
        high.enqueue(tasks.append_line, str(out), f"high-{i}")
    # Worker order high, mid, low: the queues' slots are on primaries 2, 1, 0.
    drain(csettings, [QUEUES[2], QUEUES[1], QUEUES[0]], concurrency=1)
    assert out.read_text().split() == [f"{n}-{i}" for n in ("high", "mid", "low")
                                       for i in range(3)]


@pytest.mark.parametrize("claim_on_wake", [True, False])
def test_idle_worker_wakes_on_an_enqueue_on_each_primary(csettings: Settings,
                                                         claim_on_wake: bool) -> None:
    # block_s=30: a worker that polled, or that blocked on one node only, would not start
    # the jobs within the 5 s each result() waits.
    s = csettings.replace(block_s=30.0, claim_on_wake=claim_on_wake)
    queues = [Queue(q, settings=s) for q in QUEUES]
    woke: dict[str, list[float]] = {q: [] for q in QUEUES}
    with worker_thread(s, QUEUES) as w:
        assert isinstance(w.fetch, ClusterFetcher)
        for _ in range(7):
            for q in queues:
                assert w.blocked.wait(10), "the worker never blocked on the markers"
                sent = time.time()
                job = q.enqueue(tasks.now_wall)
                started = job.result(timeout_s=5)
                woke[q.name].append((started - sent) * 1000)
    p50 = {q: round(statistics.median(ms), 2) for q, ms in woke.items()}
    print(f"wake-up after enqueue, p50 ms per queue/primary (claim_on_wake={claim_on_wake}):",
          p50)


def test_worker_connections_are_listed_on_the_cluster(csettings: Settings) -> None:
    # Readers tell a killed worker by its named connections being gone (workers.py); on a
    # cluster they are looked for on every node, and a live worker's are found.
    from jobq_core.inspect import Inspector
    from jobq_core.workers import connected_names, connection_name

    with worker_thread(csettings, ("default",), name="cluster worker"):
        insp = Inspector(csettings)
        names = connected_names(insp.client)
        assert names is not None and connection_name("cluster worker") in names
        assert "jobq:w:cluster_worker" in names
        assert [(w.id, w.alive) for w in insp.workers()] == [("cluster worker", True)]
