"""A cluster worker of one slot (worker/node_fetch.py) whose direct claim ran on the node but
lost its reply: the next claim - routed for a while after the dropped connection - is sent
under the same request id, so it returns the jobs that claim leased (claim.lua's claim
record) instead of leasing others and leaving those to nobody until reaped."""

from __future__ import annotations

from typing import Any

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


def test_a_direct_claim_whose_reply_was_lost_is_answered_by_the_next(
        csettings: Settings) -> None:
    fetch = NodeFetcher(csettings, [QUEUE], "w1", Scripts(connect(csettings), csettings),
                        connect(csettings, blocking=True))
    q = Queue(QUEUE, settings=csettings)
    try:
        assert fetch.claim(10) == [] and fetch._direct is not None
        direct: Any = fetch._direct
        sent = direct.scripts.claim

        def reply_lost(*args: Any, **kwargs: Any) -> Any:
            sent(*args, **kwargs)  # it ran on the node...
            raise redis.ConnectionError("Connection closed by server")  # ...the reply is lost

        direct.scripts.claim = reply_lost
        jobs = [q.enqueue(tasks.add, i, 1).id for i in range(2)]
        try:
            fetch.claim(10)
            raise AssertionError("the lost reply was not raised")
        except RedisUnavailable:
            pass
        assert fetch._direct is None  # routed for a while: the connection dropped
        assert sorted(j.id for j in fetch.claim(10)) == sorted(jobs)
    finally:
        fetch.close()


def test_a_direct_claim_on_wake_whose_reply_was_lost_is_handed_back_by_the_next(
        csettings: Settings) -> None:
    """The claim behind the direct wait's blocking pop: its jobs went back only when their
    pick-up leases ended and a reaper took them (each a lost lease)."""
    fetch = NodeFetcher(csettings, [QUEUE], "w2", Scripts(connect(csettings), csettings),
                        connect(csettings, blocking=True))
    q = Queue(QUEUE, settings=csettings)
    k = Keyspace(csettings.prefix)
    r = connect(csettings)
    try:
        assert fetch.claim(10) == [] and fetch._direct is not None
        direct: Any = fetch._direct
        sent = direct.scripts.wait_and_claim

        def reply_lost(*args: Any, **kwargs: Any) -> Any:
            assert sent(*args, **kwargs).jobs  # it ran on the node...
            raise redis.ConnectionError("Connection closed by server")  # ...the reply is lost

        direct.scripts.wait_and_claim = reply_lost
        jobs = [q.enqueue(tasks.add, i, 1).id for i in range(2)]
        try:
            fetch.wait(10)
            raise AssertionError("the lost reply was not raised")
        except RedisUnavailable:
            pass
        submitted: list[Claimed] = []
        assert fetch.claim(10, lambda job, _: submitted.append(job)) == []  # re-sent, routed
        assert submitted == []  # handed back
        assert sorted(r.zrange(k.pending(QUEUE), 0, -1)) == sorted(jobs)
        assert sorted(j.id for j in fetch.claim(10)) == sorted(jobs)
    finally:
        fetch.close()
        r.close()
