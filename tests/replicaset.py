"""A primary and its replicas on loopback ports, for the tests of Settings.wait_replicas.

Both from the same server binary as the rest of the suite (jobq_core.server.LocalRedis); the
replica is frozen with SIGSTOP to make WAIT time out (a stopped replica acknowledges nothing,
while its connection stays up: the primary still counts it as connected).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from jobq_core.server import LocalRedis, temp_dir


def free_port() -> int:
    """A loopback TCP port free right now (never 6379)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port != 6379:
            return port


@dataclass
class ReplicaSet:
    """One primary and `n` replicas of it, each LocalRedis in its own directory under `dir`."""

    dir: Path
    n: int = 1
    primary: LocalRedis | None = None
    replicas: list[LocalRedis] = field(default_factory=list)

    def start(self) -> ReplicaSet:
        self.primary = LocalRedis(self.dir / "primary", port=free_port()).start()
        for i in range(self.n):
            self.replicas.append(LocalRedis(
                self.dir / f"replica{i}", port=free_port(),
                extra_args=["--replicaof", "127.0.0.1", str(self.primary.port)]).start())
        self.wait_linked()
        return self

    @property
    def url(self) -> str:
        assert self.primary is not None
        return f"redis://127.0.0.1:{self.primary.port}/0"

    def client(self, node: LocalRedis) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=node.port, decode_responses=True,
                           socket_timeout=5)

    def wait_linked(self, timeout_s: float = 10.0) -> None:
        """Until every replica has finished its first sync with the primary."""
        deadline = time.monotonic() + timeout_s
        for node in self.replicas:
            while self.client(node).info("replication").get("master_link_status") != "up":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"replica on port {node.port} did not link in time")
                time.sleep(0.02)

    @contextmanager
    def frozen(self, node: LocalRedis) -> Iterator[None]:
        """The replica stopped (SIGSTOP) for the block: it acknowledges nothing meanwhile."""
        assert node.proc is not None
        os.kill(node.proc.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(node.proc.pid, signal.SIGCONT)

    def waits(self) -> int:
        """WAIT commands the primary has run (INFO commandstats)."""
        assert self.primary is not None
        stats = self.client(self.primary).info("commandstats")
        return int(stats.get("cmdstat_wait", {}).get("calls", 0))

    def stop(self) -> None:
        for node in [*self.replicas, *([self.primary] if self.primary else [])]:
            if node.proc is not None and node.proc.poll() is None:
                os.kill(node.proc.pid, signal.SIGCONT)
            node.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def replica_set(n: int = 1) -> Iterator[ReplicaSet]:
    rs = ReplicaSet(temp_dir("jq-rs-"), n)
    try:
        yield rs.start()
    finally:
        rs.stop()
