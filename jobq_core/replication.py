"""Writes acknowledged by replicas: a script call and WAIT on the same connection.

Redis replicates asynchronously: a primary that dies before its replicas received a write
takes it with it, though the caller was told it succeeded. With Settings.wait_replicas N,
the script calls a failover must not undo (ACKED: an enqueue, a scheduler's tick, a claim,
a lease renewal, a completion, a failure) go out as EVALSHA then `WAIT N timeout` in one
write on one pooled connection. WAIT counts the replicas holding every write made on its
connection so far, so it covers that call; on another connection it could count replicas
that have not received it yet. With N = 0 nothing here runs: no WAIT is sent.

Fewer than N replicas within the timeout: the primary has applied the write and it may or
may not survive a failover. A producer gets ReplicationTimeout (an enqueue retried with the
same job_id stores the job at most once); a worker logs a warning and goes on (the job ended
here; if a failover loses its completion the job runs again: at-least-once).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import redis
from redis.commands.core import Script
from redis.exceptions import AskError, MovedError, NoScriptError

from .config import Settings
from .connection import is_cluster
from .errors import ReplicationTimeout
from .wire import pipelined

if TYPE_CHECKING:
    from redis.asyncio import Redis as AsyncRedis

log = logging.getLogger("jobq.replication")
# The scripts whose writes wait for the replicas (the others are read-only, maintenance a
# later round redoes, or operator actions whose caller sees the result).
ACKED = frozenset({"enqueue", "fire", "claim", "extend", "complete", "fail", "unknown",
                   "release"})
# A worker facing a lagging replica warns at most this often (each write would otherwise).
WARN_EVERY_S = 10.0


def run_acked(client: redis.Redis, name: str, script: Script, keys: Sequence[str],
              args: Sequence[Any], settings: Settings, *, strict: bool) -> Any:
    """Run `script` (lua/`name`.lua), then WAIT for settings.wait_replicas replicas on the
    same connection; the script's reply. Fewer replicas in time: raises ReplicationTimeout
    when `strict`, else logs a warning (throttled) and returns the reply."""
    command = ("EVALSHA", script.sha, len(keys), *keys, *args)
    (wait,) = waits(settings)
    asking = None  # a cluster node an ASK redirect named, for the next try
    for _ in range(3):  # a lost script cache, a MOVED or an ASK: sent again once each
        reply, acked, asking = _send(client, keys[0], command, wait, asking)
        if isinstance(reply, NoScriptError):  # not run; WAIT had nothing of it to wait for
            _owner(client, keys[0]).script_load(script.script)
        elif not isinstance(reply, AskError):  # MovedError included: its slot moved on
            break
    for answer in (reply, acked):
        if isinstance(answer, Exception):
            raise answer
    check(int(acked), settings, f"{name}.lua", strict=strict)
    return reply


def _send(client: redis.Redis, key: str, command: tuple[Any, ...], wait: tuple[Any, ...],
          asking: Any, failed_over: bool = False) -> tuple[Any, Any, Any]:
    """`command` and `wait` in one write on one connection: of `client`'s pool, or, for a
    cluster client (no pool of its own), of the pool of the primary serving `key` (WAIT
    then counts that primary's replicas), or of `asking` (after ASKING). A cluster redirect
    updates the client's slot table and comes back as the reply, with the node to ask next
    after an ASK (the key's slot is migrating and the key is on that node already)."""
    if not is_cluster(client):
        reply, acked = pipelined(client, command, wait)
        return reply, acked, None
    from redis.cluster import ClusterNode

    cluster: Any = client
    node = asking or cluster.get_node_from_key(key)
    try:
        *_, reply, acked = pipelined(cluster.get_redis_connection(node), *(
            [("ASKING",)] if asking else []), command, wait)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        # A primary gone (failover): read the slots again, as RedisCluster does itself, and
        # when a replica has taken the slot over, send there at once (a refused connection
        # sent nothing; a timeout may have run the write, so it is raised).
        with contextlib.suppress(redis.RedisError):
            cluster.nodes_manager.initialize()
        if asking or failed_over or isinstance(exc, redis.TimeoutError) or \
                cluster.get_node_from_key(key).name == node.name:
            raise
        return _send(client, key, command, wait, None, failed_over=True)
    if isinstance(reply, AskError):
        host, port = cluster.nodes_manager.remap_host_port(reply.host, reply.port)
        return reply, acked, cluster.nodes_manager.get_node(host=host, port=port) or \
            ClusterNode(host, port)  # type: ignore[no-untyped-call]
    if isinstance(reply, MovedError):
        cluster.nodes_manager.move_slot(reply)
    return reply, acked, None


def _owner(client: redis.Redis, key: str) -> redis.Redis:
    """The client that reaches the primary serving `key` (`client` itself unless a cluster)."""
    if not is_cluster(client):
        return client
    cluster: Any = client
    node_client: redis.Redis = cluster.get_redis_connection(cluster.get_node_from_key(key))
    return node_client


async def arun(client: AsyncRedis, name: str, script: Script, keys: Sequence[str],
               args: Sequence[Any], settings: Settings) -> Any:
    """Run `script` (lua/`name`.lua) on an asyncio client: EVALSHA, loading the script when
    the server does not have it; for an ACKED script with wait_replicas, arun_acked."""
    if settings.wait_replicas and name in ACKED:
        return await arun_acked(client, name, script, keys, args, settings)
    try:
        return await client.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        await client.script_load(script.script)
        return await client.evalsha(script.sha, len(keys), *keys, *args)


async def arun_acked(client: AsyncRedis, name: str, script: Script, keys: Sequence[str],
                     args: Sequence[Any], settings: Settings) -> Any:
    """run_acked (strict) on an asyncio client: a pipeline holds one connection for both."""
    for _ in range(2):
        pipe = client.pipeline(transaction=False)
        pipe.evalsha(script.sha, len(keys), *keys, *args)
        pipe.execute_command(*waits(settings)[0])
        reply, acked = await pipe.execute(raise_on_error=False)
        if not isinstance(reply, NoScriptError):
            break
        await client.script_load(script.script)
    for answer in (reply, acked):
        if isinstance(answer, Exception):
            raise answer
    check(int(acked), settings, f"{name}.lua", strict=True)
    return reply


def waits(settings: Settings) -> list[tuple[Any, ...]]:
    """The WAIT to send after a write on the same connection: none when wait_replicas is 0."""
    if not settings.wait_replicas:
        return []
    return [("WAIT", settings.wait_replicas, int(settings.wait_replicas_timeout_s * 1000))]


def checked(replies: Sequence[Any], settings: Settings, what: str) -> None:
    """check() (not strict: a worker's) the reply of the WAIT from waits(), if one was sent
    (an error reply counts as no replica)."""
    for n in replies:
        check(n if isinstance(n, int) else 0, settings, what, strict=False)


def check(acked: int, settings: Settings, what: str, *, strict: bool) -> None:
    """Raise ReplicationTimeout (or warn, when not `strict`) if `acked` replicas are fewer
    than settings.wait_replicas."""
    wanted = settings.wait_replicas
    if acked >= wanted:
        return
    message = (f"{what}: {acked} of {wanted} replica(s) acknowledged the write within "
               f"{settings.wait_replicas_timeout_s:g} s (wait_replicas). The primary applied "
               "it; it may or may not survive a failover. Check the replicas (INFO "
               "replication), or lower wait_replicas.")
    if strict:
        raise ReplicationTimeout(message + " An enqueue retried with the same job_id stores "
                                 "the job at most once.", acked=acked, wanted=wanted)
    _warn(message)


_warned = {"at": 0.0, "quiet": 0}
_warn_lock = threading.Lock()


def _warn(message: str) -> None:
    with _warn_lock:
        now = time.monotonic()
        if now - _warned["at"] < WARN_EVERY_S:
            _warned["quiet"] += 1
            return
        quiet, _warned["quiet"], _warned["at"] = _warned["quiet"], 0, now
    more = f" ({quiet} more such write(s) since the last warning)" if quiet else ""
    log.warning("%s The job goes on here; if a failover undoes this write, the job runs "
                "again (at-least-once).%s", message, more)
