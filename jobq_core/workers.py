"""The worker registry in Redis: what every worker's heartbeat, operators and readers share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import redis

from .connection import is_cluster
from .keys import Keyspace

# Every connection a worker opens is named after it (CLIENT SETNAME, which redis-py sends
# again on each reconnect) and the name is kept in its registry hash (field "conn"). A worker
# whose process died has no connection left at once - the kernel closes a killed process's
# sockets, SIGKILL included - so a reader sees it gone within a read, not when its registry
# entry expires (heartbeat_s x worker_ttl_factor, 15 s by default).
CONN_PREFIX = "jobq:w:"


def connection_name(worker_id: str) -> str:
    """The name of `worker_id`'s connections: CONN_PREFIX and the id, with what CLIENT
    SETNAME refuses (spaces, control and non-ASCII characters) replaced by '_'."""
    return CONN_PREFIX + "".join(c if "!" <= c <= "~" else "_" for c in worker_id)


def connected_names(client: redis.Redis) -> set[str] | None:
    """The names of the worker connections open now on the server(s) of `client`: one
    CLIENT LIST TYPE normal per server (cost bounded by its number of clients, no key is
    read); for a cluster client, the union over its nodes. None when a server refuses
    CLIENT LIST (an ACL without it, or a managed Redis that renamed or disabled it): the
    caller then goes by the registry entries' age alone."""
    nodes: list[redis.Redis] = [client]
    if is_cluster(client):
        nodes = [n.redis_connection for n in client.get_nodes()]  # type: ignore[attr-defined]
        if not nodes or any(n is None for n in nodes):
            return None
    names: set[str] = set()
    for node in nodes:
        try:
            clients = node.client_list(_type="normal")
        except redis.ResponseError:  # NoPermissionError, unknown (renamed) command
            return None
        names.update(str(c.get("name", "")) for c in clients
                     if str(c.get("name", "")).startswith(CONN_PREFIX))
    return names


def worker_alive(fields: Mapping[str, str], names: set[str] | None) -> bool:
    """Whether a worker whose registry hash is `fields` (empty: expired) is alive: its hash
    is there and, where the server lists connections (`names`, from connected_names), one
    of its named connections is open. A worker that names none (an older version) is judged
    by its hash alone."""
    if not fields:
        return False
    conn = fields.get("conn")
    return names is None or not conn or conn in names


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
