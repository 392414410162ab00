"""No wake-up is lost by the per-slot waiters of a cluster worker (worker/cluster_fetch.py,
review finding 7): a marker a waiter pops is either a hint the worker's next claim acts on
in that slot, or it is put back."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis.connection import AbstractConnection

from jobq_core import Queue, Settings
from jobq_core.connection import connect
from jobq_core.keys import Keyspace
from jobq_core.localcluster import queue_names_on_distinct_primaries
from jobq_core.scripts import Scripts
from jobq_core.worker.cluster_fetch import ClusterFetcher
from tests import tasks
from tests.helpers import worker_thread

A, C = queue_names_on_distinct_primaries(2, 2)


@pytest.fixture
def s(csettings: Settings) -> Settings:
    return csettings.replace(block_s=5.0)


@pytest.fixture
def fetcher(s: Settings) -> Iterator[ClusterFetcher]:
    f = ClusterFetcher(s, [A, C], "w1", Scripts(connect(s), s), connect(s, blocking=True))
    yield f
    f.close()


def eventually(check: Callable[[], bool], within_s: float = 3.0) -> bool:
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.01)
    return False


def test_a_popped_marker_of_a_slot_the_claim_stops_before_is_put_back(
        s: Settings, fetcher: ClusterFetcher) -> None:
    """(a) Both slots' markers popped during a wait; the claim fills its one place from A
    and never runs claim.lua on C: C's marker is set again (it stayed popped before, so an
    idle peer never woke for C's job)."""
    client = fetcher.scripts.client
    keys = Keyspace(s.prefix)
    Queue(A, settings=s).enqueue(tasks.add, 1, 2)
    Queue(C, settings=s).enqueue(tasks.add, 3, 4)
    fetcher.deadline = time.monotonic() + 5
    fetcher.armed.set()  # a wait in progress (as wait() arms it)
    fetcher._start_waiters()
    # Both pops reached the fetcher as hints (a marker gone from Redis may still be in a
    # waiter's reply, and a hint that comes after the wait ended is put back instead).
    assert eventually(lambda: fetcher._popped == {keys.marker(A), keys.marker(C)})
    fetcher.armed.clear()  # the wait ended on the hints
    (job,) = fetcher.claim(1)
    assert job.queue == A
    # A waiter still in the wait's BZPOPMIN may pop it once more and put it back.
    assert eventually(lambda: bool(client.exists(keys.marker(C))))


def test_a_marker_popped_while_the_fetcher_closes_is_put_back(
        s: Settings, fetcher: ClusterFetcher, monkeypatch: pytest.MonkeyPatch) -> None:
    """(b) A waiter's BZPOPMIN is served just as close() runs: the marker is set again
    (close() armed the fetcher, so the waiter took the pop for a hint nobody would act on)."""
    client = fetcher.scripts.client
    marker = Keyspace(s.prefix).marker(C)
    fetcher.deadline = time.monotonic() + 5
    fetcher.armed.set()
    fetcher._start_waiters()
    cluster: Any = client
    node = cluster.get_redis_connection(cluster.get_node_from_key(marker))
    assert eventually(lambda: node.info("clients")["blocked_clients"] > 0, 5.0)
    real_close = fetcher.blocking.close

    def close_after_a_pop() -> None:
        Queue(C, settings=s).enqueue(tasks.add, 3, 4)
        # The pop was served (the waiter is no longer blocked; it may have put it back).
        assert eventually(lambda: node.info("clients")["blocked_clients"] == 0, 5.0)
        real_close()

    monkeypatch.setattr(fetcher.blocking, "close", close_after_a_pop)
    fetcher.close()
    for waiter in fetcher._waiters:
        waiter.join(5)
    assert client.exists(marker)


@pytest.mark.parametrize("error", [redis.ConnectionError, RuntimeError])
def test_a_pop_that_fails_after_it_popped_loses_no_wake_up(
        s: Settings, fetcher: ClusterFetcher, monkeypatch: pytest.MonkeyPatch,
        error: type[Exception]) -> None:
    """(c) A BZPOPMIN whose reply is lost after the server popped the marker (it was re-sent
    by the cluster client's retry, found no marker and waited out the whole wait), and (d)
    one that fails with a non-Redis error (the waiter thread died, silently, for good): the
    wait still ends on the enqueue, well before block_s."""
    real_read = AbstractConnection.read_response
    injected = threading.Event()

    def lossy_read(self: Any, *args: Any, **kwargs: Any) -> Any:
        reply = real_read(self, *args, **kwargs)
        popped = isinstance(reply, list) and len(reply) == 3  # key, member, score
        if threading.current_thread().name.startswith("jobq-wait-") and popped and \
                not injected.is_set():
            injected.set()
            if error is redis.ConnectionError:
                self.disconnect()
            raise error("injected: the reply of a served BZPOPMIN is lost")
        return reply

    monkeypatch.setattr(AbstractConnection, "read_response", lossy_read)

    def enqueue_when_blocked() -> None:
        assert fetcher.blocked.wait(5)
        Queue(C, settings=s).enqueue(tasks.add, 3, 4)

    threading.Thread(target=enqueue_when_blocked, daemon=True).start()
    began = time.monotonic()
    fetcher.wait()
    assert injected.is_set()
    assert time.monotonic() - began < 3.0, "the wake-up was lost: the wait ran to block_s"
    (job,) = fetcher.claim(5)
    assert job.queue == C


THREE = queue_names_on_distinct_primaries(3, 3, "wk")


@pytest.fixture
def three(s: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ClusterFetcher,
                                                                           list[list[str]]]]:
    """A fetcher of three queues on three primaries, and the queues of each claim call it
    sends (one list per call)."""
    f = ClusterFetcher(s, THREE, "w1", Scripts(connect(s), s), connect(s, blocking=True))
    calls: list[list[str]] = []
    real = f.scripts.claim

    def claim(queues: list[str], *args: Any, **kwargs: Any) -> Any:
        calls.append(list(queues))
        return real(queues, *args, **kwargs)

    monkeypatch.setattr(f.scripts, "claim", claim)
    yield f, calls
    f.close()


def woken_by(f: ClusterFetcher, queue: Queue) -> None:
    """Wait as the worker does; `queue` gets a job once the wait blocks; the wait must end
    on its marker (the hint), not on block_s."""
    threading.Thread(target=lambda: f.blocked.wait(5) and queue.enqueue(tasks.add, 1, 2),
                     daemon=True).start()
    began = time.monotonic()
    f.wait(5)
    assert time.monotonic() - began < 2.5


def test_a_wake_up_from_the_last_queue_claims_its_slot_alone(
        s: Settings, three: tuple[ClusterFetcher, list[list[str]]]) -> None:
    """Issue 14's wake-up: a job on the third queue (its own primary) wakes the worker, and
    the claim after it is one call, to that slot: it sent a call to each empty slot listed
    before it first (three round trips in a row). A claim that no marker prompted (the
    first one here) still claims every slot in order."""
    f, calls = three
    a, b, c = THREE
    assert f.claim(5) == []
    assert calls == [[a], [b], [c]]
    calls.clear()
    woken_by(f, Queue(c, settings=s))
    (job,) = f.claim(5)
    assert job.queue == c
    assert calls == [[c]]


def test_a_claim_of_the_woken_slot_keeps_the_others_due_times(
        s: Settings, three: tuple[ClusterFetcher, list[list[str]]]) -> None:
    """A job scheduled on the first queue is due in 30 s; a wake-up from the third claims
    that slot alone, and the worker still knows when the first queue's job is due (only a
    claim there promotes it: no marker wakes the wait for it)."""
    f, calls = three
    a, _, c = THREE
    Queue(a, settings=s).enqueue_in(30, tasks.add, 1, 2)
    assert f.claim(5) == []
    assert 25 < (f.due_in() or 0) <= 30
    # Its marker (set for the claim to learn the new due time, which it did) is taken by
    # a peer, say: the wake-up comes from the third queue alone.
    f.scripts.client.delete(Keyspace(s.prefix).marker(a))
    woken_by(f, Queue(c, settings=s))
    assert len(f.claim(5)) == 1 and calls[-1] == [c]
    assert 25 < (f.due_in() or 0) <= 30


def test_a_marker_popped_while_the_worker_stops_is_put_back(
        s: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """(b) through the worker: it closed its command client before the fetcher, so the
    waiter's give-back found the cluster client closed and the marker stayed popped."""
    client: Any = connect(s)
    marker = Keyspace(s.prefix).marker(C)
    node = client.get_redis_connection(client.get_node_from_key(marker))
    with worker_thread(s, [A, C]) as w:
        assert w.blocked.wait(10)
        assert eventually(lambda: node.info("clients")["blocked_clients"] > 0, 5.0)
        real_close = w.fetch.blocking.close

        def close_after_a_pop() -> None:
            Queue(C, settings=s).enqueue(tasks.add, 3, 4)
            assert eventually(lambda: node.info("clients")["blocked_clients"] == 0, 5.0)
            real_close()

        monkeypatch.setattr(w.fetch.blocking, "close", close_after_a_pop)
    assert client.exists(marker)
