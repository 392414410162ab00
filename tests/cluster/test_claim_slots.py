"""ClusterFetcher.claim over slots one of which fails (worker/cluster_fetch.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pytest

from jobq_core import Settings
from jobq_core.errors import RedisUnavailable
from jobq_core.job import Claimed
from jobq_core.localcluster import queue_names_on_distinct_primaries
from jobq_core.replies import ClaimResult
from jobq_core.worker.cluster_fetch import ClusterFetcher

A, B, C = queue_names_on_distinct_primaries(3, 3)


class Slots:
    """Scripts.claim per slot: the queues in `down` fail as an unreachable primary does."""

    def __init__(self, ready: dict[str, int], down: set[str]) -> None:
        self.ready, self.down = ready, down

    def claim(self, queues: Sequence[str], count: int, worker_id: str) -> ClaimResult:
        q = queues[0]
        if q in self.down:
            raise RedisUnavailable(f"injected: {q}'s primary is down")
        n = min(count, self.ready.get(q, 0))
        jobs = [Claimed(f"{q}-{i}", q, "t", {}) for i in range(n)]
        return ClaimResult(jobs, [], -1, 0)


def fetcher(slots: Slots) -> ClusterFetcher:
    return ClusterFetcher(Settings(redis_url="redis://unused"), [A, B, C], "w1",
                          cast(Any, slots), cast(Any, None))


def test_one_failing_slot_does_not_starve_the_others() -> None:
    """Queues a, b, c on three primaries; b's is down, a is empty, c has work: c's jobs
    are claimed (the whole claim raised before, so c was never served while b was down)."""
    jobs = fetcher(Slots({C: 2}, {B})).claim(5)
    assert [j.id for j in jobs] == [f"{C}-0", f"{C}-1"]


def test_a_claim_raises_only_when_no_slot_answered() -> None:
    with pytest.raises(RedisUnavailable):
        fetcher(Slots({}, {A, B, C})).claim(5)
