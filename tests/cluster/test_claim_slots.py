"""ClusterFetcher.claim over slots one of which fails (worker/cluster_fetch.py)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, cast

import pytest

from jobq_core import Settings
from jobq_core.errors import RedisUnavailable
from jobq_core.job import Claimed
from jobq_core.localcluster import queue_names_on_distinct_primaries
from jobq_core.replies import ClaimResult
from jobq_core.worker.cluster_fetch import ClusterFetcher, merged

A, B, C = queue_names_on_distinct_primaries(3, 3)


class Slots:
    """Scripts.claim per slot: the queues in `down` fail as an unreachable primary does."""

    def __init__(self, ready: dict[str, int], down: set[str]) -> None:
        self.ready, self.down = ready, down

    def request_id(self) -> str:
        return "r1"

    def claim(self, queues: Sequence[str], count: int, worker_id: str,
              request: str = "") -> ClaimResult:
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


class Watched(Slots):
    """Slots that record, at each call, the time and the jobs submitted so far."""

    def __init__(self, ready: dict[str, int]) -> None:
        super().__init__(ready, set())
        self.submitted: list[tuple[str, float]] = []
        self.calls: dict[str, tuple[float, list[str]]] = {}

    def claim(self, queues: Sequence[str], count: int, worker_id: str,
              request: str = "") -> ClaimResult:
        self.calls[queues[0]] = (time.monotonic(), [i for i, _ in self.submitted])
        return super().claim(queues, count, worker_id)

    def submit(self, job: Claimed, sent: float) -> None:
        self.submitted.append((job.id, sent))


def test_each_slots_jobs_are_submitted_as_its_claim_returns() -> None:
    """Review finding 1: a's jobs reach the pool before b's claim is sent, each slot's with
    its own send time (they were held until every slot answered, with the first send time,
    so a stalled later slot aged the earlier slot's leases unseen)."""
    slots = Watched({A: 1, B: 1})
    jobs = fetcher(slots).claim(5, slots.submit)
    assert [j.id for j in jobs] == [f"{A}-0", f"{B}-0"]
    (called_a, _), (called_b, seen_by_b) = slots.calls[A], slots.calls[B]
    assert seen_by_b == [f"{A}-0"]
    (_, sent_a), (_, sent_b) = slots.submitted
    assert sent_a <= called_a <= sent_b <= called_b


def test_next_due_is_read_against_the_clock_of_its_own_node() -> None:
    """Review finding 6: a's node says a job is due in 5 s; c's clock is 60 s ahead and it
    has nothing scheduled. The wait is 5 s (mixing a's due time with c's clock gave -55 s:
    the worker spun for a minute)."""
    f = fetcher(Slots({}, set()))
    f._took(merged([ClaimResult([], [], 1_005_000, 1_000_000),
                    ClaimResult([], [], -1, 1_060_000),
                    ClaimResult([], [], 1_070_000, 1_060_000)]))
    due_in = f.due_in()
    assert due_in is not None and 4.9 < due_in <= 5.0
    assert not f.due_within(4.0)
