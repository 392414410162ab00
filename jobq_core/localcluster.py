"""Start a local Redis/Valkey Cluster: N primaries (and optionally a replica each) on free
loopback ports in one temp dir, slots split in N even ranges, created by this code itself
(CLUSTER ADDSLOTSRANGE / MEET / REPLICATE, what `valkey-cli --cluster create` does).

    with LocalCluster(temp_dir("jq-cluster-"), primaries=3, replicas=1) as cluster:
        Queue("default", url=cluster.url)          # redis+cluster://127.0.0.1:p1,...

Used by the test suite (tests/cluster) and by `jobq up --cluster N`. Same server binary as
LocalRedis (server.find_server_binary).
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import redis
from redis.crc import key_slot

from .errors import JobqError
from .server import LocalRedis, find_server_binary

SLOTS = 16384


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port(taken: set[int]) -> int:
    """A loopback port that is free, as is its cluster bus port (port + 10000). Chosen at
    random in 20000-49999 (never 6379) so parallel test sessions rarely collide."""
    for _ in range(1000):
        port = random.randint(20000, 49999)
        if port not in taken and port + 10000 not in taken and _free(port) \
                and _free(port + 10000):
            return port
    raise JobqError("no free loopback port pair for a cluster node")


@dataclass
class LocalCluster:
    """A cluster of server processes this program started (all on 127.0.0.1).

    `primaries[i]` serves the slot range i of `primaries` even ranges; `replicas[i]` (when
    `replicas=1`) replicates `primaries[i]`. `node_timeout_ms` is the cluster's failure
    detection time (a replica takes over a dead primary after about that long)."""

    dir: Path
    n_primaries: int = 3
    n_replicas: int = 1  # per primary: 0 or more
    node_timeout_ms: int = 2000
    extra_args: Sequence[str] = ()
    binary: str = field(default_factory=find_server_binary)
    # Run in each node's process before exec (`jobq up`: die with the parent); None for tests.
    preexec_fn: Callable[[], None] | None = None
    primaries: list[LocalRedis] = field(default_factory=list)
    replicas: list[LocalRedis] = field(default_factory=list)

    @property
    def nodes(self) -> list[LocalRedis]:
        return self.primaries + self.replicas

    @property
    def url(self) -> str:
        """`redis+cluster://` URL naming every primary as a startup node."""
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in self.primaries)
        return f"redis+cluster://{hosts}"

    def client(self, node: LocalRedis) -> redis.Redis:
        """A plain (non-cluster) client of one node, e.g. for CLUSTER or INFO commands."""
        return redis.Redis(host="127.0.0.1", port=node.port, decode_responses=True,
                           socket_timeout=5)

    def cmd(self, node: LocalRedis, *args: object) -> object:
        """One command on one node (a client opened and closed around it)."""
        with self.client(node) as c:
            return c.execute_command(*args)  # type: ignore[no-untyped-call, unused-ignore]

    def start(self, timeout_s: float = 30.0) -> LocalCluster:
        self.dir.mkdir(parents=True, exist_ok=True)
        taken: set[int] = set()
        try:
            for i in range(self.n_primaries * (1 + self.n_replicas)):
                port = free_cluster_port(taken)
                taken |= {port, port + 10000}
                node = self._node(i, port).start()
                (self.primaries if i < self.n_primaries else self.replicas).append(node)
            self._create(time.monotonic() + timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _node(self, i: int, port: int) -> LocalRedis:
        d = self.dir / f"n{i}-{port}"
        args = ["--cluster-enabled", "yes", "--cluster-config-file", str(d / "nodes.conf"),
                "--cluster-node-timeout", str(self.node_timeout_ms),
                # A replica may take over however long it was cut off: tests kill primaries.
                "--cluster-replica-validity-factor", "0", *self.extra_args]
        return LocalRedis(d, port=port, extra_args=args, binary=self.binary,
                          preexec_fn=self.preexec_fn)

    def _create(self, deadline: float) -> None:
        n = self.n_primaries
        for i, node in enumerate(self.primaries):
            lo, hi = i * SLOTS // n, (i + 1) * SLOTS // n - 1
            self.cmd(node, "CLUSTER", "ADDSLOTSRANGE", lo, hi)
            # Distinct epochs up front, as valkey-cli does: no epoch collision to resolve.
            self.cmd(node, "CLUSTER", "SET-CONFIG-EPOCH", i + 1)
        for node in self.nodes[1:]:
            self.cmd(self.primaries[0], "CLUSTER", "MEET", "127.0.0.1", node.port)
        self._until(deadline, "every node meets every other", self._all_known)
        for i, node in enumerate(self.replicas):
            primary = self.primaries[i % n]
            self.cmd(node, "CLUSTER", "REPLICATE", self.node_id(primary))
        self._until(deadline, "cluster_state:ok on every node", self._ok)

    def _until(self, deadline: float, what: str, check: object) -> None:
        assert callable(check)
        while not check():
            if time.monotonic() > deadline:
                raise JobqError(f"local cluster in {self.dir}: timed out waiting until {what}")
            time.sleep(0.05)

    def _all_known(self) -> bool:
        total = len(self.nodes)
        for node in self.nodes:
            lines = str(self.cmd(node, "CLUSTER", "NODES")).splitlines()
            if len(lines) < total or any("handshake" in line or "noaddr" in line
                                         for line in lines):
                return False
        return True

    def _ok(self) -> bool:
        for node in self.nodes:
            info = self.cluster_info(node)
            if info.get("cluster_state") != "ok" or int(info.get("cluster_slots_ok", 0)) != SLOTS:
                return False
        for node in self.replicas:
            with self.client(node) as c:
                if c.info("replication").get("master_link_status") != "up":
                    return False
        return True

    def cluster_info(self, node: LocalRedis) -> dict[str, str]:
        """CLUSTER INFO of one node as a dict."""
        text = str(self.cmd(node, "CLUSTER", "INFO"))
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def node_id(self, node: LocalRedis) -> str:
        return str(self.cmd(node, "CLUSTER", "MYID"))

    def primary_of(self, key: str) -> int:
        """Index in `primaries` of the primary that served `key`'s slot when the cluster was
        created (slot ranges as assigned; a migration or failover since is not seen)."""
        return key_slot(key.encode()) * self.n_primaries // SLOTS

    def owner_of(self, slot: int) -> LocalRedis:
        """The node serving `slot` now, as a live node's CLUSTER SLOTS says (after a
        failover or a migration, not `primaries[primary_of(...)]`)."""
        for asked in self.nodes:
            if asked.proc is None or asked.proc.poll() is not None:
                continue
            try:
                ranges: object = self.cmd(asked, "CLUSTER", "SLOTS")
            except redis.RedisError:
                continue
            for lo, hi, primary, *_ in ranges:  # type: ignore[attr-defined]
                if int(lo) <= slot <= int(hi):
                    port = int(primary[1])
                    return next(n for n in self.nodes if n.port == port)
        raise JobqError(f"no live node of the cluster in {self.dir} knows slot {slot}")

    def migrate_slot(self, slot: int, to: LocalRedis, *, batch: int = 10,
                     pause_s: float = 0.0) -> int:
        """Move `slot` to the primary `to` while clients keep using it, as an operator's
        resharding does (SETSLOT IMPORTING/MIGRATING, MIGRATE `batch` keys at a time with
        `pause_s` between batches, then SETSLOT NODE on every primary); returns the keys
        moved. Meanwhile clients get ASK/TRYAGAIN for the slot's keys."""
        src = self.owner_of(slot)
        if src is to:
            return 0
        src_id, dst_id = self.node_id(src), self.node_id(to)
        self.cmd(to, "CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        self.cmd(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        moved = 0
        while True:
            keys: Any = self.cmd(src, "CLUSTER", "GETKEYSINSLOT", slot, batch)
            if not keys:
                break
            self.cmd(src, "MIGRATE", "127.0.0.1", to.port, "", 0, 5000, "KEYS", *keys)
            moved += len(keys)
            if pause_s:
                time.sleep(pause_s)
        for node in [to, src, *(n for n in self.nodes if n not in (to, src))]:
            if node.proc is None or node.proc.poll() is not None:
                continue
            with contextlib.suppress(redis.ResponseError):  # a replica learns from its primary
                self.cmd(node, "CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        return moved

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def destroy(self) -> None:
        """Stop every node and delete the directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start() if not self.primaries else self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.destroy()


def queue_names_on_distinct_primaries(count: int, n_primaries: int,
                                      stem: str = "q") -> list[str]:
    """`count` (<= n_primaries) queue names `<stem><k>` whose `{queue}` tag hashes to a
    different primary each, for a cluster made by LocalCluster (even slot ranges)."""
    if count > n_primaries:
        raise ValueError("more queues than primaries")
    names: dict[int, str] = {}
    k = 0
    while len(names) < count:
        name = f"{stem}{k}"
        # Every key of a queue carries the hash tag {name}: its slot is the name's.
        owner = key_slot(name.encode()) * n_primaries // SLOTS
        names.setdefault(owner, name)
        k += 1
    return [names[i] for i in sorted(names)]
