"""Claiming and waiting for a cluster worker whose queues all live in one slot (one queue,
or queues that share a hash tag): the single-node path over a direct connection to the
primary that serves the slot, falling back to the routed path when the slot moves.

Why: with every queue on one node, the per-slot machinery of ClusterFetcher buys nothing
and costs on every wake-up: a waiting thread pops the marker and hands over to the main
loop, which then sends the claim (a second round trip). fetch.Fetcher on a plain client
of that node blocks and claims in one round trip (claim_on_wake), like on one Redis.

Correctness: a cluster node checks the slot of every key a command or script declares
before running it, so a direct call to a node that no longer serves the slot (migrated,
failed over) is refused with MOVED/ASK/TRYAGAIN/CLUSTERDOWN and nothing ran. Such a reply
switches this fetcher to the routed path (ClusterFetcher, where redis-py follows the
redirect and refreshes its slot map) for REROUTE_S; then the slot's node is looked up again.
A dropped connection is raised as on one Redis (RedisUnavailable: the worker waits and
claims again), and the node is looked up again after the same pause (a failover moves the
slot to the promoted replica).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import redis
from redis.exceptions import (
    AskError,
    ClusterDownError,
    RedisClusterException,
    TryAgainError,
)

from ..config import Settings
from ..errors import JobqError
from ..job import Claimed
from ..keys import Keyspace
from ..scripts import Scripts
from .cluster_fetch import ClusterFetcher, slot_groups
from .fetch import Fetcher

log = logging.getLogger("jobq.worker")

# Refused by the node before anything ran (MovedError is an AskError).
REDIRECTS = (AskError, TryAgainError, ClusterDownError)
# How long the routed path is used after a redirect or a dropped connection: a migration
# answers ASK/TRYAGAIN until it ends, and each direct try would cost a refused call first.
REROUTE_S = 5.0


def fetcher_class(cluster: bool, queues: Sequence[str]) -> type[Fetcher]:
    """The fetcher for a worker's `queues`: Fetcher on one Redis (or Sentinel), NodeFetcher
    on a cluster when the queues share one slot, ClusterFetcher when they span slots."""
    if not cluster:
        return Fetcher
    return NodeFetcher if len(slot_groups(queues)) == 1 else ClusterFetcher


class NodeFetcher(ClusterFetcher):
    """ClusterFetcher for queues of one slot that claims and waits as fetch.Fetcher does,
    on a direct connection to the slot's primary, while that node serves the slot."""

    def __init__(self, settings: Settings, queues: Sequence[str], worker_id: str,
                 scripts: Scripts, blocking: redis.Redis) -> None:
        super().__init__(settings, queues, worker_id, scripts, blocking)
        self._key = Keyspace(settings.prefix).marker(self.queues[0])  # a key of the slot
        self._direct: Fetcher | None = None
        self._routed_until = 0.0  # monotonic: use the routed path until then

    def claim(self, count: int, *rest: Any) -> list[Claimed]:
        """As Fetcher.claim, on the slot's node; the routed way while it does not serve the
        slot (ClusterFetcher.claim). `rest`: Fetcher.claim's other arguments, passed on."""
        direct = self._node()
        if direct is None:
            return super().claim(count, *rest)
        try:
            return direct.claim(count, *rest)
        except (JobqError, redis.RedisError) as exc:
            if not self._reroute(exc):
                raise
            return super().claim(count, *rest)  # refused before it ran: claim the routed way

    def wait(self, count: int = 0) -> list[Claimed]:
        """As Fetcher.wait on the slot's node: with `count`, the claim rides behind the
        blocking pop (one round trip, under a pick-up lease the caller renews); as
        ClusterFetcher.wait (claims nothing) while the node does not serve the slot.

        While the slot migrates, that claim is refused (claim.lua declares a prefix key that
        never exists: ASK/TRYAGAIN), so it only leases jobs on a settled slot; the renewal
        goes through the cluster client, which follows a migration begun since (retrying
        TRYAGAIN), and one it gives up on stops the job, as a Redis gone at that moment
        does on one Redis."""
        direct = self._node()
        if direct is None:
            return super().wait(count)
        try:
            return direct.wait(count)
        except (JobqError, redis.RedisError) as exc:
            if not self._reroute(exc):
                raise
            return []  # the slot moved while this waited: the next claim goes routed

    def wake(self) -> None:
        """End a wait of either path: the marker set (a direct wait's) and the hint (a
        routed wait's)."""
        self.hint.set()
        try:
            Fetcher.wake(self)
        except Exception as exc:  # best effort: the wait ends by block_s anyway
            log.debug("waking the wait: %s", exc)

    def _node(self) -> Fetcher | None:
        """The direct fetcher for the slot's node, looked up from the cluster client's slot
        map when there is none; None while the routed path is to be used."""
        if self._direct is not None or self.closed.is_set():
            return self._direct
        if time.monotonic() < self._routed_until:
            return None
        try:
            cluster: Any = self.scripts.client
            node = cluster.get_redis_connection(cluster.get_node_from_key(self._key))
            waiting: Any = self.blocking
            blocking = waiting.get_redis_connection(waiting.get_node_from_key(self._key))
        except (RedisClusterException, redis.RedisError) as exc:  # no node known for it
            self._reroute(exc)
            self._routed_until = time.monotonic() + REROUTE_S
            return None
        scripts = Scripts(node, self.settings)
        scripts.strict_replicas = self.scripts.strict_replicas
        # Not pinned: `blocking` is the cluster client's node client, shared, and a direct
        # fetcher dropped on a reroute is not closed (its kept connection would stay taken).
        direct = Fetcher(self.settings, self.queues, self.worker_id, scripts, blocking,
                         pin=False)
        direct.blocked = self.blocked  # the Event the supervisor and tests hold
        direct.seen = self.seen  # the last claim's view, whichever path it took
        # One set of unanswered claim ids for both paths: a direct claim whose reply was lost
        # drops the direct path, and the next claim (routed) must go out under its id to get
        # back the jobs it leased (claim.lua's claim record), not lease others.
        direct._unanswered = self._unanswered
        self._direct = direct
        return direct

    def _reroute(self, exc: BaseException) -> bool:
        """After a direct call failed with `exc` (as raised or as translated() raised it):
        drop the direct path for REROUTE_S when the node refused the call (a redirect:
        True, nothing ran) or the connection failed (False: raised as on one Redis).
        Any other error (a script's, WRONGTYPE) is the caller's to raise: False."""
        cause = exc.__cause__ if isinstance(exc, JobqError) else exc
        refused = isinstance(cause, REDIRECTS)
        if refused or isinstance(cause, (redis.ConnectionError, redis.TimeoutError,
                                         RedisClusterException, OSError)):
            log.info("queues %s: %s; claiming through the cluster client for %.0f s",
                     ",".join(self.queues), " ".join(str(cause).split()) or
                     type(cause).__name__, REROUTE_S)
            self._direct = None
            self._routed_until = time.monotonic() + REROUTE_S
        return refused
