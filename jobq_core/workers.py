"""The worker registry in Redis: what every worker's heartbeat, operators and readers share."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from .keys import Keyspace


def forget_stopped_workers(client: redis.Redis, keys: Keyspace, ids: Sequence[str],
                           queues: Sequence[str] = ()) -> int:
    """Drop from the worker registry those of `ids` whose worker hash expired (the worker
    stopped beating, e.g. it was SIGKILLed), and their task lists on `queues`; returns how
    many. Used by operators and by every worker's heartbeat."""
    if not ids:
        return 0
    pipe = client.pipeline(transaction=False)
    for wid in ids:
        pipe.exists(keys.worker(wid))
    gone = [wid for wid, n in zip(ids, pipe.execute(), strict=True) if not n]
    if gone:
        pipe = client.pipeline(transaction=False)
        pipe.zrem(keys.workers(), *gone)
        for q in queues:  # out of date, so unknown.lua ignores them; this bounds the hash
            pipe.hdel(keys.tasks(q), *gone)
        pipe.execute()
    return len(gone)
