"""A redis+sentinel:// URL reaches the master a real Sentinel names."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobq_core import Queue, Settings
from jobq_core.server import LocalRedis, find_server_binary, temp_dir
from tests import tasks
from tests.helpers import drain


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sentinel_support(binary: str) -> str | None:
    """None if `binary` can run as a Sentinel, else why not. A build with Sentinel mode
    started with --sentinel and no config file refuses with a message naming that config
    file; a build without it fails on the option (or is not a Redis server at all)."""
    try:
        out = subprocess.run([binary, "--sentinel"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{binary} --sentinel: {exc}"
    text = out.stdout + out.stderr
    if "Sentinel needs config file" in text:
        return None
    return f"{binary} cannot run as a Sentinel: {text.strip()[-300:]}"


@pytest.fixture
def sentinel_url() -> Iterator[str]:
    binary = find_server_binary()
    why_not = _sentinel_support(binary)
    if why_not:
        pytest.skip(why_not)
    d = temp_dir("jq-sentinel-")
    master = LocalRedis(d / "master", port=_free_port()).start()
    port = _free_port()
    conf = Path(d / "sentinel.conf")
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {d}\n"
                    f"sentinel monitor jobs 127.0.0.1 {master.port} 1\n")
    log = d / "sentinel.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([binary, str(conf), "--sentinel"], stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        # This binary can run as a Sentinel (checked above): one that dies or never listens
        # here is a failure to report, not a reason to skip.
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    state = (f"exited with {proc.returncode}" if proc.poll() is not None
                             else "not listening after 30 s")
                    pytest.fail(f"the Sentinel {state}:\n{log.read_text(errors='replace')}")
                time.sleep(0.05)
        yield f"redis+sentinel://127.0.0.1:{port}/jobs/0"
    finally:
        proc.terminate()
        proc.wait(10)
        master.stop()
        shutil.rmtree(d, ignore_errors=True)


def test_enqueue_and_run_through_sentinel(sentinel_url: str) -> None:
    settings = Settings(redis_url=sentinel_url, prefix="sentinel", heartbeat_s=1.0, lease_s=4.0,
                        block_s=0.2)
    job = Queue("default", settings=settings).enqueue(tasks.add, 40, 2)
    drain(settings)
    assert job.result(timeout_s=5) == 42
