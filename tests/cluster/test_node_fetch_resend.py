"""A cluster worker of one slot (worker/node_fetch.py) whose direct claim ran on the node but
lost its reply: the next claim - routed for a while after the dropped connection - is sent
under the same request id, so it returns the jobs that claim leased (claim.lua's claim
record) instead of leasing others and leaving those to nobody until reaped."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from jobq_core import Queue, Settings
from jobq_core.connection import connect
from jobq_core.errors import RedisUnavailable
from jobq_core.job import Claimed
from jobq_core.keys import Keyspace
from jobq_core.scripts import Scripts
from jobq_core.worker.node_fetch import NodeFetcher
from tests import tasks

QUEUE = "nodefetch-resend"


def direct_fetcher(csettings: Settings, worker_id: str) -> NodeFetcher:
    """A NodeFetcher that has claimed once (nothing), so its direct path is set up."""
    fetch = NodeFetcher(csettings, [QUEUE], worker_id, Scripts(connect(csettings), csettings),
                        connect(csettings, blocking=True))
    assert fetch.claim(10) == [] and fetch._direct is not None
    return fetch


def lose_reply(fetch: NodeFetcher, method: str, call: Callable[[], Any]) -> None:
    """Make the direct path's Scripts `method` run on the node and lose its reply (the
    connection closed), then `call`, which must raise that as RedisUnavailable."""
    scripts: Any = fetch._direct.scripts  # type: ignore[union-attr]
    sent = getattr(scripts, method)

    def reply_lost(*args: Any, **kwargs: Any) -> Any:
        sent(*args, **kwargs)  # it ran on the node...
        raise redis.ConnectionError("Connection closed by server")  # ...the reply is lost

    setattr(scripts, method, reply_lost)
    with pytest.raises(RedisUnavailable):
        call()


def test_a_direct_claim_whose_reply_was_lost_is_answered_by_the_next(
        csettings: Settings) -> None:
    fetch = direct_fetcher(csettings, "w1")
    q = Queue(QUEUE, settings=csettings)
    try:
        jobs = [q.enqueue(tasks.add, i, 1).id for i in range(2)]
        lose_reply(fetch, "claim", lambda: fetch.claim(10))
        assert fetch._direct is None  # routed for a while: the connection dropped
        assert sorted(j.id for j in fetch.claim(10)) == sorted(jobs)
    finally:
        fetch.close()


def test_a_direct_claim_on_wake_whose_reply_was_lost_is_handed_back_by_the_next(
        csettings: Settings) -> None:
    """The claim behind the direct wait's blocking pop: its jobs went back only when their
    pick-up leases ended and a reaper took them (each a lost lease)."""
    fetch = direct_fetcher(csettings, "w2")
    q = Queue(QUEUE, settings=csettings)
    k = Keyspace(csettings.prefix)
    r = connect(csettings)
    try:
        jobs = [q.enqueue(tasks.add, i, 1).id for i in range(2)]
        lose_reply(fetch, "wait_and_claim", lambda: fetch.wait(10))
        submitted: list[Claimed] = []
        assert fetch.claim(10, lambda job, _: submitted.append(job)) == []  # re-sent, routed
        assert submitted == []  # handed back
        assert sorted(r.zrange(k.pending(QUEUE), 0, -1)) == sorted(jobs)
        assert sorted(j.id for j in fetch.claim(10)) == sorted(jobs)
    finally:
        fetch.close()
        r.close()
