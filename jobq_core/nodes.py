"""The Redis nodes behind jobq: which node holds each queue, and each node's health.

On one Redis (or a Sentinel-managed primary) there is one node and every queue is on it.
On a Redis/Valkey Cluster each queue is one slot (its keys share the `{queue}` hash tag),
so it lives on the primary that serves that slot; the read API reports every primary and
replica with its role, link state (from CLUSTER NODES), memory, ops/s and CPU (from its
own INFO). Read only, bounded: one CLUSTER NODES and one INFO per node.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.crc import key_slot

from .connection import is_cluster
from .keys import Keyspace

# INFO sections a node's health comes from (one INFO call per node, several sections).
INFO_SECTIONS = ("server", "memory", "clients", "stats", "cpu", "replication")


@dataclass(frozen=True)
class ClusterNode:
    """One line of CLUSTER NODES."""

    id: str
    address: str  # host:port
    role: str  # primary | replica
    primary_id: str  # the primary a replica follows ('' for a primary)
    link: str  # connected | disconnected, or fail / pfail when the cluster flags it
    slots: tuple[tuple[int, int], ...]  # slot ranges served (a primary's), inclusive

    def serves(self, slot: int) -> bool:
        return any(lo <= slot <= hi for lo, hi in self.slots)

    @property
    def slot_count(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.slots)


@dataclass(frozen=True)
class NodeHealth:
    """What an operator needs to know about one Redis node."""

    address: str
    role: str  # standalone | primary | replica
    link: str  # ok (standalone) | connected | disconnected | fail | pfail
    primary: str = ""  # a replica's primary (address)
    slots: int = 0  # cluster slots served (a primary's)
    version: str = ""
    used_memory: int = 0
    used_memory_human: str = ""
    maxmemory_human: str = ""
    ops_per_sec: int = 0
    commands: int = 0  # total_commands_processed since the node started
    cpu_s: float = 0.0  # used_cpu_sys + used_cpu_user since the node started
    connected_clients: int = 0
    error: str = ""  # why INFO could not be read ('' when it was)
    queues: tuple[str, ...] = field(default_factory=tuple)  # queues whose slot it serves

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def queue_slot(keys: Keyspace, queue: str) -> int:
    """The cluster slot every key of `queue` lives in (its `{queue}` hash tag)."""
    return int(key_slot(keys.pending(queue).encode()))


def parse_cluster_nodes(text: str) -> list[ClusterNode]:
    """The nodes of a CLUSTER NODES reply (importing/migrating slot marks are skipped)."""
    nodes = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        node_id, addr, flags, primary, link = parts[0], parts[1], parts[2].split(","), \
            parts[3], parts[7]
        address = addr.split("@", 1)[0]
        if "fail" in flags:
            link = "fail"
        elif "fail?" in flags:
            link = "pfail"
        ranges = []
        for spec in parts[8:]:
            if spec.startswith("["):
                continue
            lo, _, hi = spec.partition("-")
            ranges.append((int(lo), int(hi or lo)))
        role = "primary" if "master" in flags else "replica"
        nodes.append(ClusterNode(node_id, address, role, "" if primary == "-" else primary,
                                 link, tuple(ranges)))
    return nodes


def _cluster_nodes(client: Any) -> list[ClusterNode]:
    reply: Any = client.cluster_nodes()
    if isinstance(reply, str):  # the raw text (redis-py parses it by default)
        return parse_cluster_nodes(reply)
    # redis-py's parsed form: {"host:port": {"node_id", "flags", "master_id",
    # "connected", "slots": [[lo, hi], ...]}}
    nodes = []
    for addr, n in reply.items():
        flags = str(n.get("flags", "")).split(",")
        link = "connected" if n.get("connected") else "disconnected"
        if "fail" in flags:
            link = "fail"
        elif "fail?" in flags:
            link = "pfail"
        primary = str(n.get("master_id", "-"))
        slots = tuple((int(s[0]), int(s[-1])) for s in n.get("slots", []) if s)
        nodes.append(ClusterNode(str(n.get("node_id", "")), str(addr).split("@", 1)[0],
                                 "primary" if "master" in flags else "replica",
                                 "" if primary == "-" else primary, link, slots))
    return sorted(nodes, key=lambda n: n.address)


def queue_nodes(client: redis.Redis, keys: Keyspace, queues: Iterable[str]) -> dict[str, str]:
    """queue -> address of the primary holding it ('' when not a cluster: one node has all)."""
    names = list(queues)
    if not is_cluster(client):
        return {q: "" for q in names}
    primaries = [n for n in _cluster_nodes(client) if n.role == "primary"]
    return {q: _owner(primaries, queue_slot(keys, q)) for q in names}


def _owner(primaries: Sequence[ClusterNode], slot: int) -> str:
    return next((n.address for n in primaries if n.serves(slot)), "")


def node_health(client: redis.Redis, keys: Keyspace, queues: Iterable[str]) -> list[NodeHealth]:
    """Every node's health, primaries first (each with the queues it holds), then replicas."""
    names = sorted(queues)
    if not is_cluster(client):
        info = _info(client)
        role = "replica" if info.get("role") == "slave" else "standalone"
        return [_health(info, address=_address(client), role=role, link="ok",
                        queues=tuple(names))]
    cluster: Any = client
    nodes = _cluster_nodes(cluster)
    by_id = {n.id: n.address for n in nodes}
    primaries = [n for n in nodes if n.role == "primary"]
    held: dict[str, list[str]] = {}
    for q in names:
        held.setdefault(_owner(primaries, queue_slot(keys, q)), []).append(q)
    out = []
    for n in sorted(nodes, key=lambda n: (n.role != "primary", n.address)):
        host, _, port = n.address.rpartition(":")
        target = cluster.get_node(host=host, port=int(port)) if port.isdigit() else None
        try:
            if target is None:
                raise redis.ConnectionError("not among the client's known nodes")
            info = {}
            for section in INFO_SECTIONS:  # one by one: INFO takes several only from Redis 7
                info.update(cluster.info(section, target_nodes=target))
            error = ""
        except redis.RedisError as exc:
            info, error = {}, " ".join(str(exc).split())[:200] or type(exc).__name__
        out.append(_health(info, address=n.address, role=n.role, link=n.link,
                           primary=by_id.get(n.primary_id, ""), slots=n.slot_count,
                           error=error, queues=tuple(held.get(n.address, ()))))
    return out


def _info(client: redis.Redis) -> dict[str, Any]:
    info: dict[str, Any] = {}
    for section in INFO_SECTIONS:
        info.update(client.info(section))
    return info


def _address(client: redis.Redis) -> str:
    kw: Mapping[str, Any] = client.connection_pool.connection_kwargs
    if kw.get("path"):
        return f"unix:{kw['path']}"
    return f"{kw.get('host', '?')}:{kw.get('port', '?')}"


def _health(info: Mapping[str, Any], **known: Any) -> NodeHealth:
    def num(name: str) -> int:
        try:
            return int(info.get(name) or 0)
        except (TypeError, ValueError):
            return 0

    cpu = float(info.get("used_cpu_sys") or 0) + float(info.get("used_cpu_user") or 0)
    return NodeHealth(version=str(info.get("redis_version", "")),
                      used_memory=num("used_memory"),
                      used_memory_human=str(info.get("used_memory_human", "")),
                      maxmemory_human=str(info.get("maxmemory_human", "")),
                      ops_per_sec=num("instantaneous_ops_per_sec"),
                      commands=num("total_commands_processed"), cpu_s=round(cpu, 6),
                      connected_clients=num("connected_clients"), **known)
