"""The worker registry in Redis: what every worker's heartbeat, operators and readers share."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from .keys import Keyspace


def forget_stopped_workers(client: redis.Redis, keys: Keyspace, ids: Sequence[str]) -> int:
    """Drop from the worker registry those of `ids` whose worker hash expired (the worker
    stopped beating, e.g. it was SIGKILLed); returns how many. Used by operators and by
    every worker's heartbeat."""
    if not ids:
        return 0
    pipe = client.pipeline(transaction=False)
    for wid in ids:
        pipe.exists(keys.worker(wid))
    gone = [wid for wid, n in zip(ids, pipe.execute(), strict=True) if not n]
    if gone:
        client.zrem(keys.workers(), *gone)
    return len(gone)
