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

A, C = queue_names_on_distinct_primaries(2, 2)


@pytest.fixture
def s(csettings: Settings) -> Settings:
    return csettings.replace(block_s=5.0)


@pytest.fixture
def fetcher(s: Settings) -> Iterator[ClusterFetcher]:
    f = ClusterFetcher(s, [A, C], "w1", Scripts(connect(s), s), connect(s, blocking=True))
    yield f
    f.close()


def markers_gone(client: redis.Redis, *keys: str, within_s: float = 5.0) -> bool:
    return eventually(lambda: not client.exists(*keys), within_s)


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
    assert markers_gone(client, keys.marker(A), keys.marker(C))
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
