"""wire.Pinned on one Redis (no Sentinel): the connection it keeps is given back to the pool and
another taken after a failed call, exactly once, without leaking the pool's place or sharing
a connection with the pool's other users."""

from __future__ import annotations

import pytest
import redis

from jobq_core.wire import Pinned
from tests.faults.harness.server import RedisServer


def test_a_failed_call_retakes_the_kept_connection_through_the_pool() -> None:
    with RedisServer() as server:
        client = server.client()
        pool = client.connection_pool
        pinned = Pinned(client)

        def kept_id() -> int:
            return int(pinned.pipelined(("CLIENT", "ID"))[0])

        first = kept_id()
        server.client().client_kill_filter(_id=str(first))
        with pytest.raises(redis.ConnectionError):  # sent once: the caller meets it
            kept_id()
        # Retaken once: the same (new) connection from then on, not a new one per call,
        # and the dropped one went back to the pool (one place in use, not two).
        again = [kept_id() for _ in range(3)]
        assert again[0] != first and again == [again[0]] * 3
        assert len(pool._in_use_connections) == 1

        # A retake whose get fails (the server is down) keeps nothing, and is not done
        # again once a connection is taken. Met by pipelined(): the failed call, then the
        # retake's failed get; by evalsha(): its re-send's failed get.
        def pipelined_down() -> None:
            for _ in range(2):
                with pytest.raises(redis.ConnectionError):
                    kept_id()

        def evalsha_down() -> None:
            with pytest.raises(redis.ConnectionError):
                pinned.evalsha("0" * 40, 0, ())

        for down in (pipelined_down, evalsha_down):
            server.kill()
            down()
            server.start()
            kept = kept_id()
            # The connection given back is the pool's: kept too, it would be lent to the
            # pool's next user as well (two users on one socket).
            assert client.client_id() != kept
            assert kept_id() == kept
            assert len(pool._in_use_connections) == 1
        client.close()
