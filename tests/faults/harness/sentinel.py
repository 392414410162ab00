"""A Sentinel deployment for fault scenarios: one primary, its replicas and three sentinels,
every process a RedisServer of this harness (same binary: `valkey-server --sentinel` or
`redis-server --sentinel`), all on 127.0.0.1 free ports.

Sentinel timings are shrunk as the workers' are: the primary is declared down after
``down_after_ms`` without an answer, so a SIGKILLed primary is replaced in about two seconds.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import redis

from .server import RedisServer, ServerOptions, replication_cut

SERVICE = "mymaster"
# A sentinel reconnects a link at most once a second (Sentinel's own ping period, fixed), and on
# +switch-master it starts the new primary's "no answer since" clock while its link is still
# the dead primary's, throttled: the first PING to the new primary can go out up to a second
# after the switch. A down-after below that can declare a healthy new primary down, and two
# sentinels agreeing fail over again at once (the switch clears their failover delay). The
# first promoted server then stays a writable primary, its clients' connections open, until
# the sentinels convert it about ten seconds later (s14 then fails: "processing to drain").
# Measured: at 300 ms (no jobs flowing) all three did so in each of 12 runs, 11 of which failed
# over 2-3 more times within 4 s; at 500 ms one sentinel did in 1 of 52 s14 runs.
LINK_RECONNECT_MS = 1000
DOWN_AFTER_MS = 1500  # above LINK_RECONNECT_MS, with room for a tick and a busy machine


class SentinelServer(RedisServer):
    """One sentinel process watching ``master_port`` (config file written in its dir)."""

    def __init__(self, master_port: int, data_dir: Path, *, quorum: int = 2,
                 down_after_ms: int = DOWN_AFTER_MS, failover_timeout_ms: int = 3000) -> None:
        super().__init__(data_dir=data_dir)
        self.master_port = master_port
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms

    def argv(self) -> list[str]:
        conf = self.dir / "sentinel.conf"
        if not conf.exists():  # a restarted sentinel keeps what it rewrote there
            conf.write_text("\n".join([
                f"port {self.port}", "bind 127.0.0.1", f"dir {self.dir}",
                f"logfile {self.log_path}", "daemonize no",
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} {self.quorum}",
                f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}",
                f"sentinel failover-timeout {SERVICE} {self.failover_timeout_ms}",
                f"sentinel parallel-syncs {SERVICE} 2", ""]))
        return [self.binary, str(conf), "--sentinel"]


class SentinelSet:
    """A primary, ``replicas`` replicas of it and ``sentinels`` sentinels, started together."""

    def __init__(self, root: Path, *, replicas: int = 2, sentinels: int = 3,
                 down_after_ms: int = DOWN_AFTER_MS) -> None:
        self.root = root
        self.primary = RedisServer(ServerOptions(), data_dir=root / "primary")
        self.replicas = [
            RedisServer(ServerOptions(extra=["--replicaof", "127.0.0.1", str(self.primary.port)]),
                        data_dir=root / f"replica{i}")
            for i in range(replicas)
        ]
        self.sentinels = [
            SentinelServer(self.primary.port, root / f"sentinel{i}",
                           down_after_ms=down_after_ms)
            for i in range(sentinels)
        ]

    @property
    def data_nodes(self) -> list[RedisServer]:
        return [self.primary, *self.replicas]

    @property
    def servers(self) -> list[RedisServer]:
        return [*self.data_nodes, *self.sentinels]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def start(self, timeout_s: float = 20.0) -> SentinelSet:
        for srv in self.servers:
            srv.dir.mkdir(parents=True, exist_ok=True)
            srv.start()
        deadline = time.monotonic() + timeout_s
        while not self._settled():
            if time.monotonic() > deadline:
                raise RuntimeError(f"sentinel set in {self.root} did not settle in {timeout_s}s")
            time.sleep(0.05)
        return self

    def _settled(self) -> bool:
        """Every replica linked, and every sentinel sees them and the other sentinels."""
        for node in self.replicas:
            if node.client().info("replication").get("master_link_status") != "up":
                return False
        for s in self.sentinels:
            info = s.client().sentinel_master(SERVICE)  # redis-py parses it into a dict
            if int(info["num-slaves"]) < len(self.replicas) or \
                    int(info["num-other-sentinels"]) < len(self.sentinels) - 1:
                return False
        return True

    def master_port(self) -> int | None:
        """The primary's port as the sentinels' majority reports it now (None: no majority)."""
        ports: dict[int, int] = {}
        for s in self.sentinels:
            try:
                _, port = s.client(socket_timeout=1.0).execute_command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
            except (redis.ConnectionError, redis.TimeoutError):
                continue
            ports[int(port)] = ports.get(int(port), 0) + 1
        best = max(ports.items(), key=lambda kv: kv[1], default=None)
        return best[0] if best and best[1] * 2 > len(self.sentinels) else None

    def lagging(self) -> contextlib.AbstractContextManager[None]:
        """The primary's replicas cut off for the block (server.replication_cut)."""
        return replication_cut(self.primary.client(), [r.pid() for r in self.replicas])

    def node(self, port: int) -> RedisServer:
        return next(n for n in self.data_nodes if n.port == port)

    def wait_failover(self, old_port: int, timeout_s: float = 30.0) -> RedisServer:
        """Until a majority of sentinels names another primary, and it answers as a primary
        with at least one replica linked (so WAIT 1 can succeed); returns it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            port = self.master_port()
            if port is not None and port != old_port:
                info = self.node(port).client(socket_timeout=1.0).info("replication")
                if info.get("role") == "master":
                    return self.node(port)
            time.sleep(0.02)
        raise RuntimeError(f"no failover away from port {old_port} within {timeout_s}s")

    def wait_replicas_linked(self, primary: RedisServer, n: int, timeout_s: float) -> float:
        """Until ``primary`` has ``n`` online replicas; returns the monotonic time it did."""
        deadline = time.monotonic() + timeout_s
        while True:
            info = primary.client(socket_timeout=1.0).info("replication")
            if int(info.get("connected_slaves", 0)) >= n:
                return time.monotonic()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{primary.port}: fewer than {n} replicas after {timeout_s}s")
            time.sleep(0.02)

    def stop(self) -> None:
        for srv in self.servers:
            srv.stop()
