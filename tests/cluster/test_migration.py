"""A queue's slot migrated to another primary while producers and a worker use it: ASK,
TRYAGAIN and MOVED are waited out, no job is lost or run twice, the worker keeps going.

Every jobq script that builds key names at run time (a job hash from an id) also declares
a key that never exists (the prefix it builds them from), so while its slot is migrating
the source answers ASK and the target TRYAGAIN: the script never runs on half-moved data
(docs/design.md, "Redis Cluster")."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

from redis.crc import key_slot

from jobq_core import Queue, RedisUnavailable, Settings
from jobq_core.localcluster import LocalCluster
from tests import tasks
from tests.helpers import worker_thread

QUEUE = "migrating"


def _enqueue_retrying(q: Queue, out: Path, i: int, stop: threading.Event) -> None:
    # A producer waits a migration out by retrying with the same job id: stored once.
    while not stop.is_set():
        try:
            q.enqueue_call(tasks.append_line, args=(str(out), f"job-{i}"), job_id=f"j{i}")
            return
        except RedisUnavailable:
            stop.wait(0.05)


def test_slot_migration_under_load_loses_and_doubles_nothing(
        csettings: Settings, redis_cluster: LocalCluster, tmp_path: Path) -> None:
    out = tmp_path / "ran"
    slot = key_slot(QUEUE.encode())
    home = redis_cluster.owner_of(slot)
    other = next(p for p in redis_cluster.primaries if p is not home)
    # A lease longer than the migration: a job whose lease cannot be renewed while its slot
    # moves is not fenced (that would be a rerun, which jobq allows but this test counts).
    s = csettings.replace(concurrency=4, block_s=1.0, lease_s=30.0)
    q = Queue(QUEUE, settings=s)
    n = 300
    stop = threading.Event()
    produced = threading.Event()

    def produce() -> None:
        for i in range(n):
            _enqueue_retrying(q, out, i, stop)
        produced.set()

    try:
        with worker_thread(s, [QUEUE]) as w:
            producer = threading.Thread(target=produce)
            producer.start()
            moved = redis_cluster.migrate_slot(slot, other, batch=5, pause_s=0.01)
            assert redis_cluster.owner_of(slot) is other
            producer.join(60)
            assert produced.is_set(), "the producer did not get every job in"
            assert moved > 0
            for i in range(n):
                job = q.job(f"j{i}")
                assert job is not None, f"job j{i} was lost"
                job.result(timeout_s=60)
            assert w.ready.is_set() and not w.stopping.is_set()
    finally:
        stop.set()
        redis_cluster.migrate_slot(slot, home)  # other tests expect the initial layout
    runs = Counter(out.read_text().split())
    assert len(runs) == n, f"{n - len(runs)} jobs never ran"
    assert max(runs.values()) == 1, [k for k, v in runs.items() if v > 1]
    assert q.count("completed") == n
