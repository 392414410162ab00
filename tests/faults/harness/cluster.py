"""A Redis/Valkey Cluster for fault scenarios: jobq_core.localcluster.LocalCluster (the same
launcher as `jobq up --cluster` and the test suite) with a short node timeout, so a replica
takes over a SIGKILLed primary in about a second, plus the moves a scenario makes: find the
primary serving a queue, kill it and wait for the failover, migrate a slot to another primary.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import redis
from redis.crc import key_slot

from jobq_core.localcluster import LocalCluster
from jobq_core.server import LocalRedis

from .server import replication_cut

# cluster-node-timeout: a primary silent this long is failing; its replica then waits about
# 500 ms + a random 0-500 ms + rank * 1 s before asking for votes (Redis cluster spec).
NODE_TIMEOUT_MS = 500


class FaultCluster:
    """3 primaries with ``replicas`` replicas each (2 by default: a shard whose primary died
    still has a replica to acknowledge WAIT 1 after the failover)."""

    def __init__(self, root: Path, *, replicas: int = 2,
                 node_timeout_ms: int = NODE_TIMEOUT_MS) -> None:
        self.cluster = LocalCluster(root, n_primaries=3, n_replicas=replicas,
                                    node_timeout_ms=node_timeout_ms)
        self.killed: list[LocalRedis] = []

    def start(self) -> FaultCluster:
        self.cluster.start(timeout_s=60)
        return self

    @property
    def url(self) -> str:
        return self.cluster.url

    def client(self, node: LocalRedis) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=node.port, decode_responses=True,
                           socket_timeout=2, socket_connect_timeout=1)

    def reach(self, node: LocalRedis) -> Node:
        """``node`` as a harness.scenario.Reachable (for Scenario.stuck and .processing)."""
        return Node(self, node)

    def live(self) -> list[LocalRedis]:
        return [n for n in self.cluster.nodes if n not in self.killed]

    def owner(self, queue: str) -> LocalRedis:
        """The primary serving ``{queue}``'s slot, as a live node's CLUSTER SLOTS says now."""
        slot = key_slot(f"{{{queue}}}".encode())
        for node in self.live():
            with contextlib.suppress(redis.RedisError), self.client(node) as c:
                for lo, hi, primary, *_ in c.execute_command("CLUSTER", "SLOTS"):
                    if int(lo) <= slot <= int(hi):
                        return self.node(int(primary[1]))
        raise RuntimeError(f"no live node knows who serves the slot of {queue!r}")

    def node(self, port: int) -> LocalRedis:
        return next(n for n in self.cluster.nodes if n.port == port)

    def kill(self, node: LocalRedis) -> None:
        """SIGKILL: whatever its replicas had not received is gone with it."""
        assert node.proc is not None
        node.proc.kill()
        node.proc.wait(10)
        self.killed.append(node)

    def lagging(self, primary: LocalRedis) -> contextlib.AbstractContextManager[None]:
        """``primary``'s replicas cut off for the block (server.replication_cut)."""
        i, n = self.cluster.primaries.index(primary), len(self.cluster.primaries)
        pids = [r.proc.pid for j, r in enumerate(self.cluster.replicas)
                if j % n == i and r.proc is not None]
        return replication_cut(self.client(primary), pids)

    def wait_failover(self, queue: str, old: LocalRedis, timeout_s: float = 30.0) -> LocalRedis:
        """Until another node serves ``queue``'s slot as a primary and every live primary
        says cluster_state:ok; returns the new primary."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError, RuntimeError):
                new = self.owner(queue)
                if new is not old and self._ok(new):
                    return new
            time.sleep(0.02)
        raise RuntimeError(f"no failover of {queue!r}'s slot within {timeout_s}s")

    def _ok(self, primary: LocalRedis) -> bool:
        with self.client(primary) as c:
            if c.info("replication").get("role") != "master":
                return False
            info = str(c.execute_command("CLUSTER", "INFO"))
        return "cluster_state:ok" in info

    def linked_replicas(self, primary: LocalRedis) -> int:
        with self.client(primary) as c:
            return int(c.info("replication").get("connected_slaves", 0))

    def migrate(self, queue: str, target: LocalRedis, batch: int = 20,
                pause_s: float = 0.0) -> int:
        """Move ``queue``'s slot to ``target`` under load, the way an operator's reshard does
        (LocalCluster.migrate_slot); returns the number of keys moved."""
        return self.cluster.migrate_slot(key_slot(f"{{{queue}}}".encode()), target,
                                         batch=batch, pause_s=pause_s)

    def stop(self) -> None:
        self.cluster.destroy()


class Node:
    """One node of a FaultCluster, with the client() a scenario asks servers for."""

    def __init__(self, cluster: FaultCluster, node: LocalRedis) -> None:
        self.cluster = cluster
        self.node = node

    def client(self) -> redis.Redis:
        return self.cluster.client(self.node)
